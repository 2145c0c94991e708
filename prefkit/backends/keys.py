"""API keys: from the environment, a ``.env`` file, or ``prefkit keys set NAME``.

Lookup order for a variable: the process environment, then a ``.env`` file
(found from the current directory upwards), then ``PREFKIT_HOME/keys.json``
(written by ``prefkit keys set``, mode 600). Keys are handed to the provider
SDK and nowhere else: they are never put in ``os.environ``, manifests, results
or logs, and :func:`redact` scrubs them from error messages.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import PrefkitError, UsageError

# backend -> the variables it reads, first one preferred
KEY_VARS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "cohere": ("CO_API_KEY", "COHERE_API_KEY"),
    "hf": ("HF_TOKEN",),
}

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def keys_path() -> Path:
    from ..paths import home

    return home() / "keys.json"


def _read_store() -> dict[str, str]:
    path = keys_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise PrefkitError(f"{path} is not valid JSON; fix or delete it") from None
    return {str(k): str(v) for k, v in data.items()}


def _write_store(data: dict[str, str]) -> Path:
    path = keys_path()
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


def _dotenv_values() -> dict[str, str]:
    try:
        from dotenv import dotenv_values, find_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        return {}
    path = find_dotenv(usecwd=True)
    if not path:
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v}


def lookup(name: str) -> tuple[str | None, str | None]:
    """(value, source) for a variable; source is 'environment', '.env' or 'keys.json'."""
    value = os.environ.get(name)
    if value:
        return _remember(value), "environment"
    value = _dotenv_values().get(name)
    if value:
        return _remember(value), ".env"
    value = _read_store().get(name)
    if value:
        return _remember(value), "keys.json"
    return None, None


def _remember(value: str) -> str:
    from ..secrets import remember

    return remember(value)


def get_key(backend: str, names: tuple[str, ...] | list[str] | None = None, *, required: bool = True) -> str | None:
    """The key for a backend, or one clear error line naming the variable."""
    names = tuple(names or KEY_VARS.get(backend, ()))
    for name in names:
        value, _ = lookup(name)
        if value:
            return value
    if not required:
        return None
    main = names[0] if names else f"{backend.upper()}_API_KEY"
    alt = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
    raise PrefkitError(
        f"missing API key for the {backend} backend: set {main}{alt} in the environment or a .env file, "
        f"or run `prefkit keys set {main}`")


def set_key(name: str, value: str) -> Path:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid key name {name!r}: use letters, digits and _, e.g. OPENAI_API_KEY")
    if not value or not value.strip():
        raise UsageError("empty key value")
    data = _read_store()
    data[name] = value.strip()
    return _write_store(data)


def unset_key(name: str) -> bool:
    data = _read_store()
    if name not in data:
        return False
    del data[name]
    _write_store(data)
    return True


def list_keys() -> list[dict[str, str]]:
    """Every known key name with where it comes from and a masked value."""
    names = {n for vs in KEY_VARS.values() for n in vs} | set(_read_store())
    rows = []
    for name in sorted(names):
        value, source = lookup(name)
        rows.append({"name": name, "source": source or "", "value": mask(value) if value else ""})
    return rows


def mask(value: str) -> str:
    if len(value) <= 8:
        return "***"
    return value[:3] + "…" + value[-4:]


def redact(text: str) -> str:
    """Remove every key prefkit has read (and sk-… tokens) from a message."""
    from ..secrets import scrub

    return scrub(text)
