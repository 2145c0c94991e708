"""Conversations: many multi-turn, multi-role dialogues run concurrently through the engine.

Each turn's calls depend on the turns before it, so the work cannot be listed
in advance. You write one *step* function that plays one turn of one
conversation; :func:`run_dialogues` owns the rest: scheduling every
conversation at once under one set of engine limits, storing each call as it
completes, committing turns, resume, progress, cost.

::

    import prefkit
    from prefkit import Dialogue, Choice, run_dialogues

    async def step(turn):                        # one turn of one conversation
        history = [m for t in turn.history for m in t["messages"]]
        user = await turn.ask("user", [{"role": "system", "content": "You are a curious user."}, *history])
        reply = await turn.ask("responder", [*history, {"role": "user", "content": user.text}])
        verdict = await turn.ask_structured("judge", [...], Choice(["good", "bad"]))
        if turn.index == 4 or turn.rng.random() < 0.1:
            turn.end()                           # this is the last turn
        return {"messages": [{"role": "user", "content": user.text},
                             {"role": "assistant", "content": reply.text}],
                "verdict": verdict.value}

    roles = prefkit.Roles.from_specs({"user": "openai:gpt-4o-mini", "responder": "hf:smollm2",
                                      "judge": "anthropic:claude-sonnet-4-5"})
    result = run_dialogues([Dialogue(f"c{i}", data=p, max_turns=5) for i, p in enumerate(personas)],
                           step, roles=roles, run=run, seed=0)
    for conv in result.conversations:
        conv.id, conv.status, conv.turns            # turns: the records the step returned

The rules:

* **Keys.** Every call is stored under ``<conversation>/<turn>/<name>`` (``name``
  defaults to the role; a second call of the same name in one turn is
  ``<name>.2``; re-asks of a structured answer ``<name>.reask1`` ...; candidates
  ``<name>/<k>``; a turn retried after its step rejected it ``<name>@<attempt>``).
  The turn itself is committed under ``<conversation>/<turn>``.
* **Commit.** A turn is committed (its record written) only when the step
  returned and every call it made succeeded. A call that fails after the
  engine's retries raises :class:`CallFailed` in the step; any exception from the
  step rejects the turn (``raise Reject("why")`` says so on purpose). Either way
  nothing of the turn reaches the results, the failure is recorded
  (``failures.jsonl``) and that conversation waits for the next run
  (``turn_attempts=3`` asks a rejected turn afresh up to 3 times in the same run first).
* **Resume.** With a :class:`prefkit.Run`, a re-run loads the committed turns,
  makes no request for them, and continues each conversation after its last
  committed turn. Calls that completed in an uncommitted turn are reused (a
  ``kill -9`` loses only calls in flight), except those of a turn its step
  rejected: that turn is asked afresh (next ``attempt``).
* **Limits.** All conversations share the engine options: ``concurrency``
  requests in flight overall, rpm/tpm per provider endpoint, one ``max_cost``
  budget (reached: the remaining turns stay pending), one cache.
* **Determinism.** ``turn.rng`` is a :class:`random.Random` seeded from
  ``(seed, conversation id, turn index)``: the same seed gives the same choices,
  also after a resume.
* **Dry run.** With ``dry_run`` nothing is sent or stored: every call is answered
  with a placeholder of ``max_tokens`` tokens (structured asks with a valid stand-in
  value) so the steps run through, and the summary estimates calls, tokens and cost
  per role (an upper bound: conversations run to ``max_turns``).

The step is a coroutine function ``async def step(turn: Turn) -> dict | None``;
independent calls within a turn can run together with ``asyncio.gather``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

from .errors import PrefkitError, UsageError
from .structured import Answer, AnswerSpec, Unparseable, as_spec

StepFn = Callable[["Turn"], Awaitable[Any]]


class CallFailed(PrefkitError):
    """A call of a turn failed after the engine's retries; the turn is not committed (retried on resume)."""

    def __init__(self, key: str, error: str, *, not_sent: bool = False):
        super().__init__(f"{key}: {error}")
        self.key = key
        self.error = error
        self.not_sent = not_sent


class Reject(Exception):
    """Raised by a step: the turn's outputs are not acceptable; it is asked afresh on resume."""


@dataclass
class Dialogue:
    """One conversation: a stable ``id``, the step's own ``data``, and at most ``max_turns`` turns."""

    id: str
    data: Any = None
    max_turns: int = 1

    def __post_init__(self) -> None:
        self.id = str(self.id)
        if not self.id:
            raise UsageError("a dialogue id must be non-empty")
        if int(self.max_turns) < 1:
            raise UsageError(f"dialogue {self.id!r}: max_turns must be at least 1")
        self.max_turns = int(self.max_turns)


@dataclass
class Reply:
    """The answer to one :meth:`Turn.ask`: ``text`` (the first candidate), ``texts`` (all of them)."""

    key: str
    role: str
    text: str
    texts: list[str]
    model: str | None = None
    backend: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    stored: bool = False   # read from the run (no request made)


@dataclass
class ConversationResult:
    """A conversation after the run: its committed turn records and where it stands.

    ``status``: ``done`` (ended or reached ``max_turns``), ``failed`` (its next turn
    failed: see ``error``; re-run to retry it), ``pending`` (not finished: budget
    reached, run stopped, or a dry run).
    """

    id: str
    data: Any
    turns: list[Any]
    status: str = "pending"
    error: str | None = None
    max_turns: int = 1

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass
class DialogueResult:
    """What :func:`run_dialogues` returns: every conversation, and a summary (counts, calls, usage, cost, per role)."""

    conversations: list[ConversationResult]
    summary: dict[str, Any]

    def __getitem__(self, conversation_id: str) -> ConversationResult:
        for c in self.conversations:
            if c.id == conversation_id:
                return c
        raise KeyError(conversation_id)

    @property
    def failed(self) -> list[ConversationResult]:
        return [c for c in self.conversations if c.status == "failed"]


class Turn:
    """One turn of one conversation, handed to the step function.

    ``conversation`` (id), ``index`` (0-based), ``data`` (the dialogue's data),
    ``history`` (the records of the committed turns before this one), ``rng``
    (seeded per conversation and turn), ``attempt`` (1, or more after rejections).
    """

    def __init__(self, runner: "_Runner", dialogue: Dialogue, index: int, history: list[Any], attempt: int):
        self._runner = runner
        self.dialogue = dialogue
        self.conversation = dialogue.id
        self.data = dialogue.data
        self.index = index
        self.history = list(history)
        self.attempt = attempt
        self.rng = random.Random(f"{runner.seed}:{dialogue.id}:{index}")
        self.final = index + 1 >= dialogue.max_turns
        self._names: dict[str, int] = {}
        self.calls: list[str] = []
        self.failures: list[str] = []

    @property
    def is_last(self) -> bool:
        """True when this turn is the conversation's last (``max_turns`` reached or :meth:`end` called)."""
        return self.final

    def end(self) -> None:
        """Make this turn the conversation's last (takes effect when the turn commits)."""
        self.final = True

    def key(self, name: str) -> str:
        suffix = f"@{self.attempt}" if self.attempt > 1 else ""
        return f"{self.conversation}/{self.index}/{name}{suffix}"

    def _name(self, name: str) -> str:
        if "/" in name:
            raise UsageError(f"a call name must not contain '/' (got {name!r})")
        k = self._names.get(name, 0) + 1
        self._names[name] = k
        return name if k == 1 else f"{name}.{k}"

    async def ask(self, role: str, messages: list[dict[str, Any]] | str, *, name: str | None = None, n: int = 1,
                  max_tokens: int | None = None, temperature: float | None = None, stop: list[str] | None = None,
                  seed: int | None = None, extra: dict[str, Any] | None = None) -> Reply:
        """Send one call as ``role`` (its model and settings from the roles); returns the :class:`Reply`.

        ``n`` candidates (``reply.texts``). Settings given here override the role's.
        Raises :class:`CallFailed` when the call fails after the engine's retries.
        """
        name = self._name(name or role)
        return await self._runner.call(self, role, name, messages, n=n, max_tokens=max_tokens,
                                       temperature=temperature, stop=stop, seed=seed, extra=extra)

    async def ask_structured(self, role: str, messages: list[dict[str, Any]] | str, spec: AnswerSpec | Any, *,
                             name: str | None = None, reasks: int = 2, max_tokens: int | None = None,
                             reask_max_tokens: int | None = None, temperature: float | None = None,
                             extra: dict[str, Any] | None = None) -> Answer:
        """Ask for a typed answer (:mod:`prefkit.structured`); re-ask at most ``reasks`` times while unparseable.

        Returns an :class:`prefkit.Answer`; still unparseable after the re-asks, it has
        ``ok`` False and ``error`` set (a recorded parse failure, never a default
        value). The provider's JSON mode / schema is used where the spec has one.
        Raises :class:`CallFailed` when a call fails after the engine's retries.
        """
        spec = as_spec(spec)
        base = self._name(name or role)
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        backend = self._runner.backend_name(role)
        more = {**spec.request_extra(backend), **(extra or {})}
        answer = Answer()
        why = None
        for k in range(max(0, int(reasks)) + 1):
            call_name = base if k == 0 else f"{base}.reask{k}"
            tokens = max_tokens if k == 0 else (reask_max_tokens if reask_max_tokens is not None else max_tokens)
            reply = await self._runner.call(self, role, call_name, msgs, n=1, max_tokens=tokens,
                                            temperature=temperature, stop=None, seed=None, extra=more or None)
            answer.outputs.append(reply.text)
            answer.finish_reasons.append(reply.finish_reason)
            answer.keys.append(reply.key)
            answer.reasks = k
            if self._runner.dry_run:
                answer.value, answer.ok = spec.placeholder(), True
                return answer
            try:
                answer.value, answer.ok = spec.parse(reply.text), True
                return answer
            except Unparseable as exc:
                why = str(exc)
            msgs = [*msgs, {"role": "assistant", "content": reply.text}, spec.reask_message()]
        answer.error = f"unparseable after {answer.reasks} re-asks: {why}"
        return answer


# =========================================================================== the runner
class _Runner:
    def __init__(self, dialogues: list[Dialogue], step: StepFn, roles, run, seed: int, on_turn, on_failure,
                 progress: bool, description: str, backends: dict[str, Any] | None, turn_attempts: int = 1):
        self.dialogues = dialogues
        self.turn_attempts = max(1, int(turn_attempts))
        self.step = step
        self.roles = roles
        self.run = run
        self.seed = seed
        self.on_turn = on_turn
        self.on_failure = on_failure
        self.show_progress = progress
        self.description = description
        self.backends = backends
        self.dry_run = bool(roles.engine.dry_run)
        self._role_options: dict[str, Any] = {}
        self.calls_stored: dict[str, dict[str, Any]] = {}
        self.committed: dict[str, list[dict[str, Any]]] = {}
        self.rejections: dict[str, int] = {}
        self.counts = {"turns_committed": 0, "turns_resumed": 0, "turns_failed": 0, "calls_stored": 0,
                       "calls_reused": 0}
        self.session = None
        self._bar = self._task = None
        self._conv_done = 0

    # ----------------------------------------------------------------- roles
    def options_for(self, role: str):
        opts = self._role_options.get(role)
        if opts is None:
            if role not in self.roles:
                known = ", ".join(self.roles.names()) or "none"
                raise UsageError(f"the step asked for the role {role!r}, but no model was given for it (roles: {known})")
            opts = self._role_options[role] = self.roles.options_for(role)
        return opts

    def backend_name(self, role: str) -> str:
        return self.options_for(role).backend

    # ----------------------------------------------------------------- store
    def load(self) -> None:
        if self.run is None:
            return
        for row in self.run.results():
            kind = row.get("kind")
            if kind == "call":
                self.calls_stored[str(row["key"])] = row
            elif kind == "turn":
                self.committed.setdefault(str(row["conversation"]), []).append(row)
        for turns in self.committed.values():
            turns.sort(key=lambda r: int(r["turn"]))
        for f in self.run.failures(unresolved=False):
            if f.get("kind") == "rejected":
                k = str(f["key"])
                self.rejections[k] = self.rejections.get(k, 0) + 1

    # ----------------------------------------------------------------- one call
    async def call(self, turn: Turn, role: str, name: str, messages, *, n: int, max_tokens, temperature, stop, seed,
                   extra) -> Reply:
        from .backends.types import ChatRequest

        options = self.options_for(role)
        key = turn.key(name)
        turn.calls.append(key)
        keys = [key] if n == 1 else [f"{key}/{k}" for k in range(n)]
        rows = [self.calls_stored.get(k) for k in keys]
        if all(r is not None for r in rows):
            self.counts["calls_reused"] += len(rows)
            self._refresh()
            first = rows[0]
            return Reply(key=key, role=role, text=first["text"], texts=[r["text"] for r in rows],
                         model=first.get("model"), backend=first.get("backend"),
                         finish_reason=first.get("finish_reason"), usage=dict(first.get("usage") or {}), stored=True)
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        request = ChatRequest(key=key, messages=msgs, model=options.model, max_tokens=max_tokens,
                              temperature=temperature, stop=stop, seed=seed, extra=dict(extra or {}), n=n,
                              meta={"role": role, "conversation": turn.conversation, "turn": turn.index})
        c = await self.session.submit(request, options)
        if not c.ok:
            turn.failures.append(key)
            raise CallFailed(key, c.error or "unknown error", not_sent=bool(getattr(c, "meta_not_sent", False)))
        texts = c.texts
        if not self.dry_run and self.run is not None:
            for k, (ck, text) in enumerate(zip(keys, texts)):
                rec = {"kind": "call", "conversation": turn.conversation, "turn": turn.index,
                       "attempt": turn.attempt, "role": role, "name": name, "text": text, "model": c.model,
                       "backend": options.backend, "finish_reason": c.finish_reason,
                       "usage": dict(c.usage or {}) if k == 0 else {"prompt_tokens": 0, "completion_tokens": 0},
                       "cached": c.cached}
                if n > 1:
                    rec["candidate"] = k
                if self.run.append(rec, key=ck):
                    self.counts["calls_stored"] += 1
                self.calls_stored[ck] = rec
        return Reply(key=key, role=role, text=texts[0], texts=texts, model=c.model, backend=options.backend,
                     finish_reason=c.finish_reason, usage=dict(c.usage or {}), cached=c.cached)

    # ----------------------------------------------------------------- one conversation
    async def conversation(self, d: Dialogue) -> ConversationResult:
        stored = self.committed.get(d.id, [])
        records = [r.get("record") for r in stored]
        self.counts["turns_resumed"] += len(stored)
        res = ConversationResult(d.id, d.data, records, max_turns=d.max_turns)
        finished = bool(stored and stored[-1].get("final")) or len(stored) >= d.max_turns
        self._advance(len(stored))
        tries: dict[str, int] = {}
        while not finished:
            if self.session.stats.stopped:
                res.status = "pending"
                return res
            index = len(res.turns)
            turn_key = f"{d.id}/{index}"
            turn = Turn(self, d, index, res.turns, attempt=1 + self.rejections.get(turn_key, 0))
            try:
                record = await self.step(turn)
                if turn.failures:  # the step swallowed a CallFailed: the turn is still incomplete
                    raise CallFailed(turn.failures[0], "a call of this turn failed")
            except CallFailed as exc:
                if exc.not_sent:
                    res.status = "pending"
                    self._advance(d.max_turns - index)
                    return res
                self._fail(res, turn_key, f"call {exc.key} failed: {exc.error}", "call_failed", turn)
                return self._stop(res, d, index)
            except (PrefkitError, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - the step rejected its turn
                if self.dry_run:  # placeholders the step did not accept: this conversation's estimate ends here
                    res.error = f"dry run: the step stopped at turn {index}: {type(exc).__name__}: {exc}"
                    self._advance(d.max_turns - index)
                    return res
                why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, Reject) else f"rejected: {exc}"
                self._fail(res, turn_key, why, "rejected", turn)
                self.rejections[turn_key] = self.rejections.get(turn_key, 0) + 1
                tries[turn_key] = tries.get(turn_key, 0) + 1
                if tries[turn_key] < self.turn_attempts:  # ask the turn afresh now (next attempt, new keys)
                    res.status, res.error = "pending", None
                    continue
                return self._stop(res, d, index)
            finished = turn.final
            if not self.dry_run and self.run is not None:
                self.run.append({"kind": "turn", "conversation": d.id, "turn": index, "attempt": turn.attempt,
                                 "final": finished, "calls": list(turn.calls), "record": record}, key=turn_key)
            res.turns.append(record)
            self.counts["turns_committed"] += 1
            if self.on_turn is not None and not self.dry_run:
                self.on_turn(d, index, record)
            self._advance(1 if not finished else d.max_turns - index)
        res.status = "done" if not self.dry_run else "pending"
        return res

    def _fail(self, res: ConversationResult, turn_key: str, why: str, kind: str, turn: Turn) -> None:
        res.status, res.error = "failed", why
        self.counts["turns_failed"] += 1
        if self.run is not None and not self.dry_run:
            self.run.record_failure(turn_key, why, kind=kind, attempt=turn.attempt, calls=list(turn.calls))

    def _stop(self, res: ConversationResult, d: Dialogue, index: int) -> ConversationResult:
        """The conversation stops at a failed turn (retried by the next run)."""
        if self.on_failure is not None and not self.dry_run:
            self.on_failure(res.id, index, res.error or "failed")
        self._advance(d.max_turns - index)
        return res

    # ----------------------------------------------------------------- progress
    def _advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.update(self._task, advance=n)
        self._refresh()

    def _refresh(self, *_: Any) -> None:
        if self._bar is None:
            return
        st = self.session.stats if self.session is not None else None
        calls = (st.done + st.failed) if st else 0
        text = (f"conv {self._conv_done}/{len(self.dialogues)} · turns {self.counts['turns_committed'] + self.counts['turns_resumed']}"
                f" · calls {calls} ({st.cached if st else 0} cached, {self.counts['calls_reused']} reused)"
                + (f" · [yellow]↻{st.retrying}[/yellow]" if st and st.retrying else "")
                + (f" · ${st.cost_usd:.4f}" if st and st.cost_known and st.cost_usd else ""))
        self._bar.update(self._task, stats=text)

    # ----------------------------------------------------------------- all of it
    async def arun(self) -> DialogueResult:
        self.load()
        old_fsync = getattr(self.run, "fsync_every", None)
        if old_fsync is not None:
            self.run.fsync_every = max(old_fsync, 256)  # each line is still flushed at once; fsync in groups
        try:
            return await self._arun()
        finally:
            if old_fsync is not None:
                self.run.fsync_every = old_fsync

    async def _arun(self) -> DialogueResult:
        from contextlib import ExitStack

        from .backends.session import EngineSession

        t0 = time.monotonic()
        for role in self.roles.names():  # fail early on an unknown backend
            self.options_for(role)
        with ExitStack() as stack:
            if self.show_progress:
                from .console import progress as progress_bar

                total = sum(d.max_turns for d in self.dialogues)
                self._bar, self._task = stack.enter_context(progress_bar(total, self.description, fields=("stats",)))
            async with EngineSession(self.roles.engine, on_progress=self._refresh, backends=self.backends) as session:
                self.session = session
                for role in self.roles.names():
                    session.prepare(self.options_for(role))

                async def one(d: Dialogue) -> ConversationResult:
                    r = await self.conversation(d)
                    self._conv_done += 1
                    self._refresh()
                    return r

                tasks = [asyncio.ensure_future(one(d)) for d in self.dialogues]
                try:
                    results = await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
            self._refresh()
        summary = session.summary()
        summary.update({
            "conversations": len(results),
            "conversations_done": sum(r.status == "done" for r in results),
            "conversations_failed": sum(r.status == "failed" for r in results),
            "conversations_pending": sum(r.status == "pending" for r in results),
            "calls": session.stats.total, **self.counts,
            "elapsed_s": round(time.monotonic() - t0, 3),
        })
        if self.run is not None and not self.dry_run:
            _write_metrics(self.run, summary)
        return DialogueResult(list(results), summary)


def _write_metrics(run, summary: dict[str, Any]) -> None:
    prev = (run.metrics() or {}).get("conversations") or {}
    add = ("sent", "retries", "prompt_tokens", "completion_tokens", "cached", "turns_committed", "calls_stored")
    out = {k: int(prev.get(k) or 0) + int(summary.get(k) or 0) for k in add}
    if summary.get("cost_usd") is None or (prev and prev.get("cost_usd") is None and prev.get("sent")):
        out["cost_usd"] = None
    else:
        out["cost_usd"] = round(float(prev.get("cost_usd") or 0.0) + float(summary.get("cost_usd") or 0.0), 6)
    out["sessions"] = int(prev.get("sessions") or 0) + 1
    out["last"] = {k: summary.get(k) for k in ("conversations", "conversations_done", "conversations_failed",
                                              "conversations_pending", "turns_committed", "turns_resumed",
                                              "calls", "calls_reused", "elapsed_s", "cost_usd")}
    out["roles"] = {role: {k: r.get(k) for k in ("backend", "model", "requests", "completed", "failed", "cached",
                                                  "prompt_tokens", "completion_tokens", "cost_usd")}
                    for role, r in (summary.get("roles") or {}).items()}
    run.write_metrics({"conversations": out})


async def arun_dialogues(dialogues: Iterable[Dialogue | dict], step: StepFn, *, roles=None, options=None, run=None,
                         seed: int = 0, on_turn: Callable[[Dialogue, int, Any], None] | None = None,
                         on_failure: Callable[[str, int, str], None] | None = None, progress: bool = True,
                         description: str = "conversations", backends: dict[str, Any] | None = None,
                         turn_attempts: int = 1) -> DialogueResult:
    """The async :func:`run_dialogues`."""
    from .backends.options import coerce_options
    from .backends.roles import as_roles

    ds = [d if isinstance(d, Dialogue) else Dialogue(**d) for d in dialogues]
    seen: set[str] = set()
    for d in ds:
        if d.id in seen:
            raise UsageError(f"two dialogues share the id {d.id!r}: every conversation needs its own id")
        seen.add(d.id)
    if not asyncio.iscoroutinefunction(step) and not asyncio.iscoroutinefunction(getattr(step, "__call__", None)):
        raise UsageError("the step must be an async function: async def step(turn): ...")
    role_set = as_roles(roles, coerce_options(options) if options is not None else None)
    runner = _Runner(ds, step, role_set, run, seed, on_turn, on_failure, progress, description, backends,
                     turn_attempts)
    return await runner.arun()


def run_dialogues(dialogues: Iterable[Dialogue | dict], step: StepFn, *, roles=None, options=None, run=None,
                  seed: int = 0, on_turn: Callable[[Dialogue, int, Any], None] | None = None,
                  on_failure: Callable[[str, int, str], None] | None = None, progress: bool = True,
                  description: str = "conversations", backends: dict[str, Any] | None = None,
                  turn_attempts: int = 1, quiet: bool = True) -> DialogueResult:
    """Run every dialogue to its end (or to a failure / the budget), ``step`` playing each turn.

    ``dialogues``: :class:`Dialogue` objects (or dicts of their fields).
    ``step``: ``async def step(turn: Turn) -> record`` (a JSON-able record of the turn;
    :meth:`Turn.end` ends the conversation). ``roles``: a :class:`prefkit.Roles`
    (from :func:`prefkit.with_roles` on the CLI), a dict ``{role: "BACKEND:MODEL" |
    RoleSpec | BackendOptions}``, or None (one role ``"default"`` from ``options``).
    ``options``: the shared engine options (a :class:`prefkit.BackendOptions`; with
    ``roles`` from the CLI they are already in it). ``run``: a :class:`prefkit.Run` to
    store calls and turns in (resumable); None keeps everything in memory.
    ``seed``: the per-conversation RNGs' seed. ``on_turn(dialogue, index, record)``
    is called as each turn commits, ``on_failure(conversation_id, index, error)``
    when a conversation stops at a failed turn. ``turn_attempts``: how many times a
    turn the step rejects is asked afresh within this run (each attempt with new
    call keys; every rejection is recorded) before the conversation stops there.
    ``backends``: ready backend instances by backend name (tests). ``quiet=False``
    prints a summary line.
    Returns a :class:`DialogueResult`.
    """
    from .backends.engine import run_sync

    result = run_sync(arun_dialogues(dialogues, step, roles=roles, options=options, run=run, seed=seed,
                                     on_turn=on_turn, on_failure=on_failure, progress=progress,
                                     description=description, backends=backends, turn_attempts=turn_attempts))
    if not quiet:
        print_dialogue_summary(result.summary, run=run)
    return result


def format_dialogue_summary(summary: dict[str, Any]) -> str:
    """A few lines: conversations and turns, then one line per role (calls, tokens, cost)."""
    from .backends.engine import _fmt_n

    def cost(v: Any) -> str:
        return f"${v:.4f}" if v is not None else "unknown (no price for this model)"

    lines = []
    if summary.get("dry_run"):
        lines.append(f"dry run: {summary.get('conversations', 0)} conversations · at most {summary.get('calls', 0)} "
                     f"calls · estimated cost ≤ {cost(summary.get('estimated_cost_usd'))} (nothing was sent)")
    else:
        lines.append(
            f"{summary.get('conversations_done', 0)}/{summary.get('conversations', 0)} conversations done, "
            f"{summary.get('conversations_failed', 0)} failed, {summary.get('conversations_pending', 0)} pending · "
            f"{summary.get('turns_committed', 0)} turns committed ({summary.get('turns_resumed', 0)} from before) · "
            f"{summary.get('sent', 0)} calls sent ({summary.get('retries', 0)} retries, {summary.get('cached', 0)} cached, "
            f"{summary.get('calls_reused', 0)} reused) · cost {cost(summary.get('cost_usd'))}")
    for role, r in (summary.get("roles") or {}).items():
        c = r.get("estimated_cost_usd") if summary.get("dry_run") else r.get("cost_usd")
        lines.append(f"  {role} ({r.get('backend')}/{r.get('model') or 'default'}): {r.get('requests', 0)} calls · "
                     f"{'≈' if summary.get('dry_run') else ''}{_fmt_n(r.get('prompt_tokens'))} prompt + "
                     f"{'≤' if summary.get('dry_run') else ''}{_fmt_n(r.get('completion_tokens'))} completion tokens · "
                     f"{cost(c)}")
    if summary.get("stopped") == "max_cost":
        lines.append("stopped: the --max-cost budget was reached; re-run with a larger budget to continue")
    return "\n".join(lines)


def print_dialogue_summary(summary: dict[str, Any], run=None) -> None:
    from .console import info, warn

    info(format_dialogue_summary(summary))
    if summary.get("conversations_failed") and not summary.get("dry_run"):
        where = f" in {run.failures_path}" if run is not None else ""
        warn(f"{summary['conversations_failed']} conversations stopped at a failed turn (recorded{where}); "
             "re-run the same command to retry them from that turn")


__all__ = ["Dialogue", "Turn", "Reply", "CallFailed", "Reject", "ConversationResult", "DialogueResult",
           "run_dialogues", "arun_dialogues", "format_dialogue_summary", "print_dialogue_summary"]
