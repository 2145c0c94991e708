"""Sending judge prompts through the conversation engine, with bounded re-asks.

A judgment item needs one or more *slots* (a pairwise item has two: the
``ab`` and ``ba`` orders; a score item has one). Each item is a one-turn
conversation (:func:`prefkit.run_dialogues`) whose step asks every slot as a
structured answer (:meth:`prefkit.Turn.ask_structured`, the core's one re-ask
loop): an unparseable answer is re-asked (the conversation so far plus the
spec's "give only the verdict line" message) at most ``reasks`` times and then
counts as a parse failure. An item is finished as soon as all its slots are:
finished items stream to ``on_item`` (which appends them to the run store)
while the engine is still working on others, so an interrupted run keeps what
it finished.

Backend failures (after the engine's own retries) finish the slot with an
error; the caller records the item as failed, to be retried on resume.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from .options import DEFAULT_JUDGE_MAX_TOKENS

REASK_MAX_TOKENS = 64


@dataclass
class Slot:
    item_key: str
    name: str
    messages: list[dict[str, str]]
    outputs: list[str] = field(default_factory=list)
    parsed: Any = None
    error: str | None = None
    done: bool = False
    finish_reasons: list[str | None] = field(default_factory=list)

    @property
    def reasks(self) -> int:
        return max(0, len(self.outputs) - 1)


def run_slots(
    slots: list[Slot],
    options: Any,
    *,
    spec: Any,
    reasks: int = 2,
    max_tokens: int | None = None,
    on_item: Callable[[str, list[Slot]], None] | None = None,
    progress: bool = True,
    description: str = "judging",
) -> dict[str, Any]:
    """Run every slot to completion (answer parsed, re-asks exhausted, or error). Returns the engine summary.

    ``spec``: a :class:`prefkit.AnswerSpec` (its ``parse`` and ``reask_message``).
    Slots of items not finished (a dry run, the budget reached) stay ``done=False``.
    """
    from ..backends import coerce_options
    from ..conversations import CallFailed, Dialogue, run_dialogues

    options = coerce_options(options)
    by_item: dict[str, list[Slot]] = {}
    for s in slots:
        by_item.setdefault(s.item_key, []).append(s)
    first_tokens = max_tokens if options.max_tokens is None else None
    reask_tokens = REASK_MAX_TOKENS if options.max_tokens is None else None

    async def ask(turn, slot: Slot) -> None:
        try:
            answer = await turn.ask_structured("judge", slot.messages, spec, name=slot.name, reasks=reasks,
                                               max_tokens=first_tokens, reask_max_tokens=reask_tokens)
        except CallFailed as exc:
            slot.error = exc.error
            raise
        slot.outputs, slot.finish_reasons = list(answer.outputs), list(answer.finish_reasons)
        slot.parsed = answer.value if answer.ok else None  # unparseable after the re-asks: a parse failure

    async def step(turn) -> None:
        outcomes = await asyncio.gather(*(ask(turn, s) for s in by_item[turn.conversation]), return_exceptions=True)
        for o in outcomes:
            if isinstance(o, BaseException):
                raise o

    def finish(item_key: str, *_: Any) -> None:
        group = by_item[item_key]
        for s in group:
            s.done = True
        if on_item is not None:
            on_item(item_key, group)

    def failed(item_key: str, _index: int, _why: str) -> None:
        if all(s.error is None for s in by_item[item_key]):
            return  # not sent (budget) or stopped: the item stays pending
        finish(item_key)

    result = run_dialogues([Dialogue(key, max_turns=1) for key in by_item], step, roles={"judge": options},
                           options=options, progress=progress, description=description,
                           on_turn=lambda d, i, r: finish(d.id), on_failure=failed)
    summary = dict(result.summary)
    summary["rounds"] = 0 if options.dry_run else 1 + max((s.reasks for s in slots), default=0)
    return summary


__all__ = ["Slot", "run_slots", "DEFAULT_JUDGE_MAX_TOKENS"]
