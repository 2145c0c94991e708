"""``prefkit judge pairwise``, ``prefkit judge score``, ``prefkit judge rubrics`` and ``prefkit winrate``.

Kept light at import time (typer and dataclasses only): the judge layer's
heavier parts, numpy and matplotlib load when a command runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.backends.options import BackendOptions
from prefkit.judging.options import JudgeOptions
from prefkit.options import RunOptions, check_limit, opt, with_options

_METRICS = ("win_rate", "win_rate_ties_half", "lc_win_rate")


# --------------------------------------------------------------------------- helpers
def _abs(path: str) -> str:
    p = Path(path)
    return str(p.resolve()) if p.exists() else str(path)


def _fmt_rate(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    s = f"{value * 100:.1f}%"
    if ci:
        s += f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"
    return s


def _summary_row(label: str, m: dict[str, Any]) -> dict[str, Any]:
    row = {
        "B vs A": label,
        "n": m.get("n"),
        "A/B/tie/failed": f"{m.get('A', 0)}/{m.get('B', 0)}/{m.get('tie', 0)}/{m.get('failed', 0)}",
        "win rate": _fmt_rate(m.get("win_rate"), m.get("win_rate_ci")),
        "ties = ½": _fmt_rate(m.get("win_rate_ties_half"), m.get("win_rate_ties_half_ci")),
        "consistent": _fmt_rate(m.get("consistency_rate")),
    }
    if "lc_win_rate" in m:
        row["length-ctrl"] = _fmt_rate(m.get("lc_win_rate"), m.get("lc_win_rate_ci"))
    return row


def _print_single(title: str, label_a: str, label_b: str, m: dict[str, Any]) -> None:
    """One comparison as a two-column table (readable in a narrow terminal)."""
    from prefkit.console import print_table

    rows = [
        {"": "A (baseline)", "value": label_a},
        {"": "B", "value": label_b},
        {"": "pairs", "value": f"{m.get('n')} ({m.get('n_judged')} judged)"},
        {"": "A wins / B wins / ties / failed",
         "value": f"{m.get('A', 0)} / {m.get('B', 0)} / {m.get('tie', 0)} / {m.get('failed', 0)}"},
        {"": "win rate of B, ties excluded [95% CI]", "value": _fmt_rate(m.get("win_rate"), m.get("win_rate_ci"))
         + (f"  ±{m['win_rate_se'] * 100:.1f} SE" if m.get("win_rate_se") is not None else "")},
        {"": "win rate of B, ties = ½ [95% CI]",
         "value": _fmt_rate(m.get("win_rate_ties_half"), m.get("win_rate_ties_half_ci"))
         + (f"  ±{m['win_rate_ties_half_se'] * 100:.1f} SE" if m.get("win_rate_ties_half_se") is not None else "")},
        {"": "position consistency", "value": _fmt_rate(m.get("consistency_rate"))},
    ]
    if "lc_win_rate" in m:
        rows.append({"": "length-controlled win rate [95% CI]",
                     "value": _fmt_rate(m.get("lc_win_rate"), m.get("lc_win_rate_ci"))})
    print_table(rows, ["", "value"], title=title)


def _plot_labels(entries: list[dict[str, Any]]) -> list[str]:
    """Bar labels: the A/B pair, or the rubric when every entry judges the same pair (pair + rubric if needed)."""
    labels = [e["label"] for e in entries]
    if len(entries) > 1 and len(set(labels)) == 1:
        labels = [e.get("rubric") or e["label"] for e in entries]
    if len(set(labels)) < len(labels):
        labels = [f"{e['label']} ({e.get('rubric') or e.get('path')})" for e in entries]
    return labels


def plot_winrates(entries: list[dict[str, Any]], path: str | Path, *, metric: str = "win_rate") -> list[Path]:
    """Win-rate bars with CIs (dashed line at 50 %) and stacked outcome bars at ``<path>-outcomes``.

    ``entries``: ``{"label", "metrics"}`` per comparison. With one comparison
    the bars are its win-rate variants; with several, one bar per comparison.
    """
    from prefkit.reports import plots

    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    written: list[Path] = []
    if len(entries) == 1:
        m = entries[0]["metrics"]
        names = [("ties excluded", "win_rate"), ("ties = ½", "win_rate_ties_half")]
        if m.get("lc_win_rate") is not None:
            names.append(("length-controlled", "lc_win_rate"))
        labels = [n for n, _ in names]
        values = [m.get(k) if m.get(k) is not None else float("nan") for _, k in names]
        errors = [tuple(m[k + "_ci"]) if m.get(k + "_ci") else None for _, k in names]
        title = f"Win rate of {entries[0].get('label_b', 'B')} over {entries[0].get('label_a', 'A')}"
        if entries[0].get("rubric"):
            title += f" ({entries[0]['rubric']})"
        written += plots.bar_chart(labels, values, errors, path=stem, title=title, ylabel="win rate of B",
                                   reference=0.5, reference_label="parity", ylim=(0, 1),
                                   value_format="{:.1%}")
    else:
        labels = _plot_labels(entries)
        values = [e["metrics"].get(metric) if e["metrics"].get(metric) is not None else float("nan") for e in entries]
        errors = [tuple(e["metrics"][metric + "_ci"]) if e["metrics"].get(metric + "_ci") else None for e in entries]
        what = {"win_rate": "ties excluded", "win_rate_ties_half": "ties = ½", "lc_win_rate": "length-controlled"}[metric]
        title = f"Win rate of B over A ({what}, 95% CI)"
        if len({e["label"] for e in entries}) == 1:
            title = f"Win rate of {entries[0].get('label_b', 'B')} over {entries[0].get('label_a', 'A')} ({what}, 95% CI)"
        written += plots.bar_chart(labels, values, errors, path=stem, title=title,
                                   ylabel="win rate of B", reference=0.5, reference_label="parity", ylim=(0, 1),
                                   value_format="{:.1%}")
    outcome_labels = _plot_labels(entries)
    parts = {
        "A wins": [e["metrics"].get("A", 0) for e in entries],
        "tie": [e["metrics"].get("tie", 0) for e in entries],
        "B wins": [e["metrics"].get("B", 0) for e in entries],
        "failed": [e["metrics"].get("failed", 0) for e in entries],
    }
    if not any(parts["failed"]):
        parts.pop("failed")
    written += plots.stacked_bars(outcome_labels, parts, path=stem.parent / (stem.name + "-outcomes"),
                                  horizontal=True, reference=0.5, title="Judge outcomes",
                                  colors=["#0072B2", "#BBBBBB", "#E69F00", "#D55E00"])
    return written


def _load_pair_inputs(a: str, b: str, *, key: str, split: Optional[str], prompt_field: Optional[str],
                      response_field: Optional[str], prompt_format: str, label_a: Optional[str],
                      label_b: Optional[str]):
    from prefkit.judging.inputs import load_outputs

    common = dict(key=key, prompt_field=prompt_field, response_field=response_field, prompt_format=prompt_format,
                  split=split)
    oa = load_outputs(a, label=label_a, **common)
    ob = load_outputs(b, label=label_b, **common)
    if oa.label == ob.label and not (label_a or label_b):
        oa.label, ob.label = f"A:{oa.label}", f"B:{ob.label}"
    return oa, ob


def _auto_persona_field(persona_field: Optional[str], rubric, rows_have_labelled: bool) -> Optional[str]:
    from prefkit.errors import UsageError

    if persona_field:
        return persona_field
    if rows_have_labelled:
        return "persona"
    if rubric.uses_persona:
        raise UsageError(f"the {rubric.name!r} rubric judges against a persona: name the field that holds it with "
                         "--persona-field (from the outputs, or from a dataset given with --context)")
    return None


# --------------------------------------------------------------------------- configs and results
_SOURCE_HELP = ("a prefkit run dir, results.jsonl, or a JSON/JSONL/CSV/Parquet file with prompt and response "
                "fields")


@dataclass(kw_only=True)
class _JudgeInputs:
    """Flags shared by ``judge pairwise`` and ``judge score``: which rows, which fields, which rubric."""

    rubric: str = opt("quality", short="-r", help="quality, personalization, a plugin rubric, or a rubric file "
                      "(.yaml/.json/.txt).")
    key: str = opt("row_id", help="Field that matches/identifies rows (rows without it: their position in the "
                   "file). Never matched by line position otherwise.")
    persona_field: Optional[str] = opt(None, help="Field holding the persona (looked up in --context rows, then "
                                       "the outputs).")
    reference_field: Optional[str] = opt(None, help="Field holding a reference answer.")
    context: Optional[str] = opt(None, help="A dataset with extra per-row fields (persona, reference), matched by "
                                 "the same key, e.g. the test split the outputs were generated from.")
    context_split: Optional[str] = opt(None, help="Split of --context (e.g. test).")
    split: Optional[str] = opt(None, help="Split, when the outputs are datasets with several splits.")
    prompt_field: Optional[str] = opt(None, help="Prompt field (default: prompt, instruction, input, question, "
                                      "query or messages).")
    response_field: Optional[str] = opt(None, help="Response field (default: response, output, completion, "
                                        "generation, text, answer or prediction).")
    prompt_format: str = opt("auto", help="auto: chat-message prompts become the last user turn plus the "
                             "earlier turns as context; raw: use the prompt as is.")
    limit: Optional[int] = opt(None, short="-n", help="Only the first N rows.")
    bootstrap: int = opt(1000, help="Bootstrap resamples for the 95% CIs (0: none).")
    bootstrap_seed: int = opt(0, help="Seed of the bootstrap (--seed is the judge's sampling seed).")

    def check(self) -> None:
        from prefkit.errors import UsageError

        check_limit(self.limit)
        if self.bootstrap < 0:
            raise UsageError(f"--bootstrap must be 0 or more (got {self.bootstrap})")


@dataclass(kw_only=True)
class PairwiseJudgeConfig(_JudgeInputs):
    """``prefkit judge pairwise``: outputs B judged against outputs A."""

    a: str = opt(flag="--a", help=f"Outputs A (the baseline): {_SOURCE_HELP}.")
    b: str = opt(flag="--b", help="Outputs B (compared against A; win rates are of B over A).")
    instruction_from: str = opt("a", help="Take the instruction from a or b.")
    allow_missing: bool = opt(False, help="Judge only the rows present in both files instead of stopping on a key "
                              "mismatch.")
    allow_tie: bool = opt(False, help="Let the judge answer 'tie' directly (ties also come from the two orders "
                          "disagreeing).")
    label_a: Optional[str] = opt(None, help="Name of A in reports (default: file name).")
    label_b: Optional[str] = opt(None, help="Name of B in reports (default: file name).")
    length_controlled: bool = opt(False, help="Also report the length-controlled win rate (AlpacaEval-2-style "
                                  "regression on the length difference).")
    plot: bool = opt(True, help="Write winrate.png/.pdf and winrate-outcomes.png/.pdf into the run directory.")


@dataclass(kw_only=True)
class ScoreJudgeConfig(_JudgeInputs):
    """``prefkit judge score``: each response scored against a rubric."""

    input: str = opt(help=f"Outputs to score: {_SOURCE_HELP}.")
    min_score: int = opt(1, help="Lowest score.")
    max_score: int = opt(5, help="Highest score.")
    label: Optional[str] = opt(None, help="Name of the outputs in reports.")
    plot: bool = opt(True, help="Write scores.png/.pdf (the score distribution).")


@dataclass
class JudgeResult:
    """A judge run: its metrics and where everything went. ``status`` is the run's (``prefkit.STATUSES``)."""

    kind: str
    run_dir: Optional[str]
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    llm: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_dir, "status": self.status, **self.info, "metrics": self.metrics,
                "plots": self.plots, "llm": self.llm}


def _dry_run_note(summary: dict[str, Any]) -> None:
    from prefkit.backends.engine import format_summary
    from prefkit.console import info

    summary.setdefault("not_sent", summary.get("requests", 0))
    summary["already_done"] = summary.get("already_done", 0)
    info(format_summary(summary) + " (first round; re-asks come on top)")


# --------------------------------------------------------------------------- judge pairwise
def run_judge_pairwise(cfg: PairwiseJudgeConfig, llm: BackendOptions | None = None,
                       judge: JudgeOptions | None = None, out: RunOptions | None = None) -> JudgeResult:
    """Judge B against A in both orders into a resumable run; win rates with CIs (library form of the command)."""
    from prefkit.console import info
    from prefkit.judging import get_rubric, judge_pairwise, win_rate
    from prefkit.judging.inputs import build_pairwise_items, load_context, match_keys
    from prefkit.judging.prompts import resolve_format
    from prefkit.runs import DRY_RUN, Run

    llm, judge, out = llm or BackendOptions(), judge or JudgeOptions(), out or RunOptions()
    cfg.check()
    a, b = cfg.a, cfg.b
    rub = get_rubric(cfg.rubric)
    oa, ob = _load_pair_inputs(a, b, key=cfg.key, split=cfg.split, prompt_field=cfg.prompt_field,
                               response_field=cfg.response_field, prompt_format=cfg.prompt_format,
                               label_a=cfg.label_a, label_b=cfg.label_b)
    keys = match_keys(oa, ob, allow_missing=cfg.allow_missing)
    warnings = []
    if len(keys) < max(len(oa), len(ob)):
        warnings.append(f"judging the {len(keys)} rows present in both files ({len(oa)} in A, {len(ob)} in B)")
    if cfg.limit:
        keys = keys[:cfg.limit]
    ctx = load_context(cfg.context, keys, key=cfg.key, split=cfg.context_split) if cfg.context else None
    labelled = any(oa.rows[k].get("labelled_persona") or ob.rows[k].get("labelled_persona") for k in keys)
    pf = _auto_persona_field(cfg.persona_field, rub, labelled and rub.uses_persona)
    items, stats = build_pairwise_items(oa, ob, keys, instruction_from=cfg.instruction_from, persona_field=pf,
                                        reference_field=cfg.reference_field, context=ctx)
    if stats["instructions_differ"]:
        warnings.append(f"{stats['instructions_differ']} of {len(items)} rows have different prompts in A and B; "
                        f"the judge sees {cfg.instruction_from.upper()}'s (--instruction-from)")
    if stats["personas_differ"]:
        warnings.append(f"{stats['personas_differ']} rows have different personas in A and B; the judge sees "
                        f"{'the --context' if ctx else 'A'}'s")
    for note in dict.fromkeys(oa.notes + ob.notes):
        info(f"note: {note}")

    model = llm.model
    identity = {
        "a": _abs(a), "b": _abs(b), "key": cfg.key, "rubric": rub.fingerprint(),
        "judge": llm.identity(), "judge_options": judge.identity(), "allow_tie": cfg.allow_tie,
        "persona_field": pf, "reference_field": cfg.reference_field,
        "context": _abs(cfg.context) if cfg.context else None, "context_split": cfg.context_split,
        "split": cfg.split, "prompt_format": cfg.prompt_format, "instruction_from": cfg.instruction_from,
    }
    config = {**identity, "label_a": oa.label, "label_b": ob.label, "limit": cfg.limit, "rubric_name": rub.name,
              "backend": llm.backend, "model": model}
    where = dict(output_dir=out.output_dir, run_name=out.run_name, fresh=out.fresh,
                 name_hint=f"{oa.label}-vs-{ob.label}-{rub.name}-{llm.backend}-"
                           f"{(model or 'default').replace('/', '_')}")
    summary: dict[str, Any] = {}
    if llm.dry_run:  # nothing is created or changed
        run = Run.existing("judge pairwise", **where)
        judge_pairwise(items, rub, llm, run, judge=judge, allow_tie=cfg.allow_tie, summary=summary)
        _dry_run_note(summary)
        return JudgeResult("pairwise", str(run.path) if run else None, DRY_RUN, llm=summary, warnings=warnings)

    with Run.open("judge pairwise", config=config, identity=identity, **where) as run:
        run.expect(it["key"] for it in items)
        if run.resumed:
            info(f"resuming {run.path} ({len(run.done_keys())} pairs already judged)")
        verdicts = judge_pairwise(items, rub, llm, run, judge=judge, allow_tie=cfg.allow_tie, summary=summary)
        judged = [v for v in verdicts if v.get("winner") is not None and v.get("status") != "not judged"]
        errors = [v for v in verdicts if v.get("winner") == "error"]
        metrics = win_rate(judged, bootstrap=cfg.bootstrap, seed=cfg.bootstrap_seed,
                           length_controlled=cfg.length_controlled)
        metrics["errors"] = len(errors)
        metrics["not_judged"] = len(verdicts) - len(judged)
        metrics["parse_failures"] = sum(1 for v in judged if v.get("winner") == "failed")
        metrics["reasked"] = sum(1 for v in judged if (v.get("reasks_ab") or 0) + (v.get("reasks_ba") or 0) > 0)
        judge_model = judged[0].get("judge_model") if judged else model
        info_block = {"label_a": oa.label, "label_b": ob.label, "rubric": rub.name, "judge_backend": llm.backend,
                      "judge_model": judge_model, "judge_format": resolve_format(judge.judge_format, judge_model)}
        run.write_metrics({"winrate": metrics, **info_block})
        plots_written: list[str] = []
        if cfg.plot and judged:
            entry = {"label": f"{ob.label} vs {oa.label}", "metrics": metrics, "label_a": oa.label,
                     "label_b": ob.label, "rubric": rub.name}
            plots_written = [str(p) for p in plot_winrates([entry], run.path / "winrate")]
        run.finish(judged=len(judged), errors=len(errors))
    if metrics["parse_failures"]:
        warnings.append(f"{metrics['parse_failures']} pairs had a judge answer with no readable verdict after "
                        f"{judge.reasks} re-asks; they count as failed, not as wins")
    return JudgeResult("pairwise", str(run.path), run.status, metrics, info_block, plots_written, summary, warnings)


def print_judge_pairwise(result: JudgeResult, json_: bool = False) -> None:
    from prefkit.console import info, print_json, warn

    for w in result.warnings:
        warn(w)
    if result.status == "dry-run":
        return
    if json_:
        print_json(result.to_dict())
        return
    i = result.info
    _print_single(f"{i['rubric']} judge: win rate of B over A", i["label_a"], i["label_b"], result.metrics)
    info(f"results: {Path(result.run_dir) / 'results.jsonl'}")
    if result.plots:
        info(f"plot: {result.plots[0]}")


@with_options(RunOptions, "out")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
@with_options(PairwiseJudgeConfig, "cfg")
def judge_pairwise_command(
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the metrics as JSON on stdout."),
    *, cfg: PairwiseJudgeConfig, llm: BackendOptions, judge: JudgeOptions, out: RunOptions,
) -> None:
    """Judge outputs B against outputs A with an LLM judge, in both orders; win rates with 95% CIs.

    Rows are matched by key. Each pair is judged twice (A first, then B first);
    when the two verdicts disagree the pair is a tie. Verdicts stream into a
    resumable run directory (re-run the same command to resume or extend with a
    larger --limit); metrics.json holds the win rates, winrate.png the plot.
    Exit code 1 when some pairs failed in the backend after retries (re-run to retry them).
    """
    from prefkit.runs import command_exit

    result = run_judge_pairwise(cfg, llm, judge, out)
    print_judge_pairwise(result, json_)
    command_exit(result.run_dir if result.status != "dry-run" else result.status)


# --------------------------------------------------------------------------- judge score
def run_judge_score(cfg: ScoreJudgeConfig, llm: BackendOptions | None = None, judge: JudgeOptions | None = None,
                    out: RunOptions | None = None) -> JudgeResult:
    """Score each response against a rubric into a resumable run (library form of ``prefkit judge score``)."""
    from prefkit.errors import UsageError
    from prefkit.judging import get_rubric, judge_score
    from prefkit.judging.inputs import build_score_items, load_context, load_outputs
    from prefkit.judging.metrics import score_summary
    from prefkit.runs import DRY_RUN, Run

    llm, judge, out = llm or BackendOptions(), judge or JudgeOptions(), out or RunOptions()
    if cfg.min_score >= cfg.max_score:
        raise UsageError(f"--min-score must be below --max-score (got {cfg.min_score} and {cfg.max_score})")
    cfg.check()
    path = cfg.input
    rub = get_rubric(cfg.rubric)
    outs = load_outputs(path, key=cfg.key, prompt_field=cfg.prompt_field, response_field=cfg.response_field,
                        prompt_format=cfg.prompt_format, split=cfg.split, label=cfg.label)
    keys = outs.order[:cfg.limit] if cfg.limit else list(outs.order)
    ctx = load_context(cfg.context, keys, key=cfg.key, split=cfg.context_split) if cfg.context else None
    labelled = any(outs.rows[k].get("labelled_persona") for k in keys)
    pf = _auto_persona_field(cfg.persona_field, rub, labelled and rub.uses_persona)
    items = build_score_items(outs, keys, persona_field=pf, reference_field=cfg.reference_field, context=ctx)
    identity = {"input": _abs(path), "key": cfg.key, "rubric": rub.fingerprint(), "judge": llm.identity(),
                "judge_options": judge.identity(), "scale": [cfg.min_score, cfg.max_score], "persona_field": pf,
                "reference_field": cfg.reference_field, "context": _abs(cfg.context) if cfg.context else None,
                "context_split": cfg.context_split, "split": cfg.split, "prompt_format": cfg.prompt_format}
    config = {**identity, "label": outs.label, "limit": cfg.limit, "rubric_name": rub.name}
    where = dict(output_dir=out.output_dir, run_name=out.run_name, fresh=out.fresh,
                 name_hint=f"{outs.label}-{rub.name}-{llm.backend}-{(llm.model or 'default').replace('/', '_')}")
    summary: dict[str, Any] = {}
    low, high = cfg.min_score, cfg.max_score
    if llm.dry_run:
        run = Run.existing("judge score", **where)
        judge_score(items, rub, llm, run, judge=judge, low=low, high=high, summary=summary)
        _dry_run_note(summary)
        return JudgeResult("score", str(run.path) if run else None, DRY_RUN, llm=summary)

    with Run.open("judge score", config=config, identity=identity, **where) as run:
        run.expect(it["key"] for it in items)
        results = judge_score(items, rub, llm, run, judge=judge, low=low, high=high, summary=summary)
        scored = [r for r in results if r.get("status") in ("ok", "failed")]
        errors = [r for r in results if r.get("status") == "error"]
        metrics = score_summary(scored, low=low, high=high, bootstrap=cfg.bootstrap, seed=cfg.bootstrap_seed)
        metrics["errors"] = len(errors)
        info_block = {"label": outs.label, "rubric": rub.name, "judge_backend": llm.backend,
                      "judge_model": scored[0].get("judge_model") if scored else llm.model}
        run.write_metrics({"score": metrics, **info_block})
        plots_written: list[str] = []
        if cfg.plot and metrics["n_scored"]:
            from prefkit.reports import plots

            hist = metrics["histogram"]
            plots_written = [str(p) for p in plots.bar_chart(
                list(hist), [hist[k] for k in hist], path=run.path / "scores",
                title=f"{outs.label}: {rub.name} scores (mean {metrics['mean']:.2f})", xlabel="score",
                ylabel="responses", value_format="{:.0f}")]
    info_block["scale"] = [low, high]
    return JudgeResult("score", str(run.path), run.status, metrics, info_block, plots_written, summary)


def print_judge_score(result: JudgeResult, json_: bool = False) -> None:
    from prefkit.console import info, print_json, print_table

    if result.status == "dry-run":
        return
    if json_:
        print_json({"run": result.run_dir, "status": result.status, "label": result.info["label"],
                    "rubric": result.info["rubric"], "metrics": result.metrics, "plots": result.plots,
                    "llm": result.llm})
        return
    m, i = result.metrics, result.info
    ci = m.get("mean_ci")
    print_table([{"outputs": i["label"], "n": m["n"], "scored": m["n_scored"], "failed": m["failed"],
                  "mean": (f"{m['mean']:.3f}" if m["mean"] is not None else "n/a")
                  + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""),
                  "histogram": " ".join(f"{k}:{v}" for k, v in m["histogram"].items())}],
                title=f"{i['rubric']} scores ({i['scale'][0]}-{i['scale'][1]})")
    info(f"results: {Path(result.run_dir) / 'results.jsonl'}")


@with_options(RunOptions, "out")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
@with_options(ScoreJudgeConfig, "cfg")
def judge_score_command(
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the metrics as JSON on stdout."),
    *, cfg: ScoreJudgeConfig, llm: BackendOptions, judge: JudgeOptions, out: RunOptions,
) -> None:
    """Score each response from --min-score to --max-score against a rubric with an LLM judge.

    Exit code 1 when some responses failed in the backend after retries (re-run to retry them).
    """
    from prefkit.runs import command_exit

    result = run_judge_score(cfg, llm, judge, out)
    print_judge_score(result, json_)
    command_exit(result.run_dir if result.status != "dry-run" else result.status)


# --------------------------------------------------------------------------- rubrics
def rubrics_command(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List the judging rubrics (built-in, from plugins)."""
    from prefkit.console import print_json, print_table
    from prefkit.plugins import registry

    rows = []
    for e in registry("rubrics").entries():
        r = e.obj
        rows.append({"name": e.name, "plugin": e.plugin, "persona": bool(getattr(r, "uses_persona", False)),
                     "scores": len(getattr(r, "score_descriptions", None) or {}),
                     "description": getattr(r, "description", "") or getattr(r, "criteria", "")})
    if json_:
        print_json([{**row, "criteria": registry("rubrics").get(row["name"]).criteria} for row in rows])
    else:
        print_table(rows, ["name", "plugin", "persona", "scores", "description"], title="prefkit rubrics")


# --------------------------------------------------------------------------- winrate
def _run_entry(path: str, *, bootstrap: int, seed: int, length_controlled: bool) -> dict[str, Any]:
    from prefkit.errors import UsageError
    from prefkit.judging.metrics import score_summary, win_rate
    from prefkit.runs import Run

    run = Run.load(path)
    cmd = run.manifest.get("command")
    cfg = run.manifest.get("config") or {}
    results = run.results()
    unresolved = run.failures()
    if cmd == "judge score" or (results and "score" in results[0] and "winner" not in results[0]):
        scale = cfg.get("scale") or [1, 5]
        return {"kind": "score", "path": str(run.path), "label": cfg.get("label") or run.path.name,
                "rubric": cfg.get("rubric_name"),
                "metrics": score_summary(results + [{"score": None}] * len(unresolved), low=scale[0], high=scale[1],
                                         bootstrap=bootstrap, seed=seed)}
    if results and "winner" not in results[0]:
        raise UsageError(f"{path} is not a judge run (its results have no 'winner' or 'score')")
    verdicts = results + [{"key": f["key"], "winner": "error"} for f in unresolved]
    m = win_rate(verdicts, bootstrap=bootstrap, seed=seed, length_controlled=length_controlled)
    m["errors"] = len(unresolved)
    la, lb = cfg.get("label_a") or "A", cfg.get("label_b") or "B"
    return {"kind": "pairwise", "path": str(run.path), "label": f"{lb} vs {la}", "label_a": la, "label_b": lb,
            "rubric": cfg.get("rubric_name"), "pair": (cfg.get("a"), cfg.get("b")), "metrics": m, "verdicts": results}


def winrate_command(
    run_dirs: list[str] = typer.Argument(..., help="Judge run directories (from `prefkit judge pairwise`; "
                                         "`judge score` runs report their mean score)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CIs (0: none)."),
    seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap (the same flag as on the judge "
                             "commands; --seed is always a sampling seed)."),
    length_controlled: bool = typer.Option(False, "--length-controlled", metavar="", help="Also report the length-controlled "
                                           "win rate (logistic regression on the length difference, at zero)."),
    metric: str = typer.Option("win_rate", "--metric", help="What the plot shows for several runs: win_rate (ties "
                               "excluded), win_rate_ties_half, lc_win_rate."),
    plot: Optional[str] = typer.Option(None, "--plot-to", help="Write a plot to FILE (.png; a .pdf and "
                                       "FILE-outcomes.png/.pdf come along)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Win rates of B over A from judge runs: counts, SE, bootstrap 95% CIs, optional length control."""
    from prefkit.console import info, print_json, print_table
    from prefkit.errors import UsageError

    if metric not in _METRICS:
        raise UsageError(f"--metric must be one of {', '.join(_METRICS)}")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more (got {bootstrap})")
    if plot and Path(plot).suffix.lower() not in ("", ".png", ".pdf"):
        # any other suffix would make FILE and FILE-outcomes resolve to the same .png/.pdf
        raise UsageError(f"--plot-to must be a .png or .pdf file (got {plot})")
    if metric == "lc_win_rate":
        length_controlled = True
    entries = [_run_entry(p, bootstrap=bootstrap, seed=seed, length_controlled=length_controlled) for p in run_dirs]
    pairwise = [e for e in entries if e["kind"] == "pairwise"]
    scores = [e for e in entries if e["kind"] == "score"]
    if json_:
        print_json({"runs": [{k: v for k, v in e.items() if k not in ("verdicts", "pair")} for e in entries]})
    else:
        if len(pairwise) == 1:
            e = pairwise[0]
            _print_single(f"{e['rubric'] or 'judge'}: win rate of B over A ({e['path']})", e["label_a"],
                          e["label_b"], e["metrics"])
        elif pairwise:
            same = len({e["label"] for e in pairwise}) == 1
            if same:  # one A/B pair judged several ways: name the rows by rubric, the pair once in the title
                rows = [{"rubric": e["rubric"] or e["path"], **_summary_row(e["label"], e["metrics"])}
                        for e in pairwise]
                for r in rows:
                    r.pop("B vs A")
                title = f"win rate of B = {pairwise[0]['label_b']} over A = {pairwise[0]['label_a']} (95% CI)"
            else:
                rows = [{**_summary_row(e["label"], e["metrics"]), "rubric": e["rubric"] or ""} for e in pairwise]
                title = "win rate of B over A (95% bootstrap CI)"
            print_table(rows, title=title)
        if scores:
            rows = []
            for e in scores:
                m = e["metrics"]
                ci = m.get("mean_ci")
                rows.append({"outputs": e["label"], "rubric": e["rubric"] or "", "n": m["n"], "failed": m["failed"],
                             "mean": "n/a" if m["mean"] is None else f"{m['mean']:.3f}"
                             + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")})
            print_table(rows, title="mean scores (95% bootstrap CI)")
    if plot:
        if not pairwise:
            raise UsageError("--plot-to needs at least one pairwise judge run")
        written = plot_winrates(pairwise, plot, metric=metric)
        if not json_:
            info("plot: " + ", ".join(str(p) for p in written))


__all__ = ["judge_pairwise_command", "judge_score_command", "rubrics_command", "winrate_command", "plot_winrates",
           "PairwiseJudgeConfig", "ScoreJudgeConfig", "JudgeResult", "run_judge_pairwise", "run_judge_score",
           "print_judge_pairwise", "print_judge_score"]
