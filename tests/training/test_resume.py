"""--resume: an interrupted run continues from its last checkpoint and ends where an uninterrupted one does."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from prefkit.errors import UsageError
from prefkit.training import last_checkpoint, train

from .conftest import SFT_ROWS, fast_config

pytestmark = pytest.mark.slow

ROWS = SFT_ROWS * 2  # 8 rows, batch 2: 4 steps per epoch, so resuming must skip the batches already seen


class Boom(RuntimeError):
    pass


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Boom(f"simulated crash at step {self.step}")


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _adapter(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_resume_matches_uninterrupted_run(tiny_model, tmp_path):
    import torch

    # dropout on, so the RNG state must be restored too; lr high enough that every step matters
    cfg = fast_config(max_steps=4, save_steps=2, lr=1e-2, lora_dropout=0.1, merge=False)
    full = train("sft", tiny_model, ROWS, config=cfg, output_dir=tmp_path / "full")

    out = tmp_path / "crashed"
    with pytest.raises(Boom):
        train("sft", tiny_model, ROWS, config=cfg, output_dir=out, callbacks=[StopAt(3)])
    assert last_checkpoint(out).name == "checkpoint-2"
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"

    # re-running without --resume is refused with a clear message (no silent restart over checkpoints)
    with pytest.raises(UsageError, match="--resume"):
        train("sft", tiny_model, ROWS, config=cfg, output_dir=out)

    counter = CountSteps()
    resumed = train("sft", tiny_model, ROWS, config=cfg.replace(resume=True), output_dir=out, callbacks=[counter])
    assert resumed.metrics["global_step"] == 4
    assert counter.steps == [3, 4]            # it continued from checkpoint-2 rather than starting over
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # the log keeps one line per step across the crash (steps 1-2 from the first attempt, 3-4 after resuming)
    logs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(x["step"] for x in logs if x["type"] == "train") == [1, 2, 3, 4]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest.get("resumes")


def test_fresh_discards_checkpoints(tiny_model, tmp_path):
    cfg = fast_config(max_steps=2, save_steps=1, merge=False)
    out = tmp_path / "o"
    with pytest.raises(Boom):
        train("sft", tiny_model, SFT_ROWS, config=cfg, output_dir=out, callbacks=[StopAt(2)])
    assert last_checkpoint(out) is not None
    r = train("sft", tiny_model, SFT_ROWS, config=cfg, output_dir=out, fresh=True)
    assert r.metrics["global_step"] == 2
    logs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs if x["type"] == "train"] == [1, 2]
