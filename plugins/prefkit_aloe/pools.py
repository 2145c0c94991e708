"""ALOE persona pools: the shipped profiles and personalities, decoded correctly, and personas.

A *persona* is one profile (objective facts: age, job, hobbies, family; it drives the topics)
plus one personality (traits; it drives the conversation style). The pools of the paper ship in
``data/``, each line one JSON string:

* ``profile.jsonl``: 330 lines holding 331 profiles (line 6 holds two JSON strings run together);
* ``personality.jsonl``: 71 personalities;
* ``profile_eval.jsonl`` (20) and ``personality_eval.jsonl`` (7): the benchmark's pools.

Unlike the reference, which pastes every raw line (JSON quotes and newline included) into its
prompts, :func:`load_pool` decodes every JSON string on a line, strips whitespace and validates
the items.

Kept light: no heavy import at module level (the CLI imports this module).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import prefkit

DATA_DIR = Path(__file__).resolve().parent / "data"
KINDS = ("profile", "personality")
SPLITS = ("train", "eval")

# Item validation (format and length). The shipped items are 36-73 words (profiles) and 42-102
# words (personalities); the bounds leave room on both sides without letting a fragment or a
# run-together paragraph of several items in.
MIN_WORDS = 15
MAX_WORDS = 160
_PRONOUN_START = re.compile(r"^(He|She|They)\b")
_SENTENCE_PRONOUN = re.compile(r"(?:^|[.!?]\s+)(He|She|His|Her)\b")
_GENDER = {"He": "m", "His": "m", "She": "f", "Her": "f"}


def pool_file(kind: str, split: str = "train") -> Path:
    """The shipped file of a pool."""
    _check_kind(kind)
    if split not in SPLITS:
        raise prefkit.UsageError(f"unknown split {split!r} (expected one of: {', '.join(SPLITS)})")
    return DATA_DIR / (f"{kind}.jsonl" if split == "train" else f"{kind}_eval.jsonl")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise prefkit.UsageError(f"unknown pool kind {kind!r} (expected one of: {', '.join(KINDS)})")


def decode_line(line: str) -> list[str]:
    """Every JSON string on one pool line (usually one; line 6 of profile.jsonl holds two).

    Raises ``ValueError`` when the line is not a sequence of JSON strings.
    """
    decoder = json.JSONDecoder()
    out: list[str] = []
    pos, line = 0, line.strip()
    while pos < len(line):
        value, end = decoder.raw_decode(line, pos)
        if not isinstance(value, str):
            raise ValueError(f"expected a JSON string, got {type(value).__name__}")
        out.append(value)
        pos = end
        while pos < len(line) and line[pos].isspace():
            pos += 1
    return out


def clean_item(text: str) -> str:
    """Whitespace-normalised item (the eval pool holds one item ending in a literal newline)."""
    return " ".join(str(text).split())


def item_problem(text: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> str | None:
    """Why ``text`` is not a valid pool item (format and length), or None when it is."""
    t = clean_item(text)
    if not t:
        return "empty"
    n = len(t.split())
    if n < min_words:
        return f"too short ({n} words < {min_words})"
    if n > max_words:
        return f"too long ({n} words > {max_words})"
    if not _PRONOUN_START.match(t):
        return "does not start with He/She/They"
    if t[-1] not in ".!?\"')":
        return "does not end with a full sentence"
    if re.match(r"^\s*(\d+[.)]|[-*•])\s", str(text)):
        return "numbered or bulleted"
    genders = {_GENDER[w] for w in _SENTENCE_PRONOUN.findall(t)}
    if len(genders) > 1:
        return "mixes He and She (several people run together?)"
    return None


def read_pool_file(path: str | Path) -> list[str]:
    """The items of a pool file (one or more JSON strings per line), decoded and stripped."""
    p = Path(path)
    if p.is_dir():  # a `personas grow` run directory
        p = p / "pool.jsonl"
    if not p.is_file():
        raise prefkit.UsageError(f"pool file not found: {p}")
    items: list[str] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = decode_line(line)
        except ValueError as exc:
            raise prefkit.UsageError(f"{p}:{n}: not a JSON string per line ({exc})") from None
        for v in values:
            v = clean_item(v)
            if v:
                items.append(v)
    if not items:
        raise prefkit.UsageError(f"{p}: the pool is empty")
    return items


def load_pool(kind: str, split: str = "train", path: str | None = None) -> list[str]:
    """The items of a pool: the shipped ``kind`` ("profile" | "personality") of ``split``, or ``path``.

    Every JSON string on a line is one item (so the shipped profile pool gives 331 items on
    330 lines); whitespace is normalised; exact duplicates are an error.
    """
    _check_kind(kind)
    items = read_pool_file(path if path else pool_file(kind, split))
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        if it in seen:
            raise prefkit.UsageError(f"{path or pool_file(kind, split)}: item {i + 1} repeats item {seen[it] + 1}")
        seen[it] = i
    return items


def write_pool(path: str | Path, items: Iterable[str]) -> None:
    """Write items one JSON string per line (the shipped format, newline-terminated)."""
    Path(path).write_text("".join(json.dumps(clean_item(i), ensure_ascii=False) + "\n" for i in items),
                          encoding="utf-8")


# ============================================================================ personas
@dataclass(frozen=True)
class Persona:
    """One simulated user: a profile (topics) and a personality (style), with a stable id."""

    id: str
    profile: str
    personality: str

    def text(self) -> str:
        """The full persona description given to the simulated user and the judge."""
        return f"Profile: {self.profile}\nPersonality: {self.personality}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Persona":
        try:
            return cls(id=str(d["id"]), profile=clean_item(d["profile"]), personality=clean_item(d["personality"]))
        except (KeyError, TypeError) as exc:
            raise prefkit.UsageError(f"not a persona record (needs id, profile, personality): {exc}") from None


def persona_id(profile: str, personality: str, pass_index: int = 0) -> str:
    """A stable id: a hash of the two texts and the pass (the same pairing in another pass is another persona)."""
    h = hashlib.sha256(f"{clean_item(profile)}\x00{clean_item(personality)}\x00{int(pass_index)}".encode()).hexdigest()
    return f"p{h[:12]}"


def pronoun(text: str) -> str | None:
    """The item's leading pronoun (He / She / They), or None."""
    m = _PRONOUN_START.match(clean_item(text))
    return m.group(1) if m else None


def build_personas(profiles: list[str], personalities: list[str], *, passes: int = 10, seed: int = 0,
                   match_pronouns: bool = False) -> list[Persona]:
    """Pair each profile with a random personality, ``passes`` times (the reference's pairing: 331 x 10 = 3,310).

    Seeded (the reference is not): the same pools, passes and seed give the same personas. As
    in the reference, the draw ignores pronouns (a "He" profile may get a "She" personality; the
    simulated user follows the profile's); ``match_pronouns`` draws only among personalities
    with the profile's leading pronoun (all of them when none has it).
    """
    if passes < 1:
        raise prefkit.UsageError(f"--passes must be at least 1 (got {passes})")
    if not profiles or not personalities:
        raise prefkit.UsageError("both pools must be non-empty")
    rng = random.Random(f"aloe-personas:{seed}")
    out: list[Persona] = []
    by_pronoun: dict[str | None, list[str]] = {}
    for p in personalities:
        by_pronoun.setdefault(pronoun(p), []).append(p)
    for k in range(passes):
        for prof in profiles:
            pool = (by_pronoun.get(pronoun(prof)) or personalities) if match_pronouns else personalities
            pers = pool[rng.randrange(len(pool))]
            out.append(Persona(persona_id(prof, pers, k), prof, pers))
    return out


def eval_personas(n_personalities: int = 5) -> list[Persona]:
    """The ALOE benchmark's personas: the 20 eval profiles x the first ``n_personalities`` eval personalities.

    100 by default (the paper's "100 carefully selected examples"), in profile-major order, with
    stable readable ids ``eval-PP-S`` (profile index, personality index).
    """
    profiles = load_pool("profile", "eval")
    personalities = load_pool("personality", "eval")
    if not 1 <= n_personalities <= len(personalities):
        raise prefkit.UsageError(f"n_personalities must be between 1 and {len(personalities)} (got {n_personalities})")
    return [Persona(f"eval-{i:02d}-{j}", prof, personalities[j])
            for i, prof in enumerate(profiles) for j in range(n_personalities)]


def write_personas(path: str | Path, personas: Iterable[Persona]) -> None:
    Path(path).write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in personas),
                          encoding="utf-8")


def read_personas(path: str | Path) -> list[Persona]:
    """The personas of a ``personas build`` output (``personas.jsonl``, or the run directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "personas.jsonl"
    if not p.is_file():
        raise prefkit.UsageError(f"personas file not found: {p}")
    out: list[Persona] = []
    seen: set[str] = set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise prefkit.UsageError(f"{p}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(d, dict):
            raise prefkit.UsageError(f"{p}:{n}: not a persona record")
        persona = Persona.from_dict(d)
        if persona.id in seen:
            raise prefkit.UsageError(f"{p}:{n}: the persona id {persona.id!r} appears twice")
        seen.add(persona.id)
        out.append(persona)
    if not out:
        raise prefkit.UsageError(f"{p}: no personas")
    return out


# ============================================================================ pool growth
GROW_COMMAND = "aloe-personas-grow"


@dataclass
class GrowConfig:
    """What ``aloe personas grow`` does (every field is a flag)."""

    kind: str = prefkit.opt("profile", help="Which pool to grow: profile or personality.")
    seeds: str | None = prefkit.opt(None, help="Seed pool file (one JSON string per line) or a 'personas grow' "
                                               "run to continue from (default: the shipped training pool of --kind).")
    target: int | None = prefkit.opt(None, help="Stop when the pool (seeds + accepted) holds this many items "
                                                "(default: grow until saturation or --max-rounds).")
    examples: int = prefkit.opt(5, help="In-context examples sampled from the pool per call (the reference: 5).")
    per_call: int = prefkit.opt(20, help="New items asked for per call (the reference: 20).")
    calls_per_round: int = prefkit.opt(4, help="Calls per round, sent concurrently; their items are then screened "
                                               "in order.")
    threshold: float = prefkit.opt(0.6, help="Keep an item only if its cosine similarity to every pool item "
                                             "(and every item accepted before it) is at most this.")
    min_accept: float = prefkit.opt(0.05, help="Saturation: stop once at most this share of a round's candidates "
                                               "was accepted for --patience rounds in a row.")
    patience: int = prefkit.opt(3, help="Rounds in a row at or below --min-accept before stopping as saturated.")
    max_rounds: int = prefkit.opt(50, help="Stop after this many rounds in any case.")
    min_words: int = prefkit.opt(MIN_WORDS, help="Shortest valid item, in words.")
    max_words: int = prefkit.opt(MAX_WORDS, help="Longest valid item, in words.")
    embedder: str = prefkit.opt("all-MiniLM-L6-v2", help="Sentence-transformer for the similarity check "
                                                         "(all-MiniLM-L6-v2 works offline).")
    # the example sampling's seed: on the CLI the shared --seed (also the LLM's sampling seed), 0 when not given
    seed: int = prefkit.opt(0, cli=False, help="Seed of the example sampling.")

    def check(self) -> None:
        _check_kind(self.kind)
        for name in ("examples", "per_call", "calls_per_round", "patience", "max_rounds", "min_words"):
            if getattr(self, name) < 1:
                raise prefkit.UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.max_words < self.min_words:
            raise prefkit.UsageError("--max-words must be at least --min-words")
        if not -1.0 <= self.threshold <= 1.0:
            raise prefkit.UsageError(f"--threshold must be a cosine similarity in [-1, 1] (got {self.threshold})")
        if not 0.0 <= self.min_accept <= 1.0:
            raise prefkit.UsageError(f"--min-accept must be a share in [0, 1] (got {self.min_accept})")
        if self.target is not None and self.target < 1:
            raise prefkit.UsageError(f"--target must be at least 1 (got {self.target})")

    def identity(self) -> dict[str, Any]:
        """What decides the accepted items (stopping rules may change between resumes)."""
        return {"kind": self.kind, "seeds": str(Path(self.seeds).resolve()) if self.seeds else None,
                "examples": self.examples, "per_call": self.per_call, "calls_per_round": self.calls_per_round,
                "threshold": self.threshold, "min_words": self.min_words, "max_words": self.max_words,
                "embedder": self.embedder, "seed": self.seed}


class PoolIndex:
    """The pool's unit-normalised embeddings, grown in place as items are accepted.

    The pool is embedded once (one ``encode`` call); each batch of candidates is embedded once
    and compared by matrix product with the pool and with the candidates accepted before it.
    """

    def __init__(self, embedder: Any, items: list[str]):
        import numpy as np

        self._np = np
        self.embedder = embedder
        self.items = list(items)
        self.encode_calls = 0
        self.encoded_texts = 0
        self.matrix = self._encode(self.items)

    def _encode(self, texts: list[str]):
        np = self._np
        self.encode_calls += 1
        self.encoded_texts += len(texts)
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        v = np.asarray(self.embedder.encode(texts, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.maximum(norms, 1e-12)

    def neighbour_stats(self, n: int, threshold: float, sample: int = 2000) -> dict[str, Any]:
        """Nearest-neighbour cosine similarity among the first ``n`` items (at most ``sample`` of them).

        Says how the threshold sits against the seed pool itself: if most seeds already have a
        neighbour above it, the embedder's geometry makes the threshold strict.
        """
        np = self._np
        m = self.matrix[:min(n, sample)]
        if len(m) < 2:
            return {"items": int(len(m)), "median": None, "mean": None, "share_above_threshold": 0.0}
        sims = m @ m.T
        np.fill_diagonal(sims, -1.0)
        nn = sims.max(axis=1)
        return {"items": int(len(m)), "median": round(float(np.median(nn)), 4), "mean": round(float(nn.mean()), 4),
                "share_above_threshold": round(float((nn > threshold).mean()), 4)}

    def screen(self, candidates: list[str], threshold: float) -> list[tuple[str, bool, float]]:
        """``(item, accepted, max cosine similarity)`` per candidate, in order; accepted items join the pool."""
        np = self._np
        if not candidates:
            return []
        vecs = self._encode(candidates)
        out = []
        for text, v in zip(candidates, vecs):
            sims = self.matrix @ v if len(self.matrix) else np.zeros(0, dtype=np.float32)
            top = float(sims.max()) if sims.size else -1.0
            ok = top <= threshold + 1e-6  # float32 rounding: a cosine "at" the threshold passes
            if ok:
                self.matrix = np.vstack([self.matrix, v[None, :]]) if len(self.matrix) else v[None, :]
                self.items.append(text)
            out.append((text, ok, round(top, 4)))
        return out


def round_requests(cfg: GrowConfig, pool: list[str], round_index: int) -> list[Any]:
    """The round's chat requests: ``calls_per_round`` calls, each with ``examples`` items sampled from the pool."""
    from .prompts import grow_messages

    rng = random.Random(f"aloe-grow:{cfg.seed}:{round_index}")
    reqs = []
    for c in range(cfg.calls_per_round):
        ex = rng.sample(pool, min(cfg.examples, len(pool)))
        reqs.append(prefkit.ChatRequest(key=f"call/{round_index}/{c}", messages=grow_messages(cfg.kind, ex, cfg.per_call),
                                        meta={"role": "generator", "round": round_index}))
    return reqs


def _load_embedder(name: str) -> Any:
    return prefkit.load_sentence_transformer(name)


@dataclass
class GrowResult:
    run: str | None
    status: str
    kind: str
    seeds: int
    pool: int
    accepted: int
    rounds: list[dict[str, Any]]
    stopped: str
    pool_file: str | None = None
    plot: list[str] = field(default_factory=list)
    encode_calls: int = 0
    seed_similarity: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    llm: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grow_pool(cfg: GrowConfig, llm: Any = None, *, output_dir: str | None = None, run_name: str | None = None,
              fresh: bool = False, plot: bool = True, plot_to: str | None = None, embedder: Any = None,
              backend: Any = None, progress: bool = True) -> GrowResult:
    """Grow a pool by self-generation, screening each new item by cosine similarity (resumable per round).

    Differences from the reference (spec §1.2), on purpose: every call gets fresh examples from
    the current pool (the reference overwrote its prompt with the previous answer); items are
    split one per line (the reference split on blank lines); each item is validated for format
    and length; the pool is embedded once and compared by matrix product; rounds stop at
    ``target`` or at saturation instead of a fixed 3,000 iterations; the sampling is seeded.

    ``llm``: :class:`prefkit.BackendOptions` of the generator; ``embedder``: an object with
    ``encode(texts)`` (default: :func:`prefkit.load_sentence_transformer` of ``cfg.embedder``).
    """
    cfg.check()
    opts = llm if llm is not None else prefkit.BackendOptions()
    seeds = load_pool(cfg.kind, "train", cfg.seeds) if cfg.seeds else load_pool(cfg.kind, "train")
    if opts.dry_run:  # estimate: at most max_rounds rounds of calls_per_round calls
        summary = prefkit.run_requests(round_requests(cfg, seeds, 0), opts, run=None, backend=backend,
                                       progress=False, quiet=True)
        est = summary.get("estimated_cost_usd")
        return GrowResult(None, "dry-run", cfg.kind, len(seeds), len(seeds), 0, [], "dry-run", dry_run=True,
                          llm={"calls_per_round": cfg.calls_per_round, "max_calls": cfg.calls_per_round * cfg.max_rounds,
                               "estimated_cost_per_round_usd": est,
                               "estimated_cost_max_usd": None if est is None else round(est * cfg.max_rounds, 6),
                               "backend": summary.get("backend"), "model": summary.get("model")})

    identity = {"config": cfg.identity(), "llm": {"backend": opts.backend, "model": opts.model,
                                                  "temperature": opts.temperature, "max_tokens": opts.max_tokens}}
    hint = f"{cfg.kind}-t{cfg.threshold}-s{cfg.seed}"
    with prefkit.Run.open(GROW_COMMAND, identity=identity, config={"grow": asdict(cfg), "llm": identity["llm"]},
                          output_dir=output_dir, run_name=run_name, name_hint=hint, fresh=fresh) as run:
        rows = run.results()
        rounds = sorted((r for r in rows if r.get("kind") == "round"), key=lambda r: int(r["round"]))
        accepted_before = [it for r in rounds for it in r["accepted"]]
        emb = embedder if embedder is not None else _load_embedder(cfg.embedder)
        index = PoolIndex(emb, seeds + accepted_before)
        calibration = index.neighbour_stats(len(seeds), cfg.threshold)
        if calibration["share_above_threshold"] > 0.5:
            prefkit.warn(f"{calibration['share_above_threshold']:.0%} of the seed items already have a neighbour in the "
                         f"pool above --threshold {cfg.threshold} with {cfg.embedder} (median nearest-neighbour "
                         f"similarity {calibration['median']:.2f}): few new items will pass; see docs/aloe.md")
        stopped = _stop_reason(cfg, rounds, len(index.items))
        while stopped is None:
            r = len(rounds)
            reqs = round_requests(cfg, index.items, r)
            prefkit.run_requests(reqs, opts, run=run, backend=backend, progress=progress, quiet=True,
                                 description=f"grow {cfg.kind} round {r + 1}")
            done = {row["key"]: row for row in run.results() if row.get("key", "").startswith(f"call/{r}/")}
            missing = [q.key for q in reqs if q.key not in done]
            if missing:
                raise prefkit.PrefkitError(f"round {r + 1}: {len(missing)} generation call(s) failed after retries "
                                           f"(see {run.failures_path}); re-run the same command to retry them")
            candidates: list[str] = []
            invalid: list[dict[str, str]] = []
            for q in reqs:
                from .prompts import split_items

                for item in split_items(done[q.key].get("text") or "", cfg.kind):
                    why = item_problem(item, min_words=cfg.min_words, max_words=cfg.max_words)
                    if why:
                        invalid.append({"item": item, "why": why})
                    else:
                        candidates.append(clean_item(item))
            screened = index.screen(candidates, cfg.threshold)
            accepted = [t for t, ok, _ in screened if ok]
            n_cand = len(candidates) + len(invalid)
            rec = {"kind": "round", "round": r, "calls": len(reqs), "candidates": n_cand, "valid": len(candidates),
                   "invalid": invalid, "accepted": accepted,
                   "rejected_similar": [{"item": t, "max_similarity": s} for t, ok, s in screened if not ok],
                   "max_similarity": [s for _, _, s in screened],
                   "acceptance": round(len(accepted) / n_cand, 4) if n_cand else 0.0, "pool": len(index.items)}
            run.append(rec, key=f"round/{r}")
            rounds.append(rec)
            _write_pool_file(run, index.items, cfg.target)
            stopped = _stop_reason(cfg, rounds, len(index.items))
        pool_path = _write_pool_file(run, index.items, cfg.target)
        per_round = [{"round": int(r["round"]) + 1, "candidates": r["candidates"], "valid": r["valid"],
                      "accepted": len(r["accepted"]), "acceptance": r["acceptance"], "pool": r["pool"]} for r in rounds]
        n_pool = min(len(index.items), cfg.target) if cfg.target else len(index.items)
        run.write_metrics({"grow": {"kind": cfg.kind, "seeds": len(seeds), "seed_similarity": calibration,
                                    "pool": n_pool, "accepted": n_pool - len(seeds), "stopped": stopped,
                                    "encode_calls_this_session": index.encode_calls, "rounds": per_round}})
        plots = _growth_plot(run, per_round, len(seeds), cfg, plot_to) if plot and per_round else []
        run.finish(stopped=stopped, pool=n_pool, accepted=n_pool - len(seeds))
    return GrowResult(str(run.path), run.status, cfg.kind, len(seeds), n_pool, n_pool - len(seeds), per_round, stopped,
                      str(pool_path), [str(p) for p in plots], index.encode_calls, calibration)


def _stop_reason(cfg: GrowConfig, rounds: list[dict[str, Any]], pool_size: int) -> str | None:
    if cfg.target is not None and pool_size >= cfg.target:
        return "target"
    tail = rounds[-cfg.patience:]
    if len(tail) == cfg.patience and all(r["acceptance"] <= cfg.min_accept for r in tail):
        return "saturated"
    if len(rounds) >= cfg.max_rounds:
        return "max-rounds"
    return None


def _write_pool_file(run: Any, items: list[str], target: int | None) -> Path:
    path = Path(run.path) / "pool.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    write_pool(tmp, items[:target] if target else items)
    tmp.replace(path)
    return path


def _growth_plot(run: Any, per_round: list[dict[str, Any]], seeds: int, cfg: GrowConfig, plot_to: str | None) -> list[Path]:
    plots = prefkit.plots
    plt = plots.pyplot()
    fig, ax1 = plt.subplots(figsize=(7, 4))
    xs = [0] + [r["round"] for r in per_round]
    ax1.plot(xs, [seeds] + [r["pool"] for r in per_round], marker="o", color="tab:blue", label="pool size")
    ax1.set_xlabel("round")
    ax1.set_ylabel("pool size", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.bar([r["round"] for r in per_round], [r["acceptance"] for r in per_round], alpha=0.3, color="tab:orange",
            label="accepted share")
    ax2.axhline(cfg.min_accept, ls="--", color="tab:orange", lw=1)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of candidates accepted", color="tab:orange")
    from matplotlib.ticker import MaxNLocator

    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_title(f"{cfg.kind} pool growth (cosine threshold {cfg.threshold}; dashed: --min-accept)")
    target = plot_to or str(Path(run.path) / "growth.png")
    return plots.save_figure(fig, target)


def print_grow(res: GrowResult) -> None:
    if res.dry_run:
        d = res.llm
        prefkit.info(f"dry run: {res.kind} pool of {res.seeds} seeds · {d['calls_per_round']} calls per round · at most "
                     f"{d['max_calls']} calls ({d['backend']}/{d['model']}) · estimated cost per round "
                     f"{'unknown' if d['estimated_cost_per_round_usd'] is None else '$%.4f' % d['estimated_cost_per_round_usd']}"
                     " (nothing was sent)")
        return
    prefkit.print_table(res.rounds, columns=["round", "candidates", "valid", "accepted", "acceptance", "pool"],
                        title=f"{res.kind} pool growth: {res.seeds} seeds -> {res.pool} items (stopped: {res.stopped})")
    prefkit.info(f"pool: {res.pool_file}" + (f" · plot: {res.plot[0]}" if res.plot else "") + f" · run {res.run}")


# ============================================================================ build
BUILD_COMMAND = "aloe-personas-build"


@dataclass
class BuildConfig:
    """What ``aloe personas build`` does (every field is a flag)."""

    profiles: str | None = prefkit.opt(None, help="Profile pool file or 'personas grow' run (default: the shipped "
                                                  "331 profiles).")
    personalities: str | None = prefkit.opt(None, help="Personality pool file or 'personas grow' run (default: the "
                                                       "shipped 71 personalities).")
    passes: int = prefkit.opt(10, help="Passes over the profiles, each profile with a random personality per pass "
                                       "(the paper: 10, so 331 x 10 = 3,310 personas).")
    seed: int = prefkit.opt(0, help="Seed of the personality draws.")
    match_pronouns: bool = prefkit.opt(False, help="Draw only personalities with the profile's pronoun (He/She); "
                                                   "the reference ignores pronouns.")
    limit: int | None = prefkit.opt(None, help="Keep only the first N personas.", short="-n")


def build(cfg: BuildConfig, *, output_dir: str | None = None, run_name: str | None = None,
          fresh: bool = False) -> dict[str, Any]:
    """Pair the pools into personas; writes ``personas.jsonl`` into a run directory. Returns a summary dict."""
    limit = prefkit.check_limit(cfg.limit)
    profiles = load_pool("profile", "train", cfg.profiles)
    personalities = load_pool("personality", "train", cfg.personalities)
    personas = build_personas(profiles, personalities, passes=cfg.passes, seed=cfg.seed,
                              match_pronouns=cfg.match_pronouns)
    if limit is not None:
        personas = personas[:limit]
    identity = {"profiles": _pool_identity(cfg.profiles, profiles), "personalities": _pool_identity(cfg.personalities, personalities),
                "passes": cfg.passes, "seed": cfg.seed, "match_pronouns": cfg.match_pronouns, "limit": limit}
    with prefkit.Run.open(BUILD_COMMAND, identity=identity, config=asdict(cfg), output_dir=output_dir,
                          run_name=run_name, name_hint=f"p{cfg.passes}-s{cfg.seed}" + (f"-n{limit}" if limit else ""),
                          fresh=fresh) as run:
        path = Path(run.path) / "personas.jsonl"
        write_personas(path, personas)
        counts: dict[str, int] = {}
        for p in personas:
            counts[p.personality] = counts.get(p.personality, 0) + 1
        summary = {"personas": len(personas), "profiles": len(profiles), "personalities": len(personalities),
                   "passes": cfg.passes, "personalities_used": len(counts),
                   "pronouns_differ": sum(1 for p in personas if pronoun(p.profile) != pronoun(p.personality)),
                   "most_used_personality": max(counts.values()) if counts else 0}
        run.write_metrics({"build": summary})
        run.finish(**summary)
    return {"run": str(run.path), "status": run.status, "file": str(path), **summary,
            "first": personas[0].to_dict() if personas else None}


def _pool_identity(path: str | None, items: list[str]) -> dict[str, Any]:
    h = hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]
    return {"path": str(Path(path).resolve()) if path else "shipped", "items": len(items), "sha256": h}
