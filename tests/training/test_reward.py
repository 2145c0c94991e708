"""Reward model training (TRL RewardTrainer) with LoRA; the merged model scores text."""

from __future__ import annotations

import pytest

from prefkit.training import train

from .conftest import PREF_ROWS, fast_config


@pytest.mark.slow
def test_reward_model(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    r = train("reward", tiny_model, PREF_ROWS, config=fast_config(lr=1e-2), output_dir=tmp_path / "rm")
    assert r.metrics["global_step"] == 2 and "train_loss" in r.metrics
    model = AutoModelForSequenceClassification.from_pretrained(str(r.merged_dir))
    tok = AutoTokenizer.from_pretrained(str(r.merged_dir))
    assert model.config.num_labels == 1 and tok.chat_template
    # the trained score head was saved (not a fresh random head): merged == base + adapter
    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_model), num_labels=1)
    base.config.pad_token_id = tok.pad_token_id
    adapted = PeftModel.from_pretrained(base, str(r.adapter_dir)).eval()
    enc = tok(["Paris.", "London, I think."], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = adapted(**enc).logits
        b = model.eval()(**enc).logits
    assert a.shape == (2, 1)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
