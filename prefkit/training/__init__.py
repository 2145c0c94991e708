"""The training layer: SFT, DPO and reward models on TRL + PEFT, behind one call.

::

    from prefkit.training import DPOTrainConfig, SFTTrainConfig, TrainModelConfig, train

    sft = train("sft", "HuggingFaceTB/SmolLM2-135M-Instruct", rows,
                config=SFTTrainConfig(max_steps=100, lr=2e-4), model_config=TrainModelConfig(lora_r=8))
    dpo = train("dpo", sft.adapter_dir, pairs, config={"beta": 0.1}, preset="my-paper")
    dpo.merged_dir                   # a normal HF model dir (+ tokenizer, chat template)

Settings are split as TRL splits them: a config per trainer (:class:`SFTTrainConfig`,
:class:`DPOTrainConfig`, :class:`RewardTrainConfig`, all on :class:`BaseTrainConfig`) and the
model config (:class:`TrainModelConfig`: LoRA, quantisation, precision). Presets
(:class:`TrainingPreset`, registered through the ``register_training_presets`` hook) are named
defaults; :func:`train_chain` runs SFT → DPO (→ ...) stages. Trainers are registered through
the ``register_trainers`` hook (built-ins: ``sft``, ``dpo``, ``reward``); ``get_trainer(name)``
finds any of them, a plugin's included. See ``docs/training.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .config import (DEFAULT_TEXT_TEMPLATE, BaseTrainConfig, DPOTrainConfig, RewardTrainConfig, SFTTrainConfig,
                     TrainConfig, TrainModelConfig, explicit_settings)
from .presets import TrainingPreset, get_preset, list_presets

if TYPE_CHECKING:  # pragma: no cover
    from .chain import ChainResult, ChainStage
    from .core import PreparedTraining, TrainResult
    from .formats import TextTemplate

_LAZY = {"TrainResult": "core", "TRLTrainer": "core", "PreparedTraining": "core", "last_checkpoint": "core",
         "ChainStage": "chain", "ChainResult": "chain", "train_chain": "chain", "FitStats": "formats"}


def __getattr__(name: str) -> Any:
    # the trainer classes load on first use, so `prefkit --help` (which reads the config classes) stays light
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainConfig", "BaseTrainConfig", "SFTTrainConfig", "DPOTrainConfig", "RewardTrainConfig",
           "TrainModelConfig", "TrainingPreset", "get_preset", "list_presets", "TrainResult", "train", "prepare",
           "merge_adapter", "get_trainer", "TRLTrainer", "PreparedTraining", "DEFAULT_TEXT_TEMPLATE",
           "last_checkpoint", "ChainStage", "ChainResult", "train_chain", "FitStats", "explicit_settings"]


def get_trainer(name: str) -> Any:
    """The trainer registered as ``name`` (``sft``, ``dpo``, ``reward`` or a plugin's)."""
    from ..plugins import registry

    return registry("trainers").get(name)


def train(kind: str, model: str | Path, train_data: Any, eval_data: Any = None, config: Any = None,
          output_dir: str | Path | None = None, text_template: "TextTemplate | None" = None, *,
          model_config: Any = None, preset: "str | TrainingPreset | None" = None, run_name: str | None = None,
          fresh: bool = False, callbacks: Sequence[Any] = (), argv: list[str] | None = None) -> "TrainResult":
    """Train ``model`` with the trainer ``kind`` on ``train_data``; returns a :class:`TrainResult`.

    ``train_data``/``eval_data``: a list of dicts, :class:`prefkit.PreferenceRecord` s or a
    ``datasets.Dataset`` (sft: prompt/completion or messages; dpo and reward: prompt/chosen/rejected).
    ``model``: a hub id, a model directory, an adapter directory (merged first) or a
    prefkit training run directory. ``config``: the trainer's config class (e.g.
    :class:`DPOTrainConfig`), a dict of settings (trainer and model settings mixed) or a
    :class:`TrainConfig`; ``model_config``: a :class:`TrainModelConfig` (or dict).
    ``preset``: a registered preset's name (or a :class:`TrainingPreset`); explicit settings
    win over it (a config dataclass contributes its non-default fields).
    ``output_dir``: default ``runs/train/<kind>-<model>-<data hash>``.
    ``text_template`` (``format="text"``): a string with ``{prompt}`` (and any ``{column}``) or a
    callable ``row -> prompt text``; overrides ``config.text_template``.
    """
    return get_trainer(kind).train(model, train_data, eval_data, config, output_dir, text_template,
                                   model_config=model_config, preset=preset, run_name=run_name, fresh=fresh,
                                   callbacks=callbacks, argv=argv)


def prepare(kind: str, model: str | Path, train_data: Any, eval_data: Any = None, config: Any = None,
            output_dir: str | Path | None = None, text_template: "TextTemplate | None" = None,
            **kwargs: Any) -> "PreparedTraining":
    """Set a run up without training: ``.trainer`` is the TRL trainer (its datasets tokenized), ``.run()`` trains."""
    trainer = get_trainer(kind)
    if not hasattr(trainer, "prepare"):
        raise TypeError(f"trainer {kind!r} does not support prepare()")
    return trainer.prepare(model, train_data, eval_data, config, output_dir, text_template, **kwargs)


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, **kwargs: Any) -> Path:
    """Merge a LoRA adapter into its base model (read from the adapter config); saves model + tokenizer."""
    from .models import merge_adapter as _merge

    return _merge(adapter_dir, output_dir, **kwargs)
