"""``prefkit tailor judge``: a tailored model's answers against a baseline's, through the core judge layer.

For every test row both runs answered, a pairwise judge (both orders; disagreement = tie)
compares the baseline's answer (A) with the tested model's (B):

* ``quality`` — which answer is better, no persona shown;
* ``tailoring-personalization`` (the paper's criterion) — does the answer answer the prompt and
  fit the persona (from the test split's persona column of ``--persona-type``, by default the
  inference type the tested run used)? Quality is not part of it, so ΔPQ does not count it twice.

For Mnemonic the judge is shown the task (write a keyword mnemonic for the term), not the bare
term. Win rates are of the tested run over the baseline, with bootstrap CIs, in both conventions:
ties excluded (the paper's) and ties counted half. ``ΔPQ = WR_P + WR_Q − 1`` summarises both
judgments (above 0: the tested run gains on the two together); it uses the paper's convention
unless ``delta_pq_metric="win_rate_ties_half"``, and the other one is reported too.
Verdicts live in a run directory keyed ``<rubric>/<row_id>``, so an interrupted judging run
resumes where it stopped and a finished one costs no further calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefkit import UsageError

from ..metrics import DEFAULT_METRIC, METRIC_LABELS, check_metric, delta_pq_both
from .data import load_tailoring_rows
from .formats import (check_inference_personas, check_inference_type, inference_persona, judge_instruction,
                      split_name)

DEFAULT_RUBRICS = "quality,tailoring-personalization"
from .outputs import GENERATION_COMMANDS


def load_generation_run(path: str | Path) -> dict[str, Any]:
    """A generation run's settings and its answers by row_id."""
    import prefkit

    run = prefkit.Run.load(path)
    command = run.manifest.get("command")
    if command not in GENERATION_COMMANDS:
        raise UsageError(f"{path} is a {command!r} run, not a generation run (expected one of: "
                         f"{', '.join(GENERATION_COMMANDS)}; import published outputs with prefkit tailor import-outputs)")
    results = {}
    for r in run.results():
        if r.get("response") is None:
            continue
        results[str(r.get("row_id", r.get("key")))] = r
    if not results:
        raise UsageError(f"{path} has no answers yet (run or resume the generation first)")
    cfg = dict(run.manifest.get("config") or {})
    return {"path": str(run.path), "label": run.path.name, "config": cfg, "results": results,
            "split": cfg.get("split"), "inference_type": cfg.get("inference_type")}


def run_label(run: dict[str, Any]) -> str:
    """A short name for a generation run: ``dpo-chosen-gold-chosen`` (method, training, inference type)."""
    cfg = run["config"]
    parts = [cfg.get("method"), cfg.get("training_type"), cfg.get("inference_type")]
    return "-".join(str(p) for p in parts if p) or run["label"]


def _persona_type(explicit: str | None, base: dict[str, Any], test: dict[str, Any]) -> str | None:
    if explicit:
        return check_inference_type(explicit)
    for run in (test, base):
        t = run.get("inference_type")
        if t and t != "none":
            return t
    return None


def build_items(base: dict[str, Any], test: dict[str, Any], test_rows: list[dict[str, Any]], *, split: str,
                persona_type: str | None, system_persona: str | None, limit: int | None = None
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge items (A = baseline, B = tested run) for the rows both runs answered, in test-split order."""
    order = [str(r["row_id"]) for r in test_rows]
    by_id = {str(r["row_id"]): r for r in test_rows}
    shared = [k for k in order if k in base["results"] and k in test["results"]]
    unknown = sorted((set(base["results"]) | set(test["results"])) - set(by_id))
    if unknown:
        raise UsageError(f"row ids {', '.join(unknown[:5])} are not in the {split} test split; are both runs "
                         f"from the {split} split?")
    if not shared:
        raise UsageError("the two runs share no answered test rows; nothing to judge")
    n_shared = len(shared)
    if limit is not None:
        shared = shared[:limit]
    items = []
    for k in shared:
        row = by_id[k]
        persona = inference_persona(row, persona_type, split, system_persona) if persona_type else None
        items.append({"row_id": k, "instruction": judge_instruction(row["prompt"], split), "persona": persona,
                      "response_a": base["results"][k]["response"], "response_b": test["results"][k]["response"]})
    coverage = {"shared": n_shared, "rows_judged": len(shared), "only_base": len(set(base["results"]) - set(test["results"])),
                "only_test": len(set(test["results"]) - set(base["results"]))}
    return items, coverage


def judge_runs(base_run: str, test_run: str, *, llm: Any = None, judge: Any = None, persona_type: str | None = None,
               rubrics: str | list[str] = DEFAULT_RUBRICS, system_persona: str | None = None,
               data_dir: str | None = None, dataset: str | None = None, limit: int | None = None,
               bootstrap: int = 1000, seed: int = 0, delta_pq_metric: str = DEFAULT_METRIC, plot: bool = True,
               output_dir: str | None = None, run_name: str | None = None, fresh: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Judge ``test_run`` against ``base_run``; returns the report (also in the run's metrics.json)."""
    import prefkit
    from prefkit import JudgeOptions, get_rubric, judge_pairwise
    from prefkit import split_csv

    llm = prefkit.BackendOptions() if llm is None else llm
    judge = judge or JudgeOptions()
    check_metric(delta_pq_metric)
    base, test = load_generation_run(base_run), load_generation_run(test_run)
    dataset = dataset or test["config"].get("dataset") or base["config"].get("dataset")
    splits = {split_name(s, dataset) for s in (base["split"], test["split"]) if s}
    if len(splits) != 1:
        raise UsageError(f"the runs answer different splits ({', '.join(sorted(splits))}) or none is recorded")
    split = splits.pop()
    names = split_csv(rubrics)
    if not names:
        raise UsageError("--rubrics is empty")
    rubric_objs = [get_rubric(n) for n in names]
    ptype = _persona_type(persona_type, base, test)
    if ptype == "none":
        ptype = None
    needs_persona = [r.name for r in rubric_objs if r.uses_persona]
    if needs_persona and ptype is None:
        raise UsageError(f"the {', '.join(needs_persona)} rubric needs a persona, but neither run used one: pass "
                         "--persona-type (gold-chosen, gold-rejected, retr-chosen, retr-rejected or system)")
    if system_persona is None and ptype == "system":
        system_persona = test["config"].get("system_persona") or base["config"].get("system_persona")
    # the mirror the runs were made from, unless told otherwise
    data_dir = data_dir or test["config"].get("data_dir") or base["config"].get("data_dir")
    test_rows = load_tailoring_rows(split, "test", data_dir=data_dir, dataset=dataset)
    if ptype:
        empty = check_inference_personas(test_rows, ptype, split, where=f"the {split} test split")
        if empty:
            drop = set(empty)
            test_rows = [r for r in test_rows if str(r["row_id"]) not in drop]
    items, coverage = build_items(base, test, test_rows, split=split, persona_type=ptype,
                                  system_persona=system_persona, limit=limit)

    identity = {"base_run": str(Path(base["path"]).resolve()), "test_run": str(Path(test["path"]).resolve()),
                "persona_type": ptype, "system_persona": system_persona if ptype == "system" else None,
                "rubrics": [r.fingerprint() for r in rubric_objs], "llm": llm.identity(),
                "judge_instruction": "task" if split == "Mnemonic" else "prompt",
                "judge": judge.identity() if hasattr(judge, "identity") else None}
    config = {"split": split, "base_run": base["path"], "test_run": test["path"], "persona_type": ptype,
              "rubrics": names, "limit": limit, "bootstrap": bootstrap, "seed": seed, "backend": llm.to_dict(),
              "base": {k: base["config"].get(k) for k in ("method", "training_type", "inference_type", "model")},
              "test": {k: test["config"].get(k) for k in ("method", "training_type", "inference_type", "model")}}
    run = prefkit.Run.open("tailor judge", config=config, identity=identity, output_dir=output_dir,
                           run_name=run_name, name_hint=f"{split}-{run_label(test)}--vs--{run_label(base)}",
                           fresh=fresh)
    verdicts: dict[str, list[dict[str, Any]]] = {}
    with run:  # the core's lifecycle: failed / interrupted recorded there
        for rubric in rubric_objs:
            rubric_items = [{"key": f"{rubric.name}/{it['row_id']}", "instruction": it["instruction"],
                             "persona": it["persona"] if rubric.uses_persona else None,
                             "response_a": it["response_a"], "response_b": it["response_b"],
                             "label_a": "base", "label_b": "test", "meta": {"row_id": it["row_id"]}}
                            for it in items]
            out = judge_pairwise(rubric_items, rubric, llm, run, judge=judge, progress=progress)
            verdicts[rubric.name] = [dict(v, key=v["key"].split("/", 1)[1]) for v in out]
    report = summarize(verdicts, bootstrap=bootstrap, seed=seed, delta_pq_metric=delta_pq_metric,
                       roles=rubric_roles(rubric_objs))
    report.update({"run": str(run.path), "split": split, "persona_type": ptype, "base_run": base["path"],
                   "test_run": test["path"], "base": config["base"], "test": config["test"], **coverage})
    if plot and any(v["n_judged"] for v in report["rubrics"].values()):
        report["plot"] = [str(p) for p in plot_report(report, run.path / "winrates")]
    run.write_metrics({"report": report})
    not_judged = sum(v["not_judged"] for v in report["rubrics"].values())
    run.finish(prefkit.RunStatus.INCOMPLETE if not_judged or run.failures() else prefkit.RunStatus.DONE,
               **{f"wr_{k}": v.get("win_rate") for k, v in report["rubrics"].items()})
    return report


def delta_pq_from_runs(personalization_run: str, quality_run: str, *, metric: str = DEFAULT_METRIC,
                       bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """ΔPQ of two pairwise judge runs of the same A/B outputs (e.g. two ``prefkit judge pairwise`` runs,
    one with a persona rubric, one with ``quality``), in both win-rate conventions, paired by key."""
    import prefkit

    runs = []
    for path in (personalization_run, quality_run):
        run = prefkit.Run.load(path)
        results = run.results()
        if not results or "winner" not in results[0]:
            raise UsageError(f"{path} is not a pairwise judge run (its results have no 'winner')")
        runs.append((run, [v for v in results if v.get("winner") not in (None, "failed", "error")]))
    (pr, p), (qr, q) = runs
    out = delta_pq_both(p, q, metric=metric, bootstrap=bootstrap, seed=seed)
    cp, cq = pr.manifest.get("config") or {}, qr.manifest.get("config") or {}
    if (cp.get("a"), cp.get("b")) != (cq.get("a"), cq.get("b")):
        from prefkit import warn

        warn("the two runs judged different A/B outputs; ΔPQ is only meaningful for the same pair")
    out.update({"personalization_run": str(pr.path), "quality_run": str(qr.path),
                "rubrics": {"personalization": cp.get("rubric_name"), "quality": cq.get("rubric_name")}})
    return out


def rubric_roles(rubrics: list[Any]) -> dict[str, str]:
    """Which judged rubric plays which part in ΔPQ: the first that uses the persona is personalization,
    the first that does not is quality."""
    roles: dict[str, str] = {}
    for r in rubrics:
        roles.setdefault("personalization" if r.uses_persona else "quality", r.name)
    return roles


def summarize(verdicts: dict[str, list[dict[str, Any]]], *, bootstrap: int = 1000, seed: int = 0,
              delta_pq_metric: str = DEFAULT_METRIC, roles: dict[str, str] | None = None) -> dict[str, Any]:
    """Per rubric: counts (test wins / ties / base wins / failed) and both win rates with CIs; ΔPQ.

    ``roles`` names the personalization and the quality rubric (default: the rubrics named so).
    """
    import prefkit

    out: dict[str, Any] = {"rubrics": {}, "win_rate_conventions": dict(METRIC_LABELS)}
    for name, vs in verdicts.items():
        judged = [v for v in vs if v.get("winner") is not None]
        wr = prefkit.win_rate(judged, bootstrap=bootstrap, seed=seed)
        out["rubrics"][name] = {
            "n": len(vs), "n_judged": wr["n_judged"], "test_wins": wr["B"], "ties": wr["tie"], "base_wins": wr["A"],
            "failed": wr["failed"], "not_judged": len(vs) - len(judged),
            "win_rate": wr["win_rate"], "win_rate_ci": wr["win_rate_ci"], "win_rate_se": wr["win_rate_se"],
            "win_rate_ties_half": wr["win_rate_ties_half"], "win_rate_ties_half_ci": wr["win_rate_ties_half_ci"],
            "win_rate_ties_half_se": wr["win_rate_ties_half_se"], "tie_rate": wr["tie_rate"],
            "consistency_rate": wr["consistency_rate"]}
    roles = roles or {k: k for k in ("personalization", "quality") if k in verdicts}
    out["roles"] = roles
    p, q = verdicts.get(roles.get("personalization", "")), verdicts.get(roles.get("quality", ""))
    if p is not None and q is not None:
        pj = [v for v in p if v.get("winner") not in (None, "failed", "error")]
        qj = [v for v in q if v.get("winner") not in (None, "failed", "error")]
        if pj and qj:
            out["delta_pq"] = delta_pq_both(pj, qj, metric=delta_pq_metric, bootstrap=bootstrap, seed=seed)
    return out


def plot_report(report: dict[str, Any], path: Path) -> list[Path]:
    from prefkit import plots
    stacked_bars = plots.stacked_bars

    names = list(report["rubrics"])
    r = report["rubrics"]
    t, b = report["test"], report["base"]
    title = (f"{t.get('method') or 'tailored'}: train {t.get('training_type')}, infer {t.get('inference_type')}\n"
             f"vs {b.get('method') or 'baseline'}: train {b.get('training_type')}, infer {b.get('inference_type')}")
    if report.get("delta_pq") and report["delta_pq"].get("delta_pq") is not None:
        title += f"\nΔPQ = {report['delta_pq']['delta_pq']:+.3f}"
    return stacked_bars(names, {"baseline wins": [r[n]["base_wins"] for n in names],
                                "tie": [r[n]["ties"] for n in names],
                                "tailored wins": [r[n]["test_wins"] for n in names]},
                        path=path, title=title, ylabel="share of judged test rows", reference=0.5,
                        colors=("#999999", "#E69F00", "#0072B2"))


def _fmt_ci(ci: Any, sep: str = ", ") -> str:
    if not ci:
        return ""
    return f"[{ci[0]:.3f}{sep}{ci[1]:.3f}]"


def print_report(report: dict[str, Any]) -> None:
    from prefkit import rich_console as console, print_table

    def f(v: Any) -> str:
        return "" if v is None else f"{v:.3f}"

    rows = []
    for name, v in report["rubrics"].items():
        rows.append({"rubric": name, "judged": v["n_judged"], "tailored": v["test_wins"], "tie": v["ties"],
                     "baseline": v["base_wins"], "failed": v["failed"] + v["not_judged"],
                     "ties excl.": f(v["win_rate"]), "95% CI (excl.)": _fmt_ci(v["win_rate_ci"], ","),
                     "ties half": f(v["win_rate_ties_half"]),
                     "95% CI (half)": _fmt_ci(v["win_rate_ties_half_ci"], ",")})
    c = console()
    c.print(f"[bold]tailored[/bold] {report['test_run']}\n[bold]baseline[/bold] {report['base_run']}\n"
            f"split {report['split']}, persona: {report.get('persona_type') or '-'}", highlight=False, soft_wrap=True)
    print_table(rows, title="pairwise wins and win rate of the tailored run (the paper's win rate leaves ties out)")
    d = report.get("delta_pq")
    if d:
        other = next((m for m in d.get("by_metric", {}) if m != d["metric"]), None)
        if d.get("delta_pq") is not None:
            line = (f"ΔPQ = WR_personalization + WR_quality − 1 = {d['delta_pq']:+.3f} "
                    f"{_fmt_ci(d.get('delta_pq_ci'))}, {METRIC_LABELS[d['metric']]}")
        else:
            line = f"ΔPQ, {METRIC_LABELS[d['metric']]}: n/a (a rubric has no decisive verdict, only ties)"
        if other and d["by_metric"][other].get("delta_pq") is not None:
            line += f" ({METRIC_LABELS[other]}: {d['by_metric'][other]['delta_pq']:+.3f})"
        c.print(line, highlight=False, soft_wrap=True)
    failed = sum(v["failed"] + v["not_judged"] for v in report["rubrics"].values())
    if failed:
        c.print(f"{failed} judgments failed (unparseable or backend errors): re-run the same command to retry "
                "backend errors", highlight=False, soft_wrap=True)
    if report.get("only_base") or report.get("only_test"):
        c.print(f"rows answered by one run only (not judged): baseline {report['only_base']}, "
                f"tailored {report['only_test']}", highlight=False, soft_wrap=True)
    for p in report.get("plot") or []:
        if p.endswith(".png"):
            c.print(f"plot: {p}", highlight=False, soft_wrap=True)
    c.print(f"run: {report['run']}", highlight=False, soft_wrap=True)
