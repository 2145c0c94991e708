"""Shared fixtures of the training tests (the tiny model comes from prefkit.testing.model_fixtures)."""

from __future__ import annotations

import pytest

SFT_ROWS = [
    {"prompt": "What is the capital of France?", "completion": "Paris is the capital of France."},
    {"prompt": "Give me a tip for learning to cook.", "completion": "Master one simple dish a week."},
    {"prompt": "Is it safe to mix bleach and vinegar?", "completion": "No, it releases chlorine gas."},
    {"prompt": "Write a haiku about rain.", "completion": "Drums on the tin roof, the kettle answers."},
]

PREF_ROWS = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "London, I think."},
    {"prompt": "Give me a tip for learning to cook.", "chosen": "Taste as you go.", "rejected": "Never cook."},
    {"prompt": "Is it safe to mix bleach and vinegar?", "chosen": "No, never mix them.", "rejected": "Yes."},
    {"prompt": "Write a haiku about rain.", "chosen": "Rain on the tin roof.", "rejected": "Rain is wet."},
]


def fast_config(**kw):
    from prefkit.training import TrainConfig

    base = dict(max_steps=2, batch_size=2, logging_steps=1, save_steps=100, lora_r=4, lora_alpha=8, max_length=128)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def sft_result(tiny_model, tmp_path_factory):
    """An SFT LoRA run on the tiny model with a learning rate high enough to change its outputs."""
    from prefkit.training import train

    out = tmp_path_factory.mktemp("sft-run") / "sft"
    return train("sft", tiny_model, SFT_ROWS, config=fast_config(max_steps=3, lr=3e-2, lora_dropout=0.0),
                 output_dir=out)
