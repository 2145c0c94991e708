"""Training loop of the reward models (pure PyTorch, vectorised task batches).

``train_reward_model(options, run)`` trains one model into a run directory:

* ``model.safetensors``  the kept weights (best validation NLL, or last), with the
  architecture in the file's metadata (``load_model`` rebuilds the model);
* ``resume.safetensors`` model + Adam state of the last log point while training:
  an interrupted run continues from there when the same command is run again;
* ``results.jsonl``      one row per log point (``step-000100`` ...): train loss,
  NLL, KL, validation NLL/accuracy;
* ``metrics.json``       final summary (best step, wall time, ms/step ...).

Task batches for step ``s`` are drawn from a generator seeded with ``(seed, s)``,
so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from prefkit import UsageError

from .config import ModelConfig, TrainOptions
from .data import PairData, load_data, sample_train_batch, val_batches, validation_split
from .models import RewardModel, load_model, save_model, task_loss

MODEL_FILE = "model.safetensors"
RESUME_FILE = "resume.safetensors"


def resolve_device(device: str) -> torch.device:
    if device in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown --device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    return dev


def file_digest(path: str | Path, length: int = 16) -> str:
    """Hex SHA-256 prefix of a file's bytes (what identifies a checkpoint in evaluation caches)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(1_000_003 * seed + step)


@torch.no_grad()
def evaluate_batches(model: RewardModel, batches, beta_kl: float = 0.0) -> dict[str, float]:
    """Mean NLL and accuracy of the posterior predictive over fixed task batches."""
    model.eval()
    nll_sum, correct, count = 0.0, 0.0, 0.0
    for b in batches:
        p = model.predict_proba(b, samples=8).clamp(1e-6, 1 - 1e-6)
        y = b.choices_t.float()
        w = b.score_t.float()
        nll_sum += float((-(y * p.log() + (1 - y) * (1 - p).log()) * w).sum())
        correct += float((((p > 0.5).float() == y).float() * w).sum())
        count += float(w.sum())
    return {"val_nll": nll_sum / max(count, 1), "val_accuracy": correct / max(count, 1)}


def _optim_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"optim.{pid}.{name}"] = t.detach().contiguous().cpu()
    return tensors, {"param_groups": sd["param_groups"]}


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
                    meta: dict[str, Any]) -> None:
    """``tensors`` + the optimizer's state + the torch RNG states + ``meta`` (JSON values) in one
    safetensors file, written atomically (what an interrupted run resumes from)."""
    from safetensors.torch import save_file

    out = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    ot, groups = _optim_tensors(opt)
    out.update(ot)
    out["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    tmp = path.with_suffix(".tmp")
    save_file(out, str(tmp), metadata={"optim": json.dumps(groups), **{k: json.dumps(v) for k, v in meta.items()}})
    tmp.replace(path)


def load_checkpoint(path: Path, opt: torch.optim.Optimizer, device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restores the optimizer and RNG states of :func:`save_checkpoint`; returns the other
    tensors and the metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        raw = fh.metadata() or {}
    t = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in t.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v.to(device) if name != "step" else v
    opt.load_state_dict({"state": state, "param_groups": json.loads(raw["optim"])["param_groups"]})
    if "rng.cpu" in t:
        torch.set_rng_state(t["rng.cpu"])
    if "rng.cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["rng.cuda"])
    meta = {}
    for k, v in raw.items():
        if k == "optim":
            continue
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    return {k: v for k, v in t.items() if not k.startswith(("optim.", "rng."))}, meta


def save_resume(path: Path, model: RewardModel, opt: torch.optim.Optimizer, step: int, best: dict) -> None:
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()}, opt,
                    {"step": step, "best": best, "model_config": model.cfg.to_dict()})


def load_resume(path: Path, model: RewardModel, opt: torch.optim.Optimizer, device) -> tuple[int, dict]:
    tensors, meta = load_checkpoint(path, opt, device)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return int(meta["step"]), meta.get("best") or {}


def train_reward_model(opts: TrainOptions, run, data: PairData | None = None,
                       on_log: Callable[[dict], None] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train per ``opts`` into ``run`` (a :class:`prefkit.Run`); returns the summary metrics."""
    from prefkit import info
    from prefkit import progress as progress_bar

    opts.validate()
    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    data = data if data is not None else load_data(opts.data)
    pool = data.indices("train")
    if len(pool) < opts.num_targets:
        raise UsageError(f"the train split has {len(pool)} pairs, fewer than --num-targets {opts.num_targets}")
    cfg: ModelConfig = opts.model_config(data.input_dim)
    user = data.type_index(opts.user_type) if opts.user_type is not None else None
    data = data.to(device)
    pool = pool.to(device)

    torch.manual_seed(opts.seed)
    model = RewardModel(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, eps=3e-5)
    sel_split = validation_split(data, opts.num_targets)
    if sel_split != "val":
        from prefkit import warn

        warn(f"the validation split has {len(data.indices('val'))} pairs, fewer than two tasks of "
             f"--num-targets {opts.num_targets}: validation NLL (and --select best) uses the TRAINING split")
    vbatches = val_batches(data, opts.num_targets, opts.max_context, seed=opts.seed,
                           user_types=None if user is None else [user], split=sel_split)

    out_dir = Path(run.path)
    resume_path = out_dir / RESUME_FILE
    model_path = out_dir / MODEL_FILE
    start, best = 0, {"val_nll": float("inf"), "step": None}
    if not getattr(run, "resumed", True):     # a new or --fresh run: no stale resume point
        resume_path.unlink(missing_ok=True)
    if (model_path.exists() and run.manifest.get("summary", {}).get("trained_steps") == opts.steps
            and not resume_path.exists()):
        info(f"{out_dir}: already trained ({opts.steps} steps); use --fresh to train again")
        return run.metrics()
    if resume_path.exists():
        start, best = load_resume(resume_path, model, opt, device)
        info(f"resuming {out_dir} at step {start}")

    samples = opts.z_samples if (cfg.kind == "nppl" and cfg.sample_latents) else 1
    t0 = time.perf_counter()
    c0 = time.process_time()
    train_time = 0.0
    window: list[dict[str, float]] = []
    with progress_bar(opts.steps, f"training {cfg.kind}", fields=("loss",), disable=None if progress else True) as (bar, task):
        bar.update(task, completed=start)
        for step in range(start + 1, opts.steps + 1):
            model.train()
            ts = time.perf_counter()
            batch = sample_train_batch(data, pool, opts.batch_size, opts.num_targets, opts.min_context,
                                       opts.max_context, step_generator(opts.seed, step), user_type=user)
            out = task_loss(model, batch, opts.beta_kl, samples=samples)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            train_time += time.perf_counter() - ts
            window.append({k: float(v.detach()) for k, v in out.items()})
            if not torch.isfinite(out["loss"]):
                raise UsageError(f"training diverged at step {step} (loss {float(out['loss'])}); "
                                 "try a larger --beta-kl or a smaller --lr")
            bar.update(task, advance=1, loss=f"loss {window[-1]['loss']:.3f}")
            if step % opts.eval_every == 0 or step == opts.steps:
                row = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
                window = []
                row.update(evaluate_batches(model, vbatches))
                row["step"] = step
                improved = row["val_nll"] < best["val_nll"]
                if improved:
                    best = {"val_nll": row["val_nll"], "val_accuracy": row["val_accuracy"], "step": step}
                    if opts.select == "best":
                        save_model(model, model_path, {"step": step})
                if opts.select == "last" and step == opts.steps:
                    save_model(model, model_path, {"step": step})
                run.append(row, key=f"step-{step:06d}")
                save_resume(resume_path, model, opt, step, best)
                if on_log:
                    on_log(row)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    resume_path.unlink(missing_ok=True)
    kept = best["step"] if opts.select == "best" else opts.steps
    metrics = {"model": cfg.kind, "trained_steps": opts.steps, "kept_step": kept,
               "best_val_nll": best["val_nll"], "best_val_accuracy": best.get("val_accuracy"),
               "wall_time_s": round(wall, 2), "cpu_time_s": round(cpu, 2), "resumed_at_step": start,
               "train_ms_per_step": round(1000 * train_time / max(1, opts.steps - start), 2),
               "device": str(device), "model_file": MODEL_FILE, "model_config": cfg.to_dict(),
               "data": opts.data, "user_types": data.user_types, "input_dim": data.input_dim,
               "trained_user_type": None if user is None else data.user_types[user], "selection_split": sel_split}
    run.write_metrics(metrics)
    run.manifest.setdefault("summary", {})["trained_steps"] = opts.steps
    return metrics


def load_run_model(run_dir: str | Path, device="cpu") -> tuple[RewardModel, dict[str, Any]]:
    """The kept model of a ``prefkit nppl train`` run and the run's manifest config."""
    from prefkit import Run

    run = Run.load(run_dir)
    if run.manifest.get("command") != "nppl train":
        raise UsageError(f"{run_dir} is a {run.manifest.get('command')!r} run, not an 'nppl train' run")
    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise UsageError(f"{run_dir} has no {MODEL_FILE} yet (training did not reach its first evaluation)")
    return load_model(path, device), run.manifest.get("config", {})
