"""Trainer callbacks: a rich progress bar and the run store's log of every logged step."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class RichProgressCallback(TrainerCallback):
    """A ``prefkit.console.progress`` bar over optimizer steps, showing the latest loss."""

    def __init__(self, description: str = "training"):
        self.description = description
        self._cm = None
        self._bar = None
        self._task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from ..console import progress

        self._cm = progress(state.max_steps or None, self.description, fields=("loss",))
        self._bar, self._task = self._cm.__enter__()
        self._bar.update(self._task, completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._bar is not None and logs and "loss" in logs:
            self._bar.update(self._task, loss=f"loss {logs['loss']:.4g}")

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)
            self._bar = self._task = None


def log_kind(logs: dict[str, Any]) -> str:
    if any(k.startswith("eval_") for k in logs):
        return "eval"
    if "loss" in logs:
        return "train"
    return "summary"


class RunLogCallback(TrainerCallback):
    """Append every log (loss, lr, eval metrics) to the run's ``results.jsonl``, keyed by step."""

    def __init__(self, run: Any):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is None or not logs or not state.is_world_process_zero:
            return
        kind = log_kind(logs)
        record = {"type": kind, "step": state.global_step, "epoch": state.epoch, **logs}
        self.run.append(record, key=f"{kind}-{state.global_step}")
