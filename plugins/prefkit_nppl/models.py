"""Reward models: BTL, DPL and NP-BTL (a neural-process reward model conditioned on a context).

All models map a batch of tasks to the log-odds that option b is preferred to
option a on every target pair: ``logits`` of shape ``(S, B, T)`` (S latent samples,
1 for models without a latent).

* ``btl``  r(x) = head(enc(x)); logit = r(b) - r(a).
* ``dpl``  per option a mean and a standard deviation;
           logit = sqrt(2 pi) (mu_b - mu_a) / sqrt(s_a^2 + s_b^2).
* ``nppl`` a context encoder turns the user's context pairs, each written as
           [chosen; rejected], into a latent z: input layer (MLP or linear) ->
           8-head self-attention over the set -> sum -> MLP -> (mean, softplus scale)
           of a Gaussian, or z itself for the deterministic variant. An empty
           context is encoded like any other set (its pooled vector is 0, so
           q(z | empty) is a learned distribution, as in the reference); models
           with ``empty_context="zero"`` force z = 0 instead. The reward head sees [enc(x); z].

Loss (:func:`task_loss`): NLL of the target choices averaged over latent samples
+ beta_KL * KL(q(z | context) || q(z | targets)), where q(z | targets) encodes the
task's target pairs with their choices (tasks without context add the KL of q(z | empty)
as the reference does; with ``empty_context="zero"`` they add none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .data import TaskBatch

SQRT_2PI = math.sqrt(2 * math.pi)


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Linear -> ReLU -> Linear (one hidden layer)."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


def input_layer(kind: str, d_in: int, d_hidden: int) -> nn.Module:
    return mlp(d_in, d_hidden, d_hidden) if kind == "mlp" else nn.Linear(d_in, d_hidden)


class RewardHead(nn.Module):
    """Linear -> (BatchNorm) -> ReLU -> Linear: one hidden layer of ``hidden`` units.

    With a latent, the first layer acts on [h; z]; it is computed as h W_h + z W_z with
    z W_z once per task (not once per option), which halves the cost of the head.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int, batch_norm: bool = True, d_latent: int = 0):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden, bias=not batch_norm)
        self.fc1_z = nn.Linear(d_latent, hidden, bias=False) if d_latent else None
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, h: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """h (..., H) -> (..., out); with z (S, B, L) and h (B, T, 2, H) -> (S, B, T, 2, out)."""
        a = self.fc1(h)
        if self.fc1_z is not None:
            if z is None:
                z = h.new_zeros(1, h.shape[0], self.fc1_z.in_features)
            S, B = z.shape[:2]
            extra = [1] * (h.dim() - 2)
            a = a.unsqueeze(0) + self.fc1_z(z).view(S, B, *extra, -1)
        shape = a.shape[:-1]
        a = F.relu(self.norm(a.reshape(-1, a.shape[-1])))
        return self.fc2(a).view(*shape, -1)


@dataclass
class Posterior:
    """q(z | set): a diagonal Gaussian (``scale`` None for the deterministic variant)."""

    mean: torch.Tensor            # (B, L)
    scale: torch.Tensor | None    # (B, L)
    empty: torch.Tensor           # (B,) bool: the set was empty
    zero_empty: bool = False      # empty sets give z = 0 exactly (and no KL)

    def sample(self, n: int, use_mean: bool = False) -> torch.Tensor:
        """(n, B, L) latents; rows of empty sets are exactly zero when ``zero_empty``."""
        if self.scale is None or use_mean:
            z = self.mean.unsqueeze(0).expand(n, -1, -1)
        else:
            eps = torch.randn(n, *self.mean.shape, device=self.mean.device, dtype=self.mean.dtype)
            z = self.mean.unsqueeze(0) + self.scale.unsqueeze(0) * eps
        if not self.zero_empty:
            return z
        return z * (~self.empty).view(1, -1, 1).to(z.dtype)


def gaussian_kl(q: Posterior, p: Posterior) -> torch.Tensor:
    """KL(q || p) per task, summed over latent dimensions; 0 where q's set is empty and
    q forces empty sets to z = 0."""
    if q.scale is None or p.scale is None:
        return torch.zeros(q.mean.shape[0], device=q.mean.device)
    var_ratio = (q.scale / p.scale) ** 2
    t = ((q.mean - p.mean) / p.scale) ** 2
    kl = 0.5 * (var_ratio + t - 1 - torch.log(var_ratio)).sum(-1)
    if not q.zero_empty:
        return kl
    return kl * (~q.empty).to(kl.dtype)


class ContextEncoder(nn.Module):
    """Set encoder: [chosen; rejected] -> input layer -> self-attention -> sum -> MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = input_layer(cfg.context_input, 2 * cfg.input_dim, cfg.hidden_dim)
        self.attn = nn.MultiheadAttention(cfg.hidden_dim, cfg.heads, dropout=cfg.attn_dropout, batch_first=True)
        out = 2 * cfg.latent_dim if cfg.sample_latents else cfg.latent_dim
        self.out = mlp(cfg.hidden_dim, cfg.hidden_dim, out)

    def forward(self, pairs: torch.Tensor, choices: torch.Tensor, mask: torch.Tensor | None = None) -> Posterior:
        """pairs (B, K, 2, D), choices (B, K) with 1 = b chosen, mask (B, K) of real elements."""
        B, K = pairs.shape[:2]
        if mask is None:
            mask = torch.ones(B, K, dtype=torch.bool, device=pairs.device)
        empty = ~mask.any(dim=1)
        if K == 0:
            pooled = pairs.new_zeros(B, self.cfg.hidden_dim)
        else:
            pick_b = (choices == 1).unsqueeze(-1)
            chosen = torch.where(pick_b, pairs[:, :, 1], pairs[:, :, 0])
            rejected = torch.where(pick_b, pairs[:, :, 0], pairs[:, :, 1])
            x = self.inp(torch.cat([chosen, rejected], dim=-1))            # (B, K, H)
            # an all-padding row would make attention NaN: let it attend to slot 0 (its
            # output is masked away, so an empty set pools to 0 like the reference's empty sum)
            key_pad = ~mask
            key_pad = key_pad & ~(empty.unsqueeze(1) & (torch.arange(K, device=pairs.device) == 0).unsqueeze(0))
            y, _ = self.attn(x, x, x, key_padding_mask=key_pad, need_weights=False)
            pooled = (y * mask.unsqueeze(-1).to(y.dtype)).sum(dim=1)        # sum over the set
        h = self.out(pooled)
        if self.cfg.sample_latents:
            mean, raw = h.split(self.cfg.latent_dim, dim=-1)
            scale = F.softplus(raw) + self.cfg.min_scale
        else:
            mean, scale = h, None
        if self.cfg.empty_context == "zero":
            mean = mean * (~empty).unsqueeze(1).to(mean.dtype)
        return Posterior(mean, scale, empty, zero_empty=self.cfg.empty_context == "zero")

    def empty_latent(self, device=None) -> torch.Tensor:
        """The latent (posterior mean) of an empty context, (L,)."""
        d = self.cfg.input_dim
        device = device if device is not None else next(self.parameters()).device
        q = self(torch.zeros(1, 0, 2, d, device=device), torch.zeros(1, 0, dtype=torch.long, device=device))
        return q.mean[0]


class RewardModel(nn.Module):
    """BTL, DPL or NP-BTL (``cfg.kind``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = input_layer(cfg.option_encoder, cfg.input_dim, cfg.hidden_dim)
        self.conditional = cfg.kind == "nppl"
        self.head = RewardHead(cfg.hidden_dim, cfg.hidden_dim, 2 if cfg.kind == "dpl" else 1, cfg.batch_norm,
                               d_latent=cfg.latent_dim if self.conditional else 0)
        self.context_encoder = ContextEncoder(cfg) if self.conditional else None

    # ---------------------------------------------------------------- pieces
    def encode_context(self, batch: TaskBatch) -> Posterior | None:
        if not self.conditional:
            return None
        return self.context_encoder(batch.pairs_c, batch.choices_c, batch.mask_c)

    def encode_targets(self, batch: TaskBatch) -> Posterior | None:
        if not self.conditional:
            return None
        return self.context_encoder(batch.pairs_t, batch.choices_t, None)

    def rewards(self, pairs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """pairs (B, T, 2, D), z (S, B, L) -> head outputs (S, B, T, 2, out)."""
        h = self.encoder(pairs)                                             # (B, T, 2, H)
        if z is None:
            return self.head(h).unsqueeze(0)
        return self.head(h, z)

    def logits_from_rewards(self, r: torch.Tensor) -> torch.Tensor:
        """(S, B, T, 2, out) -> log-odds that b is preferred, (S, B, T)."""
        if self.cfg.kind == "dpl":
            mu, raw = r[..., 0], r[..., 1]
            sd = F.softplus(raw) + 1e-6
            return SQRT_2PI * (mu[..., 1] - mu[..., 0]) / torch.sqrt(sd[..., 0] ** 2 + sd[..., 1] ** 2)
        return r[..., 1, 0] - r[..., 0, 0]

    def forward(self, batch: TaskBatch, samples: int = 1, use_mean: bool = False):
        q_c = self.encode_context(batch)
        z = q_c.sample(samples, use_mean=use_mean) if q_c is not None else None
        logits = self.logits_from_rewards(self.rewards(batch.pairs_t, z))
        return logits, q_c

    @torch.no_grad()
    def predict_samples(self, batch: TaskBatch, samples: int = 16) -> torch.Tensor:
        """P(b preferred) per latent sample and target, (S, B, T) (S = 1 without a sampled latent
        or with ``samples <= 0``, which uses the posterior mean)."""
        use_mean = samples <= 0 or not (self.conditional and self.cfg.sample_latents)
        logits, _ = self(batch, samples=1 if use_mean else samples, use_mean=use_mean)
        return torch.sigmoid(logits)

    @torch.no_grad()
    def predict_proba(self, batch: TaskBatch, samples: int = 16) -> torch.Tensor:
        """P(b preferred) per target, (B, T): the posterior predictive (averaged over samples)."""
        return self.predict_samples(batch, samples).mean(dim=0)

    @torch.no_grad()
    def reward(self, options: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Reward (DPL: mean) of options (N, D) for one latent z (L,) or none -> (N,)."""
        h = self.encoder(options).unsqueeze(0)                              # (1, N, H)
        if self.conditional:
            if z is None:
                z = self.context_encoder.empty_latent(options.device)
            return self.head(h, z.view(1, 1, -1))[0, 0, :, 0]
        return self.head(h)[0, :, 0]


def task_loss(model: RewardModel, batch: TaskBatch, beta_kl: float, samples: int = 1) -> dict[str, torch.Tensor]:
    """Mean over tasks of NLL(targets) (averaged over latent samples) + beta_KL * KL."""
    logits, q_c = model(batch, samples=samples)
    target = batch.choices_t.to(logits.dtype).unsqueeze(0).expand_as(logits)
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")     # (S, B, T)
    w = batch.score_t.to(nll.dtype)
    nll_task = ((nll * w).sum(-1) / w.sum(-1).clamp_min(1)).mean(0)                # (B,)
    if q_c is not None and q_c.scale is not None:
        q_t = model.encode_targets(batch)
        kl = gaussian_kl(q_c, q_t)
    else:
        kl = torch.zeros_like(nll_task)
    loss = (nll_task + beta_kl * kl).mean()
    with torch.no_grad():
        acc = (((logits > 0).long() == batch.choices_t.unsqueeze(0)).float() * w).sum() / (w.sum() * logits.shape[0])
    return {"loss": loss, "nll": nll_task.mean(), "kl": kl.mean(), "accuracy": acc}


def save_model(model: RewardModel, path, metadata: dict | None = None) -> None:
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"model_config": json.dumps(model.cfg.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    save_file(state, str(path), metadata=meta)


def load_model(path, device: str | torch.device = "cpu") -> RewardModel:
    """A reward model from a safetensors file written by :func:`save_model`."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from prefkit import UsageError

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise UsageError(f"cannot read model {path}: {exc}") from None
    if "model_config" not in meta:
        raise UsageError(f"{path} is not an NPPL reward model (no model_config in its metadata)")
    cfg = ModelConfig.from_dict(json.loads(meta["model_config"]))
    model = RewardModel(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
