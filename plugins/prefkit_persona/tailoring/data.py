"""Loading persona-tailoring data through the core (``prefkit.load_records``).

By default the plugin's ``persona-tailoring`` source (configs BeaverTails, Anthropic HHH,
Mnemonic; splits fewshot, sft_train, sft_val, dpo_train, dpo_val, test), which looks in the
offline mirror (``--data-dir`` / ``PREFKIT_DATA_DIR``: ``<dir>/persona-tailoring-<Split>/``) and
then on the hub.

With ``dataset`` any dataset prefkit can load (a ``save_to_disk`` directory such as the output
of ``prefkit persona augment``, a file, a registered source name) whose rows have the columns
the step needs: ``prompt``, ``chosen``, ``rejected`` and the persona columns of the training or
inference type (``chosen_persona_gold`` ...). Its split names are the data splits
(``sft_train``, ``dpo_train``, ``test`` ...); a missing split or column is one clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefkit import UsageError

from .formats import PERSONA_COLUMNS, canonical_split, check_data_split

SOURCE = "persona-tailoring"


def load_tailoring_rows(split: str, data_split: str, *, data_dir: str | Path | None = None,
                        limit: int | None = None, dataset: str | None = None) -> list[dict[str, Any]]:
    """Rows of one split as plain dicts (see :mod:`.formats`), with ``row_id`` and ``index``.

    ``split`` is the dataset config (BeaverTails, Anthropic HHH, Mnemonic; case and punctuation
    do not matter), ``data_split`` one of fewshot/sft_train/sft_val/dpo_train/dpo_val/test.
    The test split only needs prompts (Mnemonic's has empty responses). ``dataset``: load the
    rows from that dataset's ``data_split`` instead (see the module docs).
    """
    import prefkit

    required = ("prompt",) if data_split == "test" else ("prompt", "chosen", "rejected")
    if dataset:
        records = prefkit.load_records(str(dataset), split=data_split, data_dir=data_dir, limit=limit,
                                       required=required)
        return [record_to_row(r, i) for i, r in enumerate(records)]
    split = canonical_split(split)
    check_data_split(data_split)
    if SOURCE not in prefkit.registry("datasets"):
        raise UsageError(f"the {SOURCE!r} dataset source is not registered: is the persona plugin enabled?")
    records = prefkit.load_records(f"{SOURCE}:{split}", split=data_split, data_dir=data_dir, limit=limit,
                                   required=required)
    return [record_to_row(r, i) for i, r in enumerate(records)]


def dataset_ref(dataset: str | None) -> str | None:
    """How a run records a user dataset: an existing path made absolute, a source name as given."""
    if not dataset:
        return None
    p = Path(dataset)
    return str(p.resolve()) if p.exists() else str(dataset)


def record_to_row(record: Any, index: int) -> dict[str, Any]:
    """A :class:`prefkit.PreferenceRecord` as the flat row the pure functions use."""
    row = {"row_id": str(record.row_id), "index": index, "prompt": record.prompt_text,
           "chosen": record.chosen_text, "rejected": record.rejected_text}
    for col in PERSONA_COLUMNS:  # a column the dataset lacks stays absent (errors name it)
        if col in record.extra:
            value = record.extra[col]
            row[col] = "" if value is None else str(value)
    return row
