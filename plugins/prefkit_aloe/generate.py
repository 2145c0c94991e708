"""Multi-turn preference trees from a simulated user (``prefkit aloe generate``), on the core conversation engine.

Per turn of a conversation (spec §2.2), as :func:`step`:

1. the **simulated user** (role ``user``), who has the true persona, writes its next message;
2. the **extractor** (role ``extractor``) states what the transcript has revealed of the persona so far;
3. the **persona-aware reply** (``responder.0`` = the first ``--responder-model``, every user turn
   carrying the persona inferred at that turn as a hint) and one **plain reply** per responder
   model (``responder.0``, ``responder.1`` ...; no hint) are written;
4. the **judge** (role ``judge``), who sees the true persona, picks the reply this user would
   prefer, for every (aware, plain) pair **in both orders**;
5. the dialogue continues from a seeded random branch: the preferred reply with probability
   ``continue_preferred`` (0.5 as in the reference), else one of the rejected replies, so
   histories hold preferred and rejected assistant turns.

Differences from the reference, on purpose:

* **Both orders.** The reference always puts the aware reply first and takes anything but
  exactly ``first`` as a vote for the plain reply. Here each pair is judged twice (aware first,
  plain first). Two readable verdicts for the same reply decide the pair; two verdicts for the
  same *slot* (inconsistent: position bias) or an unreadable verdict make a **tie**, resolved by
  ``tie_rule``: ``aware`` (default: the persona-aware reply is preferred, the method's prior;
  the turn is marked ``tie`` so ``export --ties skip`` can leave its pair out), ``plain``, or
  ``random`` (the turn's seeded RNG). Ties, position bias and win rates are counted in the summary.
* **Typed records, list of rejected replies.** ``rejected`` is a list (several responder models
  make multi-LLM data), ``chosen_index`` says which candidate continued (0 = preferred,
  k = ``rejected[k-1]``); every record carries ``persona_id``, ``conversation_id``, ``turn``.
* **Atomic turns, resume.** The engine commits a turn only when every call of it succeeded; a
  failed or rejected turn (e.g. the simulated user broke character) leaves no trace in the
  history and is asked afresh (``turn_attempts`` times in this run, then on the next run).
  Re-running the same command resumes after the last committed turn, reusing stored calls.
* **Seeds.** The continuation and tie draws come from the engine's per-(conversation, turn) RNG.

Calls per turn: 1 user + 1 extractor + 1 aware + m plain + 2m judge (m responder models): 6
with one responder model, so the paper's 3,000 conversations x 10 turns are about 180,000 calls
(the reference's 150,000 plus the second judge order).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import prefkit

from . import prompts
from .pools import Persona, read_personas

COMMAND = "aloe-generate"
SCHEMA = "aloe.turn/1"
TIE_RULES = ("aware", "plain", "random")

ROLES = [
    prefkit.RoleDecl("user", help="the simulated user, who has the true persona"),
    prefkit.RoleDecl("extractor", help="states the persona revealed so far"),
    prefkit.RoleDecl("responder", repeatable=True,
                     help="the first model writes the persona-aware reply; every model writes a plain reply"),
    prefkit.RoleDecl("judge", help="sees the true persona, picks the preferred reply (both orders)"),
]


@dataclass
class GenerateConfig:
    """What ``aloe generate`` does (every field is a flag)."""

    personas: str | None = prefkit.opt(None, help="Personas file (personas.jsonl from 'prefkit aloe personas build', "
                                                  "or its run directory). Required.")
    conversations: int | None = prefkit.opt(None, help="Conversations to generate: the first N personas (x "
                                                       "--per-persona). Default: all (the paper: 3,000).")
    per_persona: int = prefkit.opt(1, help="Conversations per persona (ids <persona>-0, <persona>-1 ...).")
    turns: int = prefkit.opt(10, help="User turns per conversation (the paper: 10).")
    tie_rule: str = prefkit.opt("aware", help="When the two judge orders disagree (or a verdict is unreadable): "
                                              "aware (the persona-aware reply is preferred), plain, or random "
                                              "(seeded). The turn is marked tie either way.")
    continue_preferred: float = prefkit.opt(0.5, help="Probability that the preferred reply continues the dialogue "
                                                      "(else a rejected one; the reference: 0.5).")
    seed: int = prefkit.opt(0, help="Seed of the continuation and tie draws (the same seed gives the same trees).")
    extractor_prefill: str = prefkit.opt("auto", help="Prefill the extractor's answer with 'Profile:' so that it "
                                                      "starts in the asked format: auto (only for a local hf "
                                                      "extractor: small local models otherwise drift), on, off.")
    turn_attempts: int = prefkit.opt(3, help="Attempts per turn in one run when a turn is rejected (unusable "
                                             "user message, unreadable extractor answer); the reference: 3.")

    def check(self) -> None:
        if not self.personas:
            raise prefkit.UsageError("--personas is required: a personas.jsonl from 'prefkit aloe personas build'")
        if self.conversations is not None and self.conversations < 1:
            raise prefkit.UsageError(f"--conversations must be at least 1 (got {self.conversations})")
        if self.per_persona < 1:
            raise prefkit.UsageError(f"--per-persona must be at least 1 (got {self.per_persona})")
        if self.turns < 1:
            raise prefkit.UsageError(f"--turns must be at least 1 (got {self.turns})")
        if self.tie_rule not in TIE_RULES:
            raise prefkit.UsageError(f"--tie-rule must be one of {', '.join(TIE_RULES)} (got {self.tie_rule!r})")
        if not 0.0 <= self.continue_preferred <= 1.0:
            raise prefkit.UsageError(f"--continue-preferred must be in [0, 1] (got {self.continue_preferred})")
        if self.turn_attempts < 1:
            raise prefkit.UsageError(f"--turn-attempts must be at least 1 (got {self.turn_attempts})")
        prompts.check_prefill("--extractor-prefill", self.extractor_prefill)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("turn_attempts")  # how hard to try does not change what a committed turn holds
        # conversation ids are "<persona id>-<k>" whatever N is: a run grows by re-running it with a larger
        # --conversations / --per-persona (the committed conversations are kept, only new ones are asked)
        d.pop("conversations")
        d.pop("per_persona")
        d["personas"] = str(Path(self.personas).resolve()) if self.personas else None
        return d


def _personas_digest(personas: list[Persona]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([p.to_dict() for p in personas], sort_keys=True).encode()).hexdigest()[:16]


# ============================================================================ records
@dataclass
class JudgedPair:
    """The judge's two verdicts on one (aware, plain) pair and what they decide."""

    plain: int                        # which responder model's plain reply (0, 1, ...)
    aware_first: str | None           # verdict with the aware reply in slot 1: "aware" | "plain" | None (unreadable)
    plain_first: str | None           # verdict with the plain reply in slot 1
    outcome: str                      # "aware" | "plain" | "tie"
    tie_reason: str | None = None     # "inconsistent" | "unreadable"
    resolved: str | None = None       # a tie's winner under the tie rule
    raw: list[str] = field(default_factory=list)   # the judge's outputs (both orders; rationale kept apart)

    @property
    def winner(self) -> str:
        return self.outcome if self.outcome != "tie" else str(self.resolved)


@dataclass
class TurnRecord:
    """One committed turn of one conversation (the typed record of ``results.jsonl``'s ``turn`` rows)."""

    persona_id: str
    conversation_id: str
    turn: int
    user: str
    inferred: dict[str, str]
    aware: str
    plain: list[str]
    preferred: str
    rejected: list[str]
    preferred_source: str             # "aware" | "plain.<k>"
    rejected_sources: list[str]
    rejected_ties: list[bool]         # whether each rejected reply lost only by the tie rule
    chosen: str                       # "preferred" | "rejected": the branch that continued
    chosen_index: int                 # 0 = preferred, k = rejected[k-1]
    assistant: str                    # the continuation (the realised assistant message)
    judge: list[dict[str, Any]]
    tie: bool
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TurnRecord":
        if d.get("schema") != SCHEMA:
            raise prefkit.UsageError(f"not an ALOE turn record (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})

    def messages(self) -> list[dict[str, str]]:
        """The turn as realised: the user message and the continuation."""
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


def realised_history(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation as it happened (user message + the continuing reply per turn)."""
    out: list[dict[str, str]] = []
    for r in records:
        out += [{"role": "user", "content": r["user"]}, {"role": "assistant", "content": r["assistant"]}]
    return out


# ============================================================================ the step
def _verdict(answer: Any, aware_slot: int) -> str | None:
    """'aware' | 'plain' from one ordered verdict (slot 1 = 'first'), None when unreadable."""
    if not answer.ok:
        return None
    picked = 1 if answer.value == "first" else 2
    return "aware" if picked == aware_slot else "plain"


def decide_pair(k: int, aware_first: str | None, plain_first: str | None, tie_rule: str, rng,
                raw: list[str] | None = None) -> JudgedPair:
    """The pair's outcome from its two ordered verdicts (the documented tie rule)."""
    if aware_first is not None and aware_first == plain_first:
        return JudgedPair(k, aware_first, plain_first, aware_first, raw=list(raw or []))
    reason = "unreadable" if aware_first is None or plain_first is None else "inconsistent"
    resolved = tie_rule if tie_rule in ("aware", "plain") else rng.choice(["aware", "plain"])
    return JudgedPair(k, aware_first, plain_first, "tie", reason, resolved, list(raw or []))


async def step(turn) -> dict[str, Any]:
    """One turn of one ALOE conversation (see the module docstring); returns the :class:`TurnRecord` dict."""
    import asyncio

    d = turn.data
    persona = Persona.from_dict(d["persona"])
    responders: list[str] = d["responders"]
    history = realised_history(turn.history)
    hints = [r["inferred"] for r in turn.history]

    u = await turn.ask("user", prompts.user_turn_messages(persona, history))
    raw = prompts.trim_unfinished(u.text) if u.finish_reason == "length" else u.text
    user_text = prompts.clean_user_message(raw)   # raises prefkit.Reject: the turn is asked afresh

    prefill = bool(d.get("extractor_prefill"))
    inferred = await turn.ask_structured("extractor", prompts.extractor_messages(persona, history, user_text,
                                                                                 prefill=prefill),
                                         prompts.inferred_spec(prefilled=prefill))
    if not inferred.ok:
        raise prefkit.Reject(f"the extractor's answer is unreadable: {inferred.error}")

    aware_msgs = prompts.responder_messages(history, user_text, hints=hints, inferred=inferred.value)
    plain_msgs = prompts.responder_messages(history, user_text)
    replies = await asyncio.gather(turn.ask(responders[0], aware_msgs, name="aware"),
                                   *(turn.ask(r, plain_msgs, name=f"plain{k}") for k, r in enumerate(responders)))
    texts = [(prompts.trim_unfinished(r.text) if r.finish_reason == "length" else r.text).strip() for r in replies]
    if any(not t for t in texts):
        raise prefkit.Reject("a responder returned an empty reply")
    aware, plain = texts[0], texts[1:]

    spec = prompts.judge_spec()
    asks = []
    for k, p in enumerate(plain):
        asks.append(turn.ask_structured("judge", prompts.judge_messages(persona, user_text, aware, p), spec,
                                        name=f"judge{k}a"))
        asks.append(turn.ask_structured("judge", prompts.judge_messages(persona, user_text, p, aware), spec,
                                        name=f"judge{k}b"))
    answers = await asyncio.gather(*asks)

    rng = turn.rng
    pairs = []
    for k in range(len(plain)):
        a, b = answers[2 * k], answers[2 * k + 1]
        pairs.append(decide_pair(k, _verdict(a, 1), _verdict(b, 2), d["tie_rule"], rng,
                                 raw=[a.outputs[-1] if a.outputs else "", b.outputs[-1] if b.outputs else ""]))

    if all(p.winner == "aware" for p in pairs):
        preferred, preferred_source = aware, "aware"
        rejected = list(plain)
        rejected_sources = [f"plain.{k}" for k in range(len(plain))]
        rejected_ties = [p.outcome == "tie" for p in pairs]
    else:
        win = next(p for p in pairs if p.winner == "plain")
        preferred, preferred_source = plain[win.plain], f"plain.{win.plain}"
        rejected, rejected_sources, rejected_ties = [aware], ["aware"], [win.outcome == "tie"]

    if rng.random() < d["continue_preferred"]:
        chosen_index = 0
    else:
        chosen_index = 1 + rng.randrange(len(rejected))
    assistant = preferred if chosen_index == 0 else rejected[chosen_index - 1]

    return TurnRecord(
        persona_id=persona.id, conversation_id=turn.conversation, turn=turn.index, user=user_text,
        inferred=dict(inferred.value), aware=aware, plain=plain, preferred=preferred, rejected=rejected,
        preferred_source=preferred_source, rejected_sources=rejected_sources, rejected_ties=rejected_ties,
        chosen="preferred" if chosen_index == 0 else "rejected", chosen_index=chosen_index, assistant=assistant,
        judge=[asdict(p) for p in pairs], tie=any(p.outcome == "tie" for p in pairs)).to_dict()


# ============================================================================ statistics
def judge_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Position-bias, tie and win statistics over the judged pairs of committed turns."""
    pairs = [p for r in records for p in r.get("judge", [])]
    n = len(pairs)
    n_readable = sum(1 for p in pairs for v in (p["aware_first"], p["plain_first"]) if v is not None)
    # the slot each readable verdict picked: with the aware reply first, "aware" is slot 1; with the plain
    # reply first, "plain" is slot 1
    first_slot = sum(1 for p in pairs if p["aware_first"] == "aware") + sum(1 for p in pairs if p["plain_first"] == "plain")
    ties = [p for p in pairs if p["outcome"] == "tie"]
    consistent = n - len(ties)
    aware_wins = sum(1 for p in pairs if p["outcome"] == "aware")
    plain_wins = sum(1 for p in pairs if p["outcome"] == "plain")
    turns = len(records)
    out = {
        "turns": turns,
        "pairs": n,
        "verdicts_readable": n_readable,
        "verdicts_unreadable": 2 * n - n_readable,
        "first_slot_share": round(first_slot / n_readable, 4) if n_readable else None,
        "consistent": consistent,
        "ties": len(ties),
        "ties_inconsistent": sum(1 for p in ties if p.get("tie_reason") == "inconsistent"),
        "ties_unreadable": sum(1 for p in ties if p.get("tie_reason") == "unreadable"),
        "tie_rate": round(len(ties) / n, 4) if n else None,
        "aware_wins": aware_wins,
        "plain_wins": plain_wins,
        "aware_win_rate_consistent": round(aware_wins / consistent, 4) if consistent else None,
        "preferred_aware": sum(1 for r in records if r.get("preferred_source") == "aware"),
        "continued_preferred": sum(1 for r in records if r.get("chosen_index") == 0),
    }
    if n_readable:
        out["first_slot_share_se"] = round(float(prefkit.proportion_se(first_slot / n_readable, n_readable)), 4)
    return out


# ============================================================================ the run
@dataclass
class GenerateResult:
    run: str | None
    status: str
    conversations: list[dict[str, Any]]
    summary: dict[str, Any]
    judge: dict[str, Any]
    roles: dict[str, str]
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the sampling temperature of the roles that write the conversation (the reference: API default 1 for
#: every call) where the role's own --<role>-temperature is not given
SAMPLING_TEMPERATURE = 1.0
SAMPLED_ROLES = ("user", "responder")


def sampling_defaults(roles: Any) -> Any:
    """``roles`` with temperature 1 for the simulated user and the responders unless given.

    As in the reference, the conversation is sampled (diverse histories; a turn rejected for a broken
    character is asked afresh with a different draw). The extractor and the judge keep the backend's
    default (greedy), a deliberate deviation: their readings are then reproducible."""
    import dataclasses

    specs = dict(roles.specs)
    changed = False
    for name, spec in specs.items():
        if name.split(".")[0] in SAMPLED_ROLES and spec.temperature is None:
            specs[name] = dataclasses.replace(spec, temperature=SAMPLING_TEMPERATURE)
            changed = True
    return dataclasses.replace(roles, specs=specs) if changed else roles  # same groups (responder.0 ...)


def _dialogues(cfg: GenerateConfig, personas: list[Persona]) -> list[Any]:
    chosen = personas
    out = []
    for p in chosen:
        for k in range(cfg.per_persona):
            out.append((p, f"{p.id}-{k}"))
    if cfg.conversations is not None:
        if cfg.conversations > len(out):
            raise prefkit.UsageError(f"--conversations {cfg.conversations} is more than the {len(out)} the personas "
                                     f"file gives (x --per-persona {cfg.per_persona})")
        out = out[:cfg.conversations]
    return out


def role_labels(roles: Any) -> dict[str, str]:
    return {name: spec.label for name, spec in roles.specs.items()}


def role_settings(roles: Any) -> dict[str, dict[str, Any]]:
    """Per role: backend, model, base URL, temperature, most new tokens (``max_new``), seed, stop."""
    out = {}
    for name, spec in roles.specs.items():
        d = spec.identity()
        d["max_new"] = d.pop("max_tokens")
        out[name] = d
    return out


def resolved_labels(roles: Any, summary: dict[str, Any]) -> dict[str, str]:
    """``backend:model`` per role, a backend's default model named as the engine resolved it."""
    out = {}
    for name, spec in roles.specs.items():
        model = spec.model or ((summary.get("roles") or {}).get(name) or {}).get("model")
        if not model:
            try:
                model = prefkit.get_backend(roles.options_for(name)).default_model
            except Exception:  # noqa: BLE001 - a label only
                model = None
        out[name] = f"{spec.backend}:{model or 'default'}"
    return out


def _write_conversations(run: Any, dialogues: list[tuple[Persona, str]], result: Any) -> Path:
    """``conversations.jsonl``: one line per conversation (persona, status, committed turns), rewritten atomically."""
    by_id = {c.id: c for c in result.conversations}
    path = Path(run.path) / "conversations.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for persona, cid in dialogues:
            c = by_id[cid]
            fh.write(json.dumps({"conversation_id": cid, "persona_id": persona.id, "profile": persona.profile,
                                 "personality": persona.personality, "status": c.status, "error": c.error,
                                 "turns": c.turns}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def generate(cfg: GenerateConfig, roles: Any, *, output_dir: str | None = None, run_name: str | None = None,
             fresh: bool = False, progress: bool = True, backends: dict[str, Any] | None = None) -> GenerateResult:
    """Generate the preference trees into a run (resumable); with ``roles.engine.dry_run`` only estimate.

    ``roles``: a :class:`prefkit.Roles` with ``user``, ``extractor``, ``responder`` (one or more:
    ``responder.0`` ...) and ``judge``; ``backends``: ready backend instances by name (tests).
    """
    cfg.check()
    roles = sampling_defaults(roles)
    personas = read_personas(cfg.personas)
    dialogues = _dialogues(cfg, personas)
    for role in ("user", "extractor", "judge"):
        if role not in roles:
            raise prefkit.UsageError(f"no model for the role {role!r}")
    responders = roles.names("responder")
    if not responders:
        raise prefkit.UsageError("no model for the role 'responder'")
    prefill = prompts.prefill_wanted(cfg.extractor_prefill, roles.options_for("extractor").backend)
    data = {"tie_rule": cfg.tie_rule, "continue_preferred": cfg.continue_preferred, "responders": responders,
            "extractor_prefill": prefill}
    ds = [prefkit.Dialogue(cid, data={**data, "persona": p.to_dict()}, max_turns=cfg.turns) for p, cid in dialogues]
    labels = role_labels(roles)

    if roles.engine.dry_run:  # nothing sent or stored: the summary estimates calls and cost per role
        res = prefkit.run_dialogues(ds, step, roles=roles, run=None, seed=cfg.seed, progress=progress,
                                    description="aloe generate (dry run)", backends=backends,
                                    turn_attempts=1)
        return GenerateResult(None, "dry-run", [], res.summary, {}, labels, dry_run=True)

    # the per-role settings, resolved (identity and dataset card)
    settings = role_settings(roles)
    identity = {"config": cfg.identity(), "personas_sha256": _personas_digest(personas), "roles": roles.identity(),
                "role_settings": settings}
    hint = f"{Path(cfg.personas).stem}-{len(ds)}x{cfg.turns}"
    with prefkit.Run.open(COMMAND, identity=identity, config={"generate": asdict(cfg), "roles": labels,
                                                                   "role_settings": settings},
                          output_dir=output_dir, run_name=run_name, name_hint=hint, fresh=fresh) as run:
        run.expect(f"{cid}/{t}" for _, cid in dialogues for t in range(cfg.turns))
        res = prefkit.run_dialogues(ds, step, roles=roles, run=run, seed=cfg.seed, progress=progress,
                                    description="aloe generate", backends=backends,
                                    turn_attempts=cfg.turn_attempts)
        records = [t for c in res.conversations for t in c.turns]
        stats = judge_stats(records)
        _write_conversations(run, dialogues, res)
        run.write_metrics({"judge": stats, "generation": {
            "conversations": len(ds), "turns": cfg.turns, "conversations_done": res.summary.get("conversations_done"),
            "turns_committed_total": len(records)}})
        summary = res.summary
        labels = resolved_labels(roles, summary)
        run.update_manifest(roles=labels)
        run.finish(conversations_done=summary.get("conversations_done"),
                   conversations_failed=summary.get("conversations_failed"), turns=len(records),
                   ties=stats["ties"], first_slot_share=stats["first_slot_share"])
    convs = [{"id": c.id, "status": c.status, "error": c.error, "turns": len(c.turns)} for c in res.conversations]
    return GenerateResult(str(run.path), run.status, convs, res.summary, stats, labels)


def read_turns(run_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The committed turn records of a generate run, by conversation id, in turn order (resume-safe)."""
    p = Path(run_dir)
    run = prefkit.Run.load(p)
    if run.manifest.get("command") != COMMAND:
        raise prefkit.UsageError(f"{p} is a {run.manifest.get('command')!r} run, not an 'aloe generate' run")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in run.results():
        if row.get("kind") != "turn":
            continue
        rec = row.get("record") or {}
        if rec.get("schema") != SCHEMA:
            continue
        out.setdefault(str(row["conversation"]), []).append(rec)
    for v in out.values():
        v.sort(key=lambda r: int(r["turn"]))
    return out


def print_result(res: GenerateResult) -> None:
    from prefkit import info

    if res.dry_run:
        s = res.summary
        info("(" + ", ".join(f"{k}={v}" for k, v in res.roles.items()) + ")")
        prefkit.print_table([{"role": role, "model": f"{r.get('backend')}:{r.get('model') or 'default'}",
                              "calls": r.get("requests"), "prompt tokens": r.get("prompt_tokens"),
                              "completion tokens (max)": r.get("completion_tokens"),
                              "est. cost": r.get("estimated_cost_usd")}
                             for role, r in (s.get("roles") or {}).items()],
                            title=f"aloe generate --dry-run: {s.get('conversations')} conversations, "
                                  f"at most {s.get('calls')} calls, estimated cost "
                                  f"{'unknown' if s.get('estimated_cost_usd') is None else '$%.2f' % s['estimated_cost_usd']}")
        return
    j = res.judge
    rows = [("turns committed", j.get("turns")), ("pairs judged (x2 orders)", j.get("pairs")),
            ("ties", f"{j.get('ties')} ({j.get('ties_inconsistent')} inconsistent, {j.get('ties_unreadable')} unreadable)"),
            ("first-slot share", j.get("first_slot_share")),
            ("aware wins / plain wins", f"{j.get('aware_wins')} / {j.get('plain_wins')}"),
            ("preferred reply is the aware one", j.get("preferred_aware")),
            ("continued from the preferred reply", j.get("continued_preferred"))]
    prefkit.print_table([{"statistic": k, "value": v} for k, v in rows],
                        title="judge: position bias and ties (first-slot share 0.5 = no position bias)")
    s = res.summary
    info(f"{s.get('conversations_done', 0)}/{s.get('conversations', 0)} conversations done, "
         f"{s.get('conversations_failed', 0)} failed · {s.get('turns_committed', 0)} turns committed "
         f"({s.get('turns_resumed', 0)} from before) · {s.get('sent', 0)} calls sent "
         f"({s.get('calls_reused', 0)} reused) · cost "
         f"{'unknown' if s.get('cost_usd') is None else '$%.4f' % s['cost_usd']}")
    info(f"run {res.run} ({res.status}); records in results.jsonl, one line per conversation in conversations.jsonl")
