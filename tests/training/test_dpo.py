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


HISTORY = [{"role": "user", "content": "I am planning a trip to Spain. " * 12},
           {"role": "assistant", "content": "Lovely! Spain has beaches, mountains and old towns. " * 6},
           {"role": "user", "content": "What should I see in Madrid?"}]
MULTI = [{"prompt": HISTORY, "chosen": "The Prado and the Retiro park.", "rejected": "Nothing, stay home."},
         {"prompt": HISTORY[-1:], "chosen": "The Royal Palace.", "rejected": "I don't know."},
         {"prompt": HISTORY[-1:], "chosen": "word " * 300, "rejected": "no."}]


def test_dpo_multi_turn_prompt_truncation_is_counted(tiny_model, tiny_tokenizer, tmp_path):
    """A multi-turn prompt is cut from its start (oldest turns first) to --max-prompt-length; the next
    assistant messages are never cut; a row whose response cannot fit is dropped and counted."""
    from prefkit.training.formats import fit_preference_rows

    cfg = fast_config(max_length=128, max_prompt_length=48, eval_strategy="no", long_responses="drop")
    prepared = prepare("dpo", tiny_model, MULTI, eval_data=MULTI, config=cfg, output_dir=tmp_path / "o")
    stats = prepared.fit_stats
    assert (stats.rows, stats.kept, stats.truncated, stats.dropped, stats.dropped_rows) == (3, 2, 1, 1, [2])
    ds = prepared.trainer.train_dataset
    assert len(ds) == 2
    first = tiny_tokenizer.decode(ds[0]["prompt_ids"])
    assert "What should I see in Madrid?" in first and "I am planning a trip" not in first   # end of history kept
    assert len(ds[0]["prompt_ids"]) <= 48
    assert tiny_tokenizer.decode(ds[0]["chosen_ids"]).startswith("The Prado and the Retiro park.")  # whole
    assert tiny_tokenizer.decode(ds[0]["rejected_ids"]).startswith("Nothing, stay home.")
    # the counts are in the run's metrics
    r = prepared.run()
    assert r.metrics["train_rows_truncated"] == 1 and r.metrics["train_rows_dropped_too_long"] == 1
    assert r.metrics["eval_rows_dropped_too_long"] == 1
    # by default (truncate) the long response is kept and cut by TRL at --max-length, and counted
    from prefkit.training.formats import normalize_rows

    chat = normalize_rows("dpo", MULTI, "chat", "{prompt}")
    rows, st = fit_preference_rows(chat, tiny_tokenizer, max_length=128, max_prompt_length=48)
    assert (st.kept, st.truncated, st.response_truncated, st.dropped) == (3, 1, 1, 0)
    # text prompts are cut by tokens, keeping their end
    rows, st = fit_preference_rows([{"prompt": "one two three four five " * 30 + "THE END", "chosen": " a",
                                     "rejected": " b"}], tiny_tokenizer, max_length=64, max_prompt_length=16)
    assert st.truncated == 1 and rows[0]["prompt"].endswith("THE END")
    assert len(tiny_tokenizer(rows[0]["prompt"])["input_ids"]) <= 16


def test_dpo_eval_each_epoch_and_best_checkpoint(tiny_model, tmp_path):
    cfg = fast_config(max_steps=-1, epochs=3, eval_strategy="epoch", load_best=True, lr=5e-2, save_total_limit=1)
    r = train("dpo", tiny_model, PREF_ROWS, eval_data=PREF_ROWS, config=cfg, output_dir=tmp_path / "o")
    m = r.metrics
    assert m["best_checkpoint"].startswith("checkpoint-") and m["best_epoch"] in (1.0, 2.0, 3.0)
    assert "eval_rewards/accuracies" in m and "eval_rewards/margins" in m and "eval_loss" in m
    logs = [json.loads(x) for x in (r.output_dir / "results.jsonl").read_text().splitlines()]
    evals = [x for x in logs if x["type"] == "eval"]
    assert [x["epoch"] for x in evals][:3] == [1.0, 2.0, 3.0]
    assert m["best_metric"] == min(x["eval_loss"] for x in evals[:3])
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved["best_checkpoint"] == m["best_checkpoint"] and "eval_rewards/accuracies" in saved
