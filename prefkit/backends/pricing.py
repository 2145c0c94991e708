"""Estimated cost: a price table (USD per million tokens) that users can extend.

Prices are list prices for standard (non-batch, non-cached) input/output tokens
as published by the providers in 2025; they change, so treat costs as estimates.
Extend or override them:

* in Python: ``prefkit.backends.pricing.register_price("my-model", input=0.5, output=1.5)``;
* in a file: ``PREFKIT_HOME/prices.json`` (or the file named by ``PREFKIT_PRICES``),
  ``{"my-model": {"input": 0.5, "output": 1.5}}`` (JSON or YAML).

A model name matches its own entry or the longest entry it starts with
(``gpt-4o-2024-08-06`` → ``gpt-4o``). Local backends cost nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# model prefix -> (input, output) USD per 1M tokens
PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o1-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    # Cohere
    "command-r7b": (0.0375, 0.15),
    "command-r-plus": (2.50, 10.00),
    "command-r": (0.15, 0.60),
    "command-a": (2.50, 10.00),
    # test backends
    "mock": (0.0, 0.0),
}

FREE_BACKENDS = {"hf"}  # local models cost nothing (the mock is priced by its model name)

_user_loaded = False
_user: dict[str, tuple[float, float]] = {}


def register_price(model: str, input: float, output: float) -> None:
    """Add or override a model's price (USD per million input/output tokens)."""
    _user[model] = (float(input), float(output))


def _load_user_prices() -> None:
    global _user_loaded
    if _user_loaded:
        return
    _user_loaded = True
    candidates = []
    if os.environ.get("PREFKIT_PRICES"):
        candidates.append(Path(os.environ["PREFKIT_PRICES"]))
    else:
        from ..paths import home

        candidates += [home() / "prices.json", home() / "prices.yaml", home() / "prices.yml"]
    for path in candidates:
        if not path.exists():
            continue
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:
            from ..errors import UsageError

            raise UsageError(f"cannot read the price file {path}: {exc}") from None
        for model, p in data.items():
            if isinstance(p, dict):
                _user.setdefault(model, (float(p.get("input", 0)), float(p.get("output", 0))))
            else:
                _user.setdefault(model, (float(p[0]), float(p[1])))


def price_for(model: str | None, backend: str | None = None) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None when unknown."""
    if backend in FREE_BACKENDS:
        return (0.0, 0.0)
    if not model:
        return None
    _load_user_prices()
    name = str(model).split("/")[-1] if str(model) not in _user and str(model) not in PRICES else str(model)
    for table in (_user, PRICES):
        if name in table:
            return table[name]
    best = None
    for table in (_user, PRICES):
        for prefix, p in table.items():
            if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, p)
        if best is not None:
            return best[1]
    return None


def cost_of(model: str | None, prompt_tokens: int, completion_tokens: int, backend: str | None = None) -> float | None:
    p = price_for(model, backend)
    if p is None:
        return None
    return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000


def price_table() -> dict[str, Any]:
    _load_user_prices()
    out = {k: {"input": v[0], "output": v[1]} for k, v in PRICES.items()}
    out.update({k: {"input": v[0], "output": v[1], "user": True} for k, v in _user.items()})
    return out
