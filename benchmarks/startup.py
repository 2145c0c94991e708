"""How long does `prefkit --help` take? (target: median <= 0.25 s on a 2-core machine)

Runs each command several times in fresh processes and reports the median wall
time. `prefkit --help` and `prefkit plugins` must not import torch,
transformers, datasets, trl or the API SDKs; this also checks that.

    python benchmarks/startup.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "prefkit --help": ["--help"],
    "prefkit plugins --json": ["plugins", "--json"],
    "prefkit datasets --json": ["datasets", "--json"],
}
HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "openai", "anthropic", "cohere", "sentence_transformers",
         "matplotlib")


def time_cmd(args: list[str], runs: int) -> list[float]:
    exe = shutil.which("prefkit")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "prefkit", *args]
    subprocess.run(cmd, capture_output=True)  # warm the file cache
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return times


def heavy_imports(args: list[str]) -> list[str]:
    code = (f"import sys\nfrom prefkit.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("HEAVY:")), "HEAVY:?")
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = {}
    base = time_cmd_python(a.runs)
    for label, args in COMMANDS.items():
        t = time_cmd(args, a.runs)
        results[label] = {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": a.runs,
                          "heavy_imports": heavy_imports(args)}
    results["python -c pass (interpreter floor)"] = {"median_s": statistics.median(base), "min_s": min(base),
                                                     "max_s": max(base), "runs": a.runs, "heavy_imports": []}
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"| command | median (s) | min | max | heavy imports |\n|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| `{label}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {', '.join(r['heavy_imports']) or 'none'} |")


def time_cmd_python(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return times


if __name__ == "__main__":
    main()
