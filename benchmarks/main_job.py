"""The main job end to end: `prefkit infer-personas --split BeaverTails --limit N`, today's path vs the new one.

Each run is a fresh process (`prefkit infer-personas ... --fresh --no-cache --json`, model already in the
cache), the two paths alternate, ``--repeats`` times each:

* **today**: the code at ``--baseline-rev`` (default ``e9f2500``, the last commit before issue 14),
  extracted with ``git archive`` and put first on PYTHONPATH: every prompt prefilled in full, float32,
  torch's default threads;
* **new**: this checkout: shared-prefix KV reuse, ``--dtype auto``, threads for the machine.

Both read the same data (the bundled split, written once as a local mirror) and the same converted
SmolLM2-135M-Instruct, with the user's environment minus OMP_NUM_THREADS/MKL_NUM_THREADS (so each path
picks its own threads, as a user's run would). Reported: median wall time of each path, the ratio, the
engine's token counts, tokens/s against the machine's measured float32 matmul rate (the FLOP bound of the
work the new path must do: the shared prefix once, every suffix, every generated token, attention
included), the load average around each run, and how many completions are identical between the
paths. Where they differ, the first differing token is found and the reference model (float32, one
sequence, no padding, no reuse) gives the gap between its top-two logits there. ``--bf16-rows K`` also
compares float32 with bfloat16 (both with reuse) on the first K rows, in this process.

    python benchmarks/main_job.py [--rows 20] [--repeats 3] [--split BeaverTails] [--bf16-rows 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def extract_baseline(rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def write_mirror(split: str, dest: Path) -> Path:
    """The bundled split as a save_to_disk mirror, so both paths read the very same rows."""
    import datasets

    from prefkit_persona.sources import BUNDLED_DIR, read_bundled

    rows = read_bundled(BUNDLED_DIR / f"persona-inference-{split}.jsonl.gz")
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(cols)}).save_to_disk(
        str(dest / f"persona-inference-{split}"))
    return dest


def run_once(src: Path, args, mirror: Path, home: Path, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PREFKIT_THREADS")}
    if args.threads:  # the same thread count for both paths (isolates what the code changes, not the threads)
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.update(PYTHONPATH=f"{src}{os.pathsep}{src / 'plugins'}", PREFKIT_HOME=str(home), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PREFKIT_PROGRESS="0")
    cmd = [sys.executable, "-m", "prefkit", "infer-personas", "--split", args.split, "--limit", str(args.rows),
           "--data-dir", str(mirror), "-o", str(out), "--fresh", "--no-cache", "--json"]
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(home))
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{src.name}: infer-personas failed ({p.returncode}):\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout[p.stdout.index("{"):])
    eng = summary.get("engine") or {}
    return {"wall_s": wall, "engine_s": eng.get("elapsed_s"), "prompt_tokens": eng.get("prompt_tokens"),
            "completion_tokens": eng.get("completion_tokens"), "flags": summary.get("flags"),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "results": {r["key"]: r for r in (json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()
                                               if x.strip())}}


def matmul_rate(threads: int) -> float:
    """float32 GFLOP/s of a large matrix product with ``threads`` threads (best of 5)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(old)
    return 2 * 2048 ** 3 / best / 1e9


def job_requests(split: str, rows: int, mirror: Path):
    from prefkit.data import load_records
    from prefkit_persona.inference import DEFAULT_MAX_TOKENS, build_requests, get_strategy, pi_inputs

    strategy = get_strategy("abductive")
    ctx = strategy.context(split)
    recs = load_records(f"persona-inference:{split}", data_dir=str(mirror), limit=rows)
    return build_requests(pi_inputs(recs), strategy, ctx, max_tokens=DEFAULT_MAX_TOKENS)


def work_flops(model_path: str, requests, completion_tokens: int) -> dict:
    """FLOPs the new path has to do: the shared prefix once, each suffix, each generated token (+ attention)."""
    from transformers import AutoConfig, AutoTokenizer

    from prefkit.backends.hf import HFBackend, common_prefix_length

    cfg = AutoConfig.from_pretrained(model_path)
    tok = AutoTokenizer.from_pretrained(model_path)
    h, inter, n_layers, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    heads, kv_heads = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    head_dim = getattr(cfg, "head_dim", None) or h // heads
    per_layer = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2 + 3 * h * inter
    dense = 2 * n_layers * per_layer                     # per token through the layers
    head = 2 * h * vocab                                  # lm_head, only where a token is produced
    ids = HFBackend()._prompts(tok, requests, False)[0]
    p = common_prefix_length(ids)

    def attn(ctx: int) -> int:                            # QK^T and AV for one query token
        return 4 * n_layers * heads * head_dim * ctx

    prefix = p * dense + sum(attn(i + 1) for i in range(p))
    suffixes = sum((len(x) - p) * dense + sum(attn(i + 1) for i in range(p, len(x))) + head for x in ids)
    mean_len = sum(len(x) for x in ids) / len(ids)
    decode = completion_tokens * (dense + head) + completion_tokens * attn(int(mean_len + 25))
    naive = sum(len(x) * dense + sum(attn(i + 1) for i in range(len(x))) + head for x in ids) + \
        completion_tokens * (dense + head + attn(int(mean_len + 25)))
    return {"prefix_tokens": p, "suffix_tokens": sum(len(x) - p for x in ids), "prompt_tokens": sum(map(len, ids)),
            "flops_new": prefix + suffixes + decode, "flops_today": naive, "gflop_per_token_dense": dense / 1e9}


def divergences(model_path: str, dtype_a, pairs: list[tuple[list[dict], str, str]]) -> list[dict]:
    """For each (messages, text_a, text_b) that differ: the first differing token and the reference model's
    top-two logit gap there (float32, one sequence, no padding, no reuse)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype_a).eval()
    out = []
    for messages, a, b in pairs:
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        pids = tok(prompt, add_special_tokens=False)["input_ids"]
        ta = tok(a, add_special_tokens=False)["input_ids"]
        tb = tok(b, add_special_tokens=False)["input_ids"]
        i = 0
        while i < min(len(ta), len(tb)) and ta[i] == tb[i]:
            i += 1
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([pids + ta[:i]]), logits_to_keep=1).logits[0, -1].float()
        top = torch.topk(logits, 2)
        row = {"first_diff_token": i, "top2_gap": round(float(top.values[0] - top.values[1]), 4)}
        if i < len(ta) and i < len(tb):
            row["chosen_gap"] = round(abs(float(logits[ta[i]] - logits[tb[i]])), 4)
        out.append(row)
    return out


def compare(a: dict, b: dict) -> tuple[int, list[str]]:
    keys = sorted(set(a) & set(b))
    differ = [k for k in keys if a[k]["raw"] != b[k]["raw"]]
    return len(keys) - len(differ), differ


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--split", default="BeaverTails")
    p.add_argument("--baseline-rev", default="e9f2500")
    p.add_argument("--threads", type=int, default=0,
                   help="Give both paths this many threads (default: each picks its own, as a user's run would).")
    p.add_argument("--bf16-rows", type=int, default=0, help="Also compare float32 with bfloat16 on this many rows.")
    p.add_argument("--dtype", default="auto", help="With --check-only: the dtype of both passes (auto, float32, "
                                                   "bfloat16).")
    p.add_argument("--json", default=None, help="Write the full result here.")
    p.add_argument("--check-only", action="store_true",
                   help="Skip the timing: compare greedy outputs with and without prefix reuse on --rows rows, "
                        "in this process (same threads for both).")
    p.add_argument("--noise-floor", default=None, metavar="B1,B2",
                   help="With --check-only: instead of reuse vs no reuse, compare two batch sizes, both without "
                        "reuse (the dtype's own batch-dependence: the floor for the reuse check).")
    args = p.parse_args()
    if args.check_only and args.noise_floor:
        result = noise_floor(args)
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return
    if args.check_only:
        result = reuse_check(args)
        print(json.dumps({k: v for k, v in result.items() if k != "divergences"}, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return

    from prefkit.backends.hf import cpu_threads
    from prefkit.backends.models import cache_dir_for, resolve_model

    model_path = resolve_model(None)
    tmp = Path(tempfile.mkdtemp(prefix="prefkit-mainjob-"))
    baseline = extract_baseline(args.baseline_rev, tmp / "today")
    mirror = write_mirror(args.split, tmp / "data")
    home = tmp / "home"
    target = cache_dir_for("HuggingFaceTB/SmolLM2-135M-Instruct").relative_to(cache_dir_for("x/y").parent)
    (home / "models").mkdir(parents=True)
    (home / "models" / target).symlink_to(Path(model_path).resolve(), target_is_directory=True)
    threads_new = args.threads or cpu_threads()
    runs: dict[str, list[dict]] = {"today": [], "new": []}
    for i in range(args.repeats):
        order = [("today", baseline), ("new", ROOT)] if i % 2 == 0 else [("new", ROOT), ("today", baseline)]
        for name, src in order:
            r = run_once(src, args, mirror, home, tmp / f"run-{name}-{i}")
            runs[name].append(r)
            print(f"repeat {i + 1} {name:5s}: {r['wall_s']:.1f} s wall (engine {r['engine_s']:.1f} s), "
                  f"load {r['load_before']}→{r['load_after']}", flush=True)
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    rate = matmul_rate(threads_new)
    reqs = job_requests(args.split, args.rows, mirror)
    completion = runs["new"][0]["completion_tokens"]
    work = work_flops(model_path, reqs, completion)
    same, differ = compare(runs["today"][0]["results"], runs["new"][0]["results"])
    by_key = {r.key: r for r in reqs}
    import torch

    gaps = divergences(model_path, torch.float32,
                       [(by_key[k].messages, runs["today"][0]["results"][k]["raw"], runs["new"][0]["results"][k]["raw"])
                        for k in differ])
    result = {
        "split": args.split, "rows": args.rows, "repeats": args.repeats, "model": model_path,
        "baseline_rev": args.baseline_rev, "cpu": os.cpu_count(), "new_threads": threads_new,
        "threads_forced": args.threads or None,
        "today_wall_s": [round(r["wall_s"], 1) for r in runs["today"]],
        "new_wall_s": [round(r["wall_s"], 1) for r in runs["new"]],
        "today_median_s": round(med["today"], 1), "new_median_s": round(med["new"], 1),
        "speedup": round(med["today"] / med["new"], 2),
        "prompt_tokens": runs["new"][0]["prompt_tokens"], "completion_tokens": completion,
        "prefix_tokens": work["prefix_tokens"], "suffix_tokens": work["suffix_tokens"],
        "matmul_gflops_fp32": round(rate, 1),
        "flop_bound_new_s": round(work["flops_new"] / (rate * 1e9), 1),
        "flop_bound_today_s": round(work["flops_today"] / (rate * 1e9), 1),
        "load_average": [(r["load_before"], r["load_after"]) for v in runs.values() for r in v],
        "identical_completions": f"{same}/{same + len(differ)}",
        "divergences": gaps,
        "largest_top2_gap_at_divergence": max((g["top2_gap"] for g in gaps), default=None),
        "flags_new": runs["new"][0]["flags"], "flags_today": runs["today"][0]["flags"],
    }
    engine_new = statistics.median(r["engine_s"] for r in runs["new"])
    result["new_tokens_per_s"] = round((work["prompt_tokens"] + completion) / engine_new, 1)
    result["new_vs_flop_bound"] = round(engine_new / result["flop_bound_new_s"], 2)
    if args.bf16_rows:
        result["bf16"] = bf16_check(model_path, reqs[:2 * args.bf16_rows])
    print(json.dumps({k: v for k, v in result.items() if k != "divergences"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def reuse_check(args) -> dict:
    """Greedy outputs with prefix reuse vs without, on the main job's prompts, in this process."""
    import torch

    from prefkit.backends import BackendOptions, complete
    from prefkit.backends.models import resolve_model

    model_path = resolve_model(None)
    mirror = write_mirror(args.split, Path(tempfile.mkdtemp(prefix="prefkit-mainjob-")))
    reqs = job_requests(args.split, args.rows, mirror)
    o = BackendOptions(backend="hf", model=model_path, cache=False, dtype=args.dtype)
    out, secs = {}, {}
    for name, extra in (("reuse", {}), ("plain", {"prefix_cache": False})):
        t = time.perf_counter()
        out[name] = complete(reqs, o.replace(extra=extra), progress=False)
        secs[name] = round(time.perf_counter() - t, 1)
    differ = [(r.messages, x.text, y.text) for r, x, y in zip(reqs, out["plain"], out["reuse"]) if x.text != y.text]
    gaps = divergences(model_path, torch.float32, differ)
    return {"split": args.split, "rows": args.rows, "prompts": len(reqs), "dtype": args.dtype,
            "threads": torch.get_num_threads(),
            "identical": len(reqs) - len(differ), "reuse_s": secs["reuse"], "plain_s": secs["plain"],
            "largest_top2_gap_at_divergence": max((g["top2_gap"] for g in gaps), default=None),
            "divergences": gaps, "load_average": round(os.getloadavg()[0], 1)}


def noise_floor(args) -> dict:
    """Greedy outputs of two batch sizes, both without prefix reuse, in this process (same dtype)."""
    import torch

    from prefkit.backends import BackendOptions, complete
    from prefkit.backends.models import resolve_model

    sizes = [int(x) for x in args.noise_floor.split(",")]
    model_path = resolve_model(None)
    mirror = write_mirror(args.split, Path(tempfile.mkdtemp(prefix="prefkit-mainjob-")))
    reqs = job_requests(args.split, args.rows, mirror)
    texts, secs = {}, {}
    for bs in sizes:
        t = time.perf_counter()
        o = BackendOptions(backend="hf", model=model_path, cache=False, dtype=args.dtype, batch_size=bs,
                           extra={"prefix_cache": False})
        texts[bs] = [c.text for c in complete(reqs, o, progress=False)]
        secs[bs] = round(time.perf_counter() - t, 1)
    a, b = texts[sizes[0]], texts[sizes[1]]
    return {"split": args.split, "rows": args.rows, "prompts": len(reqs), "dtype": args.dtype,
            "threads": torch.get_num_threads(), "batch_sizes": sizes, "wall_s": secs,
            "identical": sum(x == y for x, y in zip(a, b)), "load_average": round(os.getloadavg()[0], 1)}


def bf16_check(model_path: str, reqs) -> dict:
    import torch

    from prefkit.backends import BackendOptions, complete
    from prefkit.backends.hf import clear_loaded_models

    out = {}
    for dtype in ("float32", "bfloat16"):
        clear_loaded_models()
        t = time.perf_counter()
        out[dtype] = complete(reqs, BackendOptions(backend="hf", model=model_path, dtype=dtype, cache=False),
                              progress=False)
        out[dtype + "_s"] = round(time.perf_counter() - t, 1)
    a, b = out["float32"], out["bfloat16"]
    differ = [(r.messages, x.text, y.text) for r, x, y in zip(reqs, a, b) if x.text != y.text]
    gaps = divergences(model_path, torch.float32, differ)
    return {"prompts": len(reqs), "identical": len(reqs) - len(differ), "float32_s": out["float32_s"],
            "bfloat16_s": out["bfloat16_s"], "largest_top2_gap_at_divergence": max((g["top2_gap"] for g in gaps),
                                                                                   default=None),
            "divergences": gaps}


if __name__ == "__main__":
    main()
