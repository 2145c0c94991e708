"""Evaluation conventions on hand-made models, aggregation over seeds and runs, table and plot."""

from __future__ import annotations

import math

import pytest
import torch

from prefkit_nppl.data import make_synthetic
from prefkit_nppl.data import eval_batches
from prefkit_nppl.evaluation import (PAPER_SYNTHETIC, accuracy, evaluate_model, markdown_table, mean_se,
                                     plot_accuracy, resolve_aggregation, summarise, summarise_by_type, table_rows)


@pytest.fixture(scope="module")
def syn():
    return make_synthetic()


class Fake:
    def eval(self):
        return self

    def predict_samples(self, batch, samples=1):
        return self.predict_proba(batch, samples).unsqueeze(0)


class Memoriser(Fake):
    """Right on target pairs that are in the context, wrong on every other pair."""

    def predict_proba(self, batch, samples=1):
        truth = batch.choices_t.float()
        in_ctx = torch.zeros_like(truth, dtype=torch.bool)
        if batch.index_c is not None and batch.index_c.shape[1]:
            in_ctx = (batch.index_t.unsqueeze(2) == batch.index_c.unsqueeze(1)).any(-1)
        return torch.where(in_ctx, truth, 1 - truth)


class AlwaysB(Fake):
    def predict_proba(self, batch, samples=1):
        return torch.ones(batch.choices_t.shape)


def test_conventions_on_a_memorising_model(syn):
    rows = evaluate_model(Memoriser(), syn, [0, 1, 5, 10], [0, 1], ["unseen", "paper", "all"])
    by = {(r["convention"], r["context"], r["seed"]): r["accuracy"] for r in rows}
    for k in (0, 1, 5, 10):
        for s in (0, 1):
            assert by[("unseen", k, s)] == 0.0                      # the context is never a target
            assert by[("all", k, s)] == pytest.approx(k / 20)        # exactly k of 20 targets are context
            # the paper's scoring (positions k..19) counts k(20-k)/20 context pairs on average
            assert by[("paper", k, s)] == pytest.approx(k / 20, abs=0.03)


def test_always_b_scores_the_b_rate(syn):
    test = syn.split == 2
    rate = float(syn.choices[test].float().mean())
    acc, n = accuracy(AlwaysB(), __import__("prefkit_nppl.data", fromlist=["x"]).eval_batches(syn, "test", 0, "unseen", 0))
    assert n == (int(test.sum()) // 20) * 20 * 2
    assert acc == pytest.approx(rate, abs=0.01)


def test_resume_skips_done_keys(syn):
    seen = []
    evaluate_model(AlwaysB(), syn, [0, 1], [0], ["unseen"], done=lambda key: key == "unseen|0|0|predictive",
                   on_result=lambda key, row: seen.append(key))
    assert seen == ["unseen|1|0|predictive"]


class TwoSamples(Fake):
    """Two latent samples per task: the first is confidently right (p = 0.9 on the chosen side),
    the second slightly wrong (p = 0.4): the posterior-predictive mean (0.65) is right on every
    target, while the mean of the per-sample accuracies is 50 %."""

    def predict_samples(self, batch, samples=2):
        y = batch.choices_t.float()
        right = torch.where(y == 1, 0.9, 0.1)
        wrong = torch.where(y == 1, 0.4, 0.6)
        return torch.stack([right, wrong])


def test_paper_aggregation_averages_per_sample_accuracies(syn):
    batches = eval_batches(syn, "test", 3, "paper", 0)
    assert accuracy(TwoSamples(), batches, 2, "predictive")[0] == pytest.approx(1.0)
    assert accuracy(TwoSamples(), batches, 2, "samples")[0] == pytest.approx(0.5)
    rows = evaluate_model(TwoSamples(), syn, [3], [0], ["paper", "unseen"], z_samples=2)
    by = {r["convention"]: r for r in rows}
    assert by["paper"]["aggregation"] == "samples" and by["paper"]["accuracy"] == pytest.approx(0.5)
    assert by["unseen"]["aggregation"] == "predictive" and by["unseen"]["accuracy"] == pytest.approx(1.0)
    rows = evaluate_model(TwoSamples(), syn, [3], [0], ["paper"], z_samples=2, aggregation="predictive")
    assert rows[0]["accuracy"] == pytest.approx(1.0)
    assert resolve_aggregation("auto", "all") == "predictive"
    with pytest.raises(Exception, match="aggregation"):
        resolve_aggregation("vote", "paper")


class RightForTypeZero(Fake):
    def predict_proba(self, batch, samples=1):
        y = batch.choices_t.float()
        return torch.where((batch.users == 0).unsqueeze(1), y, 1 - y)


def test_accuracy_per_user_type(syn):
    rows = evaluate_model(RightForTypeZero(), syn, [0, 5], [0, 1], ["unseen"])
    for r in rows:
        assert r["by_type"] == {"0": 1.0, "1": 0.0} and r["accuracy"] == pytest.approx(0.5)
    by = summarise_by_type([{**r, "label": "m", "run": "a"} for r in rows])
    assert set(by) == {"m: 0", "m: 1"}
    assert by["m: 0"]["unseen"][5]["mean"] == 100.0 and by["m: 1"]["unseen"][0]["mean"] == 0.0


def test_mean_se():
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)
    assert mean_se([5.0])[0] == 5.0 and math.isnan(mean_se([5.0])[1])  # one value: no standard error
    assert math.isnan(mean_se([])[0])


def test_summarise_pools_runs_and_seeds():
    rows = [{"label": "nppl", "run": "a", "convention": "paper", "context": 1, "seed": s, "accuracy": v}
            for s, v in [(0, 0.80), (1, 0.90)]]
    rows += [{"label": "nppl", "run": "b", "convention": "paper", "context": 1, "seed": s, "accuracy": v}
             for s, v in [(0, 0.70), (1, 0.80)]]
    one = summarise(rows[:2])["nppl"]["paper"][1]
    assert one["mean"] == pytest.approx(85.0) and one["se"] == pytest.approx(5.0) and one["n_seeds"] == 2
    two = summarise(rows)["nppl"]["paper"][1]   # run means 85 and 75: s.e. over runs
    assert two["mean"] == pytest.approx(80.0) and two["se"] == pytest.approx(5.0) and two["n_runs"] == 2


def test_tables_and_plot(tmp_path):
    summary = {m: {"paper": {k: {"mean": v, "se": 0.1, "n_runs": 1, "n_seeds": 2} for k, v in PAPER_SYNTHETIC[m].items()},
                   "unseen": {k: {"mean": v - 1, "se": 0.1, "n_runs": 1, "n_seeds": 2} for k, v in PAPER_SYNTHETIC[m].items()}}
               for m in ("btl", "nppl")}
    md = markdown_table(summary, [0, 1, 3, 5, 10], "paper", True)
    assert "| 10 | 76.4 ± 0.1 | 76.4 | +0.0 | 98.9 ± 0.1 | 98.9 | +0.0 |" in md
    rows, cols = table_rows(summary, [0, 10], ["unseen", "paper"], True)
    assert cols == ["convention", "context", "btl", "btl (paper)", "nppl", "nppl (paper)"]
    assert rows[0]["nppl (paper)"] == "" and rows[3]["nppl (paper)"] == "98.9"
    files = plot_accuracy(summary, [0, 1, 3, 5, 10], ["paper", "unseen"], tmp_path / "acc", paper=True, title="t")
    assert [f.suffix for f in files] == [".png", ".pdf"] and all(f.stat().st_size > 1000 for f in files)
