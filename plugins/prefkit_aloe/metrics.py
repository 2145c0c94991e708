"""The ALOE benchmark's metrics: per-turn alignment level, its average and how fast it improves.

Input: the judge's 1-5 scores, one list of K per-turn scores per persona (turn 1 first).
Definitions (spec §4; N personas, K turns):

==========  =======================================================================================
AL(k)       mean judge score at turn k over the N personas, with a 95% t interval over personas
AVG         (1/K) Σ_k AL(k)
IR          b of (b, a) = argmin Σ_k (b·k + a − AL(k))²: the OLS slope of AL on the turn index
N-AL(k)     (AL(k) − min_j AL(j)) / (max_j AL(j) − min_j AL(j))
N-IR        the OLS slope of N-AL(k) on k (= IR / (max AL − min AL))
N-R²        the coefficient of determination of that fit (equal to the R² of the AL fit: R² does not
            change under an affine map of y)
==========  =======================================================================================

Choices (documented, as the reference computes only AL(k)):

* **Complete cases.** Only personas scored at every turn 1..K enter the aggregates, so every
  AL(k) averages the same personas (the reference's averages are ragged: a conversation that
  failed at turn 5 drops out of AL(6..10) only). How many were left out is reported.
* **Intervals.** Student t intervals over personas (df = n − 1), from the per-persona values;
  with n < 2 the interval is undefined (``None``). Because an OLS slope is linear in y, the IR of
  the mean curve equals the mean of the per-persona slopes, so IR's interval is the t interval of
  the per-persona slopes; AVG's is that of the per-persona averages.
* **Seeds / judge samples** are averaged per persona first (a persona is the unit of analysis).
* **N-AL undefined.** When all AL(k) are equal the normalisation divides by zero: N-AL, N-IR and
  N-R² are ``None`` and ``normalized`` is False (said so in the table), never 0 or NaN silently.
* **Paired differences** (``compare``): per persona, B − A at each turn, of the average and of the
  slope, over the personas both runs scored completely, with t intervals over personas.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

CONFIDENCE = 0.95


# ------------------------------------------------------------------------------------------ statistics
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t critical value for ``confidence`` with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("a t quantile needs at least 1 degree of freedom")
    p = 1 - (1 - confidence) / 2
    try:
        from scipy.stats import t as _t

        return float(_t.ppf(p, df))
    except ImportError:  # pragma: no cover - scipy comes with the ML stack; a close approximation otherwise
        z = _normal_quantile(p)
        g1 = (z ** 3 + z) / 4
        g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
        g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
        return z + g1 / df + g2 / df ** 2 + g3 / df ** 3


def _normal_quantile(p: float) -> float:  # pragma: no cover - fallback only
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``{"mean", "se", "ci": [low, high] | None, "n"}``: the mean and its t interval (``n - 1`` df)."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return {"mean": None, "se": None, "ci": None, "n": 0}
    m = sum(vals) / n
    if n < 2:
        return {"mean": m, "se": None, "ci": None, "n": 1}
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))
    se = sd / math.sqrt(n)
    h = t_quantile(n - 1, confidence) * se
    return {"mean": m, "se": se, "ci": [m - h, m + h], "n": n}


def ols(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float | None]:
    """``(slope, intercept, r2)`` of the least-squares line of ys on xs; r2 is None when ys are all equal."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError("ols needs two or more (x, y) points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("ols needs at least two different x values")
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    if ss_tot == 0:
        return slope, intercept, None
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    return slope, intercept, 1 - ss_res / ss_tot


# ------------------------------------------------------------------------------------------ the curve
def curve_metrics(al: Sequence[float]) -> dict[str, Any]:
    """AVG, IR, N-AL(k), N-IR, N-R² of one AL curve (k = 1..K)."""
    k = list(range(1, len(al) + 1))
    al = [float(v) for v in al]
    out: dict[str, Any] = {"avg": sum(al) / len(al) if al else None, "ir": None, "ir_intercept": None, "r2": None,
                           "n_al": None, "n_ir": None, "n_r2": None, "normalized": False}
    if len(al) < 2:
        return out
    slope, intercept, r2 = ols(k, al)
    out.update(ir=slope, ir_intercept=intercept, r2=r2)
    lo, hi = min(al), max(al)
    if hi > lo:
        n_al = [(v - lo) / (hi - lo) for v in al]
        n_slope, _, n_r2 = ols(k, n_al)
        out.update(n_al=n_al, n_ir=n_slope, n_r2=n_r2, normalized=True)
    return out


def _per_persona(scores: Mapping[str, Sequence[float | None]], turns: int) -> tuple[dict[str, list[float]], list[str]]:
    """The personas scored at every turn 1..turns (their first ``turns`` scores), and the others' ids."""
    complete: dict[str, list[float]] = {}
    incomplete: list[str] = []
    for pid, s in scores.items():
        vals = list(s)[:turns]
        if len(vals) == turns and all(v is not None and math.isfinite(float(v)) for v in vals):
            complete[pid] = [float(v) for v in vals]
        else:
            incomplete.append(pid)
    return complete, sorted(incomplete)


def summarize(scores: Mapping[str, Sequence[float | None]], turns: int | None = None,
              confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The benchmark's numbers from ``{persona id: [score at turn 1, ..., turn K]}``.

    Returns ``al`` (K means), ``al_ci`` (K intervals), ``avg`` and ``avg_ci``, ``ir`` and ``ir_ci``,
    ``r2``, ``n_al``, ``n_ir``, ``n_r2``, ``normalized``, ``n`` (personas used), ``incomplete`` (ids
    left out), ``turns``.
    """
    if turns is None:
        turns = max((len(s) for s in scores.values()), default=0)
    complete, incomplete = _per_persona(scores, turns)
    out: dict[str, Any] = {"turns": turns, "n": len(complete), "incomplete": incomplete,
                           "confidence": confidence}
    if not complete or turns < 1:
        out.update(al=[], al_ci=[], avg=None, avg_ci=None, ir=None, ir_ci=None, r2=None, n_al=None, n_ir=None,
                   n_r2=None, normalized=False)
        return out
    rows = list(complete.values())
    per_turn = [mean_ci([r[k] for r in rows], confidence) for k in range(turns)]
    al = [p["mean"] for p in per_turn]
    out["al"] = al
    out["al_ci"] = [p["ci"] for p in per_turn]
    out.update(curve_metrics(al))
    out["avg_ci"] = mean_ci([sum(r) / turns for r in rows], confidence)["ci"]
    ks = list(range(1, turns + 1))
    out["ir_ci"] = mean_ci([ols(ks, r)[0] for r in rows], confidence)["ci"] if turns >= 2 else None
    return out


def paired_differences(a: Mapping[str, Sequence[float | None]], b: Mapping[str, Sequence[float | None]],
                       turns: int | None = None, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """B − A over the personas both score completely: per turn, of the average, of the slope (IR).

    Returns ``n``, ``personas`` (the shared ids), ``al_diff`` / ``al_diff_ci`` (per turn),
    ``avg_diff`` / ``avg_diff_ci``, ``ir_diff`` / ``ir_diff_ci``, and ``only_a`` / ``only_b`` counts.
    """
    if turns is None:
        turns = min(max((len(s) for s in a.values()), default=0), max((len(s) for s in b.values()), default=0))
    ca, _ = _per_persona(a, turns)
    cb, _ = _per_persona(b, turns)
    shared = sorted(set(ca) & set(cb))
    out: dict[str, Any] = {"turns": turns, "n": len(shared), "personas": shared, "confidence": confidence,
                           "only_a": len(set(ca) - set(cb)), "only_b": len(set(cb) - set(ca))}
    if not shared:
        out.update(al_diff=[], al_diff_ci=[], avg_diff=None, avg_diff_ci=None, ir_diff=None, ir_diff_ci=None)
        return out
    diffs = [[cb[p][k] - ca[p][k] for k in range(turns)] for p in shared]
    per_turn = [mean_ci([d[k] for d in diffs], confidence) for k in range(turns)]
    out["al_diff"] = [p["mean"] for p in per_turn]
    out["al_diff_ci"] = [p["ci"] for p in per_turn]
    avg = mean_ci([sum(d) / turns for d in diffs], confidence)
    out["avg_diff"], out["avg_diff_ci"] = avg["mean"], avg["ci"]
    if turns >= 2:
        ks = list(range(1, turns + 1))
        ir = mean_ci([ols(ks, d)[0] for d in diffs], confidence)
        out["ir_diff"], out["ir_diff_ci"] = ir["mean"], ir["ci"]
    else:
        out["ir_diff"] = out["ir_diff_ci"] = None
    return out


def average_repeats(by_conversation: Iterable[tuple[str, Sequence[float | None]]]) -> dict[str, list[float | None]]:
    """``{persona: per-turn mean over its conversations (seeds)}`` from ``(persona id, scores)`` pairs.

    A turn missing in any of a persona's conversations is missing for the persona (complete cases).
    """
    groups: dict[str, list[Sequence[float | None]]] = {}
    for pid, s in by_conversation:
        groups.setdefault(str(pid), []).append(list(s))
    out: dict[str, list[float | None]] = {}
    for pid, convs in groups.items():
        k = max(len(c) for c in convs)
        row: list[float | None] = []
        for i in range(k):
            vals = [c[i] if i < len(c) else None for c in convs]
            row.append(None if any(v is None for v in vals) else sum(float(v) for v in vals) / len(vals))
        out[pid] = row
    return out


def format_ci(ci: Sequence[float] | None, digits: int = 2) -> str:
    """``[low, high]`` as text (``–`` when undefined)."""
    if not ci:
        return "–"
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def format_num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


__all__ = ["CONFIDENCE", "t_quantile", "mean_ci", "ols", "curve_metrics", "summarize", "paired_differences",
           "average_repeats", "format_ci", "format_num"]
