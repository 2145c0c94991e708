"""Persona tailoring's summary metric, ΔPQ, on top of the core's generic win rates.

``ΔPQ = WR_personalization + WR_quality − 1``: above 0, the tested model (B) gains on
personalization and quality together against the baseline (A).

Two conventions for the win rates inside it (both are always reported):

* ``win_rate`` — **the paper's**: ties are left out, ``B / (A + B)``;
* ``win_rate_ties_half`` — a tie counts as half a win, ``(B + tie/2) / (A + B + tie)``.

``delta_pq`` defaults to the paper's. With two verdict lists the confidence interval is a
percentile bootstrap over items, paired by ``key`` when both lists judge the same keys.
"""

from __future__ import annotations

from typing import Any, Mapping

METRICS = ("win_rate", "win_rate_ties_half")
DEFAULT_METRIC = "win_rate"  # the paper's: ties excluded
METRIC_LABELS = {"win_rate": "ties excluded (paper)", "win_rate_ties_half": "ties count half"}
_SCORES = {"A": 0.0, "B": 1.0, "tie": 0.5}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        import prefkit

        raise prefkit.UsageError(f"unknown ΔPQ win-rate convention {metric!r} (choose from: {', '.join(METRICS)}; "
                                 "win_rate leaves ties out as the paper does, win_rate_ties_half counts them half)")
    return metric


def _score(v: Any) -> float | None:
    w = v.get("winner") if isinstance(v, Mapping) else v
    return _SCORES.get(str(w)) if w is not None else None


def _value_of(x: Any, metric: str) -> float | None:
    if isinstance(x, Mapping):
        return x.get(metric)
    return None if x is None else float(x)


def _stat(arr: Any, metric: str) -> Any:
    """Per bootstrap row: the win rate of ``metric`` (NaN where nothing decisive was drawn)."""
    import numpy as np

    if metric == "win_rate_ties_half":
        return arr.mean(axis=1)
    w, lo = (arr == 1.0).sum(axis=1), (arr == 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w + lo > 0, w / np.maximum(w + lo, 1), np.nan)


def delta_pq(personalization: Any, quality: Any, *, metric: str = DEFAULT_METRIC, bootstrap: int = 1000,
             seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """ΔPQ from two win rates (floats or ``prefkit.win_rate`` dicts) or two lists of verdicts.

    Returns ``delta_pq``, ``wr_personalization``, ``wr_quality``, ``metric`` and, for verdict
    lists, ``delta_pq_ci`` (None without ``bootstrap``) and ``paired``.
    """
    import numpy as np

    import prefkit

    metric = check_metric(metric)
    lists = isinstance(personalization, (list, tuple)) and isinstance(quality, (list, tuple))
    if not lists:
        p = _value_of(prefkit.win_rate(personalization, bootstrap=0) if isinstance(personalization, (list, tuple))
                      else personalization, metric)
        q = _value_of(prefkit.win_rate(quality, bootstrap=0) if isinstance(quality, (list, tuple)) else quality, metric)
        d = None if p is None or q is None else p + q - 1.0
        return {"delta_pq": d, "wr_personalization": p, "wr_quality": q, "metric": metric}
    wp, wq = prefkit.win_rate(personalization, bootstrap=0), prefkit.win_rate(quality, bootstrap=0)
    p, q = wp[metric], wq[metric]
    out: dict[str, Any] = {"metric": metric, "wr_personalization": p, "wr_quality": q,
                           "delta_pq": (p + q - 1.0) if p is not None and q is not None else None,
                           "n_personalization": wp["n_judged"], "n_quality": wq["n_judged"], "delta_pq_ci": None}
    if not bootstrap or out["delta_pq"] is None:
        return out

    def scores(vs: Any) -> dict[str, float]:
        return {str(v.get("key")) if isinstance(v, Mapping) else str(i): _score(v)
                for i, v in enumerate(vs) if _score(v) is not None}

    sp, sq = scores(personalization), scores(quality)
    rng = np.random.default_rng(seed)
    if set(sp) == set(sq) and len(sp) > 1:
        keys = sorted(sp)
        a, b = np.array([sp[k] for k in keys]), np.array([sq[k] for k in keys])
        idx = rng.integers(0, len(keys), size=(int(bootstrap), len(keys)))
        samples = _stat(a[idx], metric) + _stat(b[idx], metric) - 1.0
        out["paired"] = True
    else:
        a, b = np.array(list(sp.values())), np.array(list(sq.values()))
        ia = rng.integers(0, len(a), size=(int(bootstrap), len(a)))
        ib = rng.integers(0, len(b), size=(int(bootstrap), len(b)))
        samples = _stat(a[ia], metric) + _stat(b[ib], metric) - 1.0
        out["paired"] = False
    samples = samples[np.isfinite(samples)]
    if samples.size:
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
        out["delta_pq_ci"] = [float(lo), float(hi)]
    return out


def delta_pq_both(personalization: Any, quality: Any, *, metric: str = DEFAULT_METRIC, bootstrap: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """The headline ΔPQ (``metric``) plus the other convention under ``by_metric``."""
    metric = check_metric(metric)
    by = {m: delta_pq(personalization, quality, metric=m, bootstrap=bootstrap, seed=seed) for m in METRICS}
    return {**by[metric], "by_metric": by}


__all__ = ["delta_pq", "delta_pq_both", "check_metric", "METRICS", "DEFAULT_METRIC", "METRIC_LABELS"]
