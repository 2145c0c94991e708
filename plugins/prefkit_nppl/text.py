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


#: every attribute UltraFeedback rates: the reference drops a completion whose rating on any of
#: them is not an integer (``"N/A"``), whatever attributes the task uses
UF_ATTRIBUTES = ("helpfulness", "honesty", "truthfulness", "instruction_following")


def _rating(completion: dict, attribute: str) -> int | None:
    """The integer rating of ``attribute`` (``None`` when missing or not an integer, e.g. ``"N/A"``)."""
    ann = (completion.get("annotations") or {}).get(attribute)
    if isinstance(ann, list):  # some dumps keep one annotation per rater
        ann = ann[0] if ann else None
    value = ann.get("Rating") if isinstance(ann, dict) else ann
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    return None


def _usable_ratings(completion: dict, attributes: Sequence[str]) -> list[int] | None:
    """The ratings of ``attributes``, or ``None`` when the completion must be dropped: a used
    attribute without an integer rating, or any other UltraFeedback attribute it has that is
    not an integer (as the reference, which keeps only completions rated on all four)."""
    ratings = [_rating(completion, a) for a in attributes]
    if any(r is None for r in ratings):
        return None
    annotations = completion.get("annotations") or {}
    if any(a in annotations and _rating(completion, a) is None for a in UF_ATTRIBUTES):
        return None
    return ratings


def ultrafeedback_rows(rows: Iterable[dict[str, Any]], attributes: Sequence[str], seed: int = 0,
                       conflicting_only: bool = True, stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Pairs of completions whose per-attribute preferences conflict; one user type per attribute.

    As the reference: completions without an integer rating on every attribute are dropped, and
    completions are grouped by prompt text (rows repeating a prompt pool their completions)
    before every pair of a group is formed. ``stats`` (if given) receives the counts.
    """
    rng = random.Random(seed)
    groups: dict[str, list[tuple[str, list[int], str]]] = {}
    sources: dict[str, Any] = {}
    dropped = 0
    for pi, row in enumerate(rows):
        prompt = row.get("instruction") or row.get("prompt")
        comps = row.get("completions") or []
        if not prompt or not isinstance(comps, list):
            continue
        prompt = str(prompt)
        rid = row.get("row_id", row.get("id", pi))
        sources.setdefault(prompt, row.get("source", "ultrafeedback"))
        group = groups.setdefault(prompt, [])
        for ci, c in enumerate(comps):
            if not isinstance(c, dict) or not str(c.get("response") or "").strip():
                dropped += 1
                continue
            ratings = _usable_ratings(c, attributes)
            if ratings is None:
                dropped += 1
                continue
            group.append((str(c["response"]), ratings, f"{rid}.{ci}"))
    out = []
    for prompt, usable in groups.items():
        for (ra, sa, ida), (rb, sb, idb) in itertools.combinations(usable, 2):
            if ra == rb or any(x == y for x, y in zip(sa, sb)):
                continue  # a tie on an attribute: that user type has no preference
            choices = [int(y > x) for x, y in zip(sa, sb)]
            if conflicting_only and len(set(choices)) == 1:
                continue
            if _swap(rng):
                ra_, rb_, choices = rb, ra, [1 - c for c in choices]
            else:
                ra_, rb_ = ra, rb
            out.append({"row_id": f"uf:{ida}-{idb}", "prompt": prompt, "response_a": ra_,
                        "response_b": rb_, "choices": choices, "source": sources[prompt]})
    if stats is not None:
        stats["completions_dropped"] = stats.get("completions_dropped", 0) + dropped
        stats["prompts"] = stats.get("prompts", 0) + len(groups)
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


def build_rows(opts, stats: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The pair rows of ``opts.task`` over ``opts.dataset`` (deterministic); ``stats`` receives
    what the builder dropped."""
    import prefkit

    if opts.task not in TASKS:
        raise UsageError(f"unknown --task {opts.task!r} (choose from {', '.join(TASKS)})")
    rows: list[dict[str, Any]] = []
    uf_raw: list[dict[str, Any]] = []
    for spec in opts.dataset:
        for split in _splits_of(spec, opts.split):
            if opts.task in ("uf-hh", "uf-hht"):
                uf_raw += list(prefkit.load_rows(spec, split=split, data_dir=opts.data_dir))
            else:
                recs = prefkit.load_records(spec, split=split, data_dir=opts.data_dir, skip_invalid=True)
                if opts.task == "length":
                    rows += length_rows(recs, opts.min_length_ratio, seed=opts.seed)
                else:
                    rows += label_rows(recs, seed=opts.seed)
    if uf_raw:  # pooled over every source first: pairs are formed per prompt text
        rows += ultrafeedback_rows(uf_raw, TASK_TYPES[opts.task], seed=opts.seed, stats=stats)
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
    """Turns (prompt, response) options into vectors.

    :meth:`encode` returns ``(vectors, kept, truncated)``: ``kept[i]`` is False for a text the
    embedder refuses (too long for a causal LM: its row of ``vectors`` is zero) and
    ``truncated[i]`` is True for a text the model only saw the start of (sentence-transformers
    cut at their ``max_seq_length``). :meth:`embed` returns the vectors and refuses dropped texts.
    """

    name: str = ""
    dim: int = 0
    limit: int = 0

    def encode(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32):
        raise NotImplementedError

    def embed(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32):
        vectors, kept, _ = self.encode(prompts, responses, batch_size)
        if not bool(kept.all()):
            raise UsageError(f"{int((~kept).sum())} of {len(kept)} texts are longer than the embedder's limit of "
                             f"{self.limit} tokens (raise --max-length or shorten them)")
        return vectors


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformer over "prompt\n\nresponse" (all-MiniLM-L6-v2 is bundled offline).

    Sentence-transformers cut every text at their ``max_seq_length`` (256 word pieces for
    all-MiniLM-L6-v2): the texts that were cut are counted and reported, not hidden.
    """

    def __init__(self, name: str, device: str = "cpu"):
        from prefkit import embedding_dimension, load_sentence_transformer

        quiet_transformers()
        self.model = load_sentence_transformer(name, device=device)
        self.name = name
        self.dim = embedding_dimension(self.model)
        self.limit = int(getattr(self.model, "max_seq_length", 0) or 0)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        tok = getattr(self.model, "tokenizer", None)
        if tok is None:
            return [0] * len(texts)
        return [len(ids) for ids in tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]

    def encode(self, prompts, responses, batch_size: int = 32):
        import torch

        texts = [option_text(p, r) for p, r in zip(prompts, responses)]
        with torch.no_grad():
            e = self.model.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        cut = [n > self.limit for n in self.token_counts(texts)] if self.limit else [False] * len(texts)
        return (e.float().cpu(), torch.ones(len(texts), dtype=torch.bool), torch.tensor(cut, dtype=torch.bool))


class CausalLMEmbedder(Embedder):
    """A causal LM's final hidden state at an end-of-sequence token appended to prompt + response
    (the reference's embedding). The text is the model's chat template (which carries its own
    BOS) or, without one, BOS + "prompt\n\nresponse"; texts longer than ``max_length`` tokens
    are not truncated (that would cut the chat header or the response): they are refused
    (``kept`` False) and the pair is dropped and counted by ``prefkit nppl embed``."""

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
        self.max_length = self.limit = max_length
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else (self.tok.eos_token_id or 0)
        self.dim = int(self.model.config.hidden_size)

    def text(self, prompt: str, response: str) -> str:
        return chat_text(self.tok, prompt, response)

    def token_ids(self, prompt: str, response: str) -> list[int]:
        """The tokens of one option: template (or BOS + text), then EOS (whose state is the embedding)."""
        ids = list(self.tok(self.text(prompt, response), add_special_tokens=False)["input_ids"])
        if self.tok.eos_token_id is not None:
            ids.append(int(self.tok.eos_token_id))
        return ids

    def encode(self, prompts, responses, batch_size: int = 8):
        import torch

        seqs = [self.token_ids(p, r) for p, r in zip(prompts, responses)]
        kept = torch.tensor([len(s) <= self.max_length for s in seqs], dtype=torch.bool)
        out = torch.zeros(len(seqs), self.dim)
        todo = [i for i in range(len(seqs)) if kept[i]]
        for s in range(0, len(todo), batch_size):
            part = todo[s:s + batch_size]
            n = max(len(seqs[i]) for i in part)
            ids = torch.full((len(part), n), self.pad_id, dtype=torch.long)
            att = torch.zeros(len(part), n, dtype=torch.long)
            for row, i in enumerate(part):
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                att[row, : len(seqs[i])] = 1
            with torch.no_grad():
                h = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).last_hidden_state
            last = att.sum(dim=1) - 1                         # the appended EOS (right padding)
            out[part] = h[torch.arange(len(part), device=h.device), last.to(h.device)].float().cpu()
        return out, kept, torch.zeros(len(seqs), dtype=torch.bool)


def chat_text(tok, prompt: str, response: str | None = None) -> str:
    """The model's text for a user prompt (and the assistant's response): its chat template, or
    without one BOS + "prompt\n\n" (+ response). ``response=None``: the generation prompt."""
    if getattr(tok, "chat_template", None):
        msgs = [{"role": "user", "content": prompt}]
        if response is None:
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return tok.apply_chat_template(msgs + [{"role": "assistant", "content": response}], tokenize=False)
    bos = tok.bos_token or ""
    if response is None:
        return f"{bos}{prompt.strip()}\n\n"
    return bos + option_text(prompt, response)


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

    from prefkit import info, warn
    from prefkit import progress as progress_bar

    from .data import PairData, random_split
    from .training import resolve_device

    if (Path(run.path) / "pairs.safetensors").exists() and not (Path(run.path) / SHARDS).exists():
        info(f"{run.path}: already embedded; use --fresh to embed again")
        return PairData.load(run.path).stats()
    build_stats: dict[str, Any] = {}
    rows = build_rows(opts, stats=build_stats)
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
            emb, kept, cut = embedder.encode([k[0] for k in keys], [k[1] for k in keys], batch_size=opts.batch_size)
            ta = [texts[(rows[j]["prompt"], rows[j]["response_a"])] for j in idx]
            tb = [texts[(rows[j]["prompt"], rows[j]["response_b"])] for j in idx]
            ok = [bool(kept[a] and kept[b]) for a, b in zip(ta, tb)]
            a = emb[[t for t, k in zip(ta, ok) if k]].reshape(-1, emb.shape[1])
            b = emb[[t for t, k in zip(tb, ok) if k]].reshape(-1, emb.shape[1])
            tmp = shard_dir / f"chunk-{i:05d}.tmp"
            save_file({"option_a": a.contiguous(), "option_b": b.contiguous()}, str(tmp))
            tmp.replace(shard_dir / f"chunk-{i:05d}.safetensors")
            pos = 0
            for j, ia, ib, k in zip(idx, ta, tb, ok):
                r = rows[j]
                rec = {**r, "split": ("train", "val", "test")[int(split[j])], "chunk": i,
                       "truncated": bool(cut[ia] or cut[ib])}
                if k:
                    rec["pos"] = pos
                    pos += 1
                else:
                    rec["dropped"] = f"longer than --max-length {opts.max_length} tokens"
                run.append(rec, key=r["row_id"])
            bar.advance(task, len(idx))
    done_rows = {r["row_id"]: r for r in run.results()}
    keep = [j for j, r in enumerate(rows) if not done_rows.get(r["row_id"], {}).get("dropped")]
    n_dropped = len(rows) - len(keep)
    n_cut = sum(1 for r in rows if done_rows.get(r["row_id"], {}).get("truncated"))
    if not keep:
        raise UsageError(f"every pair is longer than --max-length {opts.max_length} tokens: nothing to embed")
    parts = [load_file(str(shard_dir / f"chunk-{i:05d}.safetensors")) for i in range(len(chunks))]
    keep_t = torch.tensor(keep, dtype=torch.long)
    data = PairData(torch.cat([p["option_a"] for p in parts]), torch.cat([p["option_b"] for p in parts]),
                    torch.tensor([rows[j]["choices"] for j in keep], dtype=torch.long), split[keep_t],
                    {"kind": "embeddings", "task": opts.task, "user_types": types, "embedder": opts.embedder,
                     "datasets": list(opts.dataset), "seed": opts.seed, "pairs_dropped_too_long": n_dropped,
                     "pairs_truncated": n_cut, **build_stats})
    data.save(run.path)
    for f in shard_dir.glob("chunk-*.safetensors"):
        f.unlink()
    shard_dir.rmdir()
    if n_dropped:
        warn(f"dropped {n_dropped} of {len(rows)} pairs with an option longer than --max-length "
             f"{opts.max_length} tokens (not truncated: that would cut the chat header or the response's end)")
    if n_cut:
        limit = embedder.limit if embedder is not None else "its maximum"
        warn(f"{n_cut} of {len(rows)} pairs have an option longer than the embedder's {limit} word pieces: "
             f"{opts.embedder} saw only its beginning (a long response is mostly cut off); "
             "use an hf: causal-LM embedder with a larger --max-length to embed whole texts")
    stats = {**data.stats(), "pairs_dropped_too_long": n_dropped, "pairs_truncated": n_cut, **build_stats}
    run.write_metrics(stats)
    return stats


def pair_rows(directory: str | Path) -> list[dict[str, Any]]:
    """The text rows of an embedding directory, in the order of its tensors."""
    from prefkit import read_jsonl

    rows = [r for r in read_jsonl(Path(directory) / "results.jsonl") if not r.get("dropped")]
    rows.sort(key=lambda r: (int(r.get("chunk", 0)), int(r.get("pos", 0))))
    return rows
