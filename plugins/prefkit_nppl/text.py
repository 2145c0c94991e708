"""Text preference tasks with several user types, and the embedders that turn options into vectors.

Task builders turn preference data into *pair rows*: ``{row_id, prompt, response_a,
response_b, choices: [one 0/1 per user type (1 = b preferred)], source}``.

* ``length`` — two user types over any preference pairs (offline: the persona
  data beside the project): type ``longer`` prefers the longer response, type
  ``shorter`` the shorter one. Verbosity is the preference axis users disagree on
  most visibly (the persona data itself pairs "detail-oriented" users with
  "prefers concise answers" ones), it is defined for every pair, and it is a
  property of the text an embedding can carry. Pairs whose lengths are too close
  (``--min-length-ratio``) are dropped so the rule is unambiguous.
* ``label`` — type ``chosen`` agrees with the dataset's labels, type ``rejected``
  disagrees with every one (a contrarian user): the hardest case for a model
  without context (50 %).
* ``uf-hh`` / ``uf-hht`` — UltraFeedback-format rows (``instruction`` +
  ``completions`` with per-attribute ``annotations[attr]["Rating"]``): every pair
  of completions of a prompt; the user types are helpfulness and honesty (+
  truthfulness), each preferring the completion it rates higher; pairs with a tie
  on any used attribute are dropped and only pairs on which the types disagree are
  kept (as in the paper's HH/HHT data).

The option order inside a pair is randomised (seeded), so "b is chosen" carries no
signal by itself.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any, Iterable, Sequence

from prefkit import UsageError

TASKS = ("length", "label", "uf-hh", "uf-hht")
TASK_TYPES = {"length": ["longer", "shorter"], "label": ["chosen", "rejected"],
              "uf-hh": ["helpfulness", "honesty"], "uf-hht": ["helpfulness", "honesty", "truthfulness"]}
UF_HUB = "hf:openbmb/UltraFeedback"
SKIP_SPLITS = {"fewshot"}


# ---------------------------------------------------------------------- builders
def _swap(rng: random.Random) -> bool:
    return rng.random() < 0.5


def length_rows(records: Iterable[Any], min_ratio: float = 1.2, seed: int = 0) -> list[dict[str, Any]]:
    """Two user types: ``longer`` prefers the longer response, ``shorter`` the shorter."""
    rng = random.Random(seed)
    out, seen = [], set()
    for rec in records:
        prompt, x, y = rec.prompt_text, rec.chosen_text, rec.rejected_text
        if not x.strip() or not y.strip() or x == y:
            continue
        key = (prompt, min(x, y), max(x, y))
        if key in seen:
            continue
        seen.add(key)
        lx, ly = len(x), len(y)
        if max(lx, ly) < min_ratio * min(lx, ly) or lx == ly:
            continue
        a, b = (y, x) if _swap(rng) else (x, y)
        b_longer = int(len(b) > len(a))
        out.append({"row_id": f"{rec.source or 'data'}:{rec.row_id}", "prompt": prompt, "response_a": a,
                    "response_b": b, "choices": [b_longer, 1 - b_longer], "source": rec.source})
    return out


def label_rows(records: Iterable[Any], seed: int = 0) -> list[dict[str, Any]]:
    """Two user types: ``chosen`` agrees with the dataset's labels, ``rejected`` disagrees."""
    rng = random.Random(seed)
    out, seen = [], set()
    for rec in records:
        prompt, x, y = rec.prompt_text, rec.chosen_text, rec.rejected_text
        if not x.strip() or not y.strip() or x == y or (prompt, x, y) in seen:
            continue
        seen.add((prompt, x, y))
        swap = _swap(rng)
        a, b = (y, x) if swap else (x, y)
        b_chosen = int(swap)
        out.append({"row_id": f"{rec.source or 'data'}:{rec.row_id}", "prompt": prompt, "response_a": a,
                    "response_b": b, "choices": [b_chosen, 1 - b_chosen], "source": rec.source})
    return out


def _rating(completion: dict, attribute: str) -> float | None:
    ann = (completion.get("annotations") or {}).get(attribute)
    if isinstance(ann, list):  # some dumps keep one annotation per rater
        ann = ann[0] if ann else None
    value = ann.get("Rating") if isinstance(ann, dict) else ann
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def ultrafeedback_rows(rows: Iterable[dict[str, Any]], attributes: Sequence[str], seed: int = 0,
                       conflicting_only: bool = True) -> list[dict[str, Any]]:
    """Pairs of completions whose per-attribute preferences conflict; one user type per attribute."""
    rng = random.Random(seed)
    out = []
    for pi, row in enumerate(rows):
        prompt = row.get("instruction") or row.get("prompt")
        comps = row.get("completions") or []
        if not prompt or not isinstance(comps, list):
            continue
        usable = []
        for c in comps:
            if not isinstance(c, dict) or not str(c.get("response") or "").strip():
                continue
            ratings = [_rating(c, a) for a in attributes]
            if any(r is None for r in ratings):
                continue
            usable.append((str(c["response"]), ratings))
        for (i, (ra, sa)), (j, (rb, sb)) in itertools.combinations(enumerate(usable), 2):
            if ra == rb or any(x == y for x, y in zip(sa, sb)):
                continue  # a tie on an attribute: that user type has no preference
            choices = [int(y > x) for x, y in zip(sa, sb)]
            if conflicting_only and len(set(choices)) == 1:
                continue
            if _swap(rng):
                ra_, rb_, choices = rb, ra, [1 - c for c in choices]
            else:
                ra_, rb_ = ra, rb
            rid = row.get("row_id", row.get("id", pi))
            out.append({"row_id": f"uf:{rid}:{i}-{j}", "prompt": str(prompt), "response_a": ra_,
                        "response_b": rb_, "choices": choices, "source": row.get("source", "ultrafeedback")})
    return out


def default_datasets(task: str, data_dir: str | None = None) -> list[str]:
    if task in ("uf-hh", "uf-hht"):
        return [UF_HUB]
    import os

    for base in filter(None, [data_dir, os.environ.get("PREFKIT_DATA_DIR")]):
        for cand in (Path(base) / "persona-tailoring-BeaverTails", Path(base) / "persona" / "persona-tailoring-BeaverTails"):
            if cand.is_dir():
                return [str(cand)]
    # otherwise the registered persona-tailoring source (local mirror first, then the hub), if installed
    from prefkit import registry

    if "persona-tailoring" in registry("datasets"):
        return ["persona-tailoring:BeaverTails"]
    raise UsageError("no --dataset given and no persona data mirror found: pass --dataset (a file, a "
                     "save_to_disk directory or a registered dataset name) or --data-dir")


def _splits_of(spec: str, split: str | None) -> list[str | None]:
    from prefkit import split_csv

    if split:
        return split_csv(split)
    p = Path(spec)
    if p.is_dir() and (p / "dataset_dict.json").exists():
        names = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
        return [s for s in names if s not in SKIP_SPLITS] or [None]
    if p.exists():
        return [None]
    if spec.startswith("hf:"):
        return ["train"]
    try:
        import prefkit

        src = prefkit.get_source(spec.split(":", 1)[0])
        parts = [s for s in (getattr(src, "splits", None) or []) if s not in SKIP_SPLITS]
        return parts or [getattr(src, "default_split", None)]
    except Exception:
        return [None]


def build_rows(opts) -> list[dict[str, Any]]:
    """The pair rows of ``opts.task`` over ``opts.dataset`` (deterministic)."""
    import prefkit

    if opts.task not in TASKS:
        raise UsageError(f"unknown --task {opts.task!r} (choose from {', '.join(TASKS)})")
    rows: list[dict[str, Any]] = []
    for spec in opts.dataset:
        for split in _splits_of(spec, opts.split):
            if opts.task in ("uf-hh", "uf-hht"):
                raw = prefkit.load_rows(spec, split=split, data_dir=opts.data_dir)
                attrs = TASK_TYPES[opts.task]
                rows += ultrafeedback_rows(raw, attrs, seed=opts.seed)
            else:
                recs = prefkit.load_records(spec, split=split, data_dir=opts.data_dir, skip_invalid=True)
                if opts.task == "length":
                    rows += length_rows(recs, opts.min_length_ratio, seed=opts.seed)
                else:
                    rows += label_rows(recs, seed=opts.seed)
    seen, unique = set(), []
    for r in rows:  # the same pair in two splits of a source counts once
        key = (r["prompt"], r["response_a"], r["response_b"])
        if key in seen:
            continue
        seen.add(key)
        unique.append(r)
    ids = set()
    for i, r in enumerate(unique):
        if r["row_id"] in ids:
            r["row_id"] = f"{r['row_id']}#{i}"
        ids.add(r["row_id"])
    if opts.limit is not None:
        unique = unique[: opts.limit]
    if len(unique) < 20:
        raise UsageError(f"the {opts.task} task over {', '.join(opts.dataset)} has only {len(unique)} pairs; "
                         "need at least 20 (one task)")
    return unique


def option_text(prompt: str, response: str) -> str:
    return f"{prompt.strip()}\n\n{response.strip()}"


# ---------------------------------------------------------------------- embedders
def quiet_transformers() -> None:
    """No per-load progress bars and load reports from transformers."""
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass


class Embedder:
    name: str = ""
    dim: int = 0

    def embed(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32):
        raise NotImplementedError


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformer over "prompt\\n\\nresponse" (all-MiniLM-L6-v2 is bundled offline)."""

    def __init__(self, name: str, device: str = "cpu"):
        from prefkit import embedding_dimension, load_sentence_transformer

        quiet_transformers()
        self.model = load_sentence_transformer(name, device=device)
        self.name = name
        self.dim = embedding_dimension(self.model)

    def embed(self, prompts, responses, batch_size: int = 32):
        import torch

        texts = [option_text(p, r) for p, r in zip(prompts, responses)]
        with torch.no_grad():
            e = self.model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return e.float().cpu()


class CausalLMEmbedder(Embedder):
    """A causal LM's final hidden state at the last token of prompt + response (the paper's choice)."""

    def __init__(self, name: str, device: str = "cpu", max_length: int = 512):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        try:
            self.tok = AutoTokenizer.from_pretrained(name)
            lm = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32 if device == "cpu" else "auto")
            # the decoder without the LM head: its last_hidden_state is the final (normalised) hidden state
            self.model = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.base_model
        except Exception as exc:
            raise UsageError(f"cannot load causal LM {name!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        self.model.to(device).eval()
        self.device = device
        self.name = name
        self.max_length = max_length
        self.tok.truncation_side = "left"  # keep the end of the response: its last token is the embedding
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.dim = int(self.model.config.hidden_size)

    def text(self, prompt: str, response: str) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template([{"role": "user", "content": prompt},
                                                 {"role": "assistant", "content": response}], tokenize=False)
        return option_text(prompt, response)

    def embed(self, prompts, responses, batch_size: int = 8):
        import torch

        out = []
        texts = [self.text(p, r) for p, r in zip(prompts, responses)]
        for s in range(0, len(texts), batch_size):
            enc = self.tok(texts[s:s + batch_size], return_tensors="pt", padding=True, truncation=True,
                           max_length=self.max_length, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                h = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"]
            if self.tok.padding_side == "left":
                last = torch.full((h.shape[0],), h.shape[1] - 1, device=h.device)
            else:
                last = mask.sum(dim=1) - 1
            out.append(h[torch.arange(h.shape[0], device=h.device), last].float().cpu())
        return torch.cat(out, dim=0)


def get_embedder(name: str, device: str = "cpu", max_length: int = 512) -> Embedder:
    """``hf:MODEL`` → causal LM; ``st:NAME`` or a known sentence-transformer → sentence-transformers."""
    from prefkit import is_bundled

    if name.startswith("hf:"):
        return CausalLMEmbedder(name[3:], device, max_length)
    if name.startswith("st:"):
        return SentenceTransformerEmbedder(name[3:], device)
    if is_bundled(name) or name.startswith("sentence-transformers/"):
        return SentenceTransformerEmbedder(name, device)
    p = Path(name)
    if p.is_dir() and (p / "modules.json").exists():
        return SentenceTransformerEmbedder(name, device)
    if p.is_dir() and (p / "config.json").exists():
        return CausalLMEmbedder(name, device, max_length)
    raise UsageError(f"unknown --embedder {name!r}: use all-MiniLM-L6-v2, st:NAME_OR_PATH or hf:MODEL_OR_PATH")


# ---------------------------------------------------------------------- embed + save
SHARDS = "shards"


def build_and_embed(opts, run) -> dict[str, Any]:
    """Build the task, embed every option chunk by chunk (resumable), save the pair dataset."""
    import torch
    from safetensors.torch import load_file, save_file

    from prefkit import info
    from prefkit import progress as progress_bar

    from .data import PairData, random_split
    from .training import resolve_device

    if (Path(run.path) / "pairs.safetensors").exists() and not (Path(run.path) / SHARDS).exists():
        info(f"{run.path}: already embedded; use --fresh to embed again")
        return PairData.load(run.path).stats()
    rows = build_rows(opts)
    types = TASK_TYPES[opts.task]
    split = random_split(len(rows), opts.seed)
    shard_dir = Path(run.path) / SHARDS
    shard_dir.mkdir(parents=True, exist_ok=True)
    cs = max(1, opts.chunk_size)
    chunks = [list(range(s, min(s + cs, len(rows)))) for s in range(0, len(rows), cs)]
    todo = [i for i, ch in enumerate(chunks)
            if not (shard_dir / f"chunk-{i:05d}.safetensors").exists()
            or any(not run.is_done(rows[j]["row_id"]) for j in ch)]
    embedder = None
    if todo:
        device = str(resolve_device(opts.device))
        info(f"{len(rows)} pairs, {len(todo)} of {len(chunks)} chunks to embed with {opts.embedder} on {device}")
        embedder = get_embedder(opts.embedder, device, opts.max_length)
    with progress_bar(len(rows), "embedding") as (bar, task):
        bar.update(task, completed=(len(chunks) - len(todo)) * cs)
        for i in todo:
            idx = chunks[i]
            texts: dict[tuple[str, str], int] = {}
            for j in idx:
                for side in ("response_a", "response_b"):
                    texts.setdefault((rows[j]["prompt"], rows[j][side]), len(texts))
            keys = list(texts)
            emb = embedder.embed([k[0] for k in keys], [k[1] for k in keys], batch_size=opts.batch_size)
            a = torch.stack([emb[texts[(rows[j]["prompt"], rows[j]["response_a"])]] for j in idx])
            b = torch.stack([emb[texts[(rows[j]["prompt"], rows[j]["response_b"])]] for j in idx])
            tmp = shard_dir / f"chunk-{i:05d}.tmp"
            save_file({"option_a": a.contiguous(), "option_b": b.contiguous()}, str(tmp))
            tmp.replace(shard_dir / f"chunk-{i:05d}.safetensors")
            for pos, j in enumerate(idx):
                r = rows[j]
                run.append({**r, "split": ("train", "val", "test")[int(split[j])], "chunk": i, "pos": pos},
                           key=r["row_id"])
            bar.advance(task, len(idx))
    parts = [load_file(str(shard_dir / f"chunk-{i:05d}.safetensors")) for i in range(len(chunks))]
    data = PairData(torch.cat([p["option_a"] for p in parts]), torch.cat([p["option_b"] for p in parts]),
                    torch.tensor([r["choices"] for r in rows], dtype=torch.long), split,
                    {"kind": "embeddings", "task": opts.task, "user_types": types, "embedder": opts.embedder,
                     "datasets": list(opts.dataset), "seed": opts.seed})
    data.save(run.path)
    for f in shard_dir.glob("chunk-*.safetensors"):
        f.unlink()
    shard_dir.rmdir()
    stats = data.stats()
    run.write_metrics(stats)
    return stats


def pair_rows(directory: str | Path) -> list[dict[str, Any]]:
    """The text rows of an embedding directory, in the order of its tensors."""
    from prefkit import read_jsonl

    rows = read_jsonl(Path(directory) / "results.jsonl")
    rows.sort(key=lambda r: (int(r.get("chunk", 0)), int(r.get("pos", 0))))
    return rows
