"""The CLI end to end: prefkit train sft|dpo|reward, merge-adapter, train list, --config, --launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefkit.commands.train import accelerate_command

from .conftest import PREF_ROWS, SFT_ROWS


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


FAST = ["--max-steps", "2", "--batch-size", "2", "--logging-steps", "1", "--lora-r", "4", "--max-length", "128"]


@pytest.mark.slow
def test_cli_sft_dpo_reward_and_merge(prefkit_cli, tiny_model, tmp_path):
    sft = _jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    pref = _jsonl(tmp_path / "pref.jsonl", PREF_ROWS)
    conf = tmp_path / "run.yaml"
    conf.write_text(f"model: {tiny_model}\nmax_steps: 2\nbatch_size: 2\nlora_r: 4\nlora_alpha: 8\nlogging_steps: 1\n")

    r = prefkit_cli("train", "sft", "--dataset", sft, "--config", conf, "--lora-r", "8", "--json",
                    "-o", tmp_path / "sft")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert res["kind"] == "sft" and res["metrics"]["global_step"] == 2
    adapter_cfg = json.loads((Path(res["adapter_dir"]) / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8 and adapter_cfg["lora_alpha"] == 8   # flag beats file; file beats default

    # DPO from the SFT run directory (its merged model), human-readable output
    r = prefkit_cli("train", "dpo", "--model", tmp_path / "sft", "--dataset", pref, *FAST, "-o", tmp_path / "dpo")
    assert r.exit_code == 0, r.output
    assert "dpo done" in r.stdout and "prefkit generate --backend hf --model" in r.stdout

    r = prefkit_cli("train", "reward", "--model", tiny_model, "--dataset", pref, *FAST, "--no-merge", "--json",
                    "-o", tmp_path / "rm")
    assert r.exit_code == 0, r.output
    assert r.json()["merged_dir"] is None and r.json()["adapter_dir"]

    # merge-adapter, given the run directory, reads the base model from the adapter config
    r = prefkit_cli("merge-adapter", tmp_path / "sft", "--output-dir", tmp_path / "m", "--json")
    assert r.exit_code == 0, r.output
    merged = Path(r.json()["merged_dir"])
    assert (merged / "config.json").exists() and (merged / "tokenizer.json").exists()
    r = prefkit_cli("train", "merge-adapter", tmp_path / "sft" / "adapter", "-o", tmp_path / "m2")
    assert r.exit_code == 0 and (tmp_path / "m2" / "model.safetensors").exists()


def test_cli_errors_are_one_line(prefkit_cli, tiny_model, tiny_model_no_template, tmp_path):
    bad = _jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    r = prefkit_cli("train", "dpo", "--model", tiny_model, "--dataset", bad, "-o", tmp_path / "x")
    assert r.exit_code == 2
    assert "Error: dpo training data needs columns 'prompt', 'chosen' and 'rejected'" in r.stderr
    assert "Traceback" not in r.output
    r = prefkit_cli("train", "sft", "--dataset", bad)
    assert r.exit_code == 2 and "give --model" in r.stderr
    sft = _jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    r = prefkit_cli("train", "sft", "--model", tiny_model_no_template, "--dataset", sft, "-o", tmp_path / "y")
    assert r.exit_code == 2 and "no chat template" in r.stderr and "--format text" in r.stderr
    r = prefkit_cli("train", "sft", "--model", tiny_model, "--dataset", sft, "--format", "xml")
    assert r.exit_code == 2 and "--format must be one of chat, text" in r.stderr
    r = prefkit_cli("train", "sft", "--model", tiny_model, "--dataset", sft, "--column-map", "completion=nope")
    assert r.exit_code == 2 and "no column 'nope'" in r.stderr
    conf = tmp_path / "c.yaml"
    conf.write_text("max_stepz: 3\n")
    r = prefkit_cli("train", "sft", "--model", tiny_model, "--dataset", sft, "--config", conf)
    assert r.exit_code == 2 and "unknown setting(s) max_stepz" in r.stderr
    r = prefkit_cli("merge-adapter", tiny_model, "-o", tmp_path / "z")
    assert r.exit_code == 2 and "not a PEFT adapter directory" in r.stderr


def test_cli_column_map_and_list(prefkit_cli, tiny_model, tmp_path):
    rows = [{"question": r["prompt"], "answer": r["completion"]} for r in SFT_ROWS]
    data = _jsonl(tmp_path / "qa.jsonl", rows)
    from prefkit.commands.train import load_training_rows

    mapped = load_training_rows(str(data), None, None, 2, "prompt=question,completion=answer")
    assert mapped == [{"prompt": r["prompt"], "completion": r["completion"]} for r in SFT_ROWS[:2]]
    r = prefkit_cli("train", "list", "--json")
    assert r.exit_code == 0
    assert {"sft", "dpo", "reward"} <= {t["name"] for t in r.json()}


def test_accelerate_command_line():
    argv = ["train", "sft", "--model", "m", "--launcher", "accelerate", "--accelerate-config=cfg.yaml",
            "--num-processes", "4", "--max-steps", "5"]
    gpu = accelerate_command(argv, "cfg.yaml", 4, gpus=4)
    assert gpu[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert gpu[3:7] == ["--config_file", "cfg.yaml", "--num_processes", "4"]
    assert gpu[7:] == ["-m", "prefkit", "train", "sft", "--model", "m", "--max-steps", "5"]
    cpu = accelerate_command(argv, "cfg.yaml", 4, gpus=0)    # no CUDA: 4 CPU processes (DDP over gloo)
    assert "--multi_gpu" in cpu and cpu[cpu.index("--num_processes") + 1] == "4" and "--config_file" not in cpu
    one = accelerate_command(argv, None, None, gpus=0)
    assert "--cpu" in one and one[one.index("--num_processes") + 1] == "1"


def test_example_accelerate_configs_parse():
    import yaml

    root = Path(__file__).resolve().parents[2] / "docs" / "accelerate"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        cfg = yaml.safe_load(f.read_text())
        assert cfg["distributed_type"] in ("MULTI_GPU", "DEEPSPEED", "FSDP"), f
        assert cfg["num_processes"] >= 1


@pytest.mark.slow
def test_launcher_accelerate_runs_on_cpu(tiny_model, tmp_path):
    """--launcher accelerate re-executes under `accelerate launch`; without a GPU: one CPU process."""
    sft = _jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    env = dict(os.environ, PREFKIT_RUNS_DIR=str(tmp_path / "runs"), PREFKIT_HOME=str(tmp_path / "home"),
               CUDA_VISIBLE_DEVICES="", PREFKIT_LOAD_PLUGINS="")
    env.pop("PREFKIT_LAUNCHED", None)
    cmd = [sys.executable, "-m", "prefkit", "train", "sft", "--model", str(tiny_model), "--dataset", str(sft), *FAST,
           "--no-merge", "--launcher", "accelerate", "--accelerate-config",
           str(Path(__file__).resolve().parents[2] / "docs" / "accelerate" / "ddp-multi-gpu.yaml"),
           "-o", str(tmp_path / "acc"), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "accelerate.commands.launch" in p.stderr
    out = json.loads(p.stdout[p.stdout.index("{"):])
    assert out["metrics"]["global_step"] == 2
    manifest = json.loads((tmp_path / "acc" / "manifest.json").read_text())
    assert "--launcher" not in manifest["argv"]      # the child ran the plain command


@pytest.mark.slow
def test_generate_with_hf_backend_from_merged_model(prefkit_cli, sft_result, tmp_path):
    """A merged training output is a normal HF model dir: `prefkit generate --backend hf --model DIR` runs it."""
    pytest.importorskip("prefkit.backends.hf")
    rows = _jsonl(tmp_path / "in.jsonl", [{"prompt": "What is the capital of France?"}])
    r = prefkit_cli("generate", "--input", rows, "--backend", "hf", "--model", sft_result.merged_dir,
                    "--max-tokens", "5", "--temperature", "0", "-o", tmp_path / "gen", "--json")
    assert r.exit_code == 0, r.output
    from prefkit.runs import read_jsonl

    # a random tiny model may emit end-of-sequence at once (depends on the tokenizer's training text):
    # the engine records that as a failure ("empty completion"), never as an empty answer. Either way
    # the merged model was loaded and run by the hf backend.
    done = read_jsonl(tmp_path / "gen" / "results.jsonl")
    failed = read_jsonl(tmp_path / "gen" / "failures.jsonl")
    assert len(done) + len(failed) == 1
    if done:
        assert isinstance(done[0]["text"], str) and done[0]["text"]
    else:
        assert "empty completion" in failed[0]["error"]


@pytest.mark.slow
def test_cli_chain_from_a_yaml_stage_list(prefkit_cli, tiny_model, tmp_path):
    sft = _jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    pref = _jsonl(tmp_path / "pref.jsonl", PREF_ROWS)
    conf = tmp_path / "chain.yaml"
    conf.write_text(f"model: {tiny_model}\nmax_steps: 2\nbatch_size: 2\nlora_r: 4\nlogging_steps: 1\n"
                    f"stages:\n  - trainer: sft\n    dataset: {sft}\n"
                    f"  - trainer: dpo\n    dataset: {pref}\n    settings: {{beta: 0.3}}\n")
    r = prefkit_cli("train", "chain", "--config", conf, "--max-length", "128", "-o", tmp_path / "c", "--json")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert [s["trainer"] for s in res["stages"]] == ["sft", "dpo"]
    assert res["stages"][1]["model_in"] == res["stages"][0]["model_out"] and res["model_dir"].endswith("02-dpo/merged")
    cfg = json.loads((tmp_path / "c" / "02-dpo" / "manifest.json").read_text())["config"]
    assert cfg["beta"] == 0.3 and cfg["max_length"] == 128 and cfg["max_steps"] == 2
    assert cfg["setting_sources"]["max_length"] == "flag" and cfg["setting_sources"]["max_steps"] == f"--config {conf}"
    # the short form: one dataset, --stages; a bad stage list is one clear error
    r = prefkit_cli("train", "chain", "--model", tiny_model, "--stages", "sft,nope", "--dataset", sft)
    assert r.exit_code == 2 and "unknown trainer 'nope'" in r.stderr
    r = prefkit_cli("train", "chain", "--model", tiny_model, "--stages", "sft,dpo", "--dataset", sft,
                    "--splits", "a")
    assert r.exit_code == 2 and "--splits names 1 splits for 2 stages" in r.stderr
