"""Pair datasets and vectorised task sampling.

A *pair dataset* holds N option pairs (a, b) as feature vectors (a scalar for the
synthetic benchmark, an embedding for text), the choice of every user type on every
pair (1 = b preferred) and a train/val/test split. On disk (one directory)::

    pairs.safetensors   option_a (N, D) float32, option_b (N, D) float32,
                        choices (N, U) uint8, split (N,) uint8 (0 train, 1 val, 2 test)
    meta.json           format, user_types, input_dim, counts, how it was made

A *task* is one user: a user type, ``num_targets`` pairs labelled with that type's
choices, of which a prefix is shown as context. Tasks are drawn in batches with
tensor ops only (no per-task Python or pandas work), which is what makes training
fast on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefkit import UsageError

FORMAT = "prefkit-nppl-pairs"
SPLITS = ("train", "val", "test")
PAIRS_FILE = "pairs.safetensors"
META_FILE = "meta.json"

# The paper's synthetic benchmark.
SYNTHETIC_N = 20_000
SYNTHETIC_SEED = 0
SYNTHETIC_FRACTIONS = (0.8, 0.1, 0.1)


def synthetic_reward(y: np.ndarray, z: int) -> np.ndarray:
    """r_0(y) = y below 0.5 else 2y; r_1(y) = y below 0.5 else 1 - y."""
    if z == 0:
        return np.where(y < 0.5, y, 2 * y)
    return np.where(y < 0.5, y, 1 - y)


@dataclass
class PairData:
    option_a: torch.Tensor          # (N, D) float32
    option_b: torch.Tensor          # (N, D) float32
    choices: torch.Tensor           # (N, U) long, 1 = b preferred
    split: torch.Tensor             # (N,) long, 0/1/2
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.option_a.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.option_a.shape[1])

    @property
    def user_types(self) -> list[str]:
        return list(self.meta.get("user_types") or [str(i) for i in range(self.choices.shape[1])])

    @property
    def num_types(self) -> int:
        return int(self.choices.shape[1])

    def type_index(self, user_type: str | int) -> int:
        """The column of a user type given by name (``helpfulness``) or position (``0``)."""
        names = self.user_types
        if str(user_type) in names:
            return names.index(str(user_type))
        try:
            i = int(user_type)
        except (TypeError, ValueError):
            i = -1
        if not 0 <= i < len(names):
            raise UsageError(f"unknown user type {user_type!r}: this data has {', '.join(names)}")
        return i

    def indices(self, split: str) -> torch.Tensor:
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
        return torch.nonzero(self.split == SPLITS.index(split), as_tuple=False).flatten()

    def split_counts(self) -> dict[str, int]:
        return {s: int((self.split == i).sum()) for i, s in enumerate(SPLITS)}

    def stats(self) -> dict[str, Any]:
        """Counts and how often the user types disagree (what context can buy)."""
        out: dict[str, Any] = {"n": self.n, "input_dim": self.input_dim, "user_types": self.user_types,
                               "splits": self.split_counts()}
        ch = self.choices
        if ch.shape[1] > 1:
            out["conflict_rate"] = float((ch != ch[:, :1]).any(dim=1).float().mean())
        # best accuracy without context: per pair, the majority choice over types
        frac_b = ch.float().mean(dim=1)
        out["context_free_ceiling"] = float(torch.maximum(frac_b, 1 - frac_b).mean())
        out["b_preferred_rate"] = {t: float(ch[:, i].float().mean()) for i, t in enumerate(self.user_types)}
        return out

    def to(self, device: str | torch.device) -> "PairData":
        return PairData(self.option_a.to(device), self.option_b.to(device), self.choices.to(device),
                        self.split.to(device), dict(self.meta))

    # ------------------------------------------------------------------ I/O
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({"option_a": self.option_a.float().contiguous().cpu(),
                   "option_b": self.option_b.float().contiguous().cpu(),
                   "choices": self.choices.to(torch.uint8).contiguous().cpu(),
                   "split": self.split.to(torch.uint8).contiguous().cpu()},
                  str(d / PAIRS_FILE), metadata={"format": FORMAT})
        meta = {"format": FORMAT, "version": 1, **self.meta, "user_types": self.user_types,
                "input_dim": self.input_dim, "n": self.n, "splits": self.split_counts()}
        tmp = d / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        tmp.replace(d / META_FILE)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "PairData":
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / PAIRS_FILE).exists() or not (d / META_FILE).exists():
            raise UsageError(f"{d} is not an NPPL pair dataset (no {PAIRS_FILE} + {META_FILE}); "
                             "make one with 'prefkit nppl synthetic' or 'prefkit nppl embed'")
        t = load_file(str(d / PAIRS_FILE))
        meta = json.loads((d / META_FILE).read_text())
        return cls(t["option_a"].float(), t["option_b"].float(), t["choices"].long(), t["split"].long(), meta)


def make_synthetic(n: int = SYNTHETIC_N, seed: int = SYNTHETIC_SEED,
                   fractions: tuple[float, float, float] = SYNTHETIC_FRACTIONS) -> PairData:
    """The paper's synthetic benchmark: scalar options a, b ~ U(0, 1), two user types.

    The random draws follow the paper's generator in the same order (options, then the
    split), so seed 0 gives the paper's pairs and its 80/10/10 split.
    """
    rs = np.random.RandomState(seed)
    options = rs.rand(n, 2)
    choices = np.zeros((n, 2), dtype=np.int64)
    for z in (0, 1):
        ra = synthetic_reward(options[:, 0], z).astype(np.float32)
        rb = synthetic_reward(options[:, 1], z).astype(np.float32)
        c = (rb > ra).astype(np.int64)
        ties = ra == rb
        c[ties] = rs.randint(0, 2, (int(ties.sum()),))  # noise-free: ties are broken at random
        choices[:, z] = c
    split = rs.choice(3, n, p=list(fractions))
    meta = {"kind": "synthetic", "user_types": ["0", "1"], "n": n, "seed": seed,
            "description": "Kobalczyk et al. synthetic benchmark: r0(y)=y if y<0.5 else 2y; r1(y)=y if y<0.5 else 1-y"}
    return PairData(torch.from_numpy(options[:, :1].astype(np.float32)),
                    torch.from_numpy(options[:, 1:].astype(np.float32)),
                    torch.from_numpy(choices), torch.from_numpy(split.astype(np.int64)), meta)


def load_data(spec: str) -> PairData:
    """``synthetic`` (generated on the fly) or a pair-dataset directory."""
    if spec in ("synthetic", "synthetic:paper"):
        return make_synthetic()
    p = Path(spec)
    if not p.exists():
        raise UsageError(f"--data {spec!r}: not 'synthetic' and no such directory")
    return PairData.load(p)


def random_split(n: int, seed: int, fractions=SYNTHETIC_FRACTIONS) -> torch.Tensor:
    rs = np.random.RandomState(seed)
    return torch.from_numpy(rs.choice(3, n, p=list(fractions)).astype(np.int64))


# ---------------------------------------------------------------------- batches
@dataclass
class TaskBatch:
    """A batch of tasks. Shapes: B tasks, T targets, K context slots, D input dim."""

    pairs_t: torch.Tensor      # (B, T, 2, D)
    choices_t: torch.Tensor    # (B, T) long
    pairs_c: torch.Tensor      # (B, K, 2, D)
    choices_c: torch.Tensor    # (B, K) long
    mask_c: torch.Tensor       # (B, K) bool: which context slots are real
    score_t: torch.Tensor      # (B, T) bool: which targets count in the metric
    users: torch.Tensor        # (B,) long
    index_t: torch.Tensor | None = None   # (B, T) dataset row of each target
    index_c: torch.Tensor | None = None   # (B, K) dataset row of each context pair

    @property
    def context_sizes(self) -> torch.Tensor:
        return self.mask_c.sum(dim=1)


def _gather(data: PairData, idx: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = torch.stack([data.option_a[idx], data.option_b[idx]], dim=-2)  # (..., 2, D)
    u = users.view(-1, *([1] * (idx.dim() - 1))).expand_as(idx)
    return pairs, data.choices[idx, u]


def _distinct(pool_size: int, rows: int, k: int, gen: torch.Generator, device) -> torch.Tensor:
    """``rows`` draws of ``k`` distinct positions in ``range(pool_size)``."""
    if k == 0:
        return torch.zeros(rows, 0, dtype=torch.long, device=device)
    if pool_size <= 4096 or k * 8 > pool_size:
        return torch.rand(rows, pool_size, generator=gen, device=device).topk(k, dim=1).indices
    # large pools: draw with replacement, then redraw the (rare) duplicates
    out = torch.randint(pool_size, (rows, k), generator=gen, device=device)
    for _ in range(10):
        s, _ = out.sort(dim=1)
        dup = (s[:, 1:] == s[:, :-1]).any(dim=1)
        if not bool(dup.any()):
            break
        out[dup] = torch.randint(pool_size, (int(dup.sum()), k), generator=gen, device=device)
    return out


def sample_train_batch(data: PairData, pool: torch.Tensor, batch_size: int, num_targets: int,
                       min_context: int, max_context: int, gen: torch.Generator,
                       user_type: int | None = None) -> TaskBatch:
    """Training tasks: a random user type (or always ``user_type``), ``num_targets`` distinct
    pairs, a random 0..max_context prefix of them as context (targets include the context, as
    in the paper).

    The random draws happen on the generator's device and are moved to the data's device
    (a CPU generator cannot draw CUDA tensors), so the batches are the same on every device.
    """
    device = data.option_a.device
    gdev = gen.device
    if user_type is None:
        users = torch.randint(data.num_types, (batch_size,), generator=gen, device=gdev).to(device)
    else:
        users = torch.full((batch_size,), int(user_type), dtype=torch.long, device=device)
    pos = _distinct(len(pool), batch_size, num_targets, gen, gdev).to(device)
    idx = pool[pos]
    pairs, choices = _gather(data, idx, users)
    k = torch.randint(min_context, max_context + 1, (batch_size,), generator=gen, device=gdev).to(device)
    K = max_context
    mask = torch.arange(K, device=device).unsqueeze(0) < k.unsqueeze(1)
    score = torch.ones(batch_size, num_targets, dtype=torch.bool, device=device)
    return TaskBatch(pairs, choices, pairs[:, :K], choices[:, :K], mask, score, users, idx, idx[:, :K])


def eval_batches(data: PairData, split: str, num_context: int, convention: str, seed: int,
                 num_targets: int = 20, max_tasks: int = 512) -> list[TaskBatch]:
    """Evaluation tasks that cover the whole split once per user type.

    For every user type the split's pairs are shuffled and cut into tasks of
    ``num_targets`` pairs (the last incomplete task is dropped). Conventions:

    * ``unseen``: every pair of the task is a target; the ``k`` context pairs are
      drawn from the *other* pairs of the split (labelled by the same user), so no
      target is in the context;
    * ``paper``: the context is ``k`` random pairs of the task and the metric counts
      the task's positions ``k..T-1`` (the paper's evaluation notebook), so on average
      ``k(T-k)/T`` scored pairs are context pairs;
    * ``all``: the context is ``k`` random pairs of the task, all ``T`` are scored.
    """
    from prefkit import UsageError

    if convention not in ("unseen", "paper", "all"):
        raise UsageError(f"unknown convention {convention!r} (unseen, paper, all)")
    device = data.option_a.device
    pool = data.indices(split).to(device)
    n_tasks = len(pool) // num_targets
    if n_tasks < 2:
        raise UsageError(f"the {split} split has {len(pool)} pairs: too few for tasks of {num_targets} pairs")
    if num_context >= num_targets and convention != "unseen":
        raise UsageError(f"context size {num_context} must be smaller than the task size {num_targets}")
    gen = torch.Generator(device="cpu").manual_seed(10_007 * seed + 31 * num_context + 7)
    n_used = n_tasks * num_targets
    batches: list[TaskBatch] = []
    for u in range(data.num_types):
        perm = pool[torch.randperm(len(pool), generator=gen, device=gen.device).to(device)[:n_used]]
        idx = perm.view(n_tasks, num_targets)
        users = torch.full((n_tasks,), u, dtype=torch.long, device=device)
        if convention == "unseen":
            offs = _distinct(n_used - num_targets, n_tasks, num_context, gen, gen.device).to(device)
            start = (torch.arange(n_tasks, device=device) * num_targets + num_targets).unsqueeze(1)
            cidx = perm[(start + offs) % n_used]
            score = torch.ones(n_tasks, num_targets, dtype=torch.bool, device=device)
        else:
            cpos = _distinct(num_targets, n_tasks, num_context, gen, gen.device).to(device)
            cidx = torch.gather(idx, 1, cpos)
            if convention == "paper":
                score = (torch.arange(num_targets, device=device) >= num_context).unsqueeze(0).expand(n_tasks, -1)
            else:
                score = torch.ones(n_tasks, num_targets, dtype=torch.bool, device=device)
        pairs_t, ch_t = _gather(data, idx, users)
        pairs_c, ch_c = _gather(data, cidx, users) if num_context else (
            torch.zeros(n_tasks, 0, 2, data.input_dim, device=device),
            torch.zeros(n_tasks, 0, dtype=torch.long, device=device))
        mask = torch.ones(n_tasks, num_context, dtype=torch.bool, device=device)
        for s in range(0, n_tasks, max_tasks):
            sl = slice(s, s + max_tasks)
            batches.append(TaskBatch(pairs_t[sl], ch_t[sl], pairs_c[sl], ch_c[sl], mask[sl], score[sl].contiguous(),
                                     users[sl], idx[sl], cidx[sl]))
    return batches


def validation_split(data: PairData, num_targets: int) -> str:
    """The split checkpoint selection uses: ``val`` when it holds at least two tasks of
    ``num_targets`` pairs, otherwise ``train`` (callers must say so: the "best" checkpoint
    is then chosen on training data)."""
    return "val" if len(data.indices("val")) >= 2 * num_targets else "train"


def val_batches(data: PairData, num_targets: int, max_context: int, seed: int = 0,
                user_types: list[int] | None = None, split: str | None = None) -> list[TaskBatch]:
    """A fixed validation set: the whole split (default :func:`validation_split`) once per user
    type (or per type in ``user_types``), with context sizes spread over 0..max_context
    (context among the targets, as in training)."""
    device = data.option_a.device
    split = split or validation_split(data, num_targets)
    pool = data.indices(split).to(device)
    gen = torch.Generator(device="cpu").manual_seed(987_654 + seed)
    n_tasks = len(pool) // num_targets
    out = []
    for u in range(data.num_types):
        perm = pool[torch.randperm(len(pool), generator=gen, device=gen.device).to(device)[: n_tasks * num_targets]]
        if user_types is not None and u not in user_types:
            continue
        idx = perm.view(n_tasks, num_targets)
        users = torch.full((n_tasks,), u, dtype=torch.long, device=device)
        pairs, ch = _gather(data, idx, users)
        k = torch.arange(n_tasks, device=device) % (max_context + 1)
        mask = torch.arange(max_context, device=device).unsqueeze(0) < k.unsqueeze(1)
        score = torch.ones(n_tasks, num_targets, dtype=torch.bool, device=device)
        out.append(TaskBatch(pairs, ch, pairs[:, :max_context], ch[:, :max_context], mask, score, users, idx,
                             idx[:, :max_context]))
    return out
