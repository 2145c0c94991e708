"""pytest fixtures for training tests: a tiny model and tokenizer built once per session.

Available in any pytest run where prefkit is installed (re-exported by
:mod:`prefkit.testing.fixtures`)::

    def test_my_trainer(tiny_model, tmp_path):
        result = prefkit.train("sft", tiny_model, rows, config=TrainConfig(max_steps=2),
                               output_dir=tmp_path / "out")
"""

from __future__ import annotations

import pytest

__all__ = ["tiny_model", "tiny_tokenizer", "tiny_model_no_template", "tiny_sft_rows", "tiny_pref_rows"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path to a saved 2-layer hidden-64 Llama with a ≤1k BPE tokenizer and a chat template."""
    from prefkit.testing.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model):
    """The tiny model's tokenizer (loaded from its directory)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory):
    """Like ``tiny_model`` but its tokenizer has no chat template (a "base" model)."""
    from prefkit.testing.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-base") / "model", chat_template=None)


@pytest.fixture
def tiny_sft_rows():
    """A few prompt/completion rows (strings) for SFT."""
    return [
        {"prompt": "What is the capital of France?", "completion": "Paris is the capital of France."},
        {"prompt": "Give me a tip for learning to cook.", "completion": "Master one simple dish a week."},
        {"prompt": "Is it safe to mix bleach and vinegar?", "completion": "No, it releases chlorine gas."},
        {"prompt": "Write a haiku about rain.", "completion": "Drums on the tin roof, the kettle answers."},
    ]


@pytest.fixture
def tiny_pref_rows():
    """A few prompt/chosen/rejected rows (strings) for DPO and reward training."""
    return [
        {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "London, I think."},
        {"prompt": "Give me a tip for learning to cook.", "chosen": "Taste as you go.", "rejected": "Never cook."},
        {"prompt": "Is it safe to mix bleach and vinegar?", "chosen": "No, never mix them.", "rejected": "Yes."},
        {"prompt": "Write a haiku about rain.", "chosen": "Rain on the tin roof.", "rejected": "Rain is wet."},
    ]
