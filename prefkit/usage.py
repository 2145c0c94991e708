"""Adding up LLM usage and cost across engine calls and sessions, with one rule for "cost unknown".

Cost is ``None`` when unknown (no price for the model). When summing, an unknown cost makes the
total unknown only if that part really sent requests: a session that sent nothing cost nothing,
whatever its price table says. Token and request counts are plain sums.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

#: the counters an engine summary carries (summed by :func:`merge_usage`)
USAGE_COUNTS = ("requests", "completed", "failed", "cached", "sent", "retries", "not_sent", "prompt_tokens",
                "completion_tokens")


def add_cost(total: float | None, total_sent: int, cost: float | None, sent: int) -> float | None:
    """``total + cost`` where None is unknown; a part that sent nothing adds 0 even when its cost is None."""
    if (total is None and total_sent) or (cost is None and sent):
        return None
    return round(float(total or 0.0) + float(cost or 0.0), 6)


def merge_usage(total: dict[str, Any], more: Mapping[str, Any], counts: Iterable[str] = USAGE_COUNTS) -> dict[str, Any]:
    """Add ``more``'s counters and cost into ``total`` (changed in place and returned)."""
    total_sent, sent = int(total.get("sent") or 0), int(more.get("sent") or 0)
    cost = add_cost(total.get("cost_usd", 0.0), total_sent, more.get("cost_usd"), sent)
    for k in counts:
        total[k] = int(total.get(k) or 0) + int(more.get(k) or 0)
    total["cost_usd"] = cost
    return total
