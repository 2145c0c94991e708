"""A third-party trainer: registered through `register_trainers` in the test, it gets `prefkit train kto`
with exactly its own flags (and the shared and model ones), and trains through the whole layer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import prefkit
from prefkit.options import opt


@dataclass
class KTOTrainConfig(prefkit.BaseTrainConfig):
    """KTO (TRL KTOTrainer) on prompt/completion/label rows."""

    default_lr = (5e-5, 5e-7)

    beta: float = opt(0.1, help="KTO beta.")
    desirable_weight: float = opt(1.0, help="Weight of the desirable (label true) examples' loss.")


class KTOTrainer(prefkit.TRLTrainer):
    name = "kto"
    description = "Kahneman-Tversky optimization on prompt/completion/label rows (TRL KTOTrainer)."
    columns = "prompt, completion, label"
    trl_names = ("KTOTrainer", "KTOConfig")
    config_class = KTOTrainConfig

    def normalize_rows(self, rows, cfg, template):
        out = []
        for i, r in enumerate(rows):
            if not {"prompt", "completion", "label"} <= set(r):
                raise prefkit.UsageError(f"kto training data needs prompt, completion and label; row {i} has "
                                         f"{', '.join(sorted(r))}")
            out.append({"prompt": r["prompt"], "completion": " " + r["completion"], "label": bool(r["label"])})
        return out

    def trl_args(self, cfg):
        return {"beta": cfg.beta, "desirable_weight": cfg.desirable_weight}


class KTOPlugin:
    @prefkit.hookimpl
    def register_trainers(self, register):
        register(KTOTrainer())

    @prefkit.hookimpl
    def register_training_presets(self, register):
        register(prefkit.TrainingPreset("kto-test", "test preset", settings={"lora_r": 4},
                                        per_trainer={"kto": {"desirable_weight": 2.0}}, source="a test"))


ROWS = [{"prompt": "Capital of France?", "completion": "Paris.", "label": True},
        {"prompt": "Capital of France?", "completion": "London.", "label": False},
        {"prompt": "Two plus two?", "completion": "Four.", "label": True},
        {"prompt": "Two plus two?", "completion": "Five.", "label": False}]


@pytest.fixture
def kto_plugin():
    from prefkit.testing.core import registered_plugin

    with registered_plugin(KTOPlugin(), name="kto-plugin") as p:
        yield p


def _flags(help_text: str) -> set[str]:
    import re

    return set(re.findall(r"--[a-z][a-z0-9-]+", help_text))


def test_each_train_command_has_exactly_its_trainers_flags(prefkit_cli, kto_plugin):
    flags = {name: _flags(prefkit_cli("train", name, "--help").stdout) for name in ("sft", "dpo", "reward", "kto")}
    for name in flags:
        assert {"--model", "--dataset", "--preset", "--config", "--lora-r", "--max-length", "--load-best"} <= flags[name]
    assert "--beta" not in flags["sft"] and "--loss-type" not in flags["sft"] and "--ref-model" not in flags["sft"]
    assert "--beta" in flags["dpo"] and "--train-turns" not in flags["dpo"] and "--train-on-prompt" not in flags["dpo"]
    assert "--train-turns" in flags["sft"] and "--beta" not in flags["reward"]
    assert {"--beta", "--desirable-weight"} <= flags["kto"] and "--train-turns" not in flags["kto"]
    assert "--desirable-weight" not in flags["dpo"]
    r = prefkit_cli("train", "sft", "--beta", "0.2", "--model", "m", "--dataset", "d")
    assert r.exit_code == 2 and "--beta" in r.output      # not accepted by sft


def test_trainers_and_presets_listings(prefkit_cli, kto_plugin):
    r = prefkit_cli("trainers", "--json")
    rows = {t["name"]: t for t in r.json()}
    assert rows["kto"]["plugin"] == "kto-plugin" and rows["kto"]["own_settings"] == ["beta", "desirable_weight"]
    assert rows["sft"]["own_settings"] == ["train_on_prompt", "train_turns"]
    r = prefkit_cli("train", "presets", "--json")
    presets = {p["name"]: p for p in r.json()}
    assert presets["kto-test"]["plugin"] == "kto-plugin" and presets["kto-test"]["per_trainer"]["kto"] == {
        "desirable_weight": 2.0}
    assert presets["persona-tailoring-paper"]["settings"]["epochs"] == 10
    r = prefkit_cli("train", "presets")
    assert "kto-test" in r.stdout and "desirable_weight=2.0" in r.stdout


@pytest.mark.slow
def test_plugin_trainer_trains_through_its_own_command(prefkit_cli, kto_plugin, tiny_model, tmp_path):
    data = tmp_path / "kto.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    conf = tmp_path / "run.yaml"
    conf.write_text("desirable_weight: 3.0\nlora_r: 6\nmax_steps: 2\n")
    r = prefkit_cli("train", "kto", "--model", tiny_model, "--dataset", data, "--batch-size", "4",
                    "--logging-steps", "1", "--max-length", "64", "--preset", "kto-test", "--config", conf,
                    "--lora-r", "2", "--format", "text", "-o", tmp_path / "kto", "--json")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert res["kind"] == "kto" and res["metrics"]["global_step"] == 2 and res["merged_dir"]
    manifest = json.loads((tmp_path / "kto" / "manifest.json").read_text())
    cfg = manifest["config"]
    assert manifest["identity"]["kind"] == "kto" and cfg["preset"] == "kto-test"
    # preset < config file < flag
    assert cfg["desirable_weight"] == 3.0 and cfg["lora_r"] == 2
    assert cfg["setting_sources"]["desirable_weight"] == f"--config {conf}"
    assert cfg["setting_sources"]["lora_r"] == "flag"
    assert json.loads((tmp_path / "kto" / "adapter" / "adapter_config.json").read_text())["r"] == 2
