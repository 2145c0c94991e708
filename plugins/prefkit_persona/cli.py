"""CLI of the persona plugin: ``prefkit infer-personas`` and ``prefkit persona ...``.

Imported only when commands are registered; the heavy work (datasets, models,
the engine) is imported inside the command functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from prefkit import BackendOptions
from prefkit import JudgeOptions
from prefkit import RunOptions, split_csv, with_options

CONTEXT = {"help_option_names": ["-h", "--help"]}

persona_app = typer.Typer(help="Evaluate, analyse and use inferred personas (accuracy, prefs, saliency, augment, "
                          "retrieve).", no_args_is_help=True, context_settings=CONTEXT)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _row_order(row_id) -> tuple:
    s = str(row_id)
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


# ---------------------------------------------------------------------------------------------- infer-personas
@with_options(RunOptions, "run")
@with_options(BackendOptions, "llm")
def infer_personas_cmd(
    split: str = typer.Option(..., "--split", "-s", help="Persona split: BeaverTails, 'Anthropic HHH', Mnemonic or SHP "
                              "(chooses the data, the split description and the demonstrations)."),
    strategy: str = typer.Option("abductive", "--strategy", help="Persona strategy (`prefkit persona strategies` lists them)."),
    prompt_file: Optional[str] = typer.Option(None, "--prompt-file", help="Instruction template to use instead of the "
                                              "strategy's (placeholders {{prompt}} {{chosen}} {{rejected}}, optional "
                                              "{{description}} {{examples}})."),
    examples_file: Optional[str] = typer.Option(None, "--examples-file", help="Few-shot demonstrations file ("
                                                "blocks separated by '===' lines)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Preference data to explain (default: "
                                          "persona-inference:<split>); any source name, file or directory."),
    data_split: Optional[str] = typer.Option(None, "--data-split", help="The dataset's split (default: its default, "
                                             "train for persona-inference; e.g. sft_train for persona-tailoring)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline mirror folder (also PREFKIT_DATA_DIR)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N rows (2 personas each)."),
    sides: str = typer.Option("chosen,rejected", "--sides", help="Which personas: chosen, rejected or both."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", metavar="", help="Skip rows with an empty prompt/response."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON."),
    *,
    llm: BackendOptions,
    run: RunOptions,
) -> None:
    """Infer the persona of a user who would prefer each response (chosen side and rejected side) of every row.

    Runs on the local default model unless you pick a backend; results go to
    runs/infer-personas/<run-name>/results.jsonl and re-running resumes.
    """
    from prefkit import rich_console as console, print_json, print_table

    from .inference import InferConfig, infer_personas
    from .runs import load_persona_run

    cfg = InferConfig(split=split, strategy=strategy, prompt_file=prompt_file, examples_file=examples_file,
                      dataset=dataset, data_split=data_split, data_dir=data_dir, limit=limit,
                      sides=tuple(split_csv(sides)), skip_invalid=skip_invalid)
    summary = infer_personas(cfg, llm, output_dir=run.output_dir, run_name=run.run_name, fresh=run.fresh)
    if json_:
        print_json(summary)
    else:
        c = console()
        flags = ", ".join(f"{k}: {v}" for k, v in summary["flags"].items()) or "none"
        c.print(f"[bold]{summary['personas']}[/bold] personas ({summary['by_side']['chosen']} chosen-side, "
                f"{summary['by_side']['rejected']} rejected-side) in {summary['run']}/results.jsonl; flagged: {flags}")
        rows = sorted(load_persona_run(summary["run"], need_personas=False).rows,
                      key=lambda r: (_row_order(r["row_id"]), r["side"] != "chosen"))[:4]
        if rows:
            print_table([{"row": r["row_id"], "side": r["side"], "persona": r["persona"] or "(empty)",
                          "flags": r.get("flags")} for r in rows], ["row", "side", "persona", "flags"],
                        title="first personas")
    if summary["missing"] and not summary.get("dry_run"):
        raise typer.Exit(1)  # the engine has said which requests failed and that re-running retries them


# ---------------------------------------------------------------------------------------------- persona subcommands
@persona_app.command("strategies")
def strategies_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List persona-inference strategies."""
    from prefkit import print_json, print_table
    from prefkit import registry

    rows = [{"name": e.name, "plugin": e.plugin, "description": getattr(e.obj, "description", "")}
            for e in registry("persona_strategies").entries()]
    print_json(rows) if json_ else print_table(rows, ["name", "plugin", "description"], title="persona strategies")


@persona_app.command("prompt")
def prompt_cmd(
    split: str = typer.Option(..., "--split", "-s", help="Persona split."),
    row: int = typer.Option(0, "--row", help="Row index of the dataset."),
    side: str = typer.Option("chosen", "--side", help="chosen or rejected."),
    strategy: str = typer.Option("abductive", "--strategy", help="Persona strategy."),
    prompt_file: Optional[str] = typer.Option(None, "--prompt-file", help="Instruction template file."),
    examples_file: Optional[str] = typer.Option(None, "--examples-file", help="Demonstrations file."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Preference data (default persona-inference:<split>)."),
    data_split: Optional[str] = typer.Option(None, "--data-split", help="The dataset's split."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline mirror folder."),
) -> None:
    """Print the exact persona-inference prompt for one row (to check an edited template)."""
    import sys

    from prefkit import load_records
    from prefkit import UsageError

    from .inference import get_strategy, pi_inputs
    from .splits import INFERENCE_SPLITS, canonical_split

    split_c = canonical_split(split, INFERENCE_SPLITS) if dataset is None else split
    strat = get_strategy(strategy)
    ctx = strat.context(split_c, prompt_file=prompt_file, examples_file=examples_file)
    recs = load_records(dataset or f"persona-inference:{split_c}", split=data_split, data_dir=data_dir, limit=row + 1)
    if row < 0 or row >= len(recs):
        raise UsageError(f"--row {row} is out of range (the dataset has {len(recs)} rows)")
    item = pi_inputs([recs[row]], [side])[0]
    for m in strat.build_messages(item, ctx):
        sys.stdout.write(f"[{m['role']}]\n{m['content']}\n")


@persona_app.command("accuracy")
@with_options(RunOptions, "run")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
def accuracy_cmd(
    runs: List[str] = typer.Argument(..., help="One or more infer-personas run directories (compared in one plot)."),
    protocol: str = typer.Option("fewshot", "--protocol", help="fewshot (default, the paper's: split description + 5 "
                                 "demonstrations, the judge answers with the response number) or rubric (prefkit's "
                                 "zero-shot pairwise judge with --rubric)."),
    rubric: Optional[str] = typer.Option(None, "--rubric", help="--protocol rubric: a rubric name or .yaml/.json/.txt "
                                         "rubric file (default: persona-choice)."),
    prompt_file: Optional[str] = typer.Option(None, "--prompt-file", help="--protocol fewshot: judge template to use "
                                              "instead of prompts/accuracy.txt ({{persona}} {{prompt}} {{response_1}} "
                                              "{{response_2}}, optional {{description}} {{examples}})."),
    examples_file: Optional[str] = typer.Option(None, "--examples-file", help="--protocol fewshot: demonstrations in "
                                                "the infer-personas layout (default: the split's built-in five)."),
    plot: Optional[str] = typer.Option(None, "--plot-to", help="Plot path (PNG and PDF; default: in the judge run)."),
    plot_metric: str = typer.Option("mean", "--plot-metric", help="Plotted accuracy: mean (per-item mean over both "
                                    "orders, the headline) or both_orders (strict: both orders must agree)."),
    make_plot: bool = typer.Option(True, "--plot/--no-plot", metavar="", help="Draw the plot."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
    *,
    llm: BackendOptions,
    judge: JudgeOptions,
    run: RunOptions,
) -> None:
    """Persona accuracy: does a judge, told the persona, pick the response it was inferred for? (both orders)"""
    from prefkit import rich_console as console, print_json, print_table

    from .evaluation import persona_accuracy

    res = persona_accuracy(runs, llm, judge, protocol=protocol, rubric=rubric, prompt_file=prompt_file,
                           examples_file=examples_file, output_dir=run.output_dir, run_name=run.run_name,
                           fresh=run.fresh, plot=plot, plot_metric=plot_metric, make_plot=make_plot)
    if json_:
        print_json(res)
        return
    def pm(d):
        return f"{_fmt(d['accuracy'])}±{_fmt(d['se'])}"

    rows = []
    for r in res["runs"]:
        for side in ("chosen", "rejected"):
            a = r["accuracy"][side]
            rows.append({"run": r["label"], "personas": side, "n": a["mean"]["n"], "accuracy": pm(a["mean"]),
                         "chosen 1st": pm(a["order_ab"]), "rejected 1st": pm(a["order_ba"]),
                         "both orders agree": pm(a["both_orders"]), "unparsed": a["unparsed"]})
    print_table(rows, list(rows[0]), title=f"persona accuracy ({res['protocol']} protocol; accuracy = per-item mean "
                "over both orders ± s.e.)")
    for r in res["runs"]:
        console().print(f"judgments: {r['judge_run']}" + (f"  ({r['failures']} failed; re-run to retry)" if r["failures"] else ""))
    if res.get("plot"):
        console().print(f"plot: {', '.join(res['plot'])}")


@persona_app.command("prefs")
@with_options(RunOptions, "run")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
def prefs_cmd(
    runs: List[str] = typer.Argument(..., help="One or more infer-personas run directories."),
    protocol: str = typer.Option("better", "--protocol", help="better (default, the paper's: which persona is better, "
                                 "only the two personas shown) or typicality (prefkit's: which describes the more "
                                 "typical user, the prompt shown; judged with --rubric)."),
    rubric: Optional[str] = typer.Option(None, "--rubric", help="--protocol typicality: a rubric name or file "
                                         "(default: persona-typicality; the personas are shown as Response A/B)."),
    prompt_file: Optional[str] = typer.Option(None, "--prompt-file", help="--protocol better: judge template to use "
                                              "instead of prompts/prefs.txt ({{persona_1}} {{persona_2}})."),
    plot: Optional[str] = typer.Option(None, "--plot-to", help="Plot path (default: in the judge run)."),
    make_plot: bool = typer.Option(True, "--plot/--no-plot", metavar="", help="Draw the plot."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
    *,
    llm: BackendOptions,
    judge: JudgeOptions,
    run: RunOptions,
) -> None:
    """Chosen-side vs rejected-side persona of each row: which is better? (both orders; disagreement = tie)"""
    from prefkit import rich_console as console, print_json, print_table

    from .evaluation import persona_prefs

    res = persona_prefs(runs, llm, judge, protocol=protocol, rubric=rubric, prompt_file=prompt_file,
                        output_dir=run.output_dir, run_name=run.run_name, fresh=run.fresh, plot=plot,
                        make_plot=make_plot)
    if json_:
        print_json(res)
        return
    rows = [{"run": r["label"], "rows": r["prefs"]["n"],
             **{k: f"{_fmt(r['prefs']['proportions'][k])} ({r['prefs']['counts'][k]})" for k in ("chosen", "tie", "rejected")},
             "chosen wins (ties excl.)": _fmt(r["prefs"]["chosen_win_rate"]["ties_excluded"]),
             "chosen wins (ties half)": _fmt(r["prefs"]["chosen_win_rate"]["ties_half"]),
             "unparsed": r["prefs"]["unparsed"]} for r in res["runs"]]
    print_table(rows, list(rows[0]), title=f"persona preferences ({res['protocol']} protocol): chosen-side / tie / "
                "rejected-side")
    if res.get("plot"):
        console().print(f"plot: {', '.join(res['plot'])}")


@persona_app.command("saliency")
def saliency_cmd(
    runs: List[str] = typer.Argument(..., help="One or more infer-personas run directories."),
    min_count: int = typer.Option(10, "--min-count", min=1, help="Only words seen at least this often (both sides together)."),
    top: int = typer.Option(10, "--top", min=1, help="Words listed per side."),
    per_persona: bool = typer.Option(False, "--per-persona", metavar="", help="Count a word once per persona."),
    keep_stopwords: bool = typer.Option(False, "--keep-stopwords", metavar="", help="Also rank function words (a, the, and ...) "
                                        "and the template words user/prefer."),
    pool: bool = typer.Option(False, "--pool", metavar="", help="Pool the personas of all RUNS into one count (as the paper pools "
                              "its models) instead of one result per run."),
    output: Optional[str] = typer.Option(None, "--output", help="JSON file (default: <RUN>/saliency.json; pooled: "
                                         "<first RUN>/saliency-pooled.json)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Most salient words of chosen-side vs rejected-side personas (count(w, side) / count(w)).

    Lemmas come from simplemma, not WordNet as in the paper (e.g. "analytical" -> "analytic").
    """
    from prefkit import rich_console as console, print_json, print_table, warn

    from .saliency import saliency_of_runs

    results = saliency_of_runs(runs, min_count=min_count, top=top, per_persona=per_persona,
                               keep_stopwords=keep_stopwords, pool=pool, output=output)
    if json_:
        print_json(results if len(results) > 1 else results[0])
    for res in results:
        for w in res["warnings"]:
            warn(f"{res['run']}: {w}")
        if json_:
            continue
        if not res["eligible"]:
            warn(f"{res['run']}: no word occurs {min_count}+ times; lower --min-count")
        for side in ("chosen", "rejected"):
            print_table([{"word": d["word"], "saliency": d["saliency"], "count": f"{d['count']}/{d['total']}"}
                         for d in res[side]], ["word", "saliency", "count"],
                        title=f"{side}-side personas ({res['personas'][side]})")
        console().print(f"saliency of {res['label']}: {res['written_to']}", markup=False)


@persona_app.command("augment")
def augment_cmd(
    run_dirs: List[str] = typer.Argument(..., help="One or more infer-personas run directories of one dataset (e.g. "
                                         "one per data split: sft_train, dpo_train, test); every split is written."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Where to save_to_disk (default: "
                                             "<first RUN>/augmented)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline mirror folder."),
    keep_missing: bool = typer.Option(False, "--keep-missing", metavar="", help="Keep rows without both personas (empty strings)."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="Also push to this hub repo id."),
    private: bool = typer.Option(False, "--private", metavar="", help="Push as a private dataset."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Add chosen_persona_gold / rejected_persona_gold to the runs' source dataset (joined by row_id) and save it."""
    from prefkit import rich_console as console, print_json

    from .augment import augment

    stats = augment(run_dirs, output_dir, data_dir=data_dir, keep_missing=keep_missing, push_to_hub=push_to_hub,
                    private=private)
    if json_:
        print_json(stats)
        return
    console().print(f"saved {stats['augmented']} augmented rows" + (f" (+{stats['missing']} without personas kept)"
                    if keep_missing and stats["missing"] else (f" ({stats['missing']} rows without both personas left out)"
                    if stats["missing"] else "")) + f" of {stats['dataset']} ["
                    + ", ".join(f"{k}: {v['augmented']}" for k, v in stats["splits"].items()) + f"] to {stats['output_dir']}"
                    + (f"; pushed to {stats['pushed_to']}" if stats.get("pushed_to") else ""), markup=False)


@persona_app.command("retrieve")
def retrieve_cmd(
    split: str = typer.Option(..., "--split", "-s", help="Persona-tailoring split: BeaverTails, 'Anthropic HHH', Mnemonic."),
    pool: str = typer.Option("sft_train,dpo_train", "--pool", help="Splits whose gold personas can be retrieved."),
    target: str = typer.Option("test", "--target", help="Split to fill chosen/rejected_persona_retr for."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", "--embedder", help="all-MiniLM-L6-v2 (bundled, offline), another "
                                 "sentence-transformers model name/path, or bm25."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Use this dataset (e.g. an augment output "
                                          "directory) instead of persona-tailoring:<split>."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline mirror folder."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N target rows."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Run directory (default: runs/persona-retrieve/...)."),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="Run name."),
    fresh: bool = typer.Option(False, "--fresh", metavar="", help="Start over."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Fill each target row's retrieved personas from the nearest other pool row (by prompt)."""
    from prefkit import rich_console as console, print_json

    from .retrieval import retrieve

    res = retrieve(split, pool_splits=split_csv(pool), target=target, embedder=embedder, dataset=dataset,
                   data_dir=data_dir, limit=limit, output_dir=output_dir, run_name=run_name, fresh=fresh)
    if json_:
        print_json(res)
        return
    agree = "n/a (the target has no retrieved personas)" if res["agreement"] is None else \
        f"{res['agreement']:.1%} of {res['comparable']} rows identical"
    extra = "" if res["dataset_neighbour_in_top5"] is None else \
        f"; the dataset's own neighbour is our top-1 in {res['dataset_neighbour_in_top1']:.1%}, top-5 in {res['dataset_neighbour_in_top5']:.1%}"
    console().print(f"retrieved personas for {res['rows']} rows from a pool of {res['pool']} ({res['embedder']}); "
                    f"agreement with the dataset's *_retr columns: {agree}{extra}")
    console().print(f"dataset: {res['dataset_dir']}")
