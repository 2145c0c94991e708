"""Win rates, their uncertainty, length control, score summaries.

Conventions (also in docs/judging.md):

* a verdict is ``"A"``, ``"B"``, ``"tie"`` or a failure (``"failed"``,
  ``"error"``, ``None``); win rates are of **B over A**;
* ``win_rate`` excludes ties: ``B / (A + B)``; ``win_rate_ties_half`` counts a
  tie as half a win: ``(B + tie/2) / (A + B + tie)``; failures are excluded from
  both and reported as ``failed``;
* a standard error is the standard error of the mean of the per-item scores
  (1 = B wins, 0 = A wins, 0.5 = tie) with the sample standard deviation
  (``ddof=1``);
* the confidence interval is a percentile bootstrap over items (resampling the
  judged items with replacement, ``bootstrap`` times, seeded);
* the length-controlled win rate (AlpacaEval 2.0 style) fits a logistic
  regression of the judge's preference for B on the normalised length
  difference ``tanh((len_B - len_A) / sd)`` and reports the predicted win rate
  at zero length difference, ``sigmoid(intercept)``. Ties enter as 0.5. (The
  per-instruction difficulty term of AlpacaEval needs many models on the same
  instructions, so it is left out.)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

WIN_SCORES = {"A": 0.0, "B": 1.0, "tie": 0.5}
FAILED = ("failed", "error", None)


def _winner(v: Any) -> str | None:
    if isinstance(v, Mapping):
        v = v.get("winner")
    if v is None:
        return None
    s = str(v).strip()
    low = s.lower()
    if low in ("a", "b"):
        return low.upper()
    if low in ("tie", "draw", "equal"):
        return "tie"
    return None


def outcome_counts(verdicts: Iterable[Any]) -> dict[str, int]:
    """Counts of ``A``, ``B``, ``tie`` and ``failed`` (anything else) verdicts."""
    counts = {"A": 0, "B": 0, "tie": 0, "failed": 0}
    for v in verdicts:
        w = _winner(v)
        counts[w if w is not None else "failed"] += 1
    return counts


def _sem(values) -> float | None:
    """The core's mean ± SE rule (``prefkit.mean_se``); None where the SE is undefined (JSON-friendly)."""
    from ..stats import mean_se

    se = mean_se(values)[1]
    return None if math.isnan(se) else se


def _interval(samples, confidence: float) -> list[float] | None:
    import numpy as np

    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def _fit_logistic(z, y, l2: float = 1e-3, iters: int = 50) -> tuple[float, float]:
    """Logistic regression ``y ~ sigmoid(b0 + b1 z)`` with soft targets, by Newton's method.

    A small L2 penalty on the slope keeps the fit finite when the data separate.
    """
    import numpy as np

    z = np.asarray(z, dtype=float)
    y = np.asarray(y, dtype=float)
    X = np.stack([np.ones_like(z), z], axis=1)
    w = np.zeros(2)
    pen = np.array([0.0, l2 * len(y)])
    # an intercept-only problem whose targets are all 0 or all 1 has no finite optimum: clip the target mean
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        grad = X.T @ (p - y) + pen * w
        h = X.T @ (X * (p * (1 - p))[:, None]) + np.diag(pen) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, grad)
        w = w - step
        w = np.clip(w, -30, 30)
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0]), float(w[1])


def _length_features(len_a, len_b):
    import numpy as np

    diff = np.asarray(len_b, dtype=float) - np.asarray(len_a, dtype=float)
    sd = float(np.std(diff))
    if sd == 0.0 or not math.isfinite(sd):
        return np.zeros_like(diff), sd
    return np.tanh(diff / sd), sd


def length_controlled_win_rate(scores: Sequence[float], len_a: Sequence[float], len_b: Sequence[float],
                               *, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Win rate of B predicted at zero length difference (see the module docs)."""
    import numpy as np

    y = np.asarray(scores, dtype=float)
    n = len(y)
    if n == 0:
        return {"lc_win_rate": None, "lc_win_rate_ci": None, "lc_length_coef": None, "lc_n": 0}
    z, sd = _length_features(len_a, len_b)
    b0, b1 = _fit_logistic(z, y)
    out: dict[str, Any] = {
        "lc_win_rate": 1.0 / (1.0 + math.exp(-b0)),
        "lc_length_coef": b1,
        "lc_length_sd": sd,
        "lc_n": n,
        "mean_len_a": float(np.mean(len_a)),
        "mean_len_b": float(np.mean(len_b)),
    }
    if bootstrap and n > 1:
        rng = np.random.default_rng(seed)
        la, lb = np.asarray(len_a, dtype=float), np.asarray(len_b, dtype=float)
        samples = np.empty(bootstrap)
        for i in range(bootstrap):
            idx = rng.integers(0, n, size=n)
            zi, _ = _length_features(la[idx], lb[idx])
            c0, _ = _fit_logistic(zi, y[idx])
            samples[i] = 1.0 / (1.0 + math.exp(-c0))
        out["lc_win_rate_ci"] = _interval(samples, confidence)
        out["lc_win_rate_se"] = float(np.std(samples, ddof=1))
    else:
        out["lc_win_rate_ci"] = None
    return out


def win_rate(verdicts: Iterable[Any], bootstrap: int = 1000, seed: int = 0, length_controlled: bool = False,
             confidence: float = 0.95) -> dict[str, Any]:
    """Win rate of B over A with counts, standard errors and bootstrap CIs.

    ``verdicts``: verdict dicts (``{"winner": "A"|"B"|"tie"|"failed", ...}``, as
    :func:`prefkit.judging.judge_pairwise` returns them) or plain strings.
    ``length_controlled`` needs ``len_a``/``len_b`` in the dicts.
    """
    import numpy as np

    verdicts = list(verdicts)
    counts = outcome_counts(verdicts)
    judged = [v for v in verdicts if _winner(v) is not None]
    scores = np.array([WIN_SCORES[_winner(v)] for v in judged], dtype=float)
    n = len(scores)
    decisive = scores[scores != 0.5]
    out: dict[str, Any] = {
        "n": len(verdicts),
        "n_judged": n,
        **counts,
        "win_rate": float(decisive.mean()) if decisive.size else None,
        "win_rate_se": _sem(decisive),
        "win_rate_ties_half": float(scores.mean()) if n else None,
        "win_rate_ties_half_se": _sem(scores),
        "tie_rate": counts["tie"] / n if n else None,
        "failed_rate": counts["failed"] / len(verdicts) if verdicts else None,
        "confidence": confidence,
        "bootstrap": int(bootstrap or 0),
        "seed": seed,
    }
    # position consistency: among items where both orders gave a verdict
    flags = [v.get("consistent") for v in verdicts if isinstance(v, Mapping) and v.get("consistent") is not None]
    out["consistency_rate"] = (sum(1 for f in flags if f) / len(flags)) if flags else None
    out["n_both_orders"] = len(flags)
    if bootstrap and n > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(int(bootstrap), n))
        s = scores[idx]
        wins = (s == 1.0).sum(axis=1)
        losses = (s == 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            wr = np.where(wins + losses > 0, wins / np.maximum(wins + losses, 1), np.nan)
        out["win_rate_ci"] = _interval(wr, confidence) if decisive.size else None
        out["win_rate_ties_half_ci"] = _interval(s.mean(axis=1), confidence)
    else:
        out["win_rate_ci"] = None
        out["win_rate_ties_half_ci"] = None
    if length_controlled:
        la, lb, ys = [], [], []
        for v in judged:
            if isinstance(v, Mapping) and v.get("len_a") is not None and v.get("len_b") is not None:
                la.append(float(v["len_a"]))
                lb.append(float(v["len_b"]))
                ys.append(WIN_SCORES[_winner(v)])
        if len(ys) < len(judged):
            out["lc_missing_lengths"] = len(judged) - len(ys)
        out.update(length_controlled_win_rate(ys, la, lb, bootstrap=bootstrap, seed=seed, confidence=confidence))
    return out


def score_summary(results: Iterable[Any], *, low: int = 1, high: int = 5, bootstrap: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, Any]:
    """Mean absolute score with its standard error, bootstrap CI and histogram; failures counted."""
    import numpy as np

    results = list(results)
    vals = []
    failed = 0
    for r in results:
        s = r.get("score") if isinstance(r, Mapping) else r
        if s is None:
            failed += 1
        else:
            vals.append(float(s))
    arr = np.array(vals, dtype=float)
    out: dict[str, Any] = {
        "n": len(results), "n_scored": len(vals), "failed": failed,
        "mean": float(arr.mean()) if arr.size else None,
        "se": _sem(arr),
        "histogram": {str(k): int((arr == k).sum()) for k in range(low, high + 1)},
        "scale": [low, high], "bootstrap": int(bootstrap or 0), "seed": seed, "confidence": confidence,
        "mean_ci": None,
    }
    if bootstrap and arr.size > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, arr.size, size=(int(bootstrap), arr.size))
        out["mean_ci"] = _interval(arr[idx].mean(axis=1), confidence)
    return out


__all__ = ["win_rate", "outcome_counts", "length_controlled_win_rate", "score_summary", "WIN_SCORES"]
