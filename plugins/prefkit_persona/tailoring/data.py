"""Loading persona-tailoring splits through the core (``prefkit.load_records``).

The plugin registers the ``persona-tailoring`` source (configs BeaverTails, Anthropic HHH,
Mnemonic; splits fewshot, sft_train, sft_val, dpo_train, dpo_val, test), which looks in the
offline mirror (``--data-dir`` / ``PREFKIT_DATA_DIR``: ``<dir>/persona-tailoring-<Split>/``) and
then on the hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefkit import UsageError

from .formats import PERSONA_COLUMNS, canonical_split, check_data_split

SOURCE = "persona-tailoring"


def load_tailoring_rows(split: str, data_split: str, *, data_dir: str | Path | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of one split as plain dicts (see :mod:`.formats`), with ``row_id`` and ``index``.

    ``split`` is the dataset config (BeaverTails, Anthropic HHH, Mnemonic; case and punctuation
    do not matter), ``data_split`` one of fewshot/sft_train/sft_val/dpo_train/dpo_val/test.
    The test split only needs prompts (Mnemonic's has empty responses).
    """
    import prefkit

    split = canonical_split(split)
    check_data_split(data_split)
    required = ("prompt",) if data_split == "test" else ("prompt", "chosen", "rejected")
    if SOURCE not in prefkit.registry("datasets"):
        raise UsageError(f"the {SOURCE!r} dataset source is not registered: is the persona plugin enabled?")
    records = prefkit.load_records(f"{SOURCE}:{split}", split=data_split, data_dir=data_dir, limit=limit,
                                   required=required)
    return [record_to_row(r, i) for i, r in enumerate(records)]


def record_to_row(record: Any, index: int) -> dict[str, Any]:
    """A :class:`prefkit.PreferenceRecord` as the flat row the pure functions use."""
    row = {"row_id": str(record.row_id), "index": index, "prompt": record.prompt_text,
           "chosen": record.chosen_text, "rejected": record.rejected_text}
    for col in PERSONA_COLUMNS:  # a column the dataset lacks stays absent (errors name it)
        if col in record.extra:
            value = record.extra[col]
            row[col] = "" if value is None else str(value)
    return row
