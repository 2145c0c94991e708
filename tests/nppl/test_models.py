"""BTL / DPL / NP-BTL models: shapes, the latent, the loss, training, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from prefkit_nppl.config import ModelConfig
from prefkit_nppl.data import TaskBatch, eval_batches, make_synthetic, sample_train_batch
from prefkit_nppl.models import Posterior, RewardModel, gaussian_kl, load_model, save_model, task_loss

SMALL = dict(hidden_dim=32, latent_dim=16, heads=4)


@pytest.fixture(scope="module")
def syn():
    return make_synthetic()


def batch(syn, b=8, seed=0):
    return sample_train_batch(syn, syn.indices("train"), b, 20, 0, 10, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["btl", "dpl", "nppl"])
def test_shapes_and_loss(syn, kind):
    torch.manual_seed(0)
    m = RewardModel(ModelConfig(kind=kind, **SMALL))
    b = batch(syn)
    logits, q = m(b, samples=3)
    assert logits.shape == ((3 if kind == "nppl" else 1), 8, 20)
    assert (q is None) == (kind != "nppl")
    out = task_loss(m, b, beta_kl=0.001, samples=2)
    assert set(out) == {"loss", "nll", "kl", "accuracy"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "attn" not in n or kind == "nppl")
    p = m.eval().predict_proba(b, samples=4)
    assert p.shape == (8, 20) and float(p.min()) >= 0 and float(p.max()) <= 1


def test_btl_logit_is_reward_difference(syn):
    m = RewardModel(ModelConfig(kind="btl", **SMALL)).eval()
    b = batch(syn, 2)
    logits, _ = m(b)
    ra = m.reward(b.pairs_t[:, :, 0].reshape(-1, 1))
    rb = m.reward(b.pairs_t[:, :, 1].reshape(-1, 1))
    assert torch.allclose(logits[0].reshape(-1), rb - ra, atol=1e-5)


def test_dpl_probability_formula():
    m = RewardModel(ModelConfig(kind="dpl", **SMALL))
    # head outputs (S, B, T, 2 options, [mean, raw std]); softplus(raw) = std
    raw = lambda s: math.log(math.expm1(s))
    r = torch.tensor([[[[[1.0, raw(0.5)], [2.0, raw(1.0)]]]]])
    logit = m.logits_from_rewards(r)
    expect = math.sqrt(2 * math.pi) * (2.0 - 1.0) / math.sqrt(0.5 ** 2 + 1.0 ** 2)
    assert abs(float(logit) - expect) < 1e-4


def _empty_batch(syn):
    b = batch(syn, 16)
    b.mask_c[:4] = False  # four tasks without context, the others with at least one pair
    b.mask_c[4:, 0] = True
    return b


def test_empty_context_is_a_learned_posterior_trained_through_the_kl(syn):
    """As the reference: q(z | no context) is the encoder's output for the empty set (pooled 0),
    the same for every empty task whatever sits in the padding, sampled, and in the KL term."""
    torch.manual_seed(0)
    m = RewardModel(ModelConfig(kind="nppl", **SMALL)).eval()
    b = _empty_batch(syn)
    q = m.encode_context(b)
    assert q.empty[:4].all() and not q.empty[4:].any()
    empty = m.context_encoder(torch.zeros(1, 0, 2, 1), torch.zeros(1, 0, dtype=torch.long))
    assert torch.allclose(q.mean[:4], empty.mean.expand(4, -1), atol=1e-5)
    assert torch.allclose(q.scale[:4], empty.scale.expand(4, -1), atol=1e-5)
    assert not torch.allclose(q.mean[0], torch.zeros_like(q.mean[0]))
    z = q.sample(5)
    assert torch.isfinite(z).all() and z[:, 0].std(dim=0).mean() > 0      # sampled, not forced to 0
    kl = gaussian_kl(q, m.encode_targets(b))
    assert torch.all(kl[:4] > 0)
    # the KL of empty tasks reaches the encoder's output layer: it is trained
    m.train()
    only_empty = TaskBatch(b.pairs_t[:4], b.choices_t[:4], b.pairs_c[:4], b.choices_c[:4], b.mask_c[:4],
                           b.score_t[:4], b.users[:4])
    out = task_loss(m, only_empty, beta_kl=1.0)
    assert float(out["kl"].detach()) > 0
    out["loss"].backward()
    assert m.context_encoder.out[-1].weight.grad.abs().sum() > 0
    m.eval()
    x = torch.rand(5, 1)
    with torch.no_grad():   # reward() without a latent is the reward under q(z | empty)'s mean, not z = 0
        e = m.context_encoder(torch.zeros(1, 0, 2, 1), torch.zeros(1, 0, dtype=torch.long)).mean[0]
    assert torch.allclose(m.reward(x), m.reward(x, e), atol=1e-6)
    assert not torch.allclose(m.reward(x), m.reward(x, torch.zeros_like(e)), atol=1e-4)


def test_empty_context_zero_mode_forces_z_and_drops_kl(syn):
    m = RewardModel(ModelConfig(kind="nppl", empty_context="zero", **SMALL)).eval()
    b = _empty_batch(syn)
    q = m.encode_context(b)
    z = q.sample(5)
    assert torch.isfinite(z).all()
    assert torch.all(z[:, :4] == 0) and q.empty[:4].all() and not q.empty[4:].any()
    assert torch.all(gaussian_kl(q, m.encode_targets(b))[:4] == 0)


def test_models_saved_before_learned_empty_context_load_as_zero(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    m = RewardModel(ModelConfig(kind="nppl", **SMALL))
    cfg = m.cfg.to_dict()
    cfg.pop("empty_context")                       # a file written by an older prefkit
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "old.safetensors"),
              metadata={"model_config": json.dumps(cfg)})
    assert load_model(tmp_path / "old.safetensors").cfg.empty_context == "zero"
    save_model(m, tmp_path / "new.safetensors")
    assert load_model(tmp_path / "new.safetensors").cfg.empty_context == "learned"
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as fh:
        assert json.loads(fh.metadata()["model_config"])["empty_context"] == "learned"


def test_context_encoder_is_permutation_invariant(syn):
    m = RewardModel(ModelConfig(kind="nppl", **SMALL)).eval()
    b = batch(syn, 4)
    b.mask_c[:] = True
    q1 = m.encode_context(b)
    perm = torch.randperm(10)
    b2 = TaskBatch(b.pairs_t, b.choices_t, b.pairs_c[:, perm], b.choices_c[:, perm], b.mask_c, b.score_t, b.users)
    q2 = m.encode_context(b2)
    assert torch.allclose(q1.mean, q2.mean, atol=1e-5) and torch.allclose(q1.scale, q2.scale, atol=1e-5)


def test_padding_slots_do_not_change_the_latent(syn):
    m = RewardModel(ModelConfig(kind="nppl", **SMALL)).eval()
    b = batch(syn, 4)
    b.mask_c[:] = torch.arange(10) < 3
    q1 = m.encode_context(b)
    noisy = b.pairs_c.clone()
    noisy[:, 3:] = torch.rand_like(noisy[:, 3:])
    b2 = TaskBatch(b.pairs_t, b.choices_t, noisy, b.choices_c, b.mask_c, b.score_t, b.users)
    assert torch.allclose(q1.mean, m.encode_context(b2).mean, atol=1e-5)


def test_gaussian_kl_matches_torch():
    torch.manual_seed(0)
    q = Posterior(torch.randn(3, 4), torch.rand(3, 4) + 0.1, torch.zeros(3, dtype=torch.bool))
    p = Posterior(torch.randn(3, 4), torch.rand(3, 4) + 0.1, torch.zeros(3, dtype=torch.bool))
    D = torch.distributions
    ref = D.kl_divergence(D.Normal(q.mean, q.scale), D.Normal(p.mean, p.scale)).sum(-1)
    assert torch.allclose(gaussian_kl(q, p), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(q, q), torch.zeros(3), atol=1e-6)


def test_deterministic_variant_has_no_kl(syn):
    m = RewardModel(ModelConfig(kind="nppl", sample_latents=False, **SMALL))
    out = task_loss(m, batch(syn), beta_kl=1.0)
    assert float(out["kl"]) == 0.0
    logits, q = m(batch(syn), samples=4)
    assert q.scale is None and logits.shape[0] == 4 and torch.allclose(logits[0], logits[3])


def test_loss_decreases(syn):
    torch.manual_seed(0)
    m = RewardModel(ModelConfig(kind="nppl", **SMALL))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        out = task_loss(m, batch(syn, 16, seed=step), 0.001)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"]))
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.05


@pytest.mark.slow
def test_latent_is_used_after_training(syn):
    """A briefly trained NP-BTL beats the context-free ceiling once it sees context; BTL does not."""
    from prefkit_nppl.evaluation import accuracy

    torch.manual_seed(0)
    results = {}
    for kind in ("nppl", "btl"):
        m = RewardModel(ModelConfig(kind=kind, hidden_dim=48, latent_dim=16, heads=4))
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for step in range(200 if kind == "nppl" else 60):
            out = task_loss(m, batch(syn, 16, seed=step), 0.001)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        results[kind] = {k: accuracy(m, eval_batches(syn, "test", k, "unseen", seed=0), 8)[0] for k in (0, 10)}
    assert results["nppl"][10] > results["nppl"][0] + 0.08
    assert results["nppl"][10] > 0.85
    assert abs(results["btl"][10] - results["btl"][0]) < 0.02


def test_save_load_round_trip(tmp_path, syn):
    torch.manual_seed(0)
    m = RewardModel(ModelConfig(kind="nppl", **SMALL))
    task_loss(m, batch(syn), 0.001)["loss"].backward()  # touch batch-norm statistics
    m.eval()
    save_model(m, tmp_path / "m.safetensors", {"step": 3})
    back = load_model(tmp_path / "m.safetensors")
    b = eval_batches(syn, "test", 3, "unseen", seed=0)[0]
    assert back.cfg == m.cfg
    assert torch.allclose(m.predict_proba(b, samples=0), back.predict_proba(b, samples=0))


def test_load_model_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    from prefkit.errors import UsageError

    save_file({"x": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(UsageError, match="not an NPPL reward model"):
        load_model(tmp_path / "x.safetensors")
