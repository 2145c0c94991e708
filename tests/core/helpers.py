"""Fake installed distributions for plugin-discovery tests (real entry points, no pip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def make_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0") -> None:
    """Write ``modules`` and a ``<dist>-<version>.dist-info`` declaring ``entry_points`` under ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for mod, code in modules.items():
        path = site / (mod.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "[prefkit]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(eps)


def run_prefkit(*args: str, site: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the real ``prefkit`` in a subprocess (fresh plugin state)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("PREFKIT_")}
    if site is not None:
        e["PYTHONPATH"] = str(site) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "prefkit", *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=120)


def as_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
