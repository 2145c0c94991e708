"""Dataset sources: the hub, ``save_to_disk`` directories, local files, named sources.

``load_records(spec, ...)`` is the one entry point commands use. ``spec`` is:

* a registered source name, optionally with a config: ``persona-inference:BeaverTails``;
* ``hf:org/name`` or ``hf:org/name:config`` for any hub dataset;
* a path: a ``.jsonl``/``.json``/``.parquet``/``.csv`` file or a ``save_to_disk`` directory.

Named sources look in the offline mirror (``--data-dir`` / ``PREFKIT_DATA_DIR``)
before the hub, and say where they looked when both fail.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import PrefkitError, UsageError, one_line
from .records import PreferenceRecord

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
ID_COLUMNS = ("row_id", "id")


def parse_column_map(value: str | dict[str, str] | None) -> dict[str, str]:
    """``prompt=question,chosen=good`` → ``{"prompt": "question", "chosen": "good"}``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return dict(value)
    out = {}
    for part in value.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise UsageError(f"bad --column-map entry {part!r}: expected FIELD=COLUMN")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local file or ``save_to_disk`` directory as dicts."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such file or directory: {path}")
    try:
        if path.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                raise UsageError(
                    f"{path} holds several splits ({', '.join(ds)}); pick one with --split")
            return ds.to_list()
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            rows = []
            with open(path, encoding="utf-8") as fh:
                for i, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise UsageError(f"{path}: line {i} is not valid JSON ({exc.msg})") from None
            return rows
        if suffix == ".json":
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict):
                for key in ("data", "rows", "examples"):
                    if isinstance(data.get(key), list):
                        data = data[key]
                        break
            if not isinstance(data, list):
                raise UsageError(f"{path}: expected a JSON array of objects")
            return data
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except UsageError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    raise UsageError(f"unsupported file type {path.suffix!r} for {path} (use {', '.join(FILE_SUFFIXES)} or a save_to_disk directory)")


def _split_of(ds: Any, split: str | None, where: str) -> Any:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) == 1:
                return next(iter(ds.values()))
            raise UsageError(f"{where} has splits {', '.join(ds)}; pick one with --split")
        if split not in ds:
            raise UsageError(f"{where} has no split {split!r} (splits: {', '.join(ds)})")
        return ds[split]
    _check_single(split, where)
    return ds


def _check_single(split: str | None, where: str) -> None:
    """A single table has no splits: a --split other than "train" (its conventional name) is a mistake."""
    if split not in (None, "train"):
        raise UsageError(f"{where} holds a single table without splits; --split {split!r} does not apply (leave it out)")


def to_records(
    rows: Sequence[dict[str, Any]],
    *,
    source: str,
    column_map: dict[str, str] | None = None,
    required: Iterable[str] = PREFERENCE_COLUMNS,
    skip_invalid: bool = False,
    where: str | None = None,
    id_offset: int = 0,
    stats: dict[str, int] | None = None,
) -> list[PreferenceRecord]:
    """Validate rows and turn them into records.

    A required column that is missing is an error naming the columns there are; a
    row whose required value is empty or of the wrong type is an error naming the
    row, unless ``skip_invalid`` (then it is counted in ``stats["skipped"]``).
    """
    where = where or source
    column_map = dict(column_map or {})
    required = tuple(required)
    if rows:
        columns = set(rows[0].keys())
        for fieldname in required:
            col = column_map.get(fieldname, fieldname)
            if col not in columns:
                raise UsageError(
                    f"{where}: missing column {col!r}"
                    + (f" (for {fieldname!r})" if col != fieldname else "")
                    + f"; columns are: {', '.join(sorted(columns))} (map columns with --column-map {fieldname}=COLUMN)")
    inverse = {v: k for k, v in column_map.items()}
    out: list[PreferenceRecord] = []
    skipped = 0
    for i, row in enumerate(rows):
        d = {inverse.get(k, k): v for k, v in row.items()}
        problem = None
        for fieldname in required:
            v = d.get(fieldname)
            if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
                problem = f"empty {fieldname!r}"
                break
            if not isinstance(v, (str, list)):
                problem = f"{fieldname!r} is a {type(v).__name__}, expected text or a message list"
                break
        if problem:
            if skip_invalid:
                skipped += 1
                continue
            raise UsageError(f"{where}: row {i + id_offset} has {problem} (use --skip-invalid to skip such rows)")
        rid = next((d[c] for c in ID_COLUMNS if d.get(c) not in (None, "")), None)
        d["row_id"] = str(rid) if rid is not None else str(i + id_offset)
        d.setdefault("source", source)
        try:
            out.append(PreferenceRecord.from_dict(d))
        except (KeyError, TypeError, AttributeError) as exc:
            if skip_invalid:
                skipped += 1
                continue
            raise UsageError(f"{where}: row {i + id_offset} is malformed ({exc})") from None
    if stats is not None:
        stats["skipped"] = stats.get("skipped", 0) + skipped
        stats["loaded"] = stats.get("loaded", 0) + len(out)
    return out


@dataclass
class DatasetSource:
    """Base class for a registered source. Subclasses implement :meth:`load_rows`."""

    name: str
    description: str = ""
    configs: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=lambda: list(PREFERENCE_COLUMNS))
    default_split: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)

    def load_rows(self, config: str | None = None, split: str | None = None, *,
                  data_dir: str | Path | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check(self, config: str | None, split: str | None) -> tuple[str | None, str | None]:
        if self.configs and config is None:
            if len(self.configs) == 1:
                config = self.configs[0]
            else:
                raise UsageError(f"dataset {self.name!r} needs a config: {self.name}:CONFIG with CONFIG one of {', '.join(self.configs)}")
        if self.configs and config not in self.configs:
            raise UsageError(f"dataset {self.name!r} has no config {config!r} (configs: {', '.join(self.configs)})")
        split = split or self.default_split
        if self.splits and split not in self.splits:
            raise UsageError(f"dataset {self.name!r} has no split {split!r} (splits: {', '.join(self.splits)})")
        return config, split

    def load(self, config: str | None = None, split: str | None = None, *, data_dir: str | Path | None = None,
             limit: int | None = None, column_map: dict[str, str] | None = None,
             required: Iterable[str] = PREFERENCE_COLUMNS, skip_invalid: bool = False,
             stats: dict[str, int] | None = None) -> list[PreferenceRecord]:
        from ..options import check_limit

        check_limit(limit)
        config, split = self.check(config, split)
        rows = self.load_rows(config, split, data_dir=data_dir)
        if limit is not None:
            rows = rows[:limit]
        label = ":".join(x for x in (self.name, config) if x) + (f" [{split}]" if split else "")
        return to_records(rows, source=label, column_map={**self.column_map, **(column_map or {})},
                          required=required, skip_invalid=skip_invalid, where=label, stats=stats)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "configs": self.configs,
                "splits": self.splits, "columns": self.columns, "kind": type(self).__name__}


def _data_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    env = os.environ.get("PREFKIT_DATA_DIR")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    return dirs


def _load_hub(hub_id: str, config: str | None, split: str | None) -> list[dict[str, Any]]:
    from ..hub import unreachable_reason

    reason = unreachable_reason()
    if reason:
        raise ConnectionError(reason)
    import datasets

    ds = datasets.load_dataset(hub_id, config, split=split)
    return _split_of(ds, split, f"hub dataset {hub_id}").to_list()


@dataclass
class NamedSource(DatasetSource):
    """A named dataset: offline mirror first (``<data_dir>/<mirror>``), then the hub.

    ``mirror`` is a pattern with ``{name}`` and ``{config}``: the persona plugin's
    sources use ``persona-inference-{config}`` for ``<dir>/persona-inference-BeaverTails/``.
    """

    hub_id: str | None = None
    mirror: str = "{name}-{config}"

    def mirror_paths(self, config: str | None, data_dir: str | Path | None) -> list[Path]:
        rel = self.mirror.format(name=self.name, config=config or "").rstrip("-")
        return [d / rel for d in _data_dirs(data_dir)]

    def load_rows(self, config=None, split=None, *, data_dir=None):
        tried = []
        for path in self.mirror_paths(config, data_dir):
            if path.exists():
                import datasets

                ds = datasets.load_from_disk(str(path))
                return _split_of(ds, split, str(path)).to_list()
            tried.append(str(path))
        hub_error = "no hub id"
        if self.hub_id:
            try:
                return _load_hub(self.hub_id, config, split)
            except UsageError:
                raise
            except Exception as exc:
                hub_error = one_line(exc)
        where = ", ".join(tried) if tried else "no local mirror set (--data-dir / PREFKIT_DATA_DIR)"
        hub = f"hub {self.hub_id}" + (f" config {config}" if config else "")
        raise PrefkitError(
            f"cannot load dataset {self.name!r}" + (f" config {config!r}" if config else "")
            + f": looked in the local mirror ({where}) and on the {hub} ({hub_error}); "
            "point --data-dir or PREFKIT_DATA_DIR at a local mirror")


@dataclass
class _LocatorSource(DatasetSource):
    """A generic source whose "config" is a locator (hub id or path), not a fixed list."""

    def check(self, config, split):
        return config, split


@dataclass
class HubSource(_LocatorSource):
    """Any Hugging Face hub dataset: ``hf:org/name[:config]``."""

    name: str = "hf"
    description: str = "Any Hugging Face hub dataset: hf:ORG/NAME[:CONFIG] (needs hub access)"

    def load_rows(self, config=None, split=None, *, data_dir=None):
        if not config:
            raise UsageError("use hf:ORG/NAME or hf:ORG/NAME:CONFIG")
        hub_id, _, cfg = config.partition(":")
        try:
            return _load_hub(hub_id, cfg or None, split)
        except UsageError:
            raise
        except Exception as exc:
            raise PrefkitError(f"cannot load hub dataset {hub_id!r}: {one_line(exc)}") from None


@dataclass
class DiskSource(_LocatorSource):
    """A ``save_to_disk`` directory (Dataset or DatasetDict)."""

    name: str = "disk"
    description: str = "A datasets save_to_disk directory: pass its path"

    def load_rows(self, config=None, split=None, *, data_dir=None):
        import datasets

        path = Path(config or "")
        if not path.is_dir():
            raise UsageError(f"no such directory: {path}")
        try:
            ds = datasets.load_from_disk(str(path))
        except FileNotFoundError:
            raise UsageError(f"{path} is not a save_to_disk dataset directory") from None
        return _split_of(ds, split, str(path)).to_list()


@dataclass
class FileSource(_LocatorSource):
    """A local ``.jsonl``, ``.json``, ``.parquet`` or ``.csv`` file."""

    name: str = "file"
    description: str = "A local .jsonl, .json, .parquet or .csv file: pass its path"

    def load_rows(self, config=None, split=None, *, data_dir=None):
        _check_single(split, config or "the file")
        return read_table(config or "")


def get_source(name: str) -> DatasetSource:
    from ..plugins import registry

    return registry("datasets").get(name)


def resolve(spec: str) -> tuple[DatasetSource, str | None]:
    """Map a ``--dataset`` value to (source, config)."""
    from ..plugins import registry

    reg = registry("datasets")
    path = Path(spec)
    if spec.startswith("hf:"):
        return reg.get("hf"), spec[3:]
    if path.exists():
        return (reg.get("disk") if path.is_dir() else reg.get("file")), str(path)
    name, _, config = spec.partition(":")
    if name in reg:
        return reg.get(name), config or None
    if path.suffix.lower() in FILE_SUFFIXES or os.sep in spec:
        raise UsageError(f"no such file or directory: {spec}")
    known = ", ".join(sorted(n for n in reg.names() if n not in ("hf", "disk", "file")))
    raise UsageError(f"unknown dataset {spec!r}: not a registered source ({known or 'none'}), "
                     "a local file/directory, or hf:ORG/NAME")


def load_rows(spec: str, *, split: str | None = None, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Raw rows of a dataset spec (no validation)."""
    source, config = resolve(spec)
    config, split = source.check(config, split)
    return source.load_rows(config, split, data_dir=data_dir)


def load_records(spec: str, *, split: str | None = None, data_dir: str | Path | None = None,
                 limit: int | None = None, column_map: dict[str, str] | str | None = None,
                 required: Iterable[str] = PREFERENCE_COLUMNS, skip_invalid: bool = False,
                 stats: dict[str, int] | None = None) -> list[PreferenceRecord]:
    """Load validated :class:`PreferenceRecord` s from any dataset spec."""
    source, config = resolve(spec)
    return source.load(config, split, data_dir=data_dir, limit=limit, column_map=parse_column_map(column_map),
                       required=required, skip_invalid=skip_invalid, stats=stats)
