"""Augment the source dataset of a persona-inference run with its personas.

Personas are joined to rows by ``row_id`` (the row's ``row_id``/``id`` column,
else its index in the split: the same id ``infer-personas`` stored), never by
line position. Several runs (one per data split, e.g. sft_train, dpo_train and
test) give one dataset with all their splits. The result is saved with
``save_to_disk`` (a DatasetDict with a split per run split), and pushed to the
hub only when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from prefkit import PrefkitError, UsageError, one_line

from .inference import SIDES
from .runs import load_persona_run

ID_COLUMNS = ("row_id", "id")


def save_quietly(ds: Any, path: str | Path) -> None:
    """``save_to_disk`` without datasets' per-shard progress bars (the command prints its own summary)."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        ds.save_to_disk(str(path))
    finally:
        if was:
            ds_logging.enable_progress_bar()


def row_ids(rows: list[dict[str, Any]]) -> list[str]:
    """The ids ``prefkit.load_records`` gives these rows (id column, else the index)."""
    out = []
    for i, row in enumerate(rows):
        rid = next((row[c] for c in ID_COLUMNS if row.get(c) not in (None, "")), None)
        out.append(str(rid) if rid is not None else str(i))
    return out


def augment_rows(rows: list[dict[str, Any]], personas: dict[str, dict[str, str]], *, keep_missing: bool = False,
                 column_suffix: str = "_persona_gold") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Add ``chosen<suffix>``/``rejected<suffix>`` (and ``row_id``) to rows, joined by row id."""
    ids = row_ids(rows)
    known = set(ids)
    unknown = [k for k in personas if k not in known]
    if unknown:
        raise UsageError(f"{len(unknown)} persona row id(s) are not in the dataset (e.g. {unknown[0]!r}): "
                         "the run was made from another dataset or split")
    out, stats = [], {"rows": len(rows), "augmented": 0, "missing": 0, "replaced_columns": 0}
    cols = [f"{s}{column_suffix}" for s in SIDES]
    if rows and any(c in rows[0] for c in cols):
        stats["replaced_columns"] = sum(1 for c in cols if c in rows[0])
    for rid, row in zip(ids, rows):
        got = personas.get(rid, {})
        complete = all((got.get(s) or "").strip() for s in SIDES)
        if not complete:
            stats["missing"] += 1
            if not keep_missing:
                continue
        new = dict(row)
        new["row_id"] = rid
        for s in SIDES:
            new[f"{s}{column_suffix}"] = got.get(s) or ""
        out.append(new)
        stats["augmented"] += int(complete)
    return out, stats


def augment(run_dirs: str | Path | Sequence[str | Path], output_dir: str | Path | None = None, *,
            data_dir: str | None = None, keep_missing: bool = False, push_to_hub: str | None = None,
            private: bool = False) -> dict[str, Any]:
    """Augment the source dataset of one or more persona runs and save every split they cover.

    Each run contributes the split it was made from (``--data-split``, e.g. ``sft_train``); runs of
    the same split are merged (each fills the sides it has). All runs must come from one dataset.
    The result is one ``DatasetDict`` with a split per data split, ready for ``prefkit tailor ...
    --dataset``. Stats are per split under ``splits`` (the single-split keys are kept at the top
    level when there is one split).
    """
    import datasets

    from prefkit import load_rows

    paths = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not paths:
        raise UsageError("give at least one persona-inference run directory")
    pruns = [load_persona_run(p) for p in paths]
    sources: dict[str, tuple[str, str | None]] = {}
    personas: dict[str, dict[str, dict[str, str]]] = {}
    flagged: dict[str, int] = {}
    for prun in pruns:
        info = prun.manifest.get("persona") or {}
        first = prun.rows[0]
        dataset = info.get("dataset") or first.get("dataset")
        data_split = info.get("data_split") or first.get("data_split")
        if not dataset:
            raise UsageError(f"{prun.path} does not say which dataset it was made from")
        name = data_split or "train"
        sources[str(prun.path)] = (dataset, data_split)
        split_personas = personas.setdefault(name, {})
        for r in prun.usable():
            split_personas.setdefault(str(r["row_id"]), {})[r["side"]] = r["persona"]
            flagged[name] = flagged.get(name, 0) + bool(r.get("flags"))
    datasets_used = sorted({d for d, _ in sources.values()})
    if len(datasets_used) > 1:
        raise UsageError(f"the runs come from different datasets ({', '.join(datasets_used)}); augment one dataset "
                         "at a time")
    dataset = datasets_used[0]
    by_split: dict[str, Any] = {}
    split_stats: dict[str, dict[str, Any]] = {}
    for name, split_personas in personas.items():
        data_split = next(ds for d, ds in sources.values() if (ds or "train") == name)
        rows = load_rows(dataset, split=data_split, data_dir=data_dir)
        out_rows, stats = augment_rows(rows, split_personas, keep_missing=keep_missing)
        if not out_rows:
            raise UsageError(f"no row of {dataset} [{name}] has both personas in the given run(s); nothing to save "
                             "(finish the run, or use --keep-missing)")
        by_split[name] = datasets.Dataset.from_list(out_rows)
        split_stats[name] = {**stats, "flagged_personas": flagged.get(name, 0),
                             "columns": list(by_split[name].column_names)}
    ds = datasets.DatasetDict(by_split)
    out = Path(output_dir) if output_dir else pruns[0].path / "augmented"
    out.mkdir(parents=True, exist_ok=True)
    save_quietly(ds, out)
    result: dict[str, Any] = {"output_dir": str(out), "dataset": dataset, "splits": split_stats,
                              "runs": [str(p.path) for p in pruns]}
    for key in ("rows", "augmented", "missing", "replaced_columns", "flagged_personas"):
        result[key] = sum(v[key] for v in split_stats.values())
    if len(split_stats) == 1:
        (name, only), = split_stats.items()
        result.update({"split": name, "columns": only["columns"]})
    else:
        result["split"] = ", ".join(split_stats)
    if push_to_hub:
        config = (pruns[0].split or "default").replace(" ", "_")
        try:
            ds.push_to_hub(push_to_hub, config_name=config, private=private)
        except Exception as exc:
            raise PrefkitError(f"saved to {out}, but pushing to the hub as {push_to_hub!r} failed: "
                               f"{one_line(exc)}") from None
        result["pushed_to"] = push_to_hub
    return result
