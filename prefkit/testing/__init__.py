"""Helpers for testing prefkit and prefkit plugins.

Import what you need in your plugin's tests::

    from prefkit.testing import cli, isolated_home, registered_plugin

The fixtures in :mod:`prefkit.testing.fixtures` are available to any pytest run
in an environment where prefkit is installed (``prefkit_home``, ``prefkit_cli``,
``fake_openai_server``, ``tiny_model`` ...).
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import CliResult, cli, isolated_home, registered_plugin, shared_data_dir

_LAZY = {
    # LLM backends: a deterministic mock backend and a local OpenAI-compatible server
    "MockBackend": "prefkit.testing.backends",
    "FakeOpenAIServer": "prefkit.testing.backends",
    "FakeRequest": "prefkit.testing.backends",
    "FakeReply": "prefkit.testing.backends",
    # multi-role plugins: answers per role, matched on the request
    "Script": "prefkit.testing.backends",
    "ScriptedBackend": "prefkit.testing.backends",
    # training: a tiny model and tokenizer built at test time
    "make_tiny_model": "prefkit.testing.models",
    "make_tiny_tokenizer": "prefkit.testing.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefkit.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["CliResult", "cli", "isolated_home", "registered_plugin", "shared_data_dir", *_LAZY]
