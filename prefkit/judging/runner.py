"""Sending judge prompts through the backend engine, with bounded re-asks.

A judgment item needs one or more *slots* (a pairwise item has two: the
``ab`` and ``ba`` orders; a score item has one). Every slot is one chat
request; its answer is parsed, and an unparseable answer is re-asked (the
conversation so far plus a short "give only the verdict line" message) at
most ``reasks`` times. An item is finished as soon as all its slots are:
finished items stream to ``on_item`` (which appends them to the run store)
while the engine is still working on others, so an interrupted run keeps what
it finished.

Backend failures (after the engine's own retries) finish the slot with an
error; the caller records the item as failed, to be retried on resume.
"""

from __future__ import annotations

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


def _merge_stats(total: dict[str, Any], stats: dict[str, Any]) -> None:
    from ..usage import merge_usage

    merge_usage(total, stats)  # counters + cost, one "cost unknown" rule
    total["elapsed_s"] = round(float(total.get("elapsed_s") or 0.0) + float(stats.get("elapsed_s") or 0.0), 3)
    for k in ("backend", "model", "stopped", "dry_run"):
        if stats.get(k) is not None:
            total[k] = stats[k]
    errs = total.setdefault("errors", {})
    for k, v in (stats.get("errors") or {}).items():
        errs[k] = errs.get(k, 0) + v
    if stats.get("estimated_cost_usd") is not None:
        total["estimated_cost_usd"] = stats["estimated_cost_usd"]


def run_slots(
    slots: list[Slot],
    options: Any,
    *,
    parse: Callable[[str], Any],
    reask_message: dict[str, str],
    reasks: int = 2,
    max_tokens: int | None = None,
    on_item: Callable[[str, list[Slot]], None] | None = None,
    progress: bool = True,
    description: str = "judging",
) -> dict[str, Any]:
    """Run every slot to completion (answer parsed, re-asks exhausted, or error). Returns engine stats summed."""
    from ..backends import ChatRequest, coerce_options
    from ..backends.engine import execute, run_sync

    options = coerce_options(options)
    by_item: dict[str, list[Slot]] = {}
    for s in slots:
        by_item.setdefault(s.item_key, []).append(s)
    by_request: dict[str, Slot] = {}
    total: dict[str, Any] = {"cost_usd": 0.0}
    first_tokens = max_tokens if options.max_tokens is None else None

    def finish_if_ready(item_key: str) -> None:
        group = by_item[item_key]
        if on_item is not None and all(s.done for s in group):
            on_item(item_key, group)

    def on_completion(c) -> None:
        slot = by_request.get(c.key)
        if slot is None:
            return
        if not c.ok:
            slot.error = c.error or "unknown error"
            slot.done = True
        else:
            text = c.text or ""
            slot.outputs.append(text)
            slot.finish_reasons.append(c.finish_reason)
            value = parse(text)
            if value is not None:
                slot.parsed = value
                slot.done = True
            elif slot.reasks >= reasks:
                slot.done = True  # unparseable after the allowed re-asks: a parse failure
        if slot.done:
            finish_if_ready(slot.item_key)

    pending = list(slots)
    round_no = 0
    while pending:
        requests = []
        by_request.clear()
        for s in pending:
            if round_no == 0:
                msgs = list(s.messages)
                tokens = first_tokens
                key = f"{s.item_key}#{s.name}"
            else:
                msgs = list(s.messages)
                for out in s.outputs:
                    msgs.append({"role": "assistant", "content": out})
                    msgs.append(dict(reask_message))
                tokens = REASK_MAX_TOKENS if options.max_tokens is None else None
                key = f"{s.item_key}#{s.name}#reask{round_no}"
            req = ChatRequest(key=key, messages=msgs, max_tokens=tokens, meta={"judge_slot": s.name})
            by_request[key] = s
            requests.append(req)
        desc = description if round_no == 0 else f"{description}: re-asking {len(requests)} unparseable"
        stats = run_sync(execute(requests, options, on_completion=on_completion, progress=progress,
                                 description=desc))
        _merge_stats(total, stats.as_dict())
        if options.dry_run or stats.stopped:
            # dry run: nothing was sent; budget reached / fatal: the rest stays pending (retried on resume)
            break
        round_no += 1
        pending = [s for s in slots if not s.done and s.outputs and s.reasks < round_no and round_no <= reasks]
        # slots that got no completion at all (should not happen) are finished as errors
        for s in slots:
            if not s.done and not s.outputs and s.error is None:
                s.error, s.done = "no completion came back", True
                finish_if_ready(s.item_key)
    total["rounds"] = round_no if not options.dry_run else 0
    return total


__all__ = ["Slot", "run_slots", "DEFAULT_JUDGE_MAX_TOKENS"]
