"""``prefkit compred judge`` and ``prefkit compred report``.

Judge: which of two systems' answers would get more upvotes in the post's subreddit. The
judge sees the subreddit (always, whatever the systems saw) and the post; each pair is
judged in both orders (the core's pairwise judge: disagreeing orders are a tie). Outputs
are joined on ``post_id``: posts present on one side only are an error that counts them
(``--intersect`` judges the common posts instead). Every joined post is judged unless
``--limit`` says otherwise. Win rates are of **B over A**, with ties excluded and with ties
as half, with percentile-bootstrap CIs, overall and per subreddit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import prefkit

from .predict import PREDICT_COMMAND, TRAIN_COMMAND

JUDGE_COMMAND = "compred judge"
REWARD_COMMAND = "compred reward"
RUBRIC_NAME = "compred-upvotes"


def upvotes_rubric() -> "prefkit.Rubric":
    return prefkit.Rubric(
        name=RUBRIC_NAME,
        description="ComPreD: which comment would the post's subreddit upvote more (the judge sees the subreddit)",
        criteria="Which response, posted as a comment on this post in the subreddit named in the context, would "
                 "get more upvotes from that community? Judge by what the members of that subreddit value and "
                 "reward, not by what a general audience would prefer.")


# ------------------------------------------------------------------------------------------------ outputs
def read_outputs(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of a ``compred predict`` run directory (or a JSONL file of such rows) and their settings."""
    p = Path(path)
    meta: dict[str, Any] = {"path": str(p)}
    if p.is_dir():
        run = prefkit.Run.load(p)
        if run.manifest.get("command") != PREDICT_COMMAND:
            raise prefkit.UsageError(f"{p} is a {run.manifest.get('command')!r} run, not a compred predict run")
        rows = run.results()
        meta.update({k: run.manifest.get("config", {}).get(k) for k in ("model_id", "subset", "context", "format")})
    elif p.is_file():
        rows = prefkit.read_jsonl(p)
    else:
        raise prefkit.UsageError(f"no such run directory or file: {p}")
    seen: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        pid = r.get("post_id")
        if pid is None or r.get("response") is None:
            raise prefkit.UsageError(f"{p}: row {i} has no 'post_id' or 'response' (not compred predict output)")
        if str(pid) in seen:
            raise prefkit.UsageError(f"{p}: post_id {pid!r} appears twice")
        seen[str(pid)] = r
    if not meta.get("context") and rows:
        meta.update({k: rows[0].get(k) for k in ("context", "model") if rows[0].get(k)})
        meta.setdefault("model_id", rows[0].get("model"))
    return list(seen.values()), meta


def join_outputs(a: Sequence[dict], b: Sequence[dict], *, intersect: bool = False,
                 names: tuple[str, str] = ("A", "B")) -> tuple[list[tuple[dict, dict]], dict[str, int]]:
    """Pairs of rows with the same ``post_id``, in A's order; a mismatch is an error that counts the rows."""
    by_b = {str(r["post_id"]): r for r in b}
    ids_a = [str(r["post_id"]) for r in a]
    only_a = [i for i in ids_a if i not in by_b]
    set_a = set(ids_a)
    only_b = [str(r["post_id"]) for r in b if str(r["post_id"]) not in set_a]
    counts = {"a": len(a), "b": len(b), "joined": len(ids_a) - len(only_a), "only_a": len(only_a),
              "only_b": len(only_b)}
    if (only_a or only_b) and not intersect:
        eg = ", ".join((only_a + only_b)[:3])
        raise prefkit.UsageError(
            f"the outputs do not cover the same posts: {len(only_a)} of {names[0]}'s {len(a)} posts are missing "
            f"from {names[1]} and {len(only_b)} of {names[1]}'s {len(b)} are missing from {names[0]} (e.g. {eg}); "
            f"pass --intersect to judge only the {counts['joined']} posts both have")
    pairs = []
    for r in a:
        other = by_b.get(str(r["post_id"]))
        if other is None:
            continue
        if other.get("subreddit") and r.get("subreddit") and other["subreddit"] != r["subreddit"]:
            raise prefkit.UsageError(f"post {r['post_id']}: subreddit {r['subreddit']!r} in {names[0]} but "
                                     f"{other['subreddit']!r} in {names[1]} (outputs of different data?)")
        pairs.append((r, other))
    if not pairs:
        raise prefkit.UsageError("the two outputs have no post_id in common")
    return pairs, counts


# ------------------------------------------------------------------------------------------------ judge
@dataclass
class JudgeConfig:
    """How ``compred judge`` compares two outputs."""

    limit: int | None = prefkit.opt(None, help="Judge only the first N joined posts (default: all of them).")
    intersect: bool = prefkit.opt(False, help="Judge the posts both outputs have instead of failing on a mismatch.")
    allow_tie: bool = prefkit.opt(False, help="Let the judge answer 'tie' (orders that disagree are ties anyway).")
    bootstrap: int = prefkit.opt(1000, help="Bootstrap resamples for the confidence intervals (0: none).")
    bootstrap_seed: int = prefkit.opt(0, help="Seed of the bootstrap.")


def _post_text(r: dict[str, Any]) -> str:
    return str(r.get("post") or "\n".join(x for x in (r.get("title"), r.get("body")) if x))


def judge_items(pairs: Sequence[tuple[dict, dict]]) -> list[dict[str, Any]]:
    """Judge items: the post as the instruction, the (real) subreddit as the context."""
    return [{"key": str(a["post_id"]), "instruction": _post_text(a), "response_a": a["response"],
             "response_b": b["response"], "context": f"The post was made in the subreddit r/{a['subreddit']}.",
             "meta": {"subreddit": a["subreddit"]}} for a, b in pairs]


def summarize(verdicts: Sequence[dict[str, Any]], subreddits: dict[str, str], *, bootstrap: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Win rate of B over A overall and per subreddit (ties excluded / as half, bootstrap CIs)."""
    keep = ("n", "n_judged", "A", "B", "tie", "failed", "win_rate", "win_rate_ci", "win_rate_ties_half",
            "win_rate_ties_half_ci", "consistency_rate")
    overall = prefkit.win_rate(verdicts, bootstrap=bootstrap, seed=seed)
    by: dict[str, list] = {}
    for v in verdicts:
        by.setdefault(subreddits.get(str(v["key"]), "?"), []).append(v)
    per = {s: {k: w.get(k) for k in keep} for s, w in
           ((s, prefkit.win_rate(vs, bootstrap=bootstrap, seed=seed)) for s, vs in sorted(by.items()))}
    return {"overall": {k: overall.get(k) for k in keep}, "per_subreddit": per}


def judge(a: str, b: str, cfg: JudgeConfig | None = None, llm: Any = None, *, output_dir: str | None = None,
          run_name: str | None = None, fresh: bool = False, progress: bool = True) -> dict[str, Any]:
    """Judge outputs ``b`` against ``a`` (win rates of B over A); returns the summary."""
    cfg = cfg or JudgeConfig()
    llm = prefkit.BackendOptions() if llm is None else llm
    if cfg.limit is not None and cfg.limit < 1:
        raise prefkit.UsageError(f"--limit must be at least 1 (got {cfg.limit})")
    rows_a, meta_a = read_outputs(a)
    rows_b, meta_b = read_outputs(b)
    pairs, join_counts = join_outputs(rows_a, rows_b, intersect=cfg.intersect)
    judged = pairs[:cfg.limit] if cfg.limit is not None else pairs
    items = judge_items(judged)
    subreddits = {it["key"]: it["meta"]["subreddit"] for it in items}
    rubric = upvotes_rubric()
    config = {"a": meta_a, "b": meta_b, "limit": cfg.limit, "intersect": cfg.intersect, "allow_tie": cfg.allow_tie,
              "bootstrap": cfg.bootstrap, "bootstrap_seed": cfg.bootstrap_seed, "rubric": rubric.to_dict(), "judge": llm.to_dict()}
    identity = {"a": str(Path(a).resolve()), "b": str(Path(b).resolve()), "allow_tie": cfg.allow_tie,
                "rubric": rubric.fingerprint(), "llm": llm.identity()}
    run = prefkit.Run.open(JUDGE_COMMAND, config=config, identity=identity, output_dir=output_dir,
                           run_name=run_name, fresh=fresh,
                           name_hint=f"{meta_a.get('context') or Path(a).name}-vs-{meta_b.get('context') or Path(b).name}")
    with run:  # the core lifecycle: an exception records "failed", Ctrl-C/SIGTERM "interrupted"
        verdicts = prefkit.judge_pairwise(items, rubric, llm, run=run, allow_tie=cfg.allow_tie, progress=progress)
        stats = summarize(verdicts, subreddits, bootstrap=cfg.bootstrap, seed=cfg.bootstrap_seed)
        counts = {**join_counts, "judged": len(items), "not_judged_limit": len(pairs) - len(items),
                  "errors": sum(1 for v in verdicts if v.get("winner") == "error")}
        labels = {"a": meta_a.get("context") or meta_a.get("model_id"), "b": meta_b.get("context") or meta_b.get("model_id")}
        metrics = {"counts": counts, "labels": labels, **stats}
        run.write_metrics(metrics)
        plot = per_subreddit_plot(stats, run.path / "win_rate_by_subreddit.png", labels)
        status = prefkit.RunStatus.DONE if counts["errors"] == 0 else prefkit.RunStatus.INCOMPLETE
        run.finish(status, judged=len(items), errors=counts["errors"])
    return {"run": str(run.path), "status": run.manifest["status"], "plot": [str(x) for x in plot], **metrics}


def per_subreddit_plot(stats: dict[str, Any], path: Path, labels: dict[str, Any]) -> list[Path]:
    names = [*stats["per_subreddit"], "overall"]
    rows = [*stats["per_subreddit"].values(), stats["overall"]]
    vals = [r.get("win_rate_ties_half") for r in rows]
    cis = [tuple(r["win_rate_ties_half_ci"]) if r.get("win_rate_ties_half_ci") else None for r in rows]
    return prefkit.plots.bar_chart(
        [f"r/{n}" if n != "overall" else n for n in names], vals, cis, path=path, ylim=(0, 1), reference=0.5,
        title=f"{labels.get('b')} vs {labels.get('a')}: judged more upvoted (ties = 1/2)",
        ylabel=f"win rate of {labels.get('b')}")


def table_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per subreddit and one overall."""
    out = []
    for name, s in [*stats["per_subreddit"].items(), ("overall", stats["overall"])]:
        out.append({"subreddit": name if name == "overall" else f"r/{name}", "n": s["n"], "B wins": s["B"],
                    "A wins": s["A"], "ties": s["tie"], "failed": s["failed"],
                    "win rate (no ties)": s["win_rate"], "CI (no ties)": format_ci(s.get("win_rate_ci")),
                    "win rate (ties 1/2)": s["win_rate_ties_half"], "CI (ties 1/2)": format_ci(s.get("win_rate_ties_half_ci"))})
    return out


def format_ci(ci: Any) -> str | None:
    """``[0.41, 0.55]`` for a CI, None without one."""
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else None


# ------------------------------------------------------------------------------------------------ report
def _manifest(path: Path) -> dict[str, Any]:
    mp = path / "manifest.json"
    if not mp.is_file():
        raise prefkit.UsageError(f"{path} is not a prefkit run directory (no manifest.json)")
    return json.loads(mp.read_text())


def report(runs: Sequence[str], *, output: str | None = None) -> dict[str, Any]:
    """One table (and plot) comparing context modes across compred train / reward / predict / judge runs."""
    if not runs:
        raise prefkit.UsageError("give at least one compred run directory")
    rows = []
    for r in runs:
        p = Path(r)
        m = _manifest(p)
        cmd = m.get("command")
        metrics = json.loads((p / "metrics.json").read_text()) if (p / "metrics.json").is_file() else {}
        cfg = m.get("config") or {}
        if cmd == JUDGE_COMMAND:
            o = metrics.get("overall") or {}
            lab = metrics.get("labels") or {}
            rows.append({"run": p.name, "kind": "judge", "comparison": f"{lab.get('b')} vs {lab.get('a')}",
                         "metric": "win rate (ties 1/2)", "value": o.get("win_rate_ties_half"),
                         "ci": format_ci(o.get("win_rate_ties_half_ci")), "n": o.get("n"),
                         "ci_interval": o.get("win_rate_ties_half_ci")})
        elif cmd == REWARD_COMMAND:
            acc = (metrics.get("test") or {}).get("overall") or {}
            rows.append({"run": p.name, "kind": "reward", "comparison": cfg.get("context"),
                         "metric": "RM accuracy (test_pref)", "value": acc.get("accuracy"),
                         "ci": format_ci(acc.get("accuracy_ci")), "n": acc.get("n"),
                         "ci_interval": acc.get("accuracy_ci")})
        elif cmd == TRAIN_COMMAND:
            dpo = metrics.get("dpo") or {}
            rows.append({"run": p.name, "kind": "train", "comparison": cfg.get("context"),
                         "metric": "DPO reward margin (last eval)", "value": dpo.get("eval_rewards/margins",
                                                                                     dpo.get("rewards/margins")),
                         "ci": None, "n": (metrics.get("data") or {}).get("dpo_pairs")})
        elif cmd == PREDICT_COMMAND:
            c = metrics.get("counts") or {}
            rows.append({"run": p.name, "kind": "predict", "comparison": cfg.get("context"),
                         "metric": "answers", "value": c.get("done"), "ci": None, "n": c.get("requests")})
        else:
            raise prefkit.UsageError(f"{p} is a {cmd!r} run, not a compred train/reward/predict/judge run")
    plot_rows = [r for r in rows if r["kind"] in ("judge", "reward") and r["value"] is not None]
    plot: list[Path] = []
    if plot_rows:
        target = Path(output) if output else Path(runs[0]).parent / "compred-report.png"
        plot = prefkit.plots.bar_chart(
            [f"{r['kind']}: {r['comparison']}" for r in plot_rows], [r["value"] for r in plot_rows],
            [tuple(r["ci_interval"]) if r.get("ci_interval") else None for r in plot_rows], path=target, ylim=(0, 1), reference=0.5,
            title="ComPreD: context modes compared", ylabel="win rate / accuracy")
    return {"rows": rows, "plot": [str(x) for x in plot]}
