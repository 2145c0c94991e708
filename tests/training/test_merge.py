"""merge-adapter round trip: the merged model generates exactly what base + adapter generates."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError
from prefkit.training import merge_adapter

pytestmark = pytest.mark.slow


def _greedy(model, tok, prompt, n=12):
    import torch

    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_merge_round_trip(sft_result, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = merge_adapter(sft_result.adapter_dir, tmp_path / "merged")
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    assert tok.chat_template                                    # tokenizer + chat template travel along
    assert json.loads((merged_dir / "prefkit_merge.json").read_text())["base_model"] == str(tiny_model.resolve())
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model)).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                                        str(sft_result.adapter_dir)).eval()
    prompts = ["What is the capital of France?", "Write a haiku about rain."]
    for p in prompts:
        assert _greedy(merged, tok, p) == _greedy(adapted, tok, p)
    # and the adapter mattered (otherwise the comparison would prove nothing)
    assert any(_greedy(base, tok, p) != _greedy(merged, tok, p) for p in prompts)


def test_merge_errors(tmp_path, tiny_model):
    with pytest.raises(UsageError, match="not a PEFT adapter directory"):
        merge_adapter(tiny_model, tmp_path / "x")
    bad = tmp_path / "adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{}")
    with pytest.raises(UsageError, match="does not name its base model"):
        merge_adapter(bad, tmp_path / "y")
