"""NP-DPO: a causal LM steered by a latent inferred from the user's context pairs.

* The policy is the base causal LM with LoRA adapters and FiLM conditioning: the
  output hidden states of every decoder layer are modulated
  ``h <- h * gamma(z) + beta(z)`` with gamma, beta linear in z and initialised to the
  identity (gamma = 1, beta = 0), so training starts from the base model.
* z comes from the NPPL context encoder (deterministic latent, linear input layer)
  over the embeddings of the user's context pairs ([chosen; rejected]); no context
  gives z = 0.
* The reference policy is the frozen base model without LoRA and without FiLM.
* Loss: DPO with beta = 0.05 on the user's target pairs; trainable: LoRA, FiLM and
  the context encoder; saved together in ``policy.safetensors`` (config in its metadata).
* Evaluation: implicit-reward accuracy ``beta * (log pi(y|x,z) - log pi_ref(y|x))``
  on held-out pairs of each user type vs the number of context pairs.

``--baseline`` trains plain DPO with LoRA through the core training layer
(``prefkit.training.train("dpo", ...)``) on all user types mixed; its evaluation uses
the same implicit reward without a latent (flat in the context size).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from prefkit import UsageError

from .config import DPOOptions, ModelConfig, parse_int_list
from .data import PairData, TaskBatch, eval_batches, sample_train_batch
from .models import ContextEncoder

POLICY_FILE = "policy.safetensors"


# ---------------------------------------------------------------------- FiLM policy
class FiLM(nn.Module):
    """h -> h * gamma(z) + beta(z), gamma/beta linear in z, identity at initialisation."""

    def __init__(self, latent_dim: int, hidden_size: int):
        super().__init__()
        self.gamma = nn.Linear(latent_dim, hidden_size)
        self.beta = nn.Linear(latent_dim, hidden_size)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] != h.shape[0]:  # beams / several sequences per prompt
            z = z.repeat_interleave(h.shape[0] // z.shape[0], dim=0)
        g = self.gamma(z).unsqueeze(1).to(h.dtype)
        b = self.beta(z).unsqueeze(1).to(h.dtype)
        return h * g + b


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a (possibly PEFT-wrapped) causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(base, "get_decoder"):
        dec = base.get_decoder()
        if hasattr(dec, "layers"):
            return dec.layers
    n = getattr(base.config, "num_hidden_layers", None)
    for _, mod in base.named_modules():
        if isinstance(mod, nn.ModuleList) and (n is None or len(mod) == n):
            return mod
    raise UsageError(f"cannot find the decoder layers of {type(base).__name__}")


class NPPolicy(nn.Module):
    """LoRA-wrapped causal LM + FiLM on every decoder layer + context encoder."""

    def __init__(self, lm: nn.Module, encoder: ContextEncoder, latent_dim: int):
        super().__init__()
        self.lm = lm
        self.encoder = encoder
        layers = decoder_layers(lm)
        hidden = lm.config.hidden_size if hasattr(lm.config, "hidden_size") else lm.config.get_text_config().hidden_size
        self.films = nn.ModuleList([FiLM(latent_dim, hidden) for _ in layers])
        self._z: torch.Tensor | None = None
        self._handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, i: int):
        def hook(module, args, output):
            if self._z is None:
                return output
            if isinstance(output, tuple):
                return (self.films[i](output[0], self._z), *output[1:])
            return self.films[i](output, self._z)

        return hook

    def latent(self, batch: TaskBatch) -> torch.Tensor:
        return self.encoder(batch.pairs_c, batch.choices_c, batch.mask_c).mean

    def trainable_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        state = {f"lora.{k}": v for k, v in get_peft_model_state_dict(self.lm).items()}
        state.update({f"films.{k}": v for k, v in self.films.state_dict().items()})
        state.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        return {k: v.detach().contiguous().cpu() for k, v in state.items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.lm, {k[5:]: v for k, v in state.items() if k.startswith("lora.")})
        self.films.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("films.")})
        self.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})


def encoder_config(input_dim: int, latent_dim: int, empty_context: str = "learned") -> ModelConfig:
    return ModelConfig(kind="nppl", input_dim=input_dim, hidden_dim=latent_dim, latent_dim=latent_dim,
                       context_input="linear", sample_latents=False, empty_context=empty_context)


def _lora(opts_or_cfg: dict[str, Any]):
    from peft import LoraConfig

    return LoraConfig(r=int(opts_or_cfg["lora_r"]), lora_alpha=int(opts_or_cfg["lora_alpha"]),
                      lora_dropout=float(opts_or_cfg["lora_dropout"]), task_type="CAUSAL_LM",
                      target_modules=opts_or_cfg.get("lora_targets"))


def load_base(model: str, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .text import quiet_transformers

    quiet_transformers()
    try:
        tok = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32 if device.type == "cpu" else torch.bfloat16)
    except Exception as exc:
        raise UsageError(f"cannot load model {model!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, lm.to(device)


def build_policy(cfg: dict[str, Any], device) -> tuple[Any, NPPolicy]:
    from peft import get_peft_model

    tok, base = load_base(cfg["model"], device)
    for p in base.parameters():
        p.requires_grad_(False)
    lm = get_peft_model(base, _lora(cfg))
    # policies saved before the learned empty context have no such field: they used z = 0
    enc = ContextEncoder(encoder_config(int(cfg["input_dim"]), int(cfg["latent_dim"]),
                                        cfg.get("empty_context", "zero")))
    policy = NPPolicy(lm, enc, int(cfg["latent_dim"])).to(device)
    return tok, policy


def load_policy(run_dir: str | Path, device) -> tuple[Any, NPPolicy, dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(run_dir) / POLICY_FILE
    if not path.exists():
        raise UsageError(f"{run_dir} has no {POLICY_FILE} (not an NP-DPO run, or training did not finish)")
    with safe_open(str(path), framework="pt") as fh:
        cfg = json.loads((fh.metadata() or {})["policy_config"])
    tok, policy = build_policy(cfg, device)
    policy.load_trainable_state(load_file(str(path)))
    policy.eval()
    return tok, policy, cfg


# ---------------------------------------------------------------------- tokens and log-probs
def prompt_text(tok, prompt: str) -> str:
    """The generation prompt: the chat template, or BOS + "prompt\n\n" without one."""
    from .text import chat_text

    return chat_text(tok, prompt)


def fit_prompt(tok, prompt: str, budget: int) -> list[int]:
    """The prompt's tokens with its chat template intact, at most ``budget`` of them when the
    template allows: the prompt's *content* is cut from the left (its end, next to the
    response, is kept) and the template re-applied, so the header and the assistant turn's
    opening are never cut."""
    ids = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
    if len(ids) <= budget:
        return ids
    content = tok(prompt, add_special_tokens=False)["input_ids"]
    keep = max(0, budget - (len(ids) - len(content)))
    for _ in range(6):  # decoding and re-tokenising can shift a few tokens: shrink until it fits
        text = tok.decode(content[len(content) - keep:], skip_special_tokens=True) if keep > 0 else ""
        ids = tok(prompt_text(tok, text), add_special_tokens=False)["input_ids"]
        if len(ids) <= budget or keep == 0:
            return ids
        keep = max(0, keep - (len(ids) - budget))
    return ids


def encode_pairs(tok, prompts: Sequence[str], responses: Sequence[str], max_length: int):
    """Right-padded ids, attention mask and a mask of the response tokens.

    Over ``max_length``: the response keeps at least half of the budget (cut at its end), the
    prompt the rest through :func:`fit_prompt` (template intact)."""
    eos = tok.eos_token or ""
    seqs, masks = [], []
    for p, r in zip(prompts, responses):
        pi = tok(prompt_text(tok, p), add_special_tokens=False)["input_ids"]
        ri = tok(r + eos, add_special_tokens=False)["input_ids"]
        if len(pi) + len(ri) > max_length:
            ri = ri[: max(max_length - len(pi), min(len(ri), max_length // 2))]
            pi = fit_prompt(tok, p, max_length - len(ri))
            ri = ri[: max(1, max_length - len(pi))]
        seqs.append(pi + ri)
        masks.append([0] * len(pi) + [1] * len(ri))
    n = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    att = torch.zeros(len(seqs), n, dtype=torch.long)
    resp = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        resp[i, : len(s)] = torch.tensor(m, dtype=torch.bool)
    return ids, att, resp


def token_logps(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """log p(target) per position, (B, L), as the target's logit minus the log-sum-exp over the
    vocabulary, ``chunk`` positions at a time: the full-vocabulary log-softmax (and a float32
    copy of all logits) is never materialised."""
    out = []
    for s in range(0, logits.shape[1], chunk):
        part = logits[:, s:s + chunk].float()
        picked = torch.gather(part, 2, targets[:, s:s + chunk].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(part, dim=-1))
    return torch.cat(out, dim=1) if out else logits.new_zeros(logits.shape[:2], dtype=torch.float32)


def sequence_logps(lm, ids, att, resp, chunk: int = 64) -> torch.Tensor:
    """Sum of log-probabilities of the response tokens, per sequence."""
    logits = lm(input_ids=ids, attention_mask=att).logits[:, :-1]
    lp = token_logps(logits, ids[:, 1:], chunk)
    return (lp * resp[:, 1:].to(lp.dtype)).sum(-1)


class Scorer:
    """log pi(y|x, z) under the policy and log pi_ref(y|x) (cached: the reference is frozen)."""

    def __init__(self, tok, policy: NPPolicy | None, lm, max_length: int, device, chunk: int = 16):
        self.tok, self.policy, self.lm, self.max_length, self.device = tok, policy, lm, max_length, device
        self.ref_cache: dict[tuple[str, str], float] = {}
        self.chunk = chunk

    def _encode(self, prompts, responses):
        ids, att, resp = encode_pairs(self.tok, prompts, responses, self.max_length)
        return ids.to(self.device), att.to(self.device), resp.to(self.device)

    def policy_logps(self, prompts, responses, z: torch.Tensor | None) -> torch.Tensor:
        out = []
        for s in range(0, len(prompts), self.chunk):
            sl = slice(s, s + self.chunk)
            if self.policy is not None:
                self.policy._z = None if z is None else z[sl]
            try:
                out.append(sequence_logps(self.lm, *self._encode(prompts[sl], responses[sl])))
            finally:
                if self.policy is not None:
                    self.policy._z = None
        return torch.cat(out)

    @torch.no_grad()
    def ref_logps(self, prompts, responses) -> torch.Tensor:
        missing = [(p, r) for p, r in zip(prompts, responses) if (p, r) not in self.ref_cache]
        missing = list(dict.fromkeys(missing))
        if missing:
            saved = self.policy._z if self.policy is not None else None
            with self.lm.disable_adapter():
                for s in range(0, len(missing), self.chunk):
                    part = missing[s:s + self.chunk]
                    v = sequence_logps(self.lm, *self._encode([p for p, _ in part], [r for _, r in part]))
                    for key, val in zip(part, v.tolist()):
                        self.ref_cache[key] = val
            if self.policy is not None:
                self.policy._z = saved
        return torch.tensor([self.ref_cache[(p, r)] for p, r in zip(prompts, responses)], device=self.device)


def _texts(rows, batch: TaskBatch):
    """Prompts and chosen/rejected texts of a batch's targets (per the task's user type)."""
    idx = batch.index_t.flatten().tolist()
    ch = batch.choices_t.flatten().tolist()
    prompts, chosen, rejected = [], [], []
    for i, c in zip(idx, ch):
        r = rows[i]
        prompts.append(r["prompt"])
        chosen.append(r["response_b"] if c == 1 else r["response_a"])
        rejected.append(r["response_a"] if c == 1 else r["response_b"])
    return prompts, chosen, rejected


# ---------------------------------------------------------------------- data
def load_text_pairs(directory: str) -> tuple[PairData, list[dict[str, Any]]]:
    from .text import pair_rows

    data = PairData.load(directory)
    rows = pair_rows(directory)
    if len(rows) != data.n or not rows or "response_a" not in rows[0]:
        raise UsageError(f"{directory} has no texts for its pairs: NP-DPO needs a directory written by "
                         "'prefkit nppl embed'")
    return data, rows


def _device(opts_device: str):
    from .training import resolve_device

    return resolve_device(opts_device)


# ---------------------------------------------------------------------- train
RESUME_FILE = "resume.safetensors"


def dpo_batch(scorer: "Scorer", policy: NPPolicy, rows, batch: TaskBatch, beta: float) -> dict[str, torch.Tensor]:
    """DPO loss of a batch of tasks: each task's latent from its context, its target pairs scored."""
    T = batch.pairs_t.shape[1]
    z = policy.latent(batch)                                          # (B, L)
    zt = z.repeat_interleave(T, dim=0)                                # one per target pair
    prompts, chosen, rejected = _texts(rows, batch)
    pc = scorer.policy_logps(prompts, chosen, zt)
    pr = scorer.policy_logps(prompts, rejected, zt)
    rc = scorer.ref_logps(prompts, chosen)
    rr = scorer.ref_logps(prompts, rejected)
    logits = (pc - pr) - (rc - rr)
    return {"loss": -F.logsigmoid(beta * logits).mean(), "correct": ((pc - rc) > (pr - rr)).float(),
            "margin": beta * logits.detach()}


@torch.no_grad()
def validate(scorer, policy: NPPolicy, rows, batches: list[TaskBatch], beta: float, chunk: int = 2) -> dict[str, float]:
    policy.eval()
    losses, correct, n = 0.0, 0.0, 0
    for b in batches:
        for s in range(0, b.pairs_t.shape[0], chunk):
            part = TaskBatch(*(getattr(b, f)[s:s + chunk] if getattr(b, f) is not None else None
                               for f in _BATCH_FIELDS))
            out = dpo_batch(scorer, policy, rows, part, beta)
            k = int(out["correct"].numel())
            losses += float(out["loss"]) * k
            correct += float(out["correct"].sum())
            n += k
    return {"val_loss": losses / max(n, 1), "val_accuracy": correct / max(n, 1), "val_pairs": n}


_BATCH_FIELDS = ("pairs_t", "choices_t", "pairs_c", "choices_c", "mask_c", "score_t", "users", "index_t", "index_c")


def dpo_val_batches(data: PairData, num_targets: int, max_context: int, val_pairs: int, seed: int):
    """Fixed validation tasks (context among the targets, 0..max_context pairs, as in training),
    at most ``val_pairs`` pairs per user type; the split used ("train" when val is too small)."""
    from .data import val_batches, validation_split

    split = validation_split(data, num_targets)
    keep = max(1, val_pairs // num_targets)
    out = []
    for b in val_batches(data, num_targets, max_context, seed=seed, split=split):
        out.append(TaskBatch(*(getattr(b, f)[:keep] if getattr(b, f) is not None else None for f in _BATCH_FIELDS)))
    return out, split


def train_np_dpo(opts: DPOOptions, run, data: PairData, rows: list[dict[str, Any]], device) -> dict[str, Any]:
    from safetensors.torch import load_file, save_file

    from prefkit import info, warn
    from prefkit import progress as progress_bar

    from .training import load_checkpoint, save_checkpoint, step_generator

    cfg = {"model": opts.model, "lora_r": opts.lora_r, "lora_alpha": opts.lora_alpha, "lora_dropout": opts.lora_dropout,
           "lora_targets": None, "latent_dim": opts.latent_dim, "input_dim": data.input_dim, "beta": opts.beta,
           "max_length": opts.max_length, "user_types": data.user_types, "data": opts.data,
           "embedder": data.meta.get("embedder"), "empty_context": "learned"}
    if opts.select not in ("best", "last"):
        raise UsageError("--select must be best or last")
    if opts.eval_every < 1:
        raise UsageError("--eval-every must be at least 1")
    torch.manual_seed(opts.seed)
    tok, policy = build_policy(cfg, device)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=opts.lr)
    scorer = Scorer(tok, policy, policy.lm, opts.max_length, device, chunk=max(2, 2 * opts.num_targets))
    pool = data.indices("train").to(device)
    data_d = data.to(device)
    vbatches, vsplit = dpo_val_batches(data_d, opts.num_targets, opts.max_context, opts.val_pairs, opts.seed)
    if vsplit != "val":
        warn(f"the validation split has {len(data.indices('val'))} pairs, fewer than two tasks of --num-targets "
             f"{opts.num_targets}: validation (and --select best) uses the TRAINING split")
    out_dir = Path(run.path)
    policy_path, resume_path = out_dir / POLICY_FILE, out_dir / RESUME_FILE
    meta = {"policy_config": json.dumps(cfg)}
    start, best = 0, {"val_loss": float("inf"), "step": None}
    if not getattr(run, "resumed", True):     # a new or --fresh run: no stale resume point
        resume_path.unlink(missing_ok=True)
    if resume_path.exists():
        tensors, m = load_checkpoint(resume_path, opt, device)
        policy.load_trainable_state(tensors)
        start, best = int(m["step"]), m.get("best") or best
        info(f"resuming {out_dir} at step {start}")
    t0 = time.perf_counter()
    last = {}
    with progress_bar(opts.steps, "NP-DPO", fields=("loss",)) as (bar, task):
        bar.update(task, completed=start)
        for step in range(start + 1, opts.steps + 1):
            policy.train()
            batch = sample_train_batch(data_d, pool, opts.batch_size, opts.num_targets, 0, opts.max_context,
                                       step_generator(opts.seed, step))
            out = dpo_batch(scorer, policy, rows, batch, opts.beta)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            last = {"step": step, "loss": float(out["loss"].detach()), "implicit_accuracy": float(out["correct"].mean()),
                    "margin": float(out["margin"].mean())}
            if step % opts.eval_every == 0 or step == opts.steps:
                last.update(validate(scorer, policy, rows, vbatches, opts.beta))
                if last["val_loss"] < best["val_loss"]:
                    best = {"val_loss": last["val_loss"], "val_accuracy": last["val_accuracy"], "step": step}
                    if opts.select == "best":
                        save_file(policy.trainable_state(), str(policy_path), metadata={**meta, "step": str(step)})
                if opts.select == "last" and step == opts.steps:
                    save_file(policy.trainable_state(), str(policy_path), metadata={**meta, "step": str(step)})
                save_checkpoint(resume_path, policy.trainable_state(), opt, {"step": step, "best": best})
            run.append(last, key=f"step-{step:06d}")
            bar.update(task, advance=1, loss=f"loss {last['loss']:.3f}")
    resume_path.unlink(missing_ok=True)
    kept = best["step"] if opts.select == "best" else opts.steps
    if opts.select == "best" and kept is not None and kept != opts.steps:
        policy.load_trainable_state(load_file(str(policy_path)))     # evaluate what was kept
    policy.eval()
    return {"kind": "np-dpo", "train_time_s": round(time.perf_counter() - t0, 2), "final": last,
            "kept_step": kept, "best_val_loss": best["val_loss"], "best_val_accuracy": best.get("val_accuracy"),
            "selection_split": vsplit, "resumed_at_step": start,
            "policy_file": POLICY_FILE, "trainable_parameters": sum(p.numel() for p in params)}, (tok, policy, scorer)


def train_baseline(opts: DPOOptions, run, data: PairData, rows: list[dict[str, Any]], device):
    """Plain DPO + LoRA on the train pairs, each labelled by a random user type (the core training layer)."""
    import prefkit
    from prefkit import TrainConfig

    rng = random.Random(opts.seed)
    train_rows = []
    for i in data.indices("train").tolist():
        r = rows[i]
        u = rng.randrange(data.num_types)
        b = int(data.choices[i, u]) == 1
        train_rows.append({"prompt": r["prompt"], "chosen": r["response_b"] if b else r["response_a"],
                           "rejected": r["response_a"] if b else r["response_b"]})
    cfg = TrainConfig(max_steps=opts.steps, lr=opts.lr, batch_size=opts.batch_size, beta=opts.beta,
                      lora_r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      max_length=opts.max_length, seed=opts.seed, merge=False, logging_steps=max(1, opts.steps // 10),
                      save_steps=max(opts.steps, 1))
    t0 = time.perf_counter()
    result = prefkit.train("dpo", opts.model, train_rows, config=cfg, output_dir=Path(run.path) / "dpo")
    if result.adapter_dir is None:
        raise UsageError("the baseline DPO run produced no LoRA adapter")
    from peft import PeftModel

    tok, base = load_base(opts.model, device)
    lm = PeftModel.from_pretrained(base, str(result.adapter_dir)).to(device).eval()
    scorer = Scorer(tok, None, lm, opts.max_length, device, chunk=max(2, 2 * opts.num_targets))
    return ({"kind": "dpo-baseline", "train_time_s": round(time.perf_counter() - t0, 2),
             "adapter_dir": str(result.adapter_dir), "train_metrics": result.metrics}, (tok, None, scorer))


# ---------------------------------------------------------------------- evaluation
@torch.no_grad()
def implicit_accuracy(scorer: Scorer, policy: NPPolicy | None, data: PairData, rows, contexts: Sequence[int],
                      seeds: Sequence[int], num_targets: int, limit: int | None = None,
                      split: str = "test") -> list[dict[str, Any]]:
    """Implicit-reward accuracy on the split's pairs, per user type, vs context size (context
    drawn from other pairs of the split, labelled by the same user type)."""
    if policy is not None:
        policy.eval()
    out = []
    for seed in seeds:
        for k in contexts:
            torch.manual_seed(seed)
            for b in eval_batches(data, split, k, "unseen", seed, num_targets=num_targets):
                if limit is not None:
                    keep = max(1, limit // num_targets)
                    b = TaskBatch(*(getattr(b, f)[:keep] if getattr(b, f) is not None else None
                                    for f in _BATCH_FIELDS))
                z = policy.latent(b).repeat_interleave(num_targets, dim=0) if policy is not None else None
                prompts, chosen, rejected = _texts(rows, b)
                pc = scorer.policy_logps(prompts, chosen, z)
                pr = scorer.policy_logps(prompts, rejected, z)
                rc = scorer.ref_logps(prompts, chosen)
                rr = scorer.ref_logps(prompts, rejected)
                correct = ((pc - rc) > (pr - rr)).float()
                user = data.user_types[int(b.users[0])]
                out.append({"seed": seed, "context": k, "user_type": user, "accuracy": float(correct.mean()),
                            "n": int(correct.numel())})
    return out


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{context: {user_type: accuracy}} weighted by the number of pairs (plus 'all')."""
    acc: dict[int, dict[str, list[float]]] = {}
    for r in rows:
        for key in (r["user_type"], "all"):
            c = acc.setdefault(int(r["context"]), {}).setdefault(key, [0.0, 0.0])
            c[0] += r["accuracy"] * r["n"]
            c[1] += r["n"]
    return {str(k): {u: v[0] / max(v[1], 1) for u, v in per.items()} for k, per in sorted(acc.items())}


def run_dpo(opts: DPOOptions, run) -> dict[str, Any]:
    from prefkit import info

    device = _device(opts.device)
    done = run.metrics()
    if done.get("kind") == ("dpo-baseline" if opts.baseline else "np-dpo") and (
            (Path(run.path) / POLICY_FILE).exists() or done.get("adapter_dir")):
        info(f"{run.path}: already trained; use --fresh to train again (or 'prefkit nppl eval {run.path}')")
        return done
    data, rows = load_text_pairs(opts.data)
    if len(data.indices("train")) < opts.num_targets:
        raise UsageError(f"{opts.data}: the train split has fewer than --num-targets {opts.num_targets} pairs")
    if opts.max_context >= opts.num_targets and not opts.baseline:
        raise UsageError("--max-context must be smaller than --num-targets")
    if opts.baseline:
        metrics, (tok, policy, scorer) = train_baseline(opts, run, data, rows, device)
    else:
        metrics, (tok, policy, scorer) = train_np_dpo(opts, run, data, rows, device)
    contexts = parse_int_list(opts.eval_contexts)
    if contexts:
        data_d = data.to(device)
        evals = implicit_accuracy(scorer, policy, data_d, rows, contexts, list(range(opts.eval_seeds)),
                                  opts.num_targets, opts.eval_limit)
        for r in evals:
            run.append({**r, "eval": True}, key=f"eval|{r['seed']}|{r['context']}|{r['user_type']}")
        metrics["implicit_accuracy"] = _aggregate(evals)
        info("implicit-reward accuracy: " + ", ".join(
            f"{k} ctx {100 * v['all']:.1f}%" for k, v in metrics["implicit_accuracy"].items()))
    run.write_metrics(metrics)
    return metrics


def evaluate_dpo_runs(runs: list[str], labels: str | None, opts, run_opts) -> dict[str, Any]:
    """``prefkit nppl eval`` on NP-DPO / baseline DPO runs: implicit-reward accuracy vs context size."""
    from prefkit import info, print_json, print_table
    from prefkit import split_csv
    from prefkit import Run

    from .commands import _open
    from .evaluation import plot_accuracy, summarise

    contexts = parse_int_list(opts.contexts)
    device = _device(opts.device)
    label_list = split_csv(labels) if labels else []
    results: list[dict[str, Any]] = []
    current: set[tuple[str, str]] = set()
    ev = _open("nppl eval", run_opts, config=opts, identity={"runs": [str(Path(r).resolve()) for r in runs],
               "split": opts.split, "kind": "dpo"}, name_hint="dpo-" + "+".join(Path(r).name for r in runs)[:60])
    with ev:
        for i, r in enumerate(runs):
            src = Run.load(r)
            cfg = src.manifest.get("config", {})
            label = label_list[i] if label_list else ("dpo" if cfg.get("baseline") else "np-dpo")
            data, rows = load_text_pairs(opts.data or cfg["data"])
            if cfg.get("baseline"):
                from peft import PeftModel

                tok, base = load_base(cfg["model"], device)
                adapter = src.metrics().get("adapter_dir")
                lm = PeftModel.from_pretrained(base, adapter).to(device).eval()
                policy, scorer = None, Scorer(tok, None, lm, int(cfg.get("max_length", 512)), device)
            else:
                tok, policy, pcfg = load_policy(r, device)
                scorer = Scorer(tok, policy, policy.lm, int(pcfg["max_length"]), device)
            T = int(cfg.get("num_targets", 10))
            digest = checkpoint_digest(r, src)
            data_d = data.to(device)
            for seed in range(opts.seeds):
                for k in contexts:
                    # cells are keyed by the checkpoint's hash: a retrained run is evaluated afresh
                    cell = f"{digest}|{seed}|{k}"
                    if ev.is_done(f"{cell}|done"):
                        continue
                    for i, row in enumerate(implicit_accuracy(scorer, policy, data_d, rows, [k], [seed], T,
                                                              cfg.get("eval_limit"), split=opts.split)):
                        ev.append({**row, "run": str(Path(r).resolve()), "checkpoint": digest,
                                   "label": f"{label}: {row['user_type']}", "convention": "unseen"},
                                  key=f"{cell}|{row['user_type']}|{i}")
                        results.append(row)
                    ev.append({"cell": cell, "checkpoint": digest}, key=f"{cell}|done")
            current.add((str(Path(r).resolve()), digest))
        wanted = {(s_, k_) for s_ in range(opts.seeds) for k_ in contexts}
        rows_now = [x for x in ev.results() if "label" in x and (x.get("run"), x.get("checkpoint")) in current
                    and (int(x["seed"]), int(x["context"])) in wanted]
        summary = summarise(rows_now)
        plot = plot_accuracy(summary, contexts, ["unseen"], Path(ev.path) / "implicit_accuracy_vs_context",
                             title="implicit-reward accuracy vs context size")
        out = {"path": str(ev.path), "summary": summary, "plot": [str(p) for p in plot], "contexts": contexts}
        ev.write_metrics({k: v for k, v in out.items() if k != "path"})
    if opts.json:
        print_json(out)
    else:
        table = [{"context": k, **{lab: f"{by['unseen'][k]['mean']:.1f} ± {by['unseen'][k]['se']:.1f}"
                                   for lab, by in summary.items() if k in by.get("unseen", {})}} for k in contexts]
        print_table(table, title="implicit-reward accuracy (%) vs context pairs")
        info(f"plot: {plot[0]}")
    return out


def checkpoint_digest(run_dir: str | Path, src=None) -> str:
    """Hash of what a dpo run's evaluation depends on: its policy file (NP-DPO) or its LoRA adapter."""
    from prefkit import Run

    from .training import file_digest

    path = Path(run_dir) / POLICY_FILE
    if path.exists():
        return file_digest(path)
    adapter = (src or Run.load(run_dir)).metrics().get("adapter_dir")
    files = sorted(Path(adapter).glob("*.safetensors")) if adapter else []
    if not files:
        raise UsageError(f"{run_dir} has neither {POLICY_FILE} nor a LoRA adapter (did training finish?)")
    return "+".join(file_digest(f, 8) for f in files)


# ---------------------------------------------------------------------- generate
def _context_latent(policy: NPPolicy, cfg: dict[str, Any], context: str | None, device) -> torch.Tensor:
    if not context:
        return policy.encoder.empty_latent(device).unsqueeze(0)
    from prefkit import read_table

    items = read_table(context)
    if not items:
        return policy.encoder.empty_latent(device).unsqueeze(0)
    if all("chosen_embedding" in it and "rejected_embedding" in it for it in items):
        ch = torch.tensor([it["chosen_embedding"] for it in items], dtype=torch.float32)
        rj = torch.tensor([it["rejected_embedding"] for it in items], dtype=torch.float32)
    else:
        missing = [k for k in ("prompt", "chosen", "rejected") if any(k not in it for it in items)]
        if missing:
            raise UsageError(f"{context}: every context row needs prompt, chosen and rejected "
                             f"(or chosen_embedding and rejected_embedding); missing {', '.join(missing)}")
        if not cfg.get("embedder"):
            raise UsageError("this policy does not record its embedder; give precomputed embeddings in --context")
        from .text import get_embedder

        emb = get_embedder(cfg["embedder"], str(device))
        prompts = [str(it["prompt"]) for it in items]
        ch = emb.embed(prompts, [str(it["chosen"]) for it in items])
        rj = emb.embed(prompts, [str(it["rejected"]) for it in items])
    if ch.shape[1] != int(cfg["input_dim"]):
        raise UsageError(f"{context}: embeddings have {ch.shape[1]} dims, the policy expects {cfg['input_dim']}")
    pairs = torch.stack([rj, ch], dim=1).unsqueeze(0).to(device)            # a = rejected, b = chosen
    choices = torch.ones(1, pairs.shape[1], dtype=torch.long, device=device)
    with torch.no_grad():
        return policy.encoder(pairs, choices).mean


@torch.no_grad()
def generate_from_run(run_dir: str, context: str | None, prompts: list[str], *, max_new_tokens: int = 128,
                      temperature: float = 0.0, seed: int = 0, device: str = "auto") -> list[dict[str, Any]]:
    dev = _device(device)
    tok, policy, cfg = load_policy(run_dir, dev)
    z = _context_latent(policy, cfg, context, dev)
    torch.manual_seed(seed)
    out = []
    for p in prompts:
        enc = tok(prompt_text(tok, p), return_tensors="pt", add_special_tokens=False).to(dev)
        policy._z = z
        try:
            kw = {"do_sample": temperature > 0, "max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
            if temperature > 0:
                kw["temperature"] = temperature
            ids = policy.lm.generate(**enc, **kw)
        finally:
            policy._z = None
        text = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out.append({"prompt": p, "response": text, "context": context, "run": str(run_dir)})
    return out
