"""``prefkit aloe train sft|dpo|chain``, ``prefkit aloe bench`` and ``prefkit aloe compare``.

Light at import time: option dataclasses and typer only; training, models and backends load
inside the commands (``training.py``, ``bench.py``, ``metrics.py`` import nothing heavy at
module level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import typer

import prefkit

from .bench import BenchConfig
from .training import PRESET

CONTEXT = {"help_option_names": ["-h", "--help"]}
JSON = typer.Option(False, "--json", metavar="", help="Print the result as JSON.")
_PRESET_HELP = (f"Training preset ({PRESET}: the reference's settings, see `prefkit train presets`); --config and "
                "flags given on the command line override it. '' for none.")
_CONFIG_HELP = "YAML/JSON file of training settings (over the preset; flags given on the command line override it)."


@dataclass
class ChainTrainConfig(prefkit.BaseTrainConfig):
    """Flags of ``aloe train chain``: the settings of both stages, plus DPO's own."""

    beta: Optional[float] = prefkit.opt(None, help="DPO beta (default: the preset's 0.9).")
    loss_type: Optional[str] = prefkit.opt(None, help="DPO loss (default: the preset's sigmoid).")


def _print_train(result: Any, json_: bool) -> None:
    if json_:
        prefkit.print_json(result.to_dict())
        return
    c = prefkit.rich_console()
    m = result.metrics or {}
    c.print(f"[bold]aloe train {result.kind}[/bold] done: {result.output_dir}",
            soft_wrap=True, highlight=False)
    if "train_loss" in m:
        c.print(f"  train loss {m['train_loss']:.4g} · steps {m.get('global_step')} · "
                f"{m.get('train_runtime', 0):.1f} s", highlight=False)
    if "train_rows" in m:
        c.print(f"  rows: {m.get('train_rows_kept')}/{m['train_rows']} trained, {m.get('train_rows_truncated', 0)} "
                f"with the history cut, {m.get('train_rows_dropped_too_long', 0)} dropped as too long", highlight=False)
    if result.model_dir:
        c.print(f"  model: {result.model_dir}   (prefkit aloe bench --model hf:{result.model_dir} ...)",
                soft_wrap=True, highlight=False)


def add_commands(app: typer.Typer) -> None:
    """Add ``train`` (sft | dpo | chain), ``bench`` and ``compare`` to the ``prefkit aloe`` app."""
    train_app = typer.Typer(help="Train on `aloe export` data through the core trainers (preset aloe-paper by "
                                 "default): sft, dpo, or the SFT → DPO chain.",
                            no_args_is_help=True, context_settings=CONTEXT)
    app.add_typer(train_app, name="train")

    # ---------------------------------------------------------------------------------- train sft / dpo
    def _stage_command(kind: str, config_class: type, columns: str):
        def command(
            ctx: typer.Context,
            model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to start from: hub id, model "
                                                "directory or a training run (an SFT run for DPO)."),
            dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help=f"Training data ({columns}): an "
                                                  f"`aloe export --format {kind}` output, a file or any dataset spec."),
            split: Optional[str] = typer.Option(None, "--split", help="Split of --dataset (if it has several)."),
            eval_dataset: Optional[str] = typer.Option(None, "--eval-dataset", help="Evaluation data (same format)."),
            limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Use only the first N training rows."),
            eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N evaluation rows."),
            preset: str = typer.Option(PRESET, "--preset", help=_PRESET_HELP),
            config_file: Optional[str] = typer.Option(None, "--config", help=_CONFIG_HELP),
            json_: bool = JSON,
            cfg: Any = None,
            mcfg: Any = None,
            run_opts: Any = None,
        ) -> None:
            from .training import StageData, train_stage

            flags = prefkit.explicit_settings(ctx, cfg, mcfg)
            result = train_stage(kind, model, StageData(dataset, eval_dataset, split, limit, eval_limit),
                                 preset=preset or None, config_file=config_file, flags=flags,
                                 output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
            _print_train(result, json_)
            prefkit.command_exit(result.output_dir)

        command.__name__ = f"aloe_train_{kind}"
        command.__doc__ = {
            "sft": "Multi-turn SFT on an `aloe export --format sft` output (loss on every assistant turn; preset "
                   "aloe-paper).",
            "dpo": "DPO on an `aloe export --format dpo` output (the realised history is the prompt; preset "
                   "aloe-paper: beta 0.9).",
        }[kind]
        return prefkit.with_options(prefkit.RunOptions, "run_opts")(
            prefkit.with_options(prefkit.TrainModelConfig, "mcfg")(prefkit.with_options(config_class, "cfg")(command)))

    train_app.command("sft")(_stage_command("sft", prefkit.SFTTrainConfig, "messages"))
    train_app.command("dpo")(_stage_command("dpo", prefkit.DPOTrainConfig, "prompt, chosen, rejected"))

    # ---------------------------------------------------------------------------------- train chain
    @train_app.command("chain")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    @prefkit.with_options(prefkit.TrainModelConfig, "mcfg")
    @prefkit.with_options(ChainTrainConfig, "cfg")
    def chain_cmd(
        ctx: typer.Context,
        model: Optional[str] = typer.Option(None, "--model", "-m", help="The model SFT starts from."),
        sft_dataset: Optional[str] = typer.Option(None, "--sft-dataset", help="SFT data: an `aloe export --format "
                                                  "sft` output."),
        dpo_dataset: Optional[str] = typer.Option(None, "--dpo-dataset", help="DPO data: an `aloe export --format "
                                                  "dpo` output."),
        sft_eval_dataset: Optional[str] = typer.Option(None, "--sft-eval-dataset", help="SFT evaluation data."),
        dpo_eval_dataset: Optional[str] = typer.Option(None, "--dpo-eval-dataset", help="DPO evaluation data."),
        limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Use only the first N rows of each stage."),
        handoff: str = typer.Option("merged", "--handoff", help="What SFT hands DPO (its model and reference): merged "
                                    "or adapter."),
        preset: str = typer.Option(PRESET, "--preset", help=_PRESET_HELP),
        config_file: Optional[str] = typer.Option(None, "--config", help=_CONFIG_HELP),
        json_: bool = JSON,
        cfg: ChainTrainConfig = None,  # type: ignore[assignment]
        mcfg: prefkit.TrainModelConfig = None,  # type: ignore[assignment]
        run_opts: prefkit.RunOptions = None,  # type: ignore[assignment]
    ) -> None:
        """SFT → DPO in one core chain: DPO starts from the SFT model (also its reference); re-running resumes."""
        from .training import StageData, train_chain

        flags = prefkit.explicit_settings(ctx, cfg, mcfg)
        dpo_flags = {k: flags.pop(k) for k in ("beta", "loss_type") if k in flags}
        result = train_chain(model, StageData(sft_dataset, sft_eval_dataset, limit=limit),
                             StageData(dpo_dataset, dpo_eval_dataset, limit=limit), preset=preset or None,
                             config_file=config_file, flags=flags, dpo_flags=dpo_flags, handoff=handoff,
                             output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
        if json_:
            prefkit.print_json(result.to_dict())
        else:
            c = prefkit.rich_console()
            c.print(f"[bold]aloe train chain[/bold] done: {result.output_dir}", soft_wrap=True, highlight=False)
            for s in result.stages:
                m = (s.result.metrics if s.result is not None else {}) or {}
                loss = f" · train loss {m['train_loss']:.4g}" if "train_loss" in m else ""
                c.print(f"  {s.name} ({s.trainer}){' — finished before' if s.skipped else ''}: {s.model_out}{loss}",
                        soft_wrap=True, highlight=False)
            c.print(f"  final model: {result.model_dir}   (prefkit aloe bench --model hf:{result.model_dir} ...)",
                    soft_wrap=True, highlight=False)
        prefkit.command_exit(result.output_dir)

    # ---------------------------------------------------------------------------------- bench
    @app.command("bench")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    @prefkit.with_roles([prefkit.RoleDecl("user", help="the simulated user; temperature 1 unless given"),
                         prefkit.RoleDecl("judge", help="scores each reply 1-5 against the true persona")],
                        "roles", default_backend="hf")
    @prefkit.with_options(BenchConfig, "cfg")
    def bench_cmd(json_: bool = JSON, cfg: BenchConfig = None, roles: Any = None,
                  run_opts: prefkit.RunOptions = None) -> None:  # type: ignore[assignment]
        """The ALOE benchmark: a simulated user chats with the model for --turns turns; a judge scores each reply 1-5.

        One row per model: AL(1..K) with 95% CIs over personas, AVG, IR, N-IR, N-R². Resumable.
        """
        from .bench import run_bench

        res = run_bench(cfg, roles, run_opts)
        if json_:
            prefkit.print_json(res)
        elif res.get("dry_run"):
            cost = res.get("estimated_cost_usd")
            prefkit.info(f"dry run: {res['conversations']} conversations · at most {res['calls']} calls · estimated "
                         f"cost ≤ {'$%.4f' % cost if cost is not None else 'unknown'} (nothing was sent)")
        else:
            _print_bench(res)
        if res.get("run"):
            prefkit.command_exit(res["run"])

    # ---------------------------------------------------------------------------------- compare
    @app.command("compare")
    def compare_cmd(runs: List[str] = typer.Argument(..., help="`aloe bench` run directories; the first is the "
                                                      "baseline of the paired differences."),
                    plot: bool = typer.Option(True, "--plot/--no-plot", metavar="", help="Draw the AL(k) curves in one figure."),
                    plot_to: Optional[str] = typer.Option(None, "--plot-to", help="Plot path (PNG and PDF; default: "
                                                          "<first run>/compare-al.png)."),
                    json_: bool = JSON) -> None:
        """AL(k) curves of several bench runs in one figure, and paired differences (B − A) with 95% CIs."""
        from .bench import compare_runs

        res = compare_runs(runs, plot=plot, plot_to=plot_to)
        if json_:
            prefkit.print_json(res)
            return
        prefkit.print_table(res["rows"], title=f"ALOE benchmark: AL(k) with 95% CI half-widths ({res['turns']} turns)")
        if res["difference_rows"]:
            prefkit.print_table(res["difference_rows"], title=f"paired differences vs {res['baseline']} "
                                                              "(over personas both runs scored; 95% t CIs)")
        if res["plot"]:
            prefkit.info(f"plot: {res['plot'][0]}")


def _print_bench(res: dict[str, Any]) -> None:
    title = (f"ALOE benchmark: {res['personas']} personas × {res['seeds']} seed(s) × {res['turns']} turns"
             + ("" if res["interaction"] else " · no interaction") + f" · judge {res['judge']}")
    prefkit.print_table(res["rows"], title=title)
    c = res["counts"]
    for label, s in res["models"].items():
        if s.get("incomplete"):
            prefkit.warn(f"{label}: {len(s['incomplete'])} personas not scored at every turn are left out "
                         "(re-run the same command to finish them)")
        if s.get("al") and not s.get("normalized"):
            prefkit.warn(f"{label}: all AL(k) are equal: N-AL, N-IR and N-R² are undefined")
    prefkit.info(f"{c['done']}/{c['conversations']} conversations done ({c['failed']} failed, {c['pending']} pending) · "
                 f"{c['turns_committed']} turns committed ({c['turns_resumed']} from before) · {c['calls_sent']} calls "
                 f"sent, {c['calls_reused']} reused · judge re-asks {c['judge_reasks']}")
    if res.get("plot"):
        prefkit.info(f"plot: {res['plot'][0]}")
    prefkit.info(f"run: {res['run']}")
