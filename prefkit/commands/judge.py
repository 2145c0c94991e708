"""``prefkit judge pairwise``, ``prefkit judge score``, ``prefkit judge rubrics`` and ``prefkit winrate``.

Kept light at import time (typer and dataclasses only): the judge layer's
heavier parts, numpy and matplotlib load when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.backends.options import BackendOptions
from prefkit.judging.options import JudgeOptions
from prefkit.options import RunOptions, with_options

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


# --------------------------------------------------------------------------- judge pairwise
@with_options(RunOptions, "out")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
def judge_pairwise_command(
    a: str = typer.Option(..., "--a", help="Outputs A (the baseline): a prefkit run dir, results.jsonl, or a "
                          "JSON/JSONL/CSV/Parquet file with prompt and response fields."),
    b: str = typer.Option(..., "--b", help="Outputs B (compared against A; win rates are of B over A)."),
    rubric: str = typer.Option("quality", "--rubric", "-r", help="quality, personalization, a plugin rubric, or a "
                               "rubric file (.yaml/.json/.txt)."),
    key: str = typer.Option("row_id", "--key", help="Field that matches rows of A and B (rows without it: their "
                            "position in the file). Never matched by line position otherwise."),
    persona_field: Optional[str] = typer.Option(None, "--persona-field", help="Field holding the persona (looked up "
                                                "in --context rows, then A, then B)."),
    reference_field: Optional[str] = typer.Option(None, "--reference-field", help="Field holding a reference answer."),
    context: Optional[str] = typer.Option(None, "--context", help="A dataset with extra per-row fields (persona, "
                                          "reference), matched by the same key, e.g. the test split the outputs "
                                          "were generated from."),
    context_split: Optional[str] = typer.Option(None, "--context-split", help="Split of --context (e.g. test)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split, when A/B are datasets with several splits."),
    prompt_field: Optional[str] = typer.Option(None, "--prompt-field", help="Prompt field (default: prompt, "
                                               "instruction, input, question, query or messages)."),
    response_field: Optional[str] = typer.Option(None, "--response-field", help="Response field (default: response, "
                                                 "output, completion, generation, text, answer or prediction)."),
    prompt_format: str = typer.Option("auto", "--prompt-format", help="auto: chat-message prompts become the last "
                                      "user turn plus the earlier turns as context; raw: use the prompt as is."),
    instruction_from: str = typer.Option("a", "--instruction-from", help="Take the instruction from a or b."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Judge only the rows present in both files "
                                       "instead of stopping on a key mismatch."),
    allow_tie: bool = typer.Option(False, "--allow-tie", help="Let the judge answer 'tie' directly (ties also "
                                   "come from the two orders disagreeing)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N matched rows."),
    label_a: Optional[str] = typer.Option(None, "--label-a", help="Name of A in reports (default: file name)."),
    label_b: Optional[str] = typer.Option(None, "--label-b", help="Name of B in reports (default: file name)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CIs (0: none)."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap (--seed is the judge's sampling seed)."),
    length_controlled: bool = typer.Option(False, "--length-controlled", help="Also report the length-controlled "
                                           "win rate (AlpacaEval-2-style regression on the length difference)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write winrate.png/.pdf and winrate-outcomes.png/.pdf "
                              "into the run directory."),
    json_: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    *, llm: BackendOptions, judge: JudgeOptions, out: RunOptions,
) -> None:
    """Judge outputs B against outputs A with an LLM judge, in both orders; win rates with 95% CIs.

    Rows are matched by key. Each pair is judged twice (A first, then B first);
    when the two verdicts disagree the pair is a tie. Verdicts stream into a
    resumable run directory (re-run the same command to resume or extend with a
    larger --limit); metrics.json holds the win rates, winrate.png the plot.
    """
    from prefkit.console import info, print_json, warn
    from prefkit.errors import UsageError
    from prefkit.judging import get_rubric, judge_pairwise, win_rate
    from prefkit.judging.inputs import build_pairwise_items, load_context, match_keys
    from prefkit.judging.prompts import resolve_format
    from prefkit.runs import Run

    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more (got {bootstrap})")
    rub = get_rubric(rubric)
    oa, ob = _load_pair_inputs(a, b, key=key, split=split, prompt_field=prompt_field, response_field=response_field,
                               prompt_format=prompt_format, label_a=label_a, label_b=label_b)
    keys = match_keys(oa, ob, allow_missing=allow_missing)
    if len(keys) < max(len(oa), len(ob)):
        warn(f"judging the {len(keys)} rows present in both files ({len(oa)} in A, {len(ob)} in B)")
    if limit:
        keys = keys[:limit]
    ctx = load_context(context, keys, key=key, split=context_split) if context else None
    labelled = any(oa.rows[k].get("labelled_persona") or ob.rows[k].get("labelled_persona") for k in keys)
    pf = _auto_persona_field(persona_field, rub, labelled and rub.uses_persona)
    items, stats = build_pairwise_items(oa, ob, keys, instruction_from=instruction_from, persona_field=pf,
                                        reference_field=reference_field, context=ctx)
    if stats["instructions_differ"]:
        warn(f"{stats['instructions_differ']} of {len(items)} rows have different prompts in A and B; the judge "
             f"sees {instruction_from.upper()}'s (--instruction-from)")
    if stats["personas_differ"]:
        warn(f"{stats['personas_differ']} rows have different personas in A and B; the judge sees "
             f"{'the --context' if ctx else 'A'}'s")
    for note in dict.fromkeys(oa.notes + ob.notes):
        info(f"note: {note}")

    model = llm.model
    identity = {
        "a": _abs(a), "b": _abs(b), "key": key, "rubric": rub.fingerprint(),
        "judge": llm.identity(), "judge_options": judge.identity(), "allow_tie": allow_tie,
        "persona_field": pf, "reference_field": reference_field, "context": _abs(context) if context else None,
        "context_split": context_split, "split": split, "prompt_format": prompt_format,
        "instruction_from": instruction_from,
    }
    config = {**identity, "label_a": oa.label, "label_b": ob.label, "limit": limit, "rubric_name": rub.name,
              "backend": llm.backend, "model": model}
    name_hint = f"{oa.label}-vs-{ob.label}-{rub.name}-{llm.backend}-{(model or 'default').replace('/', '_')}"
    run = Run.open("judge pairwise", config=config, identity=identity, output_dir=out.output_dir,
                   run_name=out.run_name, name_hint=name_hint, fresh=out.fresh)
    if run.resumed and not llm.dry_run:
        info(f"resuming {run.path} ({len(run.done_keys())} pairs already judged)")
    summary: dict[str, Any] = {}
    try:
        verdicts = judge_pairwise(items, rub, llm, run, judge=judge, allow_tie=allow_tie, summary=summary)
    except BaseException as exc:
        run.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error=str(exc))
        raise
    if llm.dry_run:
        from prefkit.backends.engine import format_summary

        summary.setdefault("not_sent", summary.get("requests", 0))
        summary["already_done"] = summary.get("already_done", 0)
        info(format_summary(summary) + " (first round; re-asks come on top)")
        run.finish("dry-run")
        return
    judged = [v for v in verdicts if v.get("winner") is not None and v.get("status") != "not judged"]
    errors = [v for v in verdicts if v.get("winner") == "error"]
    not_judged = len(verdicts) - len(judged)
    metrics = win_rate(judged, bootstrap=bootstrap, seed=bootstrap_seed, length_controlled=length_controlled)
    metrics["errors"] = len(errors)
    metrics["not_judged"] = not_judged
    metrics["parse_failures"] = sum(1 for v in judged if v.get("winner") == "failed")
    metrics["reasked"] = sum(1 for v in judged if (v.get("reasks_ab") or 0) + (v.get("reasks_ba") or 0) > 0)
    fmt = resolve_format(judge.judge_format, judged[0].get("judge_model") if judged else model)
    info_block = {"label_a": oa.label, "label_b": ob.label, "rubric": rub.name, "judge_backend": llm.backend,
                  "judge_model": (judged[0].get("judge_model") if judged else model), "judge_format": fmt}
    run.write_metrics({"winrate": metrics, **info_block})
    plots_written: list[str] = []
    if plot and judged:
        entry = {"label": f"{ob.label} vs {oa.label}", "metrics": metrics, "label_a": oa.label,
                 "label_b": ob.label, "rubric": rub.name}
        plots_written = [str(p) for p in plot_winrates([entry], run.path / "winrate")]
    status = "completed" if not errors and not not_judged else "partial"
    run.finish(status, judged=len(judged), errors=len(errors))
    if json_:
        print_json({"run": str(run.path), **info_block, "metrics": metrics, "plots": plots_written,
                    "llm": summary})
    else:
        _print_single(f"{rub.name} judge: win rate of B over A", oa.label, ob.label, metrics)
        info(f"results: {run.results_path}")
        if plots_written:
            info(f"plot: {plots_written[0]}")
    if errors:
        warn(f"{len(errors)} pairs failed in the backend (see {run.failures_path}); re-run the same command to retry them")
    if metrics["parse_failures"]:
        warn(f"{metrics['parse_failures']} pairs had a judge answer with no readable verdict after "
             f"{judge.reasks} re-asks; they count as failed, not as wins")


# --------------------------------------------------------------------------- judge score
@with_options(RunOptions, "out")
@with_options(JudgeOptions, "judge")
@with_options(BackendOptions, "llm")
def judge_score_command(
    input: str = typer.Option(..., "--input", "-i", help="Outputs to score: a prefkit run dir, results.jsonl, or a "
                              "JSON/JSONL/CSV/Parquet file with prompt and response fields."),
    rubric: str = typer.Option("quality", "--rubric", "-r", help="quality, personalization, a plugin rubric, or a "
                               "rubric file (.yaml/.json/.txt) with score descriptions."),
    key: str = typer.Option("row_id", "--key", help="Field that identifies rows (rows without it: their position)."),
    persona_field: Optional[str] = typer.Option(None, "--persona-field", help="Field holding the persona."),
    reference_field: Optional[str] = typer.Option(None, "--reference-field", help="Field holding a reference answer "
                                                  "(shown as an answer that gets the top score)."),
    context: Optional[str] = typer.Option(None, "--context", help="A dataset with extra per-row fields, matched by key."),
    context_split: Optional[str] = typer.Option(None, "--context-split", help="Split of --context."),
    split: Optional[str] = typer.Option(None, "--split", help="Split, when --input is a dataset with several splits."),
    prompt_field: Optional[str] = typer.Option(None, "--prompt-field", help="Prompt field."),
    response_field: Optional[str] = typer.Option(None, "--response-field", help="Response field."),
    prompt_format: str = typer.Option("auto", "--prompt-format", help="auto or raw (see judge pairwise)."),
    min_score: int = typer.Option(1, "--min-score", help="Lowest score."),
    max_score: int = typer.Option(5, "--max-score", help="Highest score."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N rows."),
    label: Optional[str] = typer.Option(None, "--label", help="Name of the outputs in reports."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% CI of the mean (0: none)."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap (--seed is the judge's sampling seed)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write scores.png/.pdf (the score distribution)."),
    json_: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    *, llm: BackendOptions, judge: JudgeOptions, out: RunOptions,
) -> None:
    """Score each response from --min-score to --max-score against a rubric with an LLM judge."""
    from prefkit.console import info, print_json, print_table, warn
    from prefkit.errors import UsageError
    from prefkit.judging import get_rubric, judge_score
    from prefkit.judging.inputs import build_score_items, load_context, load_outputs
    from prefkit.judging.metrics import score_summary
    from prefkit.runs import Run

    if min_score >= max_score:
        raise UsageError(f"--min-score must be below --max-score (got {min_score} and {max_score})")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more (got {bootstrap})")
    rub = get_rubric(rubric)
    outs = load_outputs(input, key=key, prompt_field=prompt_field, response_field=response_field,
                        prompt_format=prompt_format, split=split, label=label)
    keys = outs.order[:limit] if limit else list(outs.order)
    ctx = load_context(context, keys, key=key, split=context_split) if context else None
    labelled = any(outs.rows[k].get("labelled_persona") for k in keys)
    pf = _auto_persona_field(persona_field, rub, labelled and rub.uses_persona)
    items = build_score_items(outs, keys, persona_field=pf, reference_field=reference_field, context=ctx)
    identity = {"input": _abs(input), "key": key, "rubric": rub.fingerprint(), "judge": llm.identity(),
                "judge_options": judge.identity(), "scale": [min_score, max_score], "persona_field": pf,
                "reference_field": reference_field, "context": _abs(context) if context else None,
                "context_split": context_split, "split": split, "prompt_format": prompt_format}
    config = {**identity, "label": outs.label, "limit": limit, "rubric_name": rub.name}
    name_hint = f"{outs.label}-{rub.name}-{llm.backend}-{(llm.model or 'default').replace('/', '_')}"
    run = Run.open("judge score", config=config, identity=identity, output_dir=out.output_dir,
                   run_name=out.run_name, name_hint=name_hint, fresh=out.fresh)
    summary: dict[str, Any] = {}
    try:
        results = judge_score(items, rub, llm, run, judge=judge, low=min_score, high=max_score, summary=summary)
    except BaseException as exc:
        run.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error=str(exc))
        raise
    if llm.dry_run:
        from prefkit.backends.engine import format_summary

        summary.setdefault("not_sent", summary.get("requests", 0))
        info(format_summary(summary) + " (first round; re-asks come on top)")
        run.finish("dry-run")
        return
    scored = [r for r in results if r.get("status") in ("ok", "failed")]
    errors = [r for r in results if r.get("status") == "error"]
    metrics = score_summary(scored, low=min_score, high=max_score, bootstrap=bootstrap, seed=bootstrap_seed)
    metrics["errors"] = len(errors)
    run.write_metrics({"score": metrics, "label": outs.label, "rubric": rub.name, "judge_backend": llm.backend,
                       "judge_model": scored[0].get("judge_model") if scored else llm.model})
    plots_written: list[str] = []
    if plot and metrics["n_scored"]:
        from prefkit.reports import plots

        hist = metrics["histogram"]
        plots_written = [str(p) for p in plots.bar_chart(
            list(hist), [hist[k] for k in hist], path=run.path / "scores",
            title=f"{outs.label}: {rub.name} scores (mean {metrics['mean']:.2f})", xlabel="score",
            ylabel="responses", value_format="{:.0f}")]
    run.finish("completed" if not errors else "partial")
    if json_:
        print_json({"run": str(run.path), "label": outs.label, "rubric": rub.name, "metrics": metrics,
                    "plots": plots_written, "llm": summary})
    else:
        ci = metrics.get("mean_ci")
        print_table([{"outputs": outs.label, "n": metrics["n"], "scored": metrics["n_scored"],
                      "failed": metrics["failed"],
                      "mean": (f"{metrics['mean']:.3f}" if metrics["mean"] is not None else "n/a")
                      + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""),
                      "histogram": " ".join(f"{k}:{v}" for k, v in metrics["histogram"].items())}],
                    title=f"{rub.name} scores ({min_score}-{max_score})")
        info(f"results: {run.results_path}")
    if errors:
        warn(f"{len(errors)} responses failed in the backend (see {run.failures_path}); re-run to retry them")


# --------------------------------------------------------------------------- rubrics
def rubrics_command(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
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
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    length_controlled: bool = typer.Option(False, "--length-controlled", help="Also report the length-controlled "
                                           "win rate (logistic regression on the length difference, at zero)."),
    metric: str = typer.Option("win_rate", "--metric", help="What the plot shows for several runs: win_rate (ties "
                               "excluded), win_rate_ties_half, lc_win_rate."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a plot to FILE (.png; a .pdf and "
                                       "FILE-outcomes.png/.pdf come along)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
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
        raise UsageError(f"--plot must be a .png or .pdf file (got {plot})")
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
            raise UsageError("--plot needs at least one pairwise judge run")
        written = plot_winrates(pairwise, plot, metric=metric)
        if not json_:
            info("plot: " + ", ".join(str(p) for p in written))


__all__ = ["judge_pairwise_command", "judge_score_command", "rubrics_command", "winrate_command", "plot_winrates"]
