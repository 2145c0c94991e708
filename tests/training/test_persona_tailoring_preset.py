"""Persona tailoring on the training layer: `tailor train` is SFT → merge → DPO through the core chain,
with the `persona-tailoring-paper` preset's reference settings (flags over the preset)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_tailor_train_chain_with_the_paper_preset(prefkit_cli, persona_data, tiny_model, tmp_path):
    out = tmp_path / "chain"
    r = prefkit_cli("tailor", "train", str(tiny_model), "-s", "BeaverTails", "-t", "chosen", "--data-dir",
                    str(persona_data), "--preset", "persona-tailoring-paper", "--epochs", "2", "--limit", "3",
                    "--eval-limit", "2", "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert res["stages"] == [str(out / "sft"), str(out / "dpo")] and res["method"] == "dpo"
    sft = json.loads((out / "sft" / "manifest.json").read_text())["config"]
    dpo = json.loads((out / "dpo" / "manifest.json").read_text())["config"]
    for cfg in (sft, dpo):
        assert cfg["preset"] == "persona-tailoring-paper"
        assert cfg["batch_size"] == 1 and cfg["load_best"] and cfg["eval_strategy"] == "epoch"
        assert cfg["metric_for_best"] == "eval_loss" and cfg["epochs"] == 2             # the flag wins
        assert cfg["setting_sources"]["epochs"] == "chain settings"
        assert cfg["setting_sources"]["batch_size"] == "preset persona-tailoring-paper"
        assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["max_length"]) == (16, 32, 0.05, 512)
        assert cfg["format"] == "text" and cfg["text_template"] == "{prompt}"
    assert (sft["lr"], dpo["lr"], dpo["beta"]) == (2e-5, 5e-6, 0.1)
    assert sft["max_prompt_length"] is None and dpo["max_prompt_length"] == 128
    for stage in ("sft", "dpo"):   # LoRA on q and v only (PEFT's default for Llama)
        targets = json.loads((out / stage / "adapter" / "adapter_config.json").read_text())["target_modules"]
        assert sorted(targets) == ["q_proj", "v_proj"]
        metrics = json.loads((out / stage / "metrics.json").read_text())
        assert metrics["best_checkpoint"].startswith("checkpoint-") and metrics["best_epoch"] in (1.0, 2.0)
    # the DPO stage started from the merged SFT model, also its reference
    assert json.loads((out / "dpo" / "tailoring.json").read_text())["base_model"] == str((out / "sft" / "merged")
                                                                                           .resolve())
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines] == ["sft", "dpo"] and lines[1]["reference"] == lines[0]["model_out"]
    # the 128-token DPO prompt limit cut some of these long BeaverTails prompts, and said so
    assert json.loads((out / "dpo" / "metrics.json").read_text())["train_rows_truncated"] >= 1
    # re-running resumes: nothing is trained again
    r = prefkit_cli("tailor", "train", str(tiny_model), "-s", "BeaverTails", "-t", "chosen", "--data-dir",
                    str(persona_data), "--preset", "persona-tailoring-paper", "--epochs", "2", "--limit", "3",
                    "--eval-limit", "2", "-o", str(out), "--json")
    err = " ".join(r.stderr.split())
    assert r.exit_code == 0 and "holds a finished sft run" in err and "holds a finished dpo run" in err


def test_tailor_defaults_come_from_the_default_preset(prefkit_cli):
    import prefkit

    p = prefkit.get_preset("persona-tailoring")
    sft = p.values_for(prefkit.get_trainer("sft"))
    assert sft == {"format": "text", "max_length": 512, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                   "lr": 2e-5}
    r = prefkit_cli("tailor", "dpo", "--help")
    assert "--beta" in r.stdout and "--preset" in r.stdout
    assert "--beta" not in prefkit_cli("tailor", "sft", "--help").stdout
