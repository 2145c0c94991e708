"""Per-trainer configs: validation, layered resolution (preset < config file < flags), presets."""

from __future__ import annotations

import json

import pytest

import prefkit
from prefkit.errors import UsageError
from prefkit.training.config import (BaseTrainConfig, DPOTrainConfig, SFTTrainConfig, TrainConfig,
                                     TrainModelConfig, read_config_file, resolve_configs)


def test_defaults_and_learning_rate_per_trainer():
    cfg = SFTTrainConfig()
    assert cfg.format == "chat" and not cfg.train_on_prompt and cfg.train_turns == "all"
    assert TrainModelConfig().lora and TrainModelConfig().gradient_checkpointing is False
    assert cfg.learning_rate(lora=True) == 2e-4 and cfg.learning_rate(lora=False) == 2e-5
    assert DPOTrainConfig().learning_rate(lora=True) == 5e-5
    assert DPOTrainConfig(lr=0.5).learning_rate() == 0.5


def test_each_trainer_owns_its_fields():
    assert "beta" in DPOTrainConfig.field_names() and "beta" not in SFTTrainConfig.field_names()
    assert "train_turns" in SFTTrainConfig.field_names() and "train_turns" not in DPOTrainConfig.field_names()
    assert not set(TrainModelConfig.field_names()) & set(BaseTrainConfig.field_names())
    with pytest.raises(UsageError, match="'beta' is not a setting of this trainer"):
        resolve_configs(SFTTrainConfig, [("flag", {"beta": 0.2})])


def test_targets_parsing():
    assert TrainModelConfig(lora_targets="q_proj, v_proj").lora_targets == ["q_proj", "v_proj"]


@pytest.mark.parametrize("cls,kwargs,needle", [
    (SFTTrainConfig, {"format": "xml"}, "--format must be one of chat, text"),
    (SFTTrainConfig, {"report_to": "mlflow"}, "--report-to"),
    (SFTTrainConfig, {"batch_size": 0}, "--batch-size must be at least 1"),
    (SFTTrainConfig, {"max_steps": 0}, "--max-steps must be positive"),
    (SFTTrainConfig, {"lr": -1.0}, "--lr must be positive"),
    (SFTTrainConfig, {"format": "text", "text_template": "no placeholder"}, "must contain {prompt}"),
    (SFTTrainConfig, {"train_turns": "first"}, "--train-turns must be one of all, last"),
    (DPOTrainConfig, {"max_length": 128, "max_prompt_length": 128}, "must be below --max-length"),
    (DPOTrainConfig, {"load_best": True}, "--load-best needs evaluation during training"),
    (DPOTrainConfig, {"eval_strategy": "steps"}, "needs --eval-steps"),
    (DPOTrainConfig, {"beta": 0}, "--beta must be positive"),
])
def test_invalid_settings(cls, kwargs, needle):
    with pytest.raises(UsageError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        cls(**kwargs)


def test_eval_steps_implies_step_evaluation():
    assert SFTTrainConfig(eval_steps=5).eval_strategy == "steps"
    assert SFTTrainConfig(eval_strategy="epoch", load_best=True).load_best


def test_identity_ignores_run_control_fields():
    a, b = SFTTrainConfig(max_steps=5, resume=False), SFTTrainConfig(max_steps=50, resume=True, logging_steps=1)
    assert a.identity() == b.identity()
    assert SFTTrainConfig(lr=1e-3).identity() != a.identity()


def test_layers_later_wins_and_sources_are_recorded():
    cfg, mcfg, sources = resolve_configs(DPOTrainConfig, [
        ("preset p", {"beta": 0.5, "lr": 1e-3, "lora_r": 4, "epochs": 3}),
        ("--config f.yaml", {"beta": 0.3, "lora_r": 8}),
        ("flag", {"beta": 0.2})])
    assert (cfg.beta, cfg.lr, cfg.epochs, mcfg.lora_r) == (0.2, 1e-3, 3, 8)
    assert sources == {"beta": "flag", "lr": "preset p", "lora_r": "--config f.yaml", "epochs": "preset p"}


def test_legacy_flat_config_resolves_per_trainer():
    trainer = prefkit.get_trainer("dpo")
    cfg, mcfg, _ = trainer.resolve(TrainConfig(max_steps=3, beta=0.3, lora_r=4, no_lora=False))
    assert isinstance(cfg, DPOTrainConfig) and cfg.beta == 0.3 and cfg.max_steps == 3 and mcfg.lora_r == 4
    with pytest.raises(UsageError, match="'beta' is not a setting"):
        prefkit.get_trainer("sft").resolve(TrainConfig(beta=0.3))


def test_preset_under_explicit_config_dataclass():
    """A config dataclass contributes its non-default values only, so the preset's others survive."""
    preset = prefkit.TrainingPreset("t", settings={"epochs": 4, "lora_r": 2}, per_trainer={"dpo": {"beta": 0.7}})
    cfg, mcfg, prov = prefkit.get_trainer("dpo").resolve(DPOTrainConfig(epochs=2), preset=preset)
    assert (cfg.epochs, cfg.beta, mcfg.lora_r) == (2, 0.7, 2)
    assert prov["preset"] == "t" and prov["sources"]["beta"] == "preset t" and prov["sources"]["epochs"] == "config"
    # a preset's shared settings only reach the trainers that have them; per-trainer ones are checked
    cfg, _, _ = prefkit.get_trainer("sft").resolve(None, preset=preset)
    assert cfg.epochs == 4
    bad = prefkit.TrainingPreset("bad", per_trainer={"sft": {"beta": 0.1}})
    with pytest.raises(UsageError, match="beta is not a setting of trainer 'sft'"):
        prefkit.get_trainer("sft").resolve(None, preset=bad)


def test_persona_paper_preset_is_registered_with_the_reference_settings():
    p = prefkit.get_preset("persona-tailoring-paper")
    sft = p.values_for(prefkit.get_trainer("sft"))
    dpo = p.values_for(prefkit.get_trainer("dpo"))
    assert sft["epochs"] == 10 and sft["batch_size"] == 1 and sft["load_best"] and sft["eval_strategy"] == "epoch"
    assert sft["metric_for_best"] == "eval_loss" and sft["lora_targets"] == ["peft-default"]
    assert "max_prompt_length" not in sft and dpo["max_prompt_length"] == 128
    assert (sft["lr"], dpo["lr"], dpo["beta"]) == (2e-5, 5e-6, 0.1)
    with pytest.raises(UsageError, match="unknown training preset 'nope'"):
        prefkit.get_preset("nope")


def test_config_file_yaml_json(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("max-steps: 7\nlr: 0.001\nlora_r: 4\nformat: text\n")
    j = tmp_path / "run.json"
    j.write_text(json.dumps({"max_steps": 7, "lr": 0.001, "lora_r": 4}))
    for path in (y, j):
        values = read_config_file(path)
        cfg, mcfg, _ = resolve_configs(SFTTrainConfig, [("file", values), ("flag", {"lora_r": 32})])
        assert cfg.max_steps == 7 and cfg.lr == 0.001 and mcfg.lora_r == 32


def test_config_file_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_config_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        read_config_file(bad)
    with pytest.raises(UsageError, match="unknown training setting 'lorra_r'"):
        SFTTrainConfig.from_dict({"lorra_r": 3})
