"""TrainConfig: validation, config files, CLI override precedence."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError
from prefkit.training.config import TrainConfig, merge_config, read_config_file


def test_defaults_and_learning_rate_per_kind():
    cfg = TrainConfig()
    assert cfg.lora and not cfg.no_lora and cfg.format == "chat" and not cfg.train_on_prompt
    assert cfg.gradient_checkpointing is False
    assert cfg.learning_rate("sft") == 2e-4
    assert TrainConfig(no_lora=True).learning_rate("sft") == 2e-5
    assert TrainConfig(lr=0.5).learning_rate("dpo") == 0.5


def test_no_lora_alias_and_targets_parsing():
    assert TrainConfig(no_lora=True).lora is False
    assert TrainConfig(lora=False).no_lora is True
    assert TrainConfig(lora_targets="q_proj, v_proj").lora_targets == ["q_proj", "v_proj"]


@pytest.mark.parametrize("kwargs,needle", [
    ({"format": "xml"}, "--format must be one of chat, text"),
    ({"report_to": "mlflow"}, "--report-to"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"max_steps": 0}, "--max-steps must be positive"),
    ({"lr": -1.0}, "--lr must be positive"),
    ({"format": "text", "text_template": "no placeholder"}, "must contain {prompt}"),
])
def test_invalid_settings(kwargs, needle):
    with pytest.raises(UsageError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        TrainConfig(**kwargs)


def test_identity_ignores_run_control_fields():
    a, b = TrainConfig(max_steps=5, resume=False), TrainConfig(max_steps=50, resume=True, logging_steps=1)
    assert a.identity() == b.identity()
    assert TrainConfig(lr=1e-3).identity() != a.identity()


def test_config_file_yaml_json_and_cli_override(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("max-steps: 7\nlr: 0.001\nlora_r: 4\nformat: text\n")
    j = tmp_path / "run.json"
    j.write_text(json.dumps({"max_steps": 7, "lr": 0.001, "lora_r": 4}))
    for path in (y, j):
        values = read_config_file(path)
        cli = TrainConfig(lora_r=32, lr=0.5)
        merged = merge_config(values, cli, explicit={"lora_r"})
        assert merged.max_steps == 7 and merged.lr == 0.001   # from the file
        assert merged.lora_r == 32                            # the flag given on the command line wins
    assert merge_config(read_config_file(y), TrainConfig(), explicit=set()).format == "text"


def test_config_file_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_config_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        read_config_file(bad)
    with pytest.raises(UsageError, match="unknown training setting 'lorra_r'"):
        TrainConfig.from_dict({"lorra_r": 3})
