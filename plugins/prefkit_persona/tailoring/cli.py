"""``prefkit tailor ...``: persona tailoring commands (mounted by the persona plugin).

Light at import time: option dataclasses only; data, models and backends load inside commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import typer

import prefkit
from prefkit import JudgeOptions
from prefkit import RunOptions, opt, with_options

from .formats import INFERENCE_TYPES, TRAINING_TYPES

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="Persona tailoring (Balepur et al.): train and run models that tailor answers to a user persona, "
         "then judge them against a baseline for quality and personalization.",
    no_args_is_help=True,
    context_settings=CONTEXT,
)

_TRAIN_HELP = ", ".join(TRAINING_TYPES)
_INFER_HELP = ", ".join(INFERENCE_TYPES)
_DATASET_HELP = ("Use this dataset instead of persona-tailoring:<split>, e.g. a `prefkit persona augment` output "
                 "directory: any dataset with the data splits (sft_train, dpo_train, test ...) and the columns needed "
                 "(prompt, chosen, rejected, persona columns); --split then only names it.")


# --------------------------------------------------------------------------- option sets
# The training flags are the core's (prefkit.SFTTrainConfig / DPOTrainConfig / TrainModelConfig); their
# defaults come from a training preset (--preset, default persona-tailoring: see tailoring/presets.py).
# Only --format is the command's own (tailoring's text/chat switch), and the text template is fixed.
@dataclass
class SftOptions(prefkit.SFTTrainConfig):
    """SFT flags of ``tailor sft`` (the values come from the preset unless given)."""

    format: str = opt("chat", cli=False)
    text_template: str = opt("{prompt}", cli=False)


@dataclass
class DpoOptions(prefkit.DPOTrainConfig):
    """DPO flags of ``tailor dpo`` (the values come from the preset unless given)."""

    format: str = opt("chat", cli=False)
    text_template: str = opt("{prompt}", cli=False)


@dataclass
class ChainOptions(prefkit.BaseTrainConfig):
    """Flags of ``tailor train`` for both stages (the values come from the preset unless given)."""

    format: str = opt("chat", cli=False)
    text_template: str = opt("{prompt}", cli=False)


_PRESET_HELP = ("Training preset: persona-tailoring (prefkit's quick default) or persona-tailoring-paper (the "
                "paper's settings: 10 epochs, best by validation loss, batch 1, LoRA q,v, DPO prompts ≤128 tokens); "
                "flags given override it. See `prefkit train presets`.")


@dataclass
class GenerateOptions(prefkit.BackendOptions):
    """Backend options for greedy generation: the model is the MODEL argument."""

    model: Optional[str] = opt(None, cli=False)
    temperature: float = opt(0.0, cli=False)
    max_tokens: Optional[int] = opt(512, help="Most tokens to generate per answer (the paper's limit: 512).")


def _echo_summary(summary: dict, json_: bool, title: str) -> None:
    from prefkit import rich_console as console, print_json

    if json_:
        print_json(summary)
        return
    c = console()
    c.print(f"[bold]{title}[/bold]", soft_wrap=True, highlight=False)
    for k, v in summary.items():
        if v is None or (isinstance(v, (dict, list)) and k != "metrics"):
            continue
        if k == "metrics":
            v = ", ".join(f"{mk} {mv:.4g}" if isinstance(mv, float) else f"{mk} {mv}" for mk, mv in v.items()
                          if "loss" in mk or mk in ("global_step", "wall_time_s"))
        c.print(f"  {k}: {v}", soft_wrap=True, highlight=False)


# --------------------------------------------------------------------------- training
def _train(kind, ctx, model: str, split: str, training_type: str, fmt: str, persona_source: str,
           data_dir: Optional[str], limit: Optional[int], eval_limit: Optional[int], output_dir: Optional[str],
           preset: str, fresh: bool, cfg, mcfg, json_: bool, dataset: Optional[str] = None, run_name: Optional[str] = None) -> None:
    from .methods import train_tailored

    flags = prefkit.explicit_settings(ctx, cfg, mcfg)
    flags.pop("format", None)
    flags.pop("text_template", None)
    summary = train_tailored(kind, model, split=split, training_type=training_type, config=flags, fmt=fmt,
                             persona_source=persona_source, data_dir=data_dir, limit=limit, eval_limit=eval_limit,
                             output_dir=output_dir, run_name=run_name, preset=preset or None, fresh=fresh,
                             dataset=dataset)
    title = "→".join(k.upper() for k in ([kind] if isinstance(kind, str) else kind))
    _echo_summary(summary, json_, f"persona-tailoring {title} done: {summary.get('chain_dir') or summary['output_dir']}")


@app.command("sft")
@with_options(prefkit.TrainModelConfig, "mcfg")
@with_options(SftOptions, "cfg")
def sft_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Base model: hub id, local directory or alias."),
    split: str = typer.Option(..., "--split", "-s", help="BeaverTails, Anthropic HHH or Mnemonic."),
    training_type: str = typer.Option("chosen", "--training-type", "-t", help=f"One of: {_TRAIN_HELP}."),
    fmt: str = typer.Option("text", "--format", help="text: 'Prompt/Persona/Response' (base models); chat: the "
                                                     "tokenizer's chat template (instruct models)."),
    persona_source: str = typer.Option("gold", "--persona-source", help="Train on gold or retr personas."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N sft_train rows."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N sft_val rows (0: no evaluation)."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Where the adapter and merged model go "
                                             "(default: runs/tailor-sft/<split>-<type>-<model>)."),
    preset: str = typer.Option("persona-tailoring", "--preset", help=_PRESET_HELP),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="Run name under runs/tailor-<stages>/ (default: <split>-<type>-<model>; -o overrides)."),
    fresh: bool = typer.Option(False, "--fresh", metavar="", help="Train again from the start (discard a finished or partial run)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    cfg: SftOptions = None,
    mcfg: prefkit.TrainModelConfig = None,
) -> None:
    """LoRA SFT on sft_train (eval on sft_val): prompt + persona → response."""
    _train("sft", ctx, model, split, training_type, fmt, persona_source, data_dir, limit, eval_limit, output_dir,
           preset, fresh, cfg, mcfg, json_, dataset, run_name=run_name)


@app.command("dpo")
@with_options(prefkit.TrainModelConfig, "mcfg")
@with_options(DpoOptions, "cfg")
def dpo_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="The SFT model: a `prefkit tailor sft` output directory or a merged model."),
    split: str = typer.Option(..., "--split", "-s", help="BeaverTails, Anthropic HHH or Mnemonic."),
    training_type: str = typer.Option("chosen", "--training-type", "-t", help=f"One of: {_TRAIN_HELP}."),
    fmt: str = typer.Option("text", "--format", help="text (base models) or chat (instruct models)."),
    persona_source: str = typer.Option("gold", "--persona-source", help="Train on gold or retr personas."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N dpo_train rows."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N dpo_val rows (0: no evaluation)."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Where the adapter and merged model go "
                                             "(default: runs/tailor-dpo/<split>-<type>-<model>)."),
    preset: str = typer.Option("persona-tailoring", "--preset", help=_PRESET_HELP),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="Run name under runs/tailor-<stages>/ (default: <split>-<type>-<model>; -o overrides)."),
    fresh: bool = typer.Option(False, "--fresh", metavar="", help="Train again from the start (discard a finished or partial run)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    cfg: DpoOptions = None,
    mcfg: prefkit.TrainModelConfig = None,
) -> None:
    """LoRA DPO on dpo_train (eval on dpo_val), starting from the merged SFT model (also the reference)."""
    _train("dpo", ctx, model, split, training_type, fmt, persona_source, data_dir, limit, eval_limit, output_dir,
           preset, fresh, cfg, mcfg, json_, dataset, run_name=run_name)


@app.command("train")
@with_options(prefkit.TrainModelConfig, "mcfg")
@with_options(ChainOptions, "cfg")
def train_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Base model: hub id, local directory or alias."),
    split: str = typer.Option(..., "--split", "-s", help="BeaverTails, Anthropic HHH or Mnemonic."),
    training_type: str = typer.Option("chosen", "--training-type", "-t", help=f"One of: {_TRAIN_HELP}."),
    fmt: str = typer.Option("text", "--format", help="text (base models) or chat (instruct models)."),
    persona_source: str = typer.Option("gold", "--persona-source", help="Train on gold or retr personas."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N train rows of each stage."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N val rows (0: no evaluation)."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="The chain directory (stages in "
                                             "sft/ and dpo/; default: runs/tailor-sft-dpo/<split>-<type>-<model>)."),
    preset: str = typer.Option("persona-tailoring", "--preset", help=_PRESET_HELP),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="Run name under runs/tailor-<stages>/ (default: <split>-<type>-<model>; -o overrides)."),
    fresh: bool = typer.Option(False, "--fresh", metavar="", help="Train every stage again from the start."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    cfg: ChainOptions = None,
    mcfg: prefkit.TrainModelConfig = None,
) -> None:
    """SFT → merge → DPO in one chain (prefkit train chain): resumes at the first unfinished stage."""
    _train(("sft", "dpo"), ctx, model, split, training_type, fmt, persona_source, data_dir, limit, eval_limit,
           output_dir, preset, fresh, cfg, mcfg, json_, dataset, run_name=run_name)


# --------------------------------------------------------------------------- generation
def _generate(model: str, split: str, inference_type: str, training_type: Optional[str], fmt: Optional[str],
              system_persona: Optional[str], data_dir: Optional[str], limit: Optional[int], skip_empty: bool,
              llm, run: RunOptions, json_: bool, fewshot: bool, dataset: Optional[str] = None) -> None:
    from .methods import generate

    summary = generate(model, split=split, inference_type=inference_type, llm=llm, training_type=training_type,
                       fmt=fmt, system_persona=system_persona, data_dir=data_dir, limit=limit, fewshot=fewshot,
                       skip_empty=skip_empty, output_dir=run.output_dir, run_name=run.run_name, fresh=run.fresh,
                       dataset=dataset)
    _echo_summary(summary, json_, f"{summary['done']}/{summary['rows']} answers in {summary['run']}")
    if summary["failed"]:
        from prefkit import warn

        warn(f"{summary['failed']} rows failed; re-run the same command to retry them")


@app.command("generate")
@with_options(RunOptions, "run")
@with_options(GenerateOptions, "llm")
def generate_cmd(
    model: str = typer.Argument(..., help="The model: a `prefkit tailor sft/dpo` output directory, a model "
                                          "directory, hub id or alias."),
    split: str = typer.Option(..., "--split", "-s", help="BeaverTails, Anthropic HHH or Mnemonic."),
    inference_type: str = typer.Option(..., "--inference-type", "-i", help=f"Persona given at inference: {_INFER_HELP}."),
    training_type: Optional[str] = typer.Option(None, "--training-type", "-t", help="How the model was trained (default: "
                                                "read from its tailoring.json, else chosen); none appends the persona "
                                                "to the prompt in the first person."),
    fmt: Optional[str] = typer.Option(None, "--format", help="text or chat (default: as trained, else text)."),
    system_persona: Optional[str] = typer.Option(None, "--system-persona", help="The persona of --inference-type "
                                                 "system (default: a generic one per split)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N test rows."),
    skip_empty: bool = typer.Option(False, "--skip-empty", metavar="", help="Leave out test rows without a persona instead of failing."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    llm: GenerateOptions = None,
    run: RunOptions = None,
) -> None:
    """Greedy generation on the test split (stops at '\\nPrompt:'); results keyed by row_id, resumable."""
    _generate(model, split, inference_type, training_type, fmt, system_persona, data_dir, limit, skip_empty, llm, run,
              json_, fewshot=False, dataset=dataset)


@app.command("fewshot")
@with_options(RunOptions, "run")
@with_options(GenerateOptions, "llm")
def fewshot_cmd(
    model: str = typer.Argument(..., help="A base model (hub id, directory or alias)."),
    split: str = typer.Option(..., "--split", "-s", help="BeaverTails, Anthropic HHH or Mnemonic."),
    inference_type: str = typer.Option(..., "--inference-type", "-i", help=f"Persona given at inference: {_INFER_HELP}."),
    training_type: str = typer.Option("chosen", "--training-type", "-t", help="What the demonstrations show: chosen "
                                      "(chosen persona + response), rejected, all (both) or none (no persona)."),
    fmt: str = typer.Option("text", "--format", help="text (demonstrations in one prompt) or chat (as turns)."),
    system_persona: Optional[str] = typer.Option(None, "--system-persona", help="The persona of --inference-type system."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N test rows."),
    skip_empty: bool = typer.Option(False, "--skip-empty", metavar="", help="Leave out test rows without a persona instead of failing."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    llm: GenerateOptions = None,
    run: RunOptions = None,
) -> None:
    """Few-shot persona tailoring: the split's fewshot rows as demonstrations before each test prompt."""
    _generate(model, split, inference_type, training_type, fmt, system_persona, data_dir, limit, skip_empty, llm, run,
              json_, fewshot=True, dataset=dataset)


# --------------------------------------------------------------------------- outputs & judging
@app.command("import-outputs")
@with_options(RunOptions, "run")
def import_cmd(
    file: str = typer.Argument(..., help="A JSON array of {prompt, response} in test-split order, e.g. "
                                         "paper-outputs/BeaverTails/dpo__train-chosen__infer-gold-chosen.json."),
    split: str = typer.Option(..., "--split", "-s", help="The test split the file answers."),
    training_type: Optional[str] = typer.Option(None, "--training-type", "-t", help="Default: from the file name."),
    inference_type: Optional[str] = typer.Option(None, "--inference-type", "-i", help="Default: from the file name."),
    method: Optional[str] = typer.Option(None, "--method", help="Label of the method (default: from the file name)."),
    system_persona: Optional[str] = typer.Option(None, "--system-persona", help="The persona of inference type system."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    run: RunOptions = None,
) -> None:
    """Turn published generations into a generation run (row_ids by test-split order, prompts checked)."""
    from .importing import import_outputs

    summary = import_outputs(file, split=split, training_type=training_type, inference_type=inference_type,
                             method=method, system_persona=system_persona, data_dir=data_dir, dataset=dataset,
                             output_dir=run.output_dir, run_name=run.run_name, fresh=run.fresh)
    _echo_summary(summary, json_, f"imported {summary['imported']} answers into {summary['run']}")


@app.command("judge")
@with_options(RunOptions, "run")
@with_options(JudgeOptions, "judge")
@with_options(prefkit.BackendOptions, "llm")
def judge_cmd(
    base_run: str = typer.Argument(..., help="The baseline's generation run (e.g. DPO trained and run without personas)."),
    test_run: str = typer.Argument(..., help="The tailored model's generation run."),
    persona_type: Optional[str] = typer.Option(None, "--persona-type", help="Whose persona the personalization "
                                               "judge sees: an inference type (default: TEST_RUN's, when it has one)."),
    rubrics: str = typer.Option("quality,tailoring-personalization", "--rubrics", help="Comma-separated rubrics to "
                                "judge with (default: quality and the paper's personalization criterion, which asks "
                                "only whether the answer answers the prompt and fits the persona)."),
    system_persona: Optional[str] = typer.Option(None, "--system-persona", help="The persona of --persona-type system "
                                                 "(default: the one TEST_RUN used)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local mirror (default: PREFKIT_DATA_DIR, then the hub)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Judge only the first N shared rows."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the confidence intervals."),
    delta_pq_metric: str = typer.Option("win_rate", "--delta-pq-metric", help="Win rates inside ΔPQ: win_rate (the "
                                        "paper's: ties left out) or win_rate_ties_half (a tie counts half); both "
                                        "are reported."),
    plot: bool = typer.Option(True, "--plot/--no-plot", metavar="", help="Write win-rate plots (PNG, PDF) into the run directory."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the report as JSON."),
    llm: prefkit.BackendOptions = None,
    judge: JudgeOptions = None,
    run: RunOptions = None,
) -> None:
    """Pairwise judging of TEST_RUN vs BASE_RUN: quality and personalization win rates with CIs, and ΔPQ."""
    from .compare import judge_runs, print_report

    report = judge_runs(base_run, test_run, llm=llm, judge=judge, persona_type=persona_type, rubrics=rubrics,
                        system_persona=system_persona, data_dir=data_dir, dataset=dataset, limit=limit,
                        bootstrap=bootstrap, delta_pq_metric=delta_pq_metric, plot=plot, output_dir=run.output_dir, run_name=run.run_name, fresh=run.fresh)
    if json_:
        from prefkit import print_json

        print_json(report)
    else:
        print_report(report)


@app.command("delta-pq")
def delta_pq_cmd(
    personalization_run: str = typer.Argument(..., help="A pairwise judge run with a persona rubric (e.g. "
                                              "`prefkit judge pairwise --rubric tailoring-personalization ...`)."),
    quality_run: str = typer.Argument(..., help="A pairwise judge run of the same A/B outputs with --rubric quality."),
    delta_pq_metric: str = typer.Option("win_rate", "--delta-pq-metric", help="Headline convention: win_rate (the "
                                        "paper's: ties left out) or win_rate_ties_half; both are reported."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CI (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """ΔPQ = WR_personalization + WR_quality − 1 of B over A from two judge runs (paired bootstrap CI)."""
    from prefkit import rich_console as console, print_json

    from ..metrics import METRIC_LABELS
    from .compare import _fmt_ci, delta_pq_from_runs

    d = delta_pq_from_runs(personalization_run, quality_run, metric=delta_pq_metric, bootstrap=bootstrap, seed=seed)
    if json_:
        print_json(d)
        return
    c = console()
    for m, v in d["by_metric"].items():
        if v["delta_pq"] is None:
            c.print(f"ΔPQ ({METRIC_LABELS[m]}): n/a (no decisive verdicts)", highlight=False)
            continue
        c.print(f"ΔPQ ({METRIC_LABELS[m]}{', headline' if m == d['metric'] else ''}) = {v['delta_pq']:+.3f} "
                f"{_fmt_ci(v.get('delta_pq_ci'))}  (WR_personalization {v['wr_personalization']:.3f} + WR_quality "
                f"{v['wr_quality']:.3f} − 1)", highlight=False, soft_wrap=True)
