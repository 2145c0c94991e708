"""NPPL synthetic benchmark: train btl, dpl and nppl (NP-BTL) on this machine and compare with the paper.

    python benchmarks/nppl_synthetic.py                 # 3 training seeds, 5 evaluation seeds
    python benchmarks/nppl_synthetic.py --seeds 1 --steps 200 --no-write   # a quick look

Runs go to ``runs/`` (the run store: re-running resumes finished work); the script
writes the ``## NPPL`` section of ``benchmarks/RESULTS.md`` and the plot
``benchmarks/nppl_synthetic.png`` (shown in ``docs/nppl.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PLOT = ROOT / "benchmarks" / "nppl_synthetic.png"
SECTION = "## NPPL"


def replace_section(text: str, section: str) -> str:
    """Replace (or append) the ``## NPPL`` section of RESULTS.md, leaving the others alone."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == SECTION), None)
    if start is None:
        return (text.rstrip() + "\n\n" if text.strip() else "") + section.rstrip() + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section.rstrip().splitlines() + [""] + lines[end:]).rstrip() + "\n"


def text_section(eval_dir: Path) -> str:
    """The offline text task's table, when its evaluation run is there (see docs/nppl.md)."""
    import json

    from prefkit_nppl.evaluation import markdown_table

    mp = eval_dir / "metrics.json"
    if not mp.exists():
        return ""
    m = json.loads(mp.read_text())
    png = eval_dir / "accuracy_vs_context.png"
    if png.exists():
        shutil.copyfile(png, ROOT / "benchmarks" / "nppl_text.png")
    summary = {label: {conv: {int(k): v for k, v in cells.items()} for conv, cells in by.items()}
               for label, by in m["summary"].items()}
    manifest = json.loads((eval_dir / "manifest.json").read_text())
    runs = manifest.get("identity", {}).get("runs", [])
    steps = ""
    if runs and (Path(runs[0]) / "manifest.json").exists():
        cfg = json.loads((Path(runs[0]) / "manifest.json").read_text()).get("config", {})
        steps = f", {cfg.get('steps')} steps, lr {cfg.get('lr')}, latent {cfg.get('latent', 'auto')} (deterministic for embeddings)"
    per_type = ""
    if m.get("summary_by_type"):
        by_type = {label: {conv: {int(k): v for k, v in cells.items()} for conv, cells in by.items()}
                   for label, by in m["summary_by_type"].items()}
        per_type = ("\nPer user type (the paper's per-label columns; every pair conflicts, so a context-free model is "
                    "right for one type exactly where it is wrong for the other):\n\n"
                    + markdown_table(by_type, m["contexts"], "unseen", False) + "\n")
        png_t = eval_dir / "accuracy_by_type.png"
        if png_t.exists():
            shutil.copyfile(png_t, ROOT / "benchmarks" / "nppl_text_by_type.png")
            per_type += "\n![text task: accuracy per user type](nppl_text_by_type.png)\n"
    return f"""
### Offline text task (persona BeaverTails pairs, two user types: longer vs shorter response)

`prefkit nppl embed` (all-MiniLM-L6-v2, bundled offline) over the persona-tailoring BeaverTails pairs whose
responses differ in length by at least 20 % (2,232 pairs, 255 test pairs); the two user types disagree on every
pair, so a model without context scores 50 %. Targets exclude the context; mean ± s.e. over {m.get("seeds")}
evaluation seeds (one training seed{steps}):

{markdown_table(summary, m["contexts"], "unseen", False)}

![text task: accuracy vs context size](nppl_text.png)
{per_type}
Reproduce: `prefkit nppl embed -o runs/emb-length`, `prefkit nppl train --model nppl --data runs/emb-length`
(and `--model btl`), `prefkit nppl eval RUN_NPPL RUN_BTL --seeds 5 --conventions unseen`.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="btl,dpl,nppl")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per model")
    ap.add_argument("--baseline-seeds", type=int, default=None,
                    help="training seeds of btl and dpl (default: --seeds); fewer saves time on a busy machine")
    ap.add_argument("--eval-seeds", type=int, default=5, help="evaluation seeds (task samplings of the test split)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--beta-kl", type=float, default=0.001)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "benchmarks" / "nppl_synthetic"))
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md / the plot")
    args = ap.parse_args(argv)

    from prefkit.options import RunOptions
    from prefkit_nppl.commands import evaluate, train
    from prefkit_nppl.config import EvalOptions, TrainOptions
    from prefkit_nppl.evaluation import PAPER_SYNTHETIC, markdown_table

    runs_dir = Path(args.runs_dir)
    run_dirs, labels, timing = [], [], {}
    for model in args.models.split(","):
        n_seeds = args.seeds if model == "nppl" or args.baseline_seeds is None else args.baseline_seeds
        for seed in range(n_seeds):
            out = runs_dir / f"{model}-seed{seed}"
            opts = TrainOptions(model=model, seed=seed, steps=args.steps, beta_kl=args.beta_kl, threads=args.threads)
            import json

            t0 = time.perf_counter()
            done = (out / "metrics.json").exists() and json.loads((out / "manifest.json").read_text()).get("status") == "completed"
            if not done or json.loads((out / "metrics.json").read_text()).get("trained_steps") != args.steps:
                train(opts, RunOptions(output_dir=str(out)), progress=False)
            wall = time.perf_counter() - t0
            m = json.loads((out / "metrics.json").read_text())
            timing.setdefault(model, []).append((m["wall_time_s"], m.get("cpu_time_s"), m["train_ms_per_step"]))
            print(f"{model} seed {seed}: {m['wall_time_s']:.1f} s training ({m['train_ms_per_step']:.1f} ms/step), "
                  f"{wall:.1f} s this call", flush=True)
            run_dirs.append(str(out))
            labels.append(model)
    ev = evaluate(run_dirs, ",".join(labels),
                  EvalOptions(seeds=args.eval_seeds, conventions="paper,unseen", threads=args.threads, per_type=False),
                  RunOptions(output_dir=str(runs_dir / "eval")), progress=False)
    summary, contexts = ev["summary"], ev["contexts"]
    # the other aggregation of latent samples on the paper's convention, for comparison
    ev_pred = evaluate(run_dirs, ",".join(labels),
                       EvalOptions(seeds=args.eval_seeds, conventions="paper", aggregation="predictive",
                                   threads=args.threads, per_type=False),
                       RunOptions(output_dir=str(runs_dir / "eval-predictive")), progress=False)
    print(markdown_table(summary, contexts, "paper", True))
    print(markdown_table(ev_pred["summary"], contexts, "paper", True))
    print(markdown_table(summary, contexts, "unseen", False))
    gap = ev.get("max_abs_gap")
    print(f"largest gap to the paper: {gap:.2f} points" if gap is not None else "no paper comparison")
    if args.no_write:
        return 0

    import torch

    shutil.copyfile(ev["plot"][0], PLOT)
    time_rows = ["| model | wall time per seed (s), mean (min–max) | CPU time per seed (s), mean (min–max) | wall ms/step |",
                 "|---|---|---|---|"]
    for model, ts in timing.items():
        w = [t[0] for t in ts]
        c = [t[1] for t in ts if t[1] is not None]
        s = [t[2] for t in ts]
        cpu = f"{sum(c) / len(c):.0f} ({min(c):.0f}–{max(c):.0f})" if c else "—"
        time_rows.append(f"| {model} | {sum(w) / len(w):.0f} ({min(w):.0f}–{max(w):.0f}) | {cpu} | {sum(s) / len(s):.0f} |")
    if args.baseline_seeds is None or args.baseline_seeds == args.seeds:
        seeds_txt = f"{args.seeds} training seeds"
    else:
        seeds_txt = (f"{args.seeds} training seeds for nppl and {args.baseline_seeds} for btl / dpl (with one seed the "
                     "s.e. is over evaluation seeds)")
    within = "within" if gap is not None and gap <= 1.5 else "NOT within"
    section = f"""{SECTION}

Synthetic benchmark of Kobalczyk et al. ("Towards Few-shot Steerable Alignment"): N = 20,000 scalar option
pairs, two hidden user types, tasks of 20 pairs with 0–10 context pairs, batches of 64 tasks, Adam lr 1e-4,
{args.steps} steps, β_KL = {args.beta_kl}. Produced by `python benchmarks/nppl_synthetic.py` on
{platform.machine()} with {os.cpu_count()} CPU cores shared with other work, torch {torch.__version__},
{args.threads} torch thread(s). Accuracy on the whole test split (1,936 pairs, every pair a target once per user
type), mean ± standard error over {seeds_txt} (each averaged over {args.eval_seeds} evaluation
samplings of contexts and tasks).

**Paper's convention** (as the paper's evaluation notebook: context drawn from the task's 20 pairs, scored on
positions k..19; accuracy = the mean over 16 latent samples of each sample's accuracy, as the paper's evaluation
averages per-sample accuracies), against the paper's table — largest gap **{gap:.2f} points** ({within} the
1.5-point target):

{markdown_table(summary, contexts, "paper", True)}

The same cells with the other aggregation (`--aggregation predictive`: threshold the posterior-predictive mean
probability over the 16 samples; the default for the other conventions) — largest gap
{ev_pred.get("max_abs_gap", float("nan")):.2f} points:

{markdown_table(ev_pred["summary"], contexts, "paper", True)}

**Targets exclude the context** (context pairs drawn from the rest of the test split; posterior-predictive mean):

{markdown_table(summary, contexts, "unseen", False)}

Training time on this machine (the paper's public code needs 4.9 / 5.5 / 13–14 min for BTL / DPL / NP-BTL on a
similar 2-core machine). The {os.cpu_count()} cores were shared with other jobs while these runs trained, so wall
times are inflated several-fold; CPU time (recorded by runs trained with `cpu_time_s` in their metrics) is what the
training itself used, validation passes included:

{chr(10).join(time_rows)}

![accuracy vs context size](nppl_synthetic.png)
{text_section(ROOT / "runs" / "benchmarks" / "nppl_text" / "eval")}
Reproduce one cell from the command line: `prefkit nppl train --model nppl --seed 0` then
`prefkit nppl eval runs/nppl-train/nppl-synthetic-seed0`.
"""
    RESULTS.write_text(replace_section(RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n", section))
    print(f"wrote {RESULTS} and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
