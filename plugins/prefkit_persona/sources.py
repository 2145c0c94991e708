"""The plugin's dataset sources: ``persona-inference`` and ``persona-tailoring``.

Both are :class:`prefkit.NamedSource` s: the offline mirror
(``<data-dir>/persona-inference-<Split>/``, a ``save_to_disk`` DatasetDict) first,
then the hub. Beyond the core's behaviour they

* accept split names leniently (``anthropic-hhh`` for ``Anthropic HHH``) and look
  for mirror folders with the space kept, or written as ``_`` or ``-``;
* check columns before building records, so a missing column or a column that is
  empty in every row (Mnemonic's tailoring ``test`` split) is one clear error;
* fall back to the splits bundled with the plugin (``data/<mirror>.jsonl.gz``:
  persona-inference BeaverTails and Mnemonic, 300 rows each; origin and licence
  in ``data/README.md``) when neither the mirror nor the hub has the split, and
  say so in one line.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from prefkit import NamedSource, PrefkitError, UsageError

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

    def bundled_path(self, config: str | None, split: str | None) -> Path | None:
        """The copy of this split shipped inside the plugin, if there is one (single ``train`` tables only)."""
        if not config or split not in (None, "train"):
            return None
        rel = self.mirror.format(name=self.name, config=config).replace(" ", "_")
        path = BUNDLED_DIR / f"{rel}.jsonl.gz"
        return path if path.is_file() else None

    def load_rows(self, config=None, split=None, *, data_dir=None):
        try:
            rows = super().load_rows(config, split, data_dir=data_dir)
        except UsageError:
            raise
        except PrefkitError:
            bundled = self.bundled_path(config, split)
            if bundled is None:
                raise
            rows = read_bundled(bundled)
            from prefkit import info

            info(f"no mirror or hub: using the bundled {self.name} {config} ({len(rows)} rows)")
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


BUNDLED_DIR = Path(__file__).with_name("data")


def read_bundled(path: Path) -> list[dict[str, Any]]:
    """Rows of a bundled ``.jsonl.gz`` split."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
