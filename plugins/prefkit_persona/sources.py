"""The plugin's dataset sources: ``persona-inference`` and ``persona-tailoring``.

Both are :class:`prefkit.NamedSource` s: the offline mirror
(``<data-dir>/persona-inference-<Split>/``, a ``save_to_disk`` DatasetDict) first,
then the hub. Beyond the core's behaviour they

* accept split names leniently (``anthropic-hhh`` for ``Anthropic HHH``) and look
  for mirror folders with the space kept, or written as ``_`` or ``-``;
* check columns before building records, so a missing column or a column that is
  empty in every row (Mnemonic's tailoring ``test`` split) is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from prefkit import NamedSource
from prefkit import UsageError

from .splits import (INFERENCE_HUB_ID, INFERENCE_SPLITS, MNEMONIC_TEST_NOTE, PERSONA_COLUMNS, TAILORING_HUB_ID,
                     TAILORING_PARTS, TAILORING_SPLITS, canonical_split)


@dataclass
class PersonaSource(NamedSource):
    """A persona dataset with lenient config names and up-front column checks."""

    _required: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def check(self, config, split):
        if config is not None:
            config = canonical_split(config, tuple(self.configs), what=f"{self.name} split")
        return super().check(config, split)

    def mirror_paths(self, config: str | None, data_dir: str | Path | None) -> list[Path]:
        paths = super().mirror_paths(config, data_dir)
        if not config or " " not in config:
            return paths
        out = []
        for p in paths:
            for variant in (p.name, p.name.replace(" ", "_"), p.name.replace(" ", "-")):
                q = p.with_name(variant)
                if q not in out:
                    out.append(q)
        return out

    def load_rows(self, config=None, split=None, *, data_dir=None):
        rows = super().load_rows(config, split, data_dir=data_dir)
        check_columns(rows, self._required, label=f"{self.name} {config} [{split}]",
                      mnemonic_test=(self.name == "persona-tailoring" and config == "Mnemonic" and split == "test"))
        return rows

    def load(self, config=None, split=None, *, required: Iterable[str] = ("prompt", "chosen", "rejected"), **kw):
        old = self._required
        self._required = tuple(required)
        try:
            return super().load(config, split, required=required, **kw)
        finally:
            self._required = old


def check_columns(rows: list[dict[str, Any]], required: Iterable[str], *, label: str,
                  mnemonic_test: bool = False) -> None:
    """One clear error when a required column is absent, or empty in every row."""
    required = tuple(required)
    if not rows or not required:
        return
    present = set().union(*(r.keys() for r in rows[:50]))
    missing = [c for c in required if c not in present]
    if missing:
        raise UsageError(f"{label} has no column {', '.join(repr(c) for c in missing)} "
                         f"(columns: {', '.join(sorted(present))})")
    empty = [c for c in required if all(not str(r.get(c) or "").strip() for r in rows)]
    if empty:
        if mnemonic_test:
            raise UsageError(f"{label}: {', '.join(empty)} empty in every row — {MNEMONIC_TEST_NOTE}")
        raise UsageError(f"{label}: column {', '.join(repr(c) for c in empty)} is empty in every row")


def inference_source() -> PersonaSource:
    return PersonaSource(
        name="persona-inference",
        description="Persona inference data (Balepur et al.): prompt, chosen, rejected; 300 rows per split",
        hub_id=INFERENCE_HUB_ID,
        configs=list(INFERENCE_SPLITS),
        splits=["train"],
        default_split="train",
        mirror="persona-inference-{config}",
    )


def tailoring_source() -> PersonaSource:
    return PersonaSource(
        name="persona-tailoring",
        description="Persona tailoring data (Balepur et al.): preference pairs with gold and retrieved personas. "
                    "Note: Mnemonic's test split has empty chosen/rejected/gold personas",
        hub_id=TAILORING_HUB_ID,
        configs=list(TAILORING_SPLITS),
        splits=list(TAILORING_PARTS),
        default_split=None,
        columns=["prompt", "chosen", "rejected", *PERSONA_COLUMNS],
        mirror="persona-tailoring-{config}",
    )
