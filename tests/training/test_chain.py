"""train_chain: SFT → DPO, each stage's output the next stage's model and reference; resume after a kill."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

import prefkit
from prefkit.errors import UsageError

from .conftest import PREF_ROWS, SFT_ROWS

pytestmark = pytest.mark.slow

FAST = {"max_steps": 4, "batch_size": 2, "logging_steps": 1, "save_steps": 2, "lora_r": 4, "lora_alpha": 8,
        "max_length": 128}


class Killed(RuntimeError):
    pass


class KillIn(TrainerCallback):
    """Raise in the stage whose run directory ends with ``stage``: at its start, or after step ``step``."""

    def __init__(self, stage: str, step: int | None = None):
        self.stage, self.step = stage, step

    def _here(self, args) -> bool:
        return args.output_dir.rstrip("/").endswith(f"{self.stage}/checkpoints")

    def on_train_begin(self, args, state, control, **kwargs):
        if self._here(args) and self.step is None:
            raise Killed("killed between stages")

    def on_step_end(self, args, state, control, **kwargs):
        if self._here(args) and state.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


class Steps(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append((args.output_dir.split("/")[-2], state.global_step))


def _stages(handoff="merged"):
    return [prefkit.ChainStage("sft", SFT_ROWS, config={"lr": 1e-2}, handoff=handoff),
            prefkit.ChainStage("dpo", PREF_ROWS, eval_data=PREF_ROWS[:2], config={"beta": 0.2})]


def test_chain_resumes_at_the_first_unfinished_stage(tiny_model, tmp_path):
    out = tmp_path / "chain"
    with pytest.raises(Killed):
        prefkit.train_chain(tiny_model, _stages(), out, shared=FAST, callbacks=[KillIn("02-dpo")])
    sft_ckpts = sorted(p.name for p in (out / "01-sft" / "checkpoints").glob("checkpoint-*"))
    assert (out / "01-sft" / "trainer_done.json").exists() and not list((out / "02-dpo").glob("checkpoints/checkpoint-*"))
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    # killed again inside the DPO stage, after its step-2 checkpoint
    with pytest.raises(Killed):
        prefkit.train_chain(tiny_model, _stages(), out, shared=FAST, callbacks=[KillIn("02-dpo", step=3)])
    steps = Steps()
    result = prefkit.train_chain(tiny_model, _stages(), out, shared=FAST, callbacks=[steps])
    # SFT was not trained again; DPO continued from its checkpoint (steps 3 and 4 only)
    assert steps.seen == [("02-dpo", 3), ("02-dpo", 4)]
    assert sorted(p.name for p in (out / "01-sft" / "checkpoints").glob("checkpoint-*")) == sft_ckpts
    sft, dpo = result.stages
    assert sft.skipped and not dpo.skipped
    assert dpo.model_in == sft.model_out == str((out / "01-sft" / "merged").resolve())
    assert result.final.merged_dir == out / "02-dpo" / "merged" and result.final.metrics["global_step"] == 4
    # DPO started from (and its reference is) the SFT model
    dpo_manifest = json.loads((out / "02-dpo" / "manifest.json").read_text())
    assert dpo_manifest["identity"]["model"] == sft.model_out and dpo_manifest["config"]["beta"] == 0.2
    assert dpo_manifest["config"]["setting_sources"]["max_steps"] == "chain settings"
    # the chain's run: one line per finished stage, with its settings and output hash
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines] == ["01-sft", "02-dpo"]
    assert lines[1]["reference"] == sft.model_out and lines[1]["config"]["beta"] == 0.2
    assert lines[0]["output_hash"] == prefkit.training.chain.output_hash(sft.model_out) == sft.output_hash
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and [s["trainer"] for s in manifest["config"]["stages"]] == ["sft", "dpo"]
    # a finished chain re-run trains nothing
    steps = Steps()
    again = prefkit.train_chain(tiny_model, _stages(), out, shared=FAST, callbacks=[steps])
    assert steps.seen == [] and all(s.skipped for s in again.stages)
    # other settings for the same directory are refused
    with pytest.raises(UsageError, match="other settings"):
        prefkit.train_chain(tiny_model, _stages(), out, shared={**FAST, "lora_r": 8})


def test_adapter_handoff_merges_at_the_next_stage(tiny_model, tmp_path):
    out = tmp_path / "chain"
    result = prefkit.train_chain(tiny_model, _stages(handoff="adapter"), out, shared=FAST)
    sft, dpo = result.stages
    assert not (out / "01-sft" / "merged").exists()                 # only the adapter was saved
    assert sft.model_out.endswith("01-sft/adapter")
    assert (out / "02-dpo" / "base" / "config.json").exists()        # merged onto its base by the DPO stage
    assert result.final.base_model == str((out / "02-dpo" / "base").resolve())
