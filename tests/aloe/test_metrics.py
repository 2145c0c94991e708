"""ALOE benchmark metrics on hand-computed examples (expected values worked out below, not by the code)."""

import math

import pytest

from prefkit_aloe import metrics

T2 = 4.302652729911275    # t(0.975, df=2)
T1 = 12.706204736174707   # t(0.975, df=1)


def approx(v, rel=1e-9, abs_=1e-9):
    return pytest.approx(v, rel=rel, abs=abs_)


def test_t_quantiles_are_students():
    assert metrics.t_quantile(1) == approx(T1, rel=1e-6)
    assert metrics.t_quantile(2) == approx(T2, rel=1e-6)
    assert metrics.t_quantile(99) == approx(1.9842169515, rel=1e-6)


def test_a_straight_line_of_three_personas():
    # AL = [2, 3, 4]: slope 1, intercept 1, R² 1; N-AL = [0, .5, 1], N-IR = .5
    res = metrics.summarize({"p1": [1, 2, 3], "p2": [2, 3, 4], "p3": [3, 4, 5]})
    assert res["n"] == 3 and res["turns"] == 3 and res["incomplete"] == []
    assert res["al"] == [approx(2), approx(3), approx(4)]
    assert res["avg"] == approx(3)
    assert res["ir"] == approx(1) and res["ir_intercept"] == approx(1) and res["r2"] == approx(1)
    assert res["n_al"] == [approx(0), approx(0.5), approx(1)]
    assert res["n_ir"] == approx(0.5) and res["n_r2"] == approx(1) and res["normalized"] is True
    # AL(1) over 1, 2, 3: sd 1, se 1/sqrt(3), t(2) → 2 ± 4.3027 / sqrt(3)
    h = T2 / math.sqrt(3)
    assert res["al_ci"][0] == [approx(2 - h, rel=1e-6), approx(2 + h, rel=1e-6)]
    # every persona's own slope is 1: the IR interval has no width
    assert res["ir_ci"] == [approx(1), approx(1)]


def test_a_bent_curve_of_two_personas():
    # p1 [3,1,4,5], p2 [3,3,4,5] → AL = [3,2,4,5]; k̄ = 2.5, ĀL = 3.5, Sxx = 5, Sxy = 4 → IR = 0.8, a = 1.5
    # fitted 2.3, 3.1, 3.9, 4.7; SSres = .49+1.21+.01+.09 = 1.8; SStot = 5 → R² = 0.64
    res = metrics.summarize({"p1": [3, 1, 4, 5], "p2": [3, 3, 4, 5]})
    assert res["al"] == [approx(3), approx(2), approx(4), approx(5)]
    assert res["avg"] == approx(3.5)
    assert res["ir"] == approx(0.8) and res["ir_intercept"] == approx(1.5)
    assert res["r2"] == approx(0.64)
    # N-AL: (AL − 2) / 3 → [1/3, 0, 2/3, 1]; N-IR = 0.8 / 3; N-R² = R²
    assert res["n_al"] == [approx(1 / 3), approx(0), approx(2 / 3), approx(1)]
    assert res["n_ir"] == approx(0.8 / 3) and res["n_r2"] == approx(0.64)
    # per-persona slopes 0.9 and 0.7: mean 0.8, se 0.1, t(1) = 12.706
    assert res["ir_ci"] == [approx(0.8 - T1 * 0.1, rel=1e-6), approx(0.8 + T1 * 0.1, rel=1e-6)]
    # AL(1): both 3 → no width; AL(2): 1 and 3 → 2 ± 12.706 · 1
    assert res["al_ci"][0] == [approx(3), approx(3)]
    assert res["al_ci"][1] == [approx(2 - T1, rel=1e-6), approx(2 + T1, rel=1e-6)]
    # AVG per persona 3.25 and 3.75: 3.5 ± 12.706 · 0.25
    assert res["avg_ci"] == [approx(3.5 - T1 * 0.25, rel=1e-6), approx(3.5 + T1 * 0.25, rel=1e-6)]


def test_a_flat_curve_has_no_normalised_metrics_and_incomplete_personas_are_left_out():
    res = metrics.summarize({"a": [4, 4, 4], "b": [2, 2, 2], "c": [5, None, 5], "d": [3, 3]}, turns=3)
    assert res["n"] == 2 and res["incomplete"] == ["c", "d"]
    assert res["al"] == [approx(3)] * 3 and res["ir"] == approx(0)
    assert res["r2"] is None  # all AL equal: R² undefined
    assert res["normalized"] is False and res["n_al"] is None and res["n_ir"] is None and res["n_r2"] is None


def test_one_persona_has_no_interval():
    res = metrics.summarize({"a": [1, 2]})
    assert res["al"] == [approx(1), approx(2)] and res["al_ci"] == [None, None] and res["ir_ci"] is None


def test_paired_differences_over_shared_personas():
    a = {"p1": [1, 2, 3], "p2": [2, 2, 2]}
    b = {"p1": [2, 3, 5], "p2": [2, 3, 3], "p3": [5, 5, 5]}
    d = metrics.paired_differences(a, b)
    # diffs p1 [1,1,2], p2 [0,1,1]
    assert d["n"] == 2 and d["personas"] == ["p1", "p2"] and d["only_b"] == 1 and d["only_a"] == 0
    assert d["al_diff"] == [approx(0.5), approx(1), approx(1.5)]
    assert d["al_diff_ci"][0] == [approx(0.5 - T1 * 0.5, rel=1e-6), approx(0.5 + T1 * 0.5, rel=1e-6)]
    # per-persona average diffs 4/3 and 2/3 → 1.0; slopes of [1,1,2] and [0,1,1] are both 0.5
    assert d["avg_diff"] == approx(1.0)
    assert d["ir_diff"] == approx(0.5) and d["ir_diff_ci"] == [approx(0.5), approx(0.5)]


def test_repeats_are_averaged_per_persona_first():
    out = metrics.average_repeats([("p1", [1, 3]), ("p1", [3, 5]), ("p2", [2, None]), ("p2", [4, 4])])
    assert out == {"p1": [2.0, 4.0], "p2": [3.0, None]}
    assert metrics.summarize(out)["incomplete"] == ["p2"]


def test_ols_refuses_degenerate_input():
    with pytest.raises(ValueError):
        metrics.ols([1], [2])
    with pytest.raises(ValueError):
        metrics.ols([1, 1], [2, 3])
