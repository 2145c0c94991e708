"""ComPreD and SHP data: the schema, the sources, the training subsample.

Hub datasets (the reference's data):

* ``allenai/compred``: configs ``finance``, ``gender_sexuality``, ``history``, ``politics``,
  ``science`` (splits ``train_pref``, ``validation_pref``, ``test_pref``) and
  ``<subset>_test_prompts`` (split ``test_prompts``); ``domain`` is the plain subreddit name;
* ``stanfordnlp/SHP``: splits ``train``, ``validation``, ``test``; ``domain`` is
  ``<subreddit>_<split>`` (normalised here to the subreddit) and ``history`` already holds
  title + body.

Offline mirror (tried before the hub): ``<data-dir>/compred-<config>/`` and ``<data-dir>/shp/``,
each a ``save_to_disk`` DatasetDict with the hub's split names.

Everything large stays in Arrow: splits are memory-mapped ``datasets.Dataset`` s (or
streamed ``IterableDataset`` s), the subsample scans a few columns batch by batch and
keeps only row indices, and no split is ever turned into a pandas frame.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import prefkit

COMPRED_HUB = "allenai/compred"
SHP_HUB = "stanfordnlp/SHP"
SUBSETS = ("finance", "gender_sexuality", "history", "politics", "science")
PREF_SPLITS = ("train_pref", "validation_pref", "test_pref")
PROMPTS_SPLIT = "test_prompts"
SHP_SPLITS = ("train", "validation", "test")

#: ComPreD preference columns and their Arrow types (the hub's schema).
PREF_SCHEMA = {
    "domain": "string", "post_id": "string", "title": "string", "history": "string",
    "c_root_id_A": "string", "c_root_id_B": "string", "created_at_utc_A": "float64", "created_at_utc_B": "float64",
    "score_A": "int64", "score_B": "int64", "human_ref_A": "string", "human_ref_B": "string", "labels": "int64",
    "overlap_ratio": "float64", "seconds_difference": "float64", "score_ratio": "float64", "len_ratio": "float64",
}
#: ComPreD ``<subset>_test_prompts`` columns (one row per post and comment).
PROMPTS_SCHEMA = {
    "rank": "int64", "only_comment": "bool", "domain": "string", "post_id": "string", "title": "string",
    "history": "string", "c_root_id": "string", "created_at_utc": "float64", "score": "int64", "human_ref": "string",
}
#: SHP columns: as ComPreD's without title / overlap_ratio / len_ratio, with upvote_ratio and int times.
SHP_SCHEMA = {
    "post_id": "string", "domain": "string", "upvote_ratio": "float64", "history": "string",
    "c_root_id_A": "string", "c_root_id_B": "string", "created_at_utc_A": "int64", "created_at_utc_B": "int64",
    "score_A": "int64", "score_B": "int64", "human_ref_A": "string", "human_ref_B": "string", "labels": "int64",
    "seconds_difference": "float64", "score_ratio": "float64",
}

_SCAN_COLUMNS = ("domain", "post_id", "c_root_id_A", "c_root_id_B", "score_ratio")


# ------------------------------------------------------------------------------------------------ subsets
@dataclass(frozen=True)
class Subset:
    """Where a subset's splits live: ``finance`` ... in ComPreD, or ``shp``."""

    name: str
    source: str            # "compred" | "shp"
    config: str | None     # the preference config (None for SHP)
    train: str
    validation: str
    test: str
    prompts_config: str | None
    prompts_split: str

    @property
    def hub_id(self) -> str:
        return COMPRED_HUB if self.source == "compred" else SHP_HUB


def subset(name: str) -> Subset:
    """The :class:`Subset` called ``name`` (a ComPreD subset or ``shp``); a clear error otherwise."""
    key = str(name or "").strip().lower().replace("-", "_")
    if key == "gender_and_sexuality":  # the reference README's spelling
        key = "gender_sexuality"
    if key in SUBSETS:
        return Subset(key, "compred", key, *PREF_SPLITS, f"{key}_test_prompts", PROMPTS_SPLIT)
    if key == "shp":
        return Subset("shp", "shp", None, *SHP_SPLITS, None, "test")
    raise prefkit.UsageError(f"unknown subset {name!r} (choose from {', '.join(SUBSETS)} or shp)")


def normalize_domain(domain: Any, source: str = "compred") -> str:
    """The subreddit of a row: ComPreD's ``domain`` as it is; SHP's ``askculinary_train`` → ``askculinary``.

    Only a trailing ``_train``/``_validation``/``_test`` is cut, so names with ``_`` survive.
    """
    d = str(domain or "")
    if source == "shp":
        head, sep, tail = d.rpartition("_")
        if sep and tail in SHP_SPLITS:
            return head
    return d


def post_text(title: Any, history: Any) -> str:
    """The post as the model sees it: title, newline, body (SHP's ``history`` already starts with the title)."""
    title, history = str(title or "").strip(), str(history or "").strip()
    if not title:
        return history
    return f"{title}\n{history}" if history else title


def pair_of(row: dict[str, Any], source: str = "compred") -> dict[str, Any]:
    """One hub preference row → the plugin's pair: ``labels == 1`` means ``human_ref_A`` is preferred."""
    a_wins = int(row["labels"]) == 1
    chosen, rejected = (row["human_ref_A"], row["human_ref_B"]) if a_wins else (row["human_ref_B"], row["human_ref_A"])
    title = row.get("title") if source == "compred" else ""
    return {
        "pair_id": f"{row['post_id']}:{row['c_root_id_A']}:{row['c_root_id_B']}",
        "post_id": str(row["post_id"]),
        "subreddit": normalize_domain(row["domain"], source),
        "title": str(title or ""),
        "body": str(row.get("history") or ""),
        "post": post_text(title, row.get("history")),
        "chosen": str(chosen),
        "rejected": str(rejected),
        "score_chosen": int(row["score_A"] if a_wins else row["score_B"]),
        "score_rejected": int(row["score_B"] if a_wins else row["score_A"]),
        "score_ratio": float(row["score_ratio"]),
    }


def post_of(row: dict[str, Any], source: str = "compred") -> dict[str, Any]:
    """One test-prompt row (or an SHP test row) → the post to answer."""
    title = row.get("title") if source == "compred" else ""
    return {"post_id": str(row["post_id"]), "subreddit": normalize_domain(row["domain"], source),
            "title": str(title or ""), "body": str(row.get("history") or ""),
            "post": post_text(title, row.get("history"))}


# ------------------------------------------------------------------------------------------------ loading
def _data_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = [Path(data_dir)] if data_dir else []
    env = os.environ.get("PREFKIT_DATA_DIR")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return dirs


def mirror_names(source: str, config: str | None) -> list[str]:
    if source == "shp":
        return ["shp"] + ([f"shp-{config}"] if config else [])
    return [f"compred-{config}"]


def open_split(sub: Subset, split: str, *, config: str | None = None, data_dir: str | Path | None = None,
               hub_id: str | None = None, streaming: bool = False):
    """A split as a ``datasets.Dataset`` (mirror, memory-mapped) or, with ``streaming``, an ``IterableDataset``.

    ``config`` defaults to the subset's preference config. ``hub_id`` replaces the hub dataset id
    (a local directory laid out as the hub repository works too).
    """
    import datasets

    config = sub.config if config is None else config
    tried = []
    for d in _data_dirs(data_dir):
        for name in mirror_names(sub.source, config):
            path = d / name
            if path.exists():
                try:
                    ds = datasets.load_from_disk(str(path))
                except FileNotFoundError:
                    raise prefkit.UsageError(f"{path} is not a save_to_disk dataset directory") from None
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise prefkit.UsageError(f"{path} has no split {split!r} (splits: {', '.join(ds)})")
                    ds = ds[split]
                return ds
            tried.append(str(path))
    hub = hub_id or sub.hub_id
    try:
        return datasets.load_dataset(hub, config, split=split, streaming=streaming)
    except Exception as exc:  # noqa: BLE001 - offline, unknown config ...: one clear line
        where = ", ".join(tried) if tried else "no local mirror set (--data-dir / PREFKIT_DATA_DIR)"
        raise prefkit.PrefkitError(
            f"cannot load {sub.name} split {split!r}: looked in the local mirror ({where}) and on the hub "
            f"{hub}" + (f" config {config}" if config else "") + f" ({prefkit.one_line(exc)}); "
            "point --data-dir at a local mirror (python -m prefkit_compred.fixture writes a small fixture)") from None


# ------------------------------------------------------------------------------------------------ subsample
def pair_priority(seed: int, post_id: Any, a: Any, b: Any) -> int:
    """A seeded pseudo-random rank of a pair: the same pair gets the same rank wherever it is read."""
    h = hashlib.blake2b(f"{seed}\x00{post_id}\x00{a}\x00{b}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


@dataclass
class Subsample:
    """The subsample's pairs (hub rows, an Arrow ``Dataset``) and its counts per subreddit."""

    dataset: Any
    counts: dict[str, Any] = field(default_factory=dict)


def _batches(ds, batch_size: int, columns: Iterable[str] | None) -> Iterable[dict[str, list]]:
    import datasets

    if isinstance(ds, datasets.Dataset):
        part = ds.select_columns(list(columns)) if columns else ds
        yield from part.iter(batch_size=batch_size)
    else:
        yield from ds.iter(batch_size=batch_size)


def subsample(ds, *, source: str = "compred", min_ratio: float = 2.0, per_post: int = 5, seed: int = 0,
              limit: int | None = None, batch_size: int = 10_000) -> Subsample:
    """The reference's training subsample, seeded: ``score_ratio >= min_ratio``, at most ``per_post`` pairs a post.

    One pass over five columns (``domain``, ``post_id``, the comment ids, ``score_ratio``) in
    Arrow batches; per post, the ``per_post`` pairs with the smallest seeded priority
    (:func:`pair_priority`) stay: a uniform sample without replacement, independent of the row
    order, so a streamed split gives the same pairs as a downloaded one. The kept pairs are
    shuffled with ``seed``. ``limit`` keeps the first N of the shuffled pairs (after counting).

    ``counts``: pairs per subreddit ``before`` filtering, after the ratio filter
    (``after_ratio``) and in the subsample (``after``), plus totals.
    """
    import datasets

    if per_post < 1:
        raise prefkit.UsageError(f"--pairs-per-post must be at least 1 (got {per_post})")
    if limit is not None and limit < 1:
        raise prefkit.UsageError(f"--limit must be at least 1 (got {limit})")
    streamed = not isinstance(ds, datasets.Dataset)
    before: dict[str, int] = {}
    kept_ratio: dict[str, int] = {}
    heaps: dict[str, list] = {}
    offset = 0
    for batch in _batches(ds, batch_size, None if streamed else _SCAN_COLUMNS):
        n = len(batch["post_id"])
        for i in range(n):
            dom = normalize_domain(batch["domain"][i], source)
            before[dom] = before.get(dom, 0) + 1
            ratio = batch["score_ratio"][i]
            if ratio is None or float(ratio) < min_ratio:
                continue
            kept_ratio[dom] = kept_ratio.get(dom, 0) + 1
            pid = batch["post_id"][i]
            prio = pair_priority(seed, pid, batch["c_root_id_A"][i], batch["c_root_id_B"][i])
            row = {k: batch[k][i] for k in batch} if streamed else None
            item = (-prio, offset + i, dom, row)
            heap = heaps.setdefault(pid, [])
            if len(heap) < per_post:
                heapq.heappush(heap, item)
            elif item > heap[0]:  # a smaller priority than the largest kept one
                heapq.heapreplace(heap, item)
        offset += n
    chosen = sorted((item for heap in heaps.values() for item in heap), key=lambda it: it[1])
    after: dict[str, int] = {}
    for _, _, dom, _ in chosen:
        after[dom] = after.get(dom, 0) + 1
    if streamed:
        out = datasets.Dataset.from_list([it[3] for it in chosen]) if chosen else None
    else:
        out = ds.select([it[1] for it in chosen]) if chosen else None
    if out is None or len(out) == 0:
        raise prefkit.UsageError(f"no pairs left after the subsample (score_ratio >= {min_ratio:g}; "
                                 f"{sum(before.values())} pairs read)")
    out = out.shuffle(seed=seed)
    if limit is not None and limit < len(out):
        out = out.select(range(limit))
    counts = {
        "min_score_ratio": min_ratio, "pairs_per_post": per_post, "seed": seed,
        "before": dict(sorted(before.items())), "after_ratio": dict(sorted(kept_ratio.items())),
        "after": dict(sorted(after.items())),
        "total_before": sum(before.values()), "total_after_ratio": sum(kept_ratio.values()),
        "total_after": sum(after.values()), "posts": len(heaps), "used": len(out),
    }
    return Subsample(out, counts)


def load_pairs(sub: Subset, split: str, *, data_dir=None, hub_id=None, streaming: bool = False,
               sample: bool = True, min_ratio: float = 2.0, per_post: int = 5, seed: int = 0,
               limit: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The split's pairs as plugin pair dicts (subsampled unless ``sample=False``) and the counts."""
    ds = open_split(sub, split, data_dir=data_dir, hub_id=hub_id, streaming=streaming)
    if sample:
        res = subsample(ds, source=sub.source, min_ratio=min_ratio, per_post=per_post, seed=seed, limit=limit)
        ds, counts = res.dataset, res.counts
    else:
        import datasets

        if not isinstance(ds, datasets.Dataset):
            ds = ds.take(limit) if limit else ds
        elif limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        counts = {}
    pairs = [pair_of(r, sub.source) for r in ds]
    if not sample:
        by: dict[str, int] = {}
        for p in pairs:
            by[p["subreddit"]] = by.get(p["subreddit"], 0) + 1
        counts = {"pairs": dict(sorted(by.items())), "total": len(pairs)}
    return pairs, counts


def load_posts(sub: Subset, *, data_dir=None, hub_id=None, limit: int | None = None) -> tuple[list[dict], dict]:
    """The test posts, one per ``post_id`` (the first row of each), in file order; and counts."""
    ds = open_split(sub, sub.prompts_split, config=sub.prompts_config, data_dir=data_dir, hub_id=hub_id)
    posts, seen, rows = [], set(), 0
    for batch in _batches(ds, 10_000, ("domain", "post_id", "title", "history") if sub.source == "compred"
                          else ("domain", "post_id", "history")):
        for i in range(len(batch["post_id"])):
            rows += 1
            pid = str(batch["post_id"][i])
            if pid in seen:
                continue
            seen.add(pid)
            posts.append(post_of({k: batch[k][i] for k in batch}, sub.source))
    total = len(posts)
    if limit is not None:
        if limit < 1:
            raise prefkit.UsageError(f"--limit must be at least 1 (got {limit})")
        posts = posts[:limit]
    return posts, {"rows": rows, "posts": total, "duplicates_dropped": rows - total, "used": len(posts)}


# ------------------------------------------------------------------------------------------------ sources
def _records_of(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if "labels" in r:
            p = pair_of(r, source)
            out.append({"row_id": p["pair_id"], "prompt": p["post"], "chosen": p["chosen"], "rejected": p["rejected"],
                        "community": p["subreddit"], "post_id": p["post_id"], "title": p["title"],
                        "score_ratio": p["score_ratio"]})
        else:
            p = post_of(r, source)
            out.append({"row_id": f"{p['post_id']}:{r.get('c_root_id', '')}", "prompt": p["post"],
                        "completion": r.get("human_ref"), "community": p["subreddit"], "post_id": p["post_id"],
                        "score": r.get("score"), "rank": r.get("rank")})
    return out


@dataclass
class CompredSource(prefkit.NamedSource):
    """ComPreD / SHP as preference records: prompt = post, chosen/rejected from ``labels``, community = subreddit."""

    kind: str = "compred"

    def load_rows(self, config=None, split=None, *, data_dir=None):
        return _records_of(super().load_rows(config, split, data_dir=data_dir), self.kind)


def compred_source() -> CompredSource:
    return CompredSource(
        name="compred", kind="compred", hub_id=COMPRED_HUB, mirror="compred-{config}",
        description="ComPreD (Kumar et al., ComPO): Reddit preference pairs by community; configs finance, "
                    "gender_sexuality, history, politics, science (+ <subset>_test_prompts)",
        configs=[*SUBSETS, *(f"{s}_test_prompts" for s in SUBSETS)],
        splits=[*PREF_SPLITS, PROMPTS_SPLIT], default_split="train_pref",
        columns=["prompt", "chosen", "rejected", "community", "post_id"])


def shp_source() -> CompredSource:
    return CompredSource(
        name="shp", kind="shp", hub_id=SHP_HUB, mirror="shp",
        description="Stanford Human Preferences (SHP): Reddit preference pairs from 18 subreddits",
        configs=[], splits=list(SHP_SPLITS), default_split="train",
        columns=["prompt", "chosen", "rejected", "community", "post_id"])
