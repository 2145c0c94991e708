"""Where prefkit keeps its own files: ``PREFKIT_HOME`` (default ``~/.cache/prefkit``).

* ``models/``      pulled or converted models (``prefkit models pull``)
* ``cache.sqlite`` the LLM response cache
* ``keys.json``    keys saved with ``prefkit keys set`` (mode 600)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    p = Path(os.environ.get("PREFKIT_HOME") or Path.home() / ".cache" / "prefkit")
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    p = home() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p
