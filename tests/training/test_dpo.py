"""DPO: with and without LoRA, and after an SFT adapter (merged first, new adapter, merged SFT as reference)."""

from __future__ import annotations

import json

import pytest

from prefkit.training import prepare, train

from .conftest import PREF_ROWS, fast_config

pytestmark = pytest.mark.slow


def test_dpo_lora(tiny_model, tmp_path):
    pytest.importorskip("tensorboard")
    r = train("dpo", tiny_model, PREF_ROWS, config=fast_config(beta=0.2, report_to="tensorboard"),
              output_dir=tmp_path / "dpo")
    assert r.metrics["global_step"] == 2
    assert list((r.output_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (r.adapter_dir / "adapter_config.json").exists() and (r.merged_dir / "config.json").exists()
    logs = [json.loads(x) for x in (r.output_dir / "results.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in x or "rewards/chosen" in x for x in logs)


def test_dpo_full_finetune_text_format(tiny_model, tmp_path):
    import torch
    from safetensors.torch import load_file

    r = train("dpo", tiny_model, PREF_ROWS, config=fast_config(lora=False, lr=1e-3, format="text"),
              output_dir=tmp_path / "dpo-full")
    assert r.adapter_dir is None and (r.merged_dir / "model.safetensors").exists()
    assert (r.merged_dir / "tokenizer.json").exists()
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(r.merged_dir / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[key], after[key])      # full fine-tuning changed the base weights


def test_dpo_after_sft_adapter_merges_first(sft_result, tmp_path):
    from peft import PeftModel

    out = tmp_path / "dpo-after-sft"
    prepared = prepare("dpo", sft_result.adapter_dir, PREF_ROWS, config=fast_config(), output_dir=out)
    base = out / "base"
    assert (base / "config.json").exists() and (base / "tokenizer.json").exists()   # the SFT adapter, merged
    model = prepared.trainer.model
    assert isinstance(model, PeftModel)
    assert list(model.peft_config) == ["default"]                                  # one new adapter, not two
    assert not isinstance(model.get_base_model(), PeftModel)                       # never double-wrapped
    assert prepared.trainer.ref_model is None     # reference = the merged SFT model (adapter disabled)
    assert prepared.model_path == str(base.resolve())
    r = prepared.run()
    cfg = json.loads((r.adapter_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base.resolve())
    assert r.merged_dir is not None


def test_dpo_from_a_training_run_directory(sft_result, tmp_path):
    # a run directory resolves to its merged model: no adapter to merge
    prepared = prepare("dpo", sft_result.output_dir, PREF_ROWS, config=fast_config(), output_dir=tmp_path / "d")
    assert prepared.model_path == str(sft_result.merged_dir.resolve())
    assert not (tmp_path / "d" / "base").exists()
