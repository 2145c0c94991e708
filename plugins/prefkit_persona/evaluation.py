"""Persona evaluation through the core judge layer (``prefkit.judging.judge_pairwise``).

* accuracy: a judge sees the prompt, both responses (in both orders) and one
  persona, and says which response that user would choose (rubric
  ``persona-choice``). A persona is accurate when the judge picks the response
  it was inferred for. Reported per side, per order, averaged over the orders,
  and with both orders required to agree.
* prefs: the judge compares the chosen-side and the rejected-side persona of the
  same prompt (rubric ``persona-typicality``: which is the more typical user?),
  in both orders; disagreement between the orders is a tie.

Both rubrics are YAML files in ``prompts/`` (any rubric name or file can be
passed instead). Judgments are stored in a run directory per persona run, so
an interrupted evaluation resumes; metrics are computed from those records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from prefkit import UsageError

from . import templates
from .inference import SIDES
from .runs import PersonaRun, load_persona_run

ACCURACY_RUBRIC = "persona-choice"
PREFS_RUBRIC = "persona-typicality"
# which original label ("A" = chosen response / chosen-side persona) each persona side should win with
TARGET = {"chosen": "A", "rejected": "B"}
ORDER_NAMES = {"ab": "chosen shown first", "ba": "rejected shown first"}


def plugin_rubrics() -> list[Any]:
    from prefkit import Rubric

    return [Rubric.from_file(templates.PROMPTS_DIR / "rubric_persona_choice.yaml"),
            Rubric.from_file(templates.PROMPTS_DIR / "rubric_persona_typicality.yaml")]


from prefkit import mean_se as _mean_se, proportion_se as _se  # noqa: E402  (defined once, in the core)


def _judge_slug(options: Any) -> str:
    from prefkit import slug

    model = getattr(options, "model", None) or getattr(options, "backend", None) or "default"
    return slug(str(model).split("/")[-1])


def _out_dir(output_dir: str | None, prun: PersonaRun, many: bool) -> str | None:
    if output_dir is None:
        return None
    return str(Path(output_dir) / prun.name) if many else output_dir


def _judge_run(command: str, prun: PersonaRun, items: list[dict[str, Any]], rubric: Any, options: Any, judge: Any,
               *, output_dir: str | None, run_name: str | None, fresh: bool) -> tuple[Any, list[dict[str, Any]]]:
    from prefkit import judge_pairwise
    from prefkit import Run

    ident = {"personas": str(prun.path.resolve()), "rubric": rubric.fingerprint(),
             "judge": options.identity() if hasattr(options, "identity") else {},
             "judge_options": judge.identity() if hasattr(judge, "identity") else {}}
    run = Run.open(command, config={"personas": str(prun.path), "rubric": rubric.name, "llm": options, "judge": judge},
                   identity=ident, output_dir=output_dir, run_name=run_name, fresh=fresh,
                   name_hint=f"{prun.name}-{_judge_slug(options)}")
    with run:  # the core's lifecycle: failed / interrupted recorded there
        verdicts = judge_pairwise(items, rubric, options, run=run, judge=judge)
    return run, verdicts


def _setup(runs: Sequence[str | Path], options: Any, judge: Any, rubric: Any, default_rubric: str):
    from prefkit import BackendOptions
    from prefkit import JudgeOptions, get_rubric

    if not runs:
        raise UsageError("give at least one persona-inference run directory")
    options = options if options is not None else BackendOptions()
    judge = judge if judge is not None else JudgeOptions()
    rubric = get_rubric(rubric or default_rubric)
    return [load_persona_run(r) for r in runs], options, judge, rubric


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy_items(prun: PersonaRun) -> list[dict[str, Any]]:
    """One pairwise item per usable persona: A = the chosen response, B = the rejected one."""
    items = []
    for r in prun.usable():
        chosen = r["preferred"] if r["side"] == "chosen" else r["dispreferred"]
        rejected = r["dispreferred"] if r["side"] == "chosen" else r["preferred"]
        items.append({"key": f"{r['row_id']}:{r['side']}", "instruction": r["prompt"], "response_a": chosen,
                      "response_b": rejected, "persona": r["persona"],
                      "meta": {"row_id": str(r["row_id"]), "side": r["side"]}})
    return items


def accuracy_metrics(verdicts: list[dict[str, Any]], empty: dict[str, int] | None = None) -> dict[str, Any]:
    """Accuracy per side: per order, averaged over both orders, and with both orders required to agree.

    A verdict whose order could not be read counts as not accurate for that order
    (and is counted under ``unparsed``); backend errors are left out (retried on resume).
    """
    vs = [v for v in verdicts if v.get("winner") not in (None, "error")]
    out: dict[str, Any] = {}
    for side in (*SIDES, "all"):
        sv = [v for v in vs if side == "all" or (v.get("meta") or {}).get("side", str(v["key"]).rsplit(":", 1)[-1]) == side]
        res: dict[str, Any] = {}
        scores, both = [], []
        per_order: dict[str, list[bool]] = {"ab": [], "ba": []}
        for v in sv:
            s = (v.get("meta") or {}).get("side") or str(v["key"]).rsplit(":", 1)[-1]
            target = TARGET[s]
            ok = {o: v.get(f"verdict_{o}") == target for o in ("ab", "ba")}
            for o in ("ab", "ba"):
                per_order[o].append(ok[o])
            scores.append((ok["ab"] + ok["ba"]) / 2)
            both.append(ok["ab"] and ok["ba"])
        for o, vals in per_order.items():
            p = sum(vals) / len(vals) if vals else float("nan")
            res[f"order_{o}"] = {"accuracy": p, "se": _se(p, len(vals)), "n": len(vals), "label": ORDER_NAMES[o]}
        m, mse = _mean_se(scores)
        b = sum(both) / len(both) if both else float("nan")
        res["mean"] = {"accuracy": m, "se": mse, "n": len(scores)}
        res["both_orders"] = {"accuracy": b, "se": _se(b, len(both)), "n": len(both)}
        res["unparsed"] = sum(1 for v in sv if v.get("verdict_ab") is None or v.get("verdict_ba") is None)
        if empty is not None:
            res["empty_personas"] = empty.get(side, 0) if side != "all" else sum(empty.values())
        out[side] = res
    return out


def persona_accuracy(runs: Sequence[str | Path], options: Any = None, judge: Any = None, *, rubric: str | None = None,
                     output_dir: str | None = None, run_name: str | None = None, fresh: bool = False,
                     plot: str | Path | None = None, plot_metric: str = "both_orders",
                     make_plot: bool = True) -> dict[str, Any]:
    """Judge the personas of one or more PI runs; returns metrics per run (and the plot files)."""
    if plot_metric not in ("both_orders", "mean"):
        raise UsageError(f"unknown --plot-metric {plot_metric!r} (both_orders, mean)")
    pruns, options, judge, rub = _setup(runs, options, judge, rubric, ACCURACY_RUBRIC)
    results = []
    for prun in pruns:
        empty = {s: sum(1 for r in prun.rows if r["side"] == s and not (r.get("persona") or "").strip())
                 for s in SIDES}
        run, verdicts = _judge_run("persona-accuracy", prun, accuracy_items(prun), rub, options, judge,
                                   output_dir=_out_dir(output_dir, prun, len(pruns) > 1), run_name=run_name,
                                   fresh=fresh)
        metrics = accuracy_metrics(run.results(), empty)
        run.write_metrics({"accuracy": metrics, "personas": str(prun.path)})
        failed = len(run.failures())
        run.finish()  # done, or incomplete when judgments failed
        results.append({"personas": str(prun.path), "label": prun.label, "split": prun.split,
                        "judge_run": str(run.path), "accuracy": metrics, "failures": failed})
    out: dict[str, Any] = {"runs": results, "metric_plotted": plot_metric}
    if make_plot:
        target = Path(plot) if plot else (Path(results[0]["judge_run"]) / "accuracy" if len(results) == 1
                                          else Path(results[0]["judge_run"]).parent / "accuracy-compare")
        out["plot"] = [str(p) for p in accuracy_plot(results, target, plot_metric)]
    return out


def accuracy_plot(results: list[dict[str, Any]], path: str | Path, metric: str = "both_orders") -> list[Path]:
    """Grouped bars: one group per run, chosen vs rejected personas, s.e. bars, dashed chance line."""
    from prefkit import plots

    groups = _unique_labels([r["label"] for r in results])
    series = {f"{s} personas": [r["accuracy"][s][metric]["accuracy"] for r in results] for s in SIDES}
    errors = {f"{s} personas": [r["accuracy"][s][metric]["se"] for r in results] for s in SIDES}
    chance = 0.25 if metric == "both_orders" else 0.5
    what = "both orders agree" if metric == "both_orders" else "mean of both orders"
    return plots.grouped_bars(groups, series, errors, path=path, title=f"Persona accuracy ({what})",
                              ylabel="accuracy", reference=chance, reference_label=f"chance ({chance:g})",
                              ylim=(0, 1.05), annotate=True)


def _unique_labels(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
    return out


# ---------------------------------------------------------------------------------------------- prefs
def prefs_items(prun: PersonaRun) -> list[dict[str, Any]]:
    """One pairwise item per row with both personas: A = chosen-side persona, B = rejected-side persona."""
    items = []
    for row_id, sides in prun.pairs().items():
        if set(sides) != set(SIDES):
            continue
        items.append({"key": row_id, "instruction": sides["chosen"]["prompt"],
                      "response_a": sides["chosen"]["persona"], "response_b": sides["rejected"]["persona"],
                      "meta": {"row_id": row_id}})
    return items


def prefs_metrics(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Proportions chosen / tie / rejected; inconsistent orders are ties, unreadable verdicts are left out."""
    vs = [v for v in verdicts if v.get("winner") not in (None, "error")]
    counts = {"chosen": 0, "tie": 0, "rejected": 0}
    failed = 0
    for v in vs:
        w = v.get("winner")
        if w == "A":
            counts["chosen"] += 1
        elif w == "B":
            counts["rejected"] += 1
        elif w == "tie":
            counts["tie"] += 1
        else:
            failed += 1
    n = sum(counts.values())
    props = {k: (c / n if n else float("nan")) for k, c in counts.items()}
    return {"n": n, "counts": counts, "proportions": props, "se": {k: _se(p, n) for k, p in props.items()},
            "unparsed": failed}


def persona_prefs(runs: Sequence[str | Path], options: Any = None, judge: Any = None, *, rubric: str | None = None,
                  output_dir: str | None = None, run_name: str | None = None, fresh: bool = False,
                  plot: str | Path | None = None, make_plot: bool = True) -> dict[str, Any]:
    pruns, options, judge, rub = _setup(runs, options, judge, rubric, PREFS_RUBRIC)
    results = []
    for prun in pruns:
        items = prefs_items(prun)
        if not items:
            raise UsageError(f"{prun.path} has no row with both a chosen-side and a rejected-side persona")
        run, verdicts = _judge_run("persona-prefs", prun, items, rub, options, judge,
                                   output_dir=_out_dir(output_dir, prun, len(pruns) > 1), run_name=run_name,
                                   fresh=fresh)
        metrics = prefs_metrics(run.results())
        run.write_metrics({"prefs": metrics, "personas": str(prun.path)})
        failed = len(run.failures())
        run.finish("completed" if not failed else "incomplete")
        results.append({"personas": str(prun.path), "label": prun.label, "split": prun.split,
                        "judge_run": str(run.path), "prefs": metrics, "failures": failed})
    out: dict[str, Any] = {"runs": results}
    if make_plot:
        from prefkit import plots

        target = Path(plot) if plot else (Path(results[0]["judge_run"]) / "prefs" if len(results) == 1
                                          else Path(results[0]["judge_run"]).parent / "prefs-compare")
        labels = _unique_labels([r["label"] for r in results])
        parts = {name: [r["prefs"]["proportions"][k] if r["prefs"]["n"] else 0.0 for r in results]
                 for k, name in (("chosen", "chosen-side persona"), ("tie", "tie"),
                                 ("rejected", "rejected-side persona"))}
        out["plot"] = [str(p) for p in plots.stacked_bars(labels, parts, path=target,
                                                          title="Which persona is the more typical user?",
                                                          ylabel="proportion of rows")]
    return out
