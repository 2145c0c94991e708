"""Overhead of prefkit's training layer over plain TRL.

The same tiny SFT and DPO runs (tiny 2-layer Llama + ≤1k BPE tokenizer, LoRA on
the attention projections, identical TRL settings) go once through
``prefkit.training.train`` and once through a plain TRL script, alternating, in
one process (imports are paid once, before timing). Each timed run covers
everything a user waits for: loading model + tokenizer, preparing the data,
training, saving the adapter (prefkit also writes its run manifest, per-step
log, metrics and loss plot; it does not merge here, since the TRL script does not).

    python benchmarks/training_overhead.py                 # 5 repeats, 30 steps, 1 torch thread
    python benchmarks/training_overhead.py --repeats 7 --steps 50 --json
    python benchmarks/training_overhead.py --markdown      # a section for benchmarks/RESULTS.md
    python benchmarks/training_overhead.py --processes 2   # also: 2 CPU processes (DDP, gloo) vs 1

Reports the median wall time of each and the prefkit/TRL ratio (target ≤ 1.05). ``--processes N``
adds ``prefkit train KIND --launcher accelerate --num-processes N`` against ``--num-processes 1``
(both through the launcher, same steps and per-process batch, so N processes see N times the rows):
wall time of the whole command and training throughput (rows/s, from the trainer's runtime).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROWS = 64


def _rows(kind: str) -> list[dict]:
    """Real text when ../shared/data is present (persona-tailoring), else built-in sentences."""
    from prefkit.testing.models import tiny_texts

    texts = [t[:300] for t in tiny_texts(4 * ROWS)]
    out = []
    for i in range(ROWS):
        p, a, b = texts[(3 * i) % len(texts)], texts[(3 * i + 1) % len(texts)], texts[(3 * i + 2) % len(texts)]
        out.append({"prompt": p, "completion": a} if kind == "sft" else {"prompt": p, "chosen": a, "rejected": b})
    return out


def _chat(kind: str, rows: list[dict]) -> list[dict]:
    """The TRL conversational rows a plain script would write by hand."""
    def user(t):
        return [{"role": "user", "content": t}]

    def assistant(t):
        return [{"role": "assistant", "content": t}]

    if kind == "sft":
        return [{"prompt": user(r["prompt"]), "completion": assistant(r["completion"])} for r in rows]
    return [{"prompt": user(r["prompt"]), "chosen": assistant(r["chosen"]), "rejected": assistant(r["rejected"])}
            for r in rows]


def settings(steps: int) -> dict:
    return dict(max_steps=steps, batch_size=4, grad_accum=1, lr=1e-4, max_length=256, seed=0, lora_r=8,
                lora_alpha=16, lora_dropout=0.05, logging_steps=5, save_steps=10_000, beta=0.1)


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    import contextlib
    import io

    c, t = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # TRL prints its logs when tqdm is off
        fn(*args)
    return time.perf_counter() - t, time.process_time() - c


def run_prefkit(kind: str, model: Path, rows: list[dict], out: Path, steps: int) -> None:
    from prefkit.training import train

    s = settings(steps)
    cfg = {**{k: v for k, v in s.items() if k != "beta" or kind == "dpo"}, "merge": False}
    train(kind, model, rows, config=cfg, output_dir=out)


def run_processes(kind: str, model: Path, rows: list[dict], work: Path, steps: int, n: int) -> dict:
    """``prefkit train KIND --launcher accelerate --num-processes n`` as a user runs it (a subprocess)."""
    import os
    import subprocess

    data = work / f"{kind}-mp.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = settings(steps)
    out = work / f"{kind}-mp-{n}"
    cmd = [sys.executable, "-m", "prefkit", "train", kind, "--model", str(model), "--dataset", str(data),
           "--max-steps", str(steps), "--batch-size", str(s["batch_size"]), "--lr", str(s["lr"]),
           "--max-length", str(s["max_length"]), "--lora-r", str(s["lora_r"]), "--lora-alpha", str(s["lora_alpha"]),
           "--logging-steps", str(s["logging_steps"]), "--save-steps", str(s["save_steps"]), "--no-merge",
           "--launcher", "accelerate", "--num-processes", str(n), "-o", str(out), "--json", "--fresh"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PREFKIT_LOAD_PLUGINS="")
    env.pop("PREFKIT_LAUNCHED", None)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    m = json.loads(p.stdout[p.stdout.index("{"):])["metrics"]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": round(wall, 2), "train_runtime_s": m["train_runtime"], "world_size": m["world_size"],
            "rows_per_s": round(steps * s["batch_size"] * n / m["train_runtime"], 2)}


def run_trl(kind: str, model: Path, rows: list[dict], out: Path, steps: int) -> None:
    """What a user would write with TRL directly (same settings as the prefkit run)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    s = settings(steps)
    tok = AutoTokenizer.from_pretrained(str(model))
    common = dict(output_dir=str(out / "checkpoints"), max_steps=s["max_steps"], learning_rate=s["lr"],
                  per_device_train_batch_size=s["batch_size"], gradient_accumulation_steps=s["grad_accum"],
                  max_length=s["max_length"], seed=s["seed"], data_seed=s["seed"], logging_steps=s["logging_steps"],
                  save_steps=s["save_steps"], bf16=False, gradient_checkpointing=False, report_to=[],
                  disable_tqdm=True, dataloader_pin_memory=False, model_init_kwargs={"dtype": "float32"})
    peft = LoraConfig(r=s["lora_r"], lora_alpha=s["lora_alpha"], lora_dropout=s["lora_dropout"],
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
    ds = Dataset.from_list(_chat(kind, rows))
    if kind == "sft":
        trainer = SFTTrainer(model=str(model), args=SFTConfig(**common, completion_only_loss=True), train_dataset=ds,
                             processing_class=tok, peft_config=peft)
    else:
        trainer = DPOTrainer(model=str(model), args=DPOConfig(**common, beta=s["beta"]), train_dataset=ds,
                             processing_class=tok, peft_config=peft)
    trainer.train()
    trainer.save_model(str(out / "adapter"))


def quiet():
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    warnings.simplefilter("ignore")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--kinds", default="sft,dpo")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings on a shared machine)")
    ap.add_argument("--processes", type=int, default=0, help="also time N CPU processes against 1 (0: skip)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = ap.parse_args(argv)

    quiet()
    import torch

    torch.set_num_threads(args.threads)
    from prefkit.testing.models import make_tiny_model

    work = Path(tempfile.mkdtemp(prefix="prefkit-bench-"))
    try:
        model = make_tiny_model(work / "model")
        results = {}
        for kind in args.kinds.split(","):
            rows = _rows(kind)
            # warm-up (imports, first-call caches) for both paths, not timed
            timed(run_prefkit, kind, model, rows, work / f"warm-p-{kind}", 2)
            timed(run_trl, kind, model, rows, work / f"warm-t-{kind}", 2)
            wall = {"prefkit": [], "trl": []}
            cpu = {"prefkit": [], "trl": []}
            for i in range(args.repeats):
                order = ("prefkit", "trl") if i % 2 == 0 else ("trl", "prefkit")
                for who in order:
                    out = work / f"{kind}-{who}-{i}"
                    fn = run_prefkit if who == "prefkit" else run_trl
                    w, c = timed(fn, kind, model, rows, out, args.steps)
                    wall[who].append(w)
                    cpu[who].append(c)
                    shutil.rmtree(out, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in wall.items()}
            cmed = {k: statistics.median(v) for k, v in cpu.items()}
            results[kind] = {"prefkit_s": round(med["prefkit"], 3), "trl_s": round(med["trl"], 3),
                             "ratio": round(med["prefkit"] / med["trl"], 3),
                             "cpu_ratio": round(cmed["prefkit"] / cmed["trl"], 3),
                             "wall_runs": {k: [round(x, 3) for x in v] for k, v in wall.items()},
                             "cpu_runs": {k: [round(x, 3) for x in v] for k, v in cpu.items()}}
        multi = {}
        if args.processes > 1:
            for kind in args.kinds.split(","):
                one = run_processes(kind, model, _rows(kind), work, args.steps, 1)
                many = run_processes(kind, model, _rows(kind), work, args.steps, args.processes)
                multi[kind] = {"1": one, str(args.processes): many,
                               "wall_ratio": round(many["wall_s"] / one["wall_s"], 3),
                               "throughput_ratio": round(many["rows_per_s"] / one["rows_per_s"], 3)}
        report = {"steps": args.steps, "multiprocess": multi, "repeats": args.repeats, "rows": ROWS, "batch_size": 4, "max_length": 256,
                  "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                  "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "results": results}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=2))
    elif args.markdown:
        print(markdown(report))
    else:
        for kind, r in report["results"].items():
            print(f"{kind}: prefkit {r['prefkit_s']:.2f} s · TRL {r['trl_s']:.2f} s · wall ratio {r['ratio']:.3f} "
                  f"· CPU ratio {r['cpu_ratio']:.3f}")
        for kind, r in report["multiprocess"].items():
            n = [k for k in r if k not in ("1", "wall_ratio", "throughput_ratio")][0]
            print(f"{kind} processes: 1 → {r['1']['wall_s']:.1f} s ({r['1']['rows_per_s']} rows/s) · {n} → "
                  f"{r[n]['wall_s']:.1f} s ({r[n]['rows_per_s']} rows/s) · wall ratio {r['wall_ratio']:.3f}")
    return report


def markdown(report: dict) -> str:
    lines = ["| run | prefkit wall (median s) | plain TRL wall (median s) | prefkit / TRL wall | prefkit / TRL CPU |",
             "|---|---|---|---|---|"]
    for kind, r in report["results"].items():
        lines.append(f"| {kind} | {r['prefkit_s']:.2f} | {r['trl_s']:.2f} | {r['ratio']:.3f} | {r['cpu_ratio']:.3f} |")
    if report.get("multiprocess"):
        lines += ["", "| run | processes | command wall (s) | training (s) | rows/s |", "|---|---|---|---|---|"]
        for kind, r in report["multiprocess"].items():
            for n in [k for k in r if k not in ("wall_ratio", "throughput_ratio")]:
                lines.append(f"| {kind} | {n} | {r[n]['wall_s']:.1f} | {r[n]['train_runtime_s']:.1f} | "
                             f"{r[n]['rows_per_s']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
