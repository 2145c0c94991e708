"""Multi-process training on CPU: `--launcher accelerate --num-processes 2` runs DDP over gloo.

Only the main process writes the run (manifest, step logs, checkpoints, plot) and prints the result;
the data is sharded across the processes; the summary states the world size; the loss goes down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PREF_ROWS, SFT_ROWS

pytestmark = pytest.mark.slow

ARGS = ["--max-steps", "6", "--batch-size", "2", "--logging-steps", "1", "--save-steps", "3", "--lora-r", "8",
        "--lora-alpha", "16", "--lora-dropout", "0", "--max-length", "128", "--no-merge", "--json",
        "--launcher", "accelerate", "--num-processes", "2"]


def _launch(kind: str, tiny_model, data: Path, out: Path, tmp_path: Path, lr: str) -> dict:
    env = dict(os.environ, PREFKIT_RUNS_DIR=str(tmp_path / "runs"), PREFKIT_HOME=str(tmp_path / "home"),
               CUDA_VISIBLE_DEVICES="", PREFKIT_LOAD_PLUGINS="")
    env.pop("PREFKIT_LAUNCHED", None)
    cmd = [sys.executable, "-m", "prefkit", "train", kind, "--model", str(tiny_model), "--dataset", str(data),
           "--lr", lr, *ARGS, "-o", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "--multi_gpu" in p.stderr and "--num_processes 2" in p.stderr   # relaunched as 2 processes
    assert p.stdout.count('"kind"') == 1, p.stdout                          # one result, printed by rank 0
    return json.loads(p.stdout[p.stdout.index("{"):])


def _check_run(out: Path, result: dict, rows: int) -> list[float]:
    assert result["metrics"]["world_size"] == 2 and result["metrics"]["global_step"] == 6
    # 2 processes x batch 2: 4 rows per step, so 6 steps are 24 rows, i.e. 24 / rows epochs (data sharded)
    assert result["metrics"]["epoch"] == pytest.approx(24 / rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["config"]["world_size"] == 2
    assert "resumes" not in manifest                                         # opened once, by rank 0
    logs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in logs if x["type"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]                                       # each step logged once
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-3", "checkpoint-6"]
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "loss.png").exists()
    return [x["loss"] for x in logs if x["type"] == "train"]


def test_sft_and_dpo_on_two_cpu_processes(tiny_model, tmp_path):
    sft_data = tmp_path / "sft.jsonl"
    sft_data.write_text("".join(json.dumps(r) + "\n" for r in SFT_ROWS * 2))
    out = tmp_path / "sft"
    res = _launch("sft", tiny_model, sft_data, out, tmp_path, lr="3e-2")
    losses = _check_run(out, res, rows=8)
    assert losses[-1] < losses[0]

    pref = tmp_path / "pref.jsonl"
    pref.write_text("".join(json.dumps(r) + "\n" for r in PREF_ROWS * 2))
    out = tmp_path / "dpo"
    res = _launch("dpo", tiny_model, pref, out, tmp_path, lr="2e-2")
    losses = _check_run(out, res, rows=8)
    assert losses[-1] < losses[0]
