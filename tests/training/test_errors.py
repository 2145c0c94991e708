"""Clear errors for bad input: missing columns, no chat template, 4-bit without CUDA, bad models."""

from __future__ import annotations

import pytest

from prefkit.errors import UsageError
from prefkit.training import get_trainer, prepare, train

from .conftest import PREF_ROWS, SFT_ROWS, fast_config


def test_missing_column(tiny_model, tmp_path):
    with pytest.raises(UsageError, match=r"dpo training data needs columns 'prompt', 'chosen' and 'rejected'; "
                                         r"row 0 has: answer, prompt"):
        train("dpo", tiny_model, [{"prompt": "q", "answer": "a"}], config=fast_config(), output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()   # bad input fails before anything is written


def test_no_chat_template_refused_unless_text_format(tiny_model_no_template, tmp_path):
    with pytest.raises(UsageError, match="has no chat template.*--format text"):
        train("sft", tiny_model_no_template, SFT_ROWS, config=fast_config(), output_dir=tmp_path / "a")
    prepared = prepare("sft", tiny_model_no_template, SFT_ROWS, config=fast_config(format="text"),
                       output_dir=tmp_path / "b")
    assert len(prepared.trainer.train_dataset) == len(SFT_ROWS)


def test_chat_template_option_for_base_models(tiny_model_no_template, tiny_model, tmp_path):
    prepared = prepare("dpo", tiny_model_no_template, PREF_ROWS, config=fast_config(chat_template=str(tiny_model)),
                       output_dir=tmp_path / "c")
    assert prepared.tokenizer.chat_template


def test_4bit_without_cuda(tiny_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UsageError, match="--load-in-4bit .*needs a CUDA GPU"):
        train("sft", tiny_model, SFT_ROWS, config=fast_config(load_in_4bit=True), output_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="--bf16 needs a GPU"):
        prepare("sft", tiny_model, SFT_ROWS, config=fast_config(bf16=True), output_dir=tmp_path / "p")


def test_bad_model_and_trainer_names(tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        train("sft", "./does/not/exist", SFT_ROWS, config=fast_config(), output_dir=tmp_path / "o")
    not_model = tmp_path / "empty"
    not_model.mkdir()
    with pytest.raises(UsageError, match="not a model directory"):
        train("sft", not_model, SFT_ROWS, config=fast_config(), output_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="unknown trainer 'ppo'.*dpo.*reward.*sft"):
        get_trainer("ppo")


def test_changed_settings_on_resume_are_refused(tiny_model, tmp_path):
    prepare("sft", tiny_model, SFT_ROWS, config=fast_config(), output_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="other settings \\(lora_r differ\\)"):
        prepare("sft", tiny_model, SFT_ROWS, config=fast_config(lora_r=8), output_dir=tmp_path / "o")
