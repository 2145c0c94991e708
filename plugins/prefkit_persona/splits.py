"""The persona datasets' split names ("configs" on the hub) and what their rows are.

Split names are matched leniently (case, ``-``/``_`` for spaces), so ``anthropic-hhh``
and ``"Anthropic HHH"`` name the same config.
"""

from __future__ import annotations

import re

from prefkit import UsageError

INFERENCE_SPLITS = ("BeaverTails", "Anthropic HHH", "Mnemonic", "SHP")
TAILORING_SPLITS = ("BeaverTails", "Anthropic HHH", "Mnemonic")
TAILORING_PARTS = ("fewshot", "sft_train", "sft_val", "dpo_train", "dpo_val", "test")
PERSONA_COLUMNS = ("chosen_persona_gold", "rejected_persona_gold", "chosen_persona_retr", "rejected_persona_retr")

INFERENCE_HUB_ID = "nbalepur/persona-inference"
TAILORING_HUB_ID = "nbalepur/persona-tailoring"

MNEMONIC_TEST_NOTE = (
    "in persona-tailoring Mnemonic's test split the columns chosen, rejected, chosen_persona_gold and "
    "rejected_persona_gold are empty strings in every row (the dataset ships only prompts and retrieved "
    "personas there), so only the retr-chosen, retr-rejected, system and none settings apply to it"
)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def canonical_split(name: str, known: tuple[str, ...] = INFERENCE_SPLITS, what: str = "split") -> str:
    """``"anthropic-hhh"`` → ``"Anthropic HHH"``; an unknown name is a clear one-line error."""
    if name in known:
        return name
    for k in known:
        if _norm(k) == _norm(name):
            return k
    raise UsageError(f"unknown {what} {name!r} (known: {', '.join(known)})")


def split_slug(name: str) -> str:
    """A file-name-safe form of a split name: ``"Anthropic HHH"`` → ``"anthropic-hhh"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
