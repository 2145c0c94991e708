"""Synthetic benchmark data, the pair-dataset format and the vectorised task samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefkit_nppl.data import (PairData, eval_batches, make_synthetic, sample_train_batch, synthetic_reward,
                               val_batches)


@pytest.fixture(scope="module")
def syn():
    return make_synthetic()


def test_synthetic_matches_the_paper_setup(syn):
    assert syn.n == 20_000 and syn.input_dim == 1 and syn.num_types == 2
    counts = syn.split_counts()
    assert sum(counts.values()) == 20_000
    assert abs(counts["train"] / 20_000 - 0.8) < 0.01 and abs(counts["test"] / 20_000 - 0.1) < 0.01
    a, b = syn.option_a[:, 0].numpy(), syn.option_b[:, 0].numpy()
    assert a.min() >= 0 and b.max() <= 1
    for z in (0, 1):  # noise-free choices of each user type
        expect = (synthetic_reward(b, z) > synthetic_reward(a, z)).astype(int)
        assert (syn.choices[:, z].numpy() == expect).mean() > 0.9999
    stats = syn.stats()
    assert 0.45 < stats["conflict_rate"] < 0.55          # the types disagree on about half the pairs
    assert 0.74 < stats["context_free_ceiling"] < 0.77   # so a context-free model is capped near 75 %


def test_synthetic_is_deterministic_and_seeded():
    a, b = make_synthetic(n=500), make_synthetic(n=500)
    assert torch.equal(a.option_a, b.option_a) and torch.equal(a.split, b.split)
    c = make_synthetic(n=500, seed=1)
    assert not torch.equal(a.option_a, c.option_a)


def test_reward_functions():
    y = np.array([0.2, 0.6])
    assert np.allclose(synthetic_reward(y, 0), [0.2, 1.2])
    assert np.allclose(synthetic_reward(y, 1), [0.2, 0.4])


def test_save_load_round_trip(tmp_path, syn):
    syn.save(tmp_path / "d")
    back = PairData.load(tmp_path / "d")
    assert torch.equal(back.option_a, syn.option_a) and torch.equal(back.choices, syn.choices)
    assert torch.equal(back.split, syn.split) and back.user_types == ["0", "1"]


def test_load_rejects_other_directories(tmp_path):
    from prefkit.errors import UsageError

    with pytest.raises(UsageError, match="not an NPPL pair dataset"):
        PairData.load(tmp_path)


def test_train_batch_shapes_and_labels(syn):
    pool = syn.indices("train")
    g = torch.Generator().manual_seed(0)
    b = sample_train_batch(syn, pool, 64, 20, 0, 10, g)
    assert b.pairs_t.shape == (64, 20, 2, 1) and b.choices_t.shape == (64, 20)
    assert b.pairs_c.shape == (64, 10, 2, 1) and b.mask_c.shape == (64, 10)
    sizes = b.context_sizes
    assert int(sizes.min()) >= 0 and int(sizes.max()) <= 10 and len(set(sizes.tolist())) > 3
    # targets are distinct pairs of the train split, labelled by the task's user type
    assert all(len(set(row)) == 20 for row in b.index_t.tolist())
    assert set(b.index_t.flatten().tolist()) <= set(pool.tolist())
    expect = syn.choices[b.index_t, b.users.unsqueeze(1).expand(-1, 20)]
    assert torch.equal(b.choices_t, expect)
    # the context is a prefix of the targets (the paper's training tasks)
    assert torch.equal(b.index_c, b.index_t[:, :10])
    # the mask is a prefix of each row
    assert torch.equal(b.mask_c, torch.arange(10).unsqueeze(0) < sizes.unsqueeze(1))


def test_train_batches_are_reproducible(syn):
    pool = syn.indices("train")
    b1 = sample_train_batch(syn, pool, 8, 20, 0, 10, torch.Generator().manual_seed(5))
    b2 = sample_train_batch(syn, pool, 8, 20, 0, 10, torch.Generator().manual_seed(5))
    assert torch.equal(b1.index_t, b2.index_t) and torch.equal(b1.mask_c, b2.mask_c)


def test_eval_unseen_context_is_disjoint_and_split_is_covered(syn):
    test = set(syn.indices("test").tolist())
    batches = eval_batches(syn, "test", 5, "unseen", seed=0)
    per_user: dict[int, list[int]] = {}
    for b in batches:
        assert b.score_t.all()
        for t_row, c_row in zip(b.index_t.tolist(), b.index_c.tolist()):
            assert not set(t_row) & set(c_row)       # no target is in the context
            assert len(set(c_row)) == 5 and set(c_row) <= test
        for u, row in zip(b.users.tolist(), b.index_t.tolist()):
            per_user.setdefault(u, []).extend(row)
    for u in (0, 1):  # every test pair is a target once per user type (up to the last partial task)
        assert len(per_user[u]) == len(set(per_user[u])) == (len(test) // 20) * 20


def test_eval_paper_and_all_conventions(syn):
    for conv in ("paper", "all"):
        for b in eval_batches(syn, "test", 3, conv, seed=1):
            for t_row, c_row in zip(b.index_t.tolist(), b.index_c.tolist()):
                assert set(c_row) <= set(t_row) and len(set(c_row)) == 3
            if conv == "paper":
                assert b.score_t[:, :3].sum() == 0 and b.score_t[:, 3:].all()
            else:
                assert b.score_t.all()


def test_eval_context_zero_and_bad_input(syn):
    from prefkit.errors import UsageError

    b = eval_batches(syn, "test", 0, "unseen", seed=0)[0]
    assert b.pairs_c.shape[1] == 0
    with pytest.raises(UsageError):
        eval_batches(syn, "test", 3, "nonsense", seed=0)
    with pytest.raises(UsageError):
        eval_batches(syn, "test", 20, "paper", seed=0)


def test_val_batches_spread_context_sizes(syn):
    vb = val_batches(syn, 20, 10)
    sizes = torch.cat([b.context_sizes for b in vb])
    assert set(sizes.tolist()) == set(range(11))
