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


@pytest.fixture
def cuda_like_generators(monkeypatch):
    """Make torch's random draws as strict as on CUDA: a generator must live on the device it
    draws on ("Expected a 'cuda' device type for generator"); on a CPU machine torch does not check."""
    def strict(fn):
        def wrapper(*args, generator=None, device=None, **kw):
            if generator is not None:
                want = torch.device(device) if device is not None else torch.get_default_device()
                if want.type != generator.device.type:
                    raise RuntimeError(f"Expected a '{want.type}' device type for generator but found "
                                       f"'{generator.device.type}'")
            return fn(*args, generator=generator, device=device, **kw)
        return wrapper

    for name in ("rand", "randint", "randperm", "randn"):
        monkeypatch.setattr(torch, name, strict(getattr(torch, name)))


def test_samplers_draw_on_the_generator_device_with_data_elsewhere(syn, cuda_like_generators):
    """The data lives on another device than the (CPU) generator — 'meta' stands in for CUDA:
    every sampler draws on the generator's device and moves the result, and the batches are the
    ones drawn on the CPU."""
    meta = syn.to("meta")
    meta.indices = lambda split: syn.indices(split).to("meta")   # nonzero() has no meta kernel
    gen = lambda: torch.Generator(device="cpu").manual_seed(3)
    b = sample_train_batch(meta, syn.indices("train").to("meta"), 8, 20, 0, 10, gen())
    ref = sample_train_batch(syn, syn.indices("train"), 8, 20, 0, 10, gen())
    assert b.pairs_t.device.type == "meta" and b.users.device.type == "meta" and b.mask_c.device.type == "meta"
    assert b.pairs_t.shape == ref.pairs_t.shape and b.mask_c.shape == ref.mask_c.shape
    one = sample_train_batch(meta, syn.indices("train").to("meta"), 4, 20, 0, 10, gen(), user_type=1)
    assert one.users.device.type == "meta"
    for conv in ("unseen", "paper"):
        for bb in eval_batches(meta, "test", 3, conv, 0):
            assert bb.pairs_c.device.type == "meta" and bb.index_t.device.type == "meta"
    assert all(v.pairs_t.device.type == "meta" for v in val_batches(meta, 20, 10))
    # without the fix the draws would be asked of the data's device with a CPU generator:
    with pytest.raises(RuntimeError, match="device type for generator"):
        torch.randint(2, (3,), generator=gen(), device="meta")


def test_single_user_type_batches_and_type_names(syn):
    b = sample_train_batch(syn, syn.indices("train"), 32, 20, 0, 10, torch.Generator().manual_seed(0), user_type=1)
    assert torch.all(b.users == 1)
    assert torch.equal(b.choices_t, syn.choices[b.index_t, 1])
    assert syn.type_index("1") == 1 and syn.type_index(0) == 0
    with pytest.raises(Exception, match="unknown user type"):
        syn.type_index("honesty")
    vb = val_batches(syn, 20, 10, user_types=[1])
    assert len(vb) == 1 and torch.all(vb[0].users == 1)
    assert torch.equal(vb[0].index_t, val_batches(syn, 20, 10)[1].index_t)   # same tasks as with every type


def test_validation_falls_back_to_train_only_when_val_is_small():
    from prefkit_nppl.data import validation_split

    small = make_synthetic(n=300)
    assert validation_split(small, 20) == "train"           # ~30 val pairs < two tasks of 20
    assert validation_split(make_synthetic(n=2000), 20) == "val"
