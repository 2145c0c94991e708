"""Win rates, SE, bootstrap CIs, length control, ΔPQ and score summaries on hand-computed examples."""

import math

import numpy as np
import pytest

from prefkit.judging import score_summary, win_rate
from prefkit.judging.metrics import length_controlled_win_rate, outcome_counts


def test_counts_and_point_estimates_by_hand():
    verdicts = ["A", "A", "B", "B", "B", "tie", "failed", None, {"winner": "error"}]
    m = win_rate(verdicts, bootstrap=0)
    assert (m["A"], m["B"], m["tie"], m["failed"]) == (2, 3, 1, 3)
    assert m["n"] == 9 and m["n_judged"] == 6
    assert m["win_rate"] == pytest.approx(3 / 5)                  # ties excluded
    assert m["win_rate_ties_half"] == pytest.approx(3.5 / 6)       # ties as half
    # SE of the mean of per-item scores with ddof=1
    assert m["win_rate_se"] == pytest.approx(math.sqrt(0.6 * 0.4 * 5 / 4) / math.sqrt(5))
    s = np.array([0, 0, 1, 1, 1, 0.5])
    assert m["win_rate_ties_half_se"] == pytest.approx(s.std(ddof=1) / math.sqrt(6))
    assert m["win_rate_ci"] is None and m["tie_rate"] == pytest.approx(1 / 6)


def test_failures_are_never_wins():
    m = win_rate(["B", "failed", "failed", "failed"], bootstrap=0)
    assert m["win_rate"] == 1.0 and m["n_judged"] == 1 and m["failed"] == 3
    assert outcome_counts([{"winner": "a"}, {"winner": "B"}, {"winner": "???"}]) == {"A": 1, "B": 1, "tie": 0, "failed": 1}


def test_bootstrap_ci_is_seeded_and_sensible():
    verdicts = ["B"] * 60 + ["A"] * 30 + ["tie"] * 10
    m1 = win_rate(verdicts, bootstrap=2000, seed=3)
    m2 = win_rate(verdicts, bootstrap=2000, seed=3)
    m3 = win_rate(verdicts, bootstrap=2000, seed=4)
    assert m1["win_rate_ci"] == m2["win_rate_ci"]
    assert m1["win_rate_ci"] != m3["win_rate_ci"]
    lo, hi = m1["win_rate_ci"]
    assert lo < 2 / 3 < hi
    # close to the normal approximation p ± 1.96 SE
    assert lo == pytest.approx(2 / 3 - 1.96 * m1["win_rate_se"], abs=0.03)
    assert hi == pytest.approx(2 / 3 + 1.96 * m1["win_rate_se"], abs=0.03)
    lo, hi = m1["win_rate_ties_half_ci"]
    assert lo < 0.65 < hi


def test_degenerate_inputs():
    m = win_rate([], bootstrap=100)
    assert m["win_rate"] is None and m["win_rate_ties_half"] is None and m["win_rate_ci"] is None
    m = win_rate(["tie", "tie"], bootstrap=100)
    assert m["win_rate"] is None and m["win_rate_ties_half"] == 0.5 and m["win_rate_ci"] is None
    m = win_rate(["B"], bootstrap=100)
    assert m["win_rate"] == 1.0 and m["win_rate_se"] is None


def test_consistency_rate():
    vs = [{"winner": "A", "consistent": True}, {"winner": "tie", "consistent": False},
          {"winner": "B", "consistent": True}, {"winner": "failed", "consistent": None}]
    m = win_rate(vs, bootstrap=0)
    assert m["consistency_rate"] == pytest.approx(2 / 3) and m["n_both_orders"] == 3


def _length_biased(n=600, seed=1, quality=0.0, bias=2.0):
    """B is usually longer; the judge prefers the longer response, true quality is equal (quality=0)."""
    rng = np.random.default_rng(seed)
    la = rng.normal(800, 200, n).clip(50)
    lb = la + rng.normal(300, 250, n)
    diff = lb - la
    z = np.tanh(diff / diff.std())
    p = 1 / (1 + np.exp(-(quality + bias * z)))
    wins = rng.random(n) < p
    return [{"winner": "B" if w else "A", "len_a": float(a), "len_b": float(b)} for w, a, b in zip(wins, la, lb)]


def test_length_controlled_win_rate_removes_length_bias():
    vs = _length_biased()
    m = win_rate(vs, bootstrap=200, seed=0, length_controlled=True)
    assert m["win_rate"] > 0.65                      # the raw win rate is inflated by length
    assert m["lc_win_rate"] == pytest.approx(0.5, abs=0.06)
    lo, hi = m["lc_win_rate_ci"]
    assert lo < 0.5 < hi
    assert m["lc_length_coef"] > 1.0                 # the judge's length preference is recovered


def test_length_controlled_keeps_a_real_quality_difference():
    vs = _length_biased(quality=1.0, seed=2)
    m = win_rate(vs, bootstrap=0, length_controlled=True)
    assert m["lc_win_rate"] == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.07)


def test_length_controlled_without_length_differences_equals_raw():
    vs = [{"winner": w, "len_a": 100, "len_b": 100} for w in ["A", "B", "B", "tie"]]
    m = length_controlled_win_rate([0, 1, 1, 0.5], [100] * 4, [100] * 4, bootstrap=0)
    assert m["lc_win_rate"] == pytest.approx(0.625, abs=1e-6)
    assert win_rate(vs, bootstrap=0, length_controlled=True)["lc_win_rate"] == pytest.approx(0.625, abs=1e-6)


def test_score_summary():
    s = score_summary([{"score": 4}, {"score": 5}, {"score": None}, {"score": 3}], bootstrap=500, seed=0)
    assert s["mean"] == 4.0 and s["failed"] == 1 and s["n_scored"] == 3
    assert s["se"] == pytest.approx(1 / math.sqrt(3))
    assert s["histogram"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    assert s["mean_ci"][0] >= 3 and s["mean_ci"][1] <= 5
