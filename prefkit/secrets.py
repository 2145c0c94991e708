"""One place that knows what a secret looks like, so no key reaches a run file, a log or an error line.

The key layer (:mod:`prefkit.backends.keys`) calls :func:`remember` for every key it reads (from the
environment, a ``.env`` file or ``keys.json``); :func:`scrub` removes those, the values of the usual key
variables in the environment, and ``sk-…`` tokens from any text. The run store uses it for manifests and
failure records, the engine for provider error messages.
"""

from __future__ import annotations

import os
import re

REDACTED = "***"
KEY_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CO_API_KEY", "COHERE_API_KEY", "HF_TOKEN", "WANDB_API_KEY")
_TOKEN = re.compile(r"\b(sk-[A-Za-z0-9_-]{12,})")
_remembered: set[str] = set()


def remember(value: str) -> str:
    """Note a secret that was read, so :func:`scrub` removes it wherever it shows up."""
    if value and len(value) >= 6:
        _remembered.add(value)
    return value


def scrub(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    if not text:
        return text
    secrets = set(_remembered)
    secrets.update(v for v in (os.environ.get(n) for n in KEY_ENV_VARS) if v and len(v) >= 8)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _TOKEN.sub(REDACTED, text)
