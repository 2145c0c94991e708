"""Start-up time of `prefkit --help` and `prefkit plugins` as a ratio of `trl --help` (target: at most 0.8).

All commands run in fresh processes, interleaved round by round (a busy machine slows every command of a
round alike, so the ratios hold even when the absolute times do not). With ``--extra-plugins N`` a second
pass installs N throw-away plugins (each with ``--commands-per-plugin`` commands whose modules import
typer and the rest of their CLI at top level) on PYTHONPATH and measures again: with the cached command
index the time must not grow with what is installed. The first run after a change rebuilds the index
("cold", reported once). `prefkit --help` and `prefkit plugins` must import none of torch, transformers,
datasets, trl, peft, the SDKs, sentence_transformers, matplotlib; that is checked too.

    python benchmarks/startup.py [--rounds 15] [--extra-plugins 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "openai", "anthropic", "cohere", "sentence_transformers",
         "matplotlib", "pydantic", "pluggy")
PREFKIT = [sys.executable, "-m", "prefkit"]


def commands() -> dict[str, list[str]]:
    trl = shutil.which("trl")
    return {
        "trl --help": [trl, "--help"] if trl else [sys.executable, "-m", "trl.cli", "--help"],
        "prefkit --help": [*PREFKIT, "--help"],
        "prefkit plugins": [*PREFKIT, "plugins"],
        "prefkit plugins --json": [*PREFKIT, "plugins", "--json"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }


def run_once(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t


def interleaved(cmds: dict[str, list[str]], rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in cmds}
    names = list(cmds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order every round
            times[name].append(run_once(cmds[name], env))
    return times


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    code = (f"import sys\nfrom prefkit.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = next((x for x in out.stdout.splitlines() if x.startswith("HEAVY:")), "HEAVY:?")
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def fake_plugins(site: Path, n: int, per_plugin: int) -> None:
    """N installed plugins (dist-info + entry point), each with ``per_plugin`` commands in a CLI module."""
    for i in range(n):
        pkg = site / f"benchplug{i}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        body = ["import typer", "from typing import Optional", "",
                "app = typer.Typer(help='Benchmark plugin %d.', no_args_is_help=True)" % i, ""]
        for j in range(per_plugin):
            body += [f"@app.command('cmd{j}')",
                     f"def cmd{j}(name: Optional[str] = typer.Option(None, '--name', help='A name.'),",
                     "         limit: int = typer.Option(10, '--limit', help='A limit.')):",
                     f"    'Command {j} of benchmark plugin {i}.'", "    print(name, limit)", ""]
        (pkg / "cli.py").write_text("\n".join(body))
        (pkg / "plugin.py").write_text(textwrap.dedent(f"""
            import prefkit

            @prefkit.hookimpl
            def register_commands(app):
                from .cli import app as sub
                app.add_typer(sub, name="bench{i}")
            """))
        info = site / f"prefkit_benchplug{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: prefkit-benchplug{i}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[prefkit]\nbench{i} = benchplug{i}.plugin\n")


def summarize(times: dict[str, list[float]]) -> dict[str, dict]:
    base = statistics.median(times["trl --help"])
    return {k: {"median_s": round(statistics.median(v), 4), "min_s": round(min(v), 4), "max_s": round(max(v), 4),
                "ratio_to_trl_help": round(statistics.median(v) / base, 3), "runs": len(v)} for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--extra-plugins", type=int, default=20, help="Second pass with N more plugins (0: skip).")
    ap.add_argument("--commands-per-plugin", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PREFKIT_NO_CLI_CACHE", "PREFKIT_LOAD_PLUGINS")}
        env["PREFKIT_HOME"] = str(Path(tmp) / "home")
        cmds = commands()
        passes = {}
        cold = run_once(cmds["prefkit --help"], env)  # builds the command index
        passes["installed plugins"] = {"cold_index_build_s": round(cold, 4),
                                       "results": summarize(interleaved(cmds, a.rounds, env)),
                                       "heavy_imports": {k: heavy_imports(v[3:], env) for k, v in cmds.items()
                                                         if k.startswith("prefkit")}}
        if a.extra_plugins:
            site = Path(tmp) / "site"
            fake_plugins(site, a.extra_plugins, a.commands_per_plugin)
            env2 = dict(env, PYTHONPATH=str(site) + os.pathsep + env.get("PYTHONPATH", ""))
            cold = run_once(cmds["prefkit --help"], env2)
            label = f"+{a.extra_plugins} plugins x {a.commands_per_plugin} commands"
            passes[label] = {"cold_index_build_s": round(cold, 4),
                             "results": summarize(interleaved(cmds, a.rounds, env2)),
                             "heavy_imports": {k: heavy_imports(v[3:], env2) for k, v in cmds.items()
                                               if k.startswith("prefkit")}}
    if a.json:
        print(json.dumps(passes, indent=2))
        return
    for label, p in passes.items():
        print(f"\n{label} (index rebuild on first run: {p['cold_index_build_s']:.3f} s)\n")
        print("| command | median (s) | min | max | ratio to `trl --help` | heavy imports |\n|---|---|---|---|---|---|")
        for k, r in p["results"].items():
            heavy = ", ".join(p["heavy_imports"].get(k, [])) or ("none" if k.startswith("prefkit") else "")
            print(f"| `{k}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
                  f"{r['ratio_to_trl_help']:.2f} | {heavy} |")


if __name__ == "__main__":
    main()
