"""ALOE training on the tiny model: the aloe-paper preset reaches the TRL arguments, a step runs, the chain
hands the SFT model to DPO, and the precedence preset < config file < flags is the core's."""

from __future__ import annotations

import json

import pytest

import prefkit
from prefkit_aloe import training

SFT_ROWS = [
    {"conversation_id": "c0", "messages": [
        {"role": "user", "content": "I just got back from walking my two dogs."},
        {"role": "assistant", "content": "Nice! What are their names?"},
        {"role": "user", "content": "Biscuit and Pepper, both rescues."},
        {"role": "assistant", "content": "Rescues are the best. How old are they?"}]},
    {"conversation_id": "c1", "messages": [
        {"role": "user", "content": "Finals week is killing me, anthropology exams."},
        {"role": "assistant", "content": "Hang in there. Which course is the hardest?"},
        {"role": "user", "content": "Kinship theory, honestly."},
        {"role": "assistant", "content": "That one is dense. Want a quick way to remember the terms?"}]},
]
HISTORY = [{"role": "user", "content": "I just got back from walking my two dogs."},
           {"role": "assistant", "content": "Nice! What are their names?"},
           {"role": "user", "content": "Biscuit and Pepper, both rescues."}]
DPO_ROWS = [
    {"prompt": HISTORY, "chosen": "Rescue dogs are lucky to have you. How old are they?",
     "rejected": "Dogs are mammals of the family Canidae."},
    {"prompt": HISTORY[:1], "chosen": "Sounds lovely, what are their names?", "rejected": "Okay."},
    {"prompt": [{"role": "user", "content": "Finals week is killing me."}], "chosen": "Hang in there!",
     "rejected": "Exams are assessments."},
    {"prompt": [{"role": "user", "content": "Kinship theory is dense."}], "chosen": "It really is, which part?",
     "rejected": "Please consult a textbook."},
]
FAST = {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "save_steps": 100}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_preset_holds_the_reference_settings():
    p = prefkit.get_preset("aloe-paper")
    sft = p.values_for(prefkit.get_trainer("sft"))
    dpo = p.values_for(prefkit.get_trainer("dpo"))
    for v in (sft, dpo):
        assert v["lora"] is False and v["lr"] == 1e-5 and v["epochs"] == 1.0 and v["max_length"] == 4096
    assert sft["batch_size"] * sft["grad_accum"] == 48 == dpo["batch_size"] * dpo["grad_accum"]
    assert (sft["batch_size"], dpo["batch_size"], dpo["grad_accum"]) == (1, 4, 12)
    assert dpo["beta"] == 0.9 and dpo["max_prompt_length"] == 3584 and "beta" not in sft
    assert sft["dtype"] == dpo["dtype"] == "bfloat16"  # full fine-tuning in bf16, as the reference
    assert "bf16" not in sft  # bf16 autocast is the core's automatic choice: on where the GPU supports it


def test_preset_values_reach_the_trl_arguments(tiny_model, tmp_path):
    prep = prefkit.get_trainer("dpo").prepare(tiny_model, DPO_ROWS, output_dir=tmp_path / "prep", preset="aloe-paper")
    args = prep.trainer.args
    assert args.beta == 0.9 and args.learning_rate == 1e-5 and args.num_train_epochs == 1.0
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 12
    assert args.max_length == 4096 and args.logging_steps == 1 and args.lr_scheduler_type == "linear"
    assert prep.peft is False  # full fine-tuning
    sft = prefkit.get_trainer("sft").prepare(tiny_model, [{"messages": r["messages"]} for r in SFT_ROWS],
                                             output_dir=tmp_path / "prep-sft", preset="aloe-paper")
    assert sft.trainer.args.gradient_accumulation_steps == 48 and sft.trainer.args.per_device_train_batch_size == 1
    # multi-turn SFT: the loss covers both assistant turns of a conversation, no user token
    row = sft.trainer.train_dataset[0]
    labelled = [t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100]
    text = sft.trainer.processing_class.decode(labelled)
    assert "What are their names?" in text and "How old are they?" in text and "Biscuit" not in text


def test_a_dpo_step_runs_with_config_file_over_preset_and_flags_over_both(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "dpo.jsonl", DPO_ROWS)
    conf = tmp_path / "run.yaml"
    conf.write_text("beta: 0.5\nlr: 3.0e-5\n")
    res = training.train_stage("dpo", str(tiny_model), training.StageData(data), config_file=str(conf),
                               flags={**FAST, "lr": 2e-5}, output_dir=str(tmp_path / "dpo"))
    assert res.merged_dir.exists() and res.metrics["global_step"] == 1
    cfg = json.loads((tmp_path / "dpo" / "manifest.json").read_text())["config"]
    src = cfg["setting_sources"]
    assert cfg["preset"] == "aloe-paper"
    assert cfg["beta"] == 0.5 and src["beta"] == f"--config {conf}"          # file over preset
    assert cfg["lr"] == 2e-5 and src["lr"] == "flag"                          # flag over file
    assert cfg["max_prompt_length"] == 3584 and src["max_prompt_length"] == "preset aloe-paper"
    assert cfg["lora"] is False and cfg["max_length"] == 4096


def test_the_chain_hands_the_sft_model_to_dpo(tiny_model, tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    dpo = write_jsonl(tmp_path / "dpo.jsonl", DPO_ROWS)
    res = training.train_chain(str(tiny_model), training.StageData(sft), training.StageData(dpo), flags=dict(FAST),
                               dpo_flags={"beta": 0.8}, output_dir=str(tmp_path / "chain"))
    s1, s2 = res.stages
    assert (s1.trainer, s2.trainer) == ("sft", "dpo")
    assert s2.model_in == s1.model_out and str(s1.model_out).endswith("merged")
    lines = [json.loads(x) for x in (tmp_path / "chain" / "results.jsonl").read_text().splitlines()]
    assert lines[1]["reference"] == lines[0]["model_out"]
    dcfg = json.loads((s2.output_dir / "manifest.json").read_text())["config"]
    assert dcfg["beta"] == 0.8 and dcfg["lr"] == 1e-5 and dcfg["grad_accum"] == 1
    assert res.model_dir and (tmp_path / "chain").exists()


def test_bad_training_input_is_one_clear_error(tiny_model, tmp_path):
    bad = write_jsonl(tmp_path / "sft-as-dpo.jsonl", SFT_ROWS)
    with pytest.raises(prefkit.UsageError, match="no column chosen, prompt, rejected|no column prompt"):
        training.train_stage("dpo", str(tiny_model), training.StageData(bad), flags=FAST)
    conf = tmp_path / "bad.yaml"
    conf.write_text("no_such_setting: 1\n")
    with pytest.raises(prefkit.UsageError, match="no_such_setting"):
        training.train_stage("dpo", str(tiny_model), training.StageData(write_jsonl(tmp_path / "d.jsonl", DPO_ROWS)),
                             config_file=str(conf), flags=FAST)
