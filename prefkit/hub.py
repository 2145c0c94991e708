"""Is the Hugging Face hub reachable? Asked once per process, answered fast.

Without this, an offline machine waits on the hub client's retries (tens of
seconds) before every fallback. ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE``)
skips the hub outright; otherwise one TCP connect with a short timeout decides.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

HUB_HOST = "huggingface.co"


def offline_env() -> bool:
    # the values huggingface_hub itself accepts as true
    return any(os.environ.get(v, "").strip().lower() in ("1", "on", "yes", "true")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


@lru_cache(maxsize=1)
def _probe(timeout: float) -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT", "")
    host = HUB_HOST
    if endpoint:
        from urllib.parse import urlparse

        host = urlparse(endpoint).hostname or HUB_HOST
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host} is unreachable ({type(exc).__name__})"


def unreachable_reason(timeout: float = 3.0) -> str | None:
    """None when the hub looks reachable, else a short reason."""
    if offline_env():
        return "HF_HUB_OFFLINE is set"
    return _probe(timeout)
