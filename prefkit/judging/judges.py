"""The pairwise judge and the absolute (1–N) judge.

Pairwise: every item is judged twice, once with the responses in their own
order (``ab``: A shown as "Response A") and once swapped (``ba``: B shown as
"Response A"). The two verdicts are mapped back to the original sides; when
they agree that is the verdict, when they disagree the item is a tie (the
judge's preference followed the position, not the response). Both raw
verdicts and outputs are kept. If either order stays unparseable after the
re-asks the item is ``failed`` (reported, never a win for either side).

Absolute: one score from ``low`` to ``high`` per item against the rubric,
with the rubric's score descriptions and an optional reference answer.

With a run (:class:`prefkit.runs.Run`), verdicts are appended as they finish,
keyed by the item key; items already in the run are not judged again; backend
failures go to the run's failures and are retried on the next run.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..errors import UsageError
from ..structured import Choice, IntRange
from . import parsing
from .prompts import pairwise_messages, reask_message, resolve_format, score_messages
from .rubric import Rubric, get_rubric
from .options import JudgeOptions
from .runner import Slot, run_slots

SWAP = {"A": "B", "B": "A", "tie": "tie", None: None}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for m in value:
            if isinstance(m, Mapping):
                parts.append(str(m.get("content") or ""))
            else:
                parts.append(str(m))
        return "\n\n".join(p for p in parts if p)
    return str(value)


def _items(items: Iterable[Mapping[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    out, seen = [], set()
    for i, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise UsageError(f"judge item {i} is not a dict")
        key = it.get("key", it.get("row_id"))
        if key is None:
            raise UsageError(f"judge item {i} has no 'key'")
        key = str(key)
        if key in seen:
            raise UsageError(f"two judge items share the key {key!r}")
        seen.add(key)
        d = dict(it)
        d["key"] = key
        d["instruction"] = _text(it.get("instruction", it.get("prompt")))
        for f in fields:
            if f not in it or it[f] is None:
                raise UsageError(f"judge item {key!r} has no {f!r}")
            d[f] = _text(it[f])
        for f in ("persona", "context", "reference"):
            d[f] = _text(it.get(f)) or None
        out.append(d)
    return out


def _check_persona(items: list[dict[str, Any]], rubric: Rubric) -> None:
    if not rubric.uses_persona:
        return
    missing = [it["key"] for it in items if not it.get("persona")]
    if missing:
        eg = ", ".join(missing[:3])
        raise UsageError(f"the {rubric.name!r} rubric judges against a persona, but {len(missing)} of {len(items)} "
                         f"items have none (e.g. {eg}); give each item a 'persona' (CLI: --persona-field)")


def _model_name(options: Any) -> str | None:
    model = getattr(options, "model", None)
    if model:
        return str(model)
    try:
        from ..backends import get_backend

        return get_backend(options).default_model
    except Exception:
        return None


def _existing(run, keys: list[str]) -> dict[str, dict[str, Any]]:
    if run is None:
        return {}
    wanted = set(keys)
    return {str(r.get("key")): r for r in run.results() if str(r.get("key")) in wanted}


def combine_orders(verdict_ab: str | None, verdict_ba: str | None) -> tuple[str, bool | None]:
    """Combine the two orders' verdicts (both in original labels): ``(winner, consistent)``.

    Same verdict → that verdict, consistent. Different → ``tie``, inconsistent.
    Either missing (unparseable) → ``failed``, consistency unknown.
    """
    if verdict_ab is None or verdict_ba is None:
        return "failed", None
    if verdict_ab == verdict_ba:
        return verdict_ab, True
    return "tie", False


def _store_llm_summary(run, summary: dict[str, Any]) -> None:
    if run is None or summary.get("dry_run"):
        return
    prev = (run.metrics() or {}).get("llm") or {}
    from ..usage import merge_usage

    llm = merge_usage(dict(prev), summary, counts=("sent", "retries", "prompt_tokens", "completion_tokens", "cached"))
    llm.update({"backend": summary.get("backend"), "model": summary.get("model"),
                "sessions": int(prev.get("sessions") or 0) + 1})
    run.write_metrics({"llm": llm})


def judge_pairwise(
    items: Iterable[Mapping[str, Any]],
    rubric: Rubric | str = "quality",
    options: Any = None,
    run=None,
    *,
    judge: JudgeOptions | None = None,
    allow_tie: bool = False,
    progress: bool = True,
    summary: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Judge which of ``response_a`` / ``response_b`` better meets ``rubric``, in both orders.

    ``items``: dicts with ``key``, ``instruction`` (or ``prompt``), ``response_a``,
    ``response_b`` and optionally ``persona``, ``context``, ``reference``.
    ``options``: :class:`prefkit.backends.BackendOptions` (or a backend name /
    dict). Returns one verdict dict per item, in item order: ``winner``
    (``"A"``, ``"B"``, ``"tie"``, ``"failed"`` for a parse failure, ``"error"``
    for a backend failure), ``consistent``, ``verdict_ab``/``verdict_ba`` (each
    order's verdict in original labels), ``outputs_ab``/``outputs_ba`` (the raw
    judge outputs, re-asks included), ``reasks_ab``/``reasks_ba``, ``len_a``/``len_b``.
    ``summary``, if given, receives the engine's usage/cost totals.
    """
    from ..backends import coerce_options

    options = coerce_options(options)
    judge = judge or JudgeOptions()
    rubric = get_rubric(rubric)
    items = _items(items, ("response_a", "response_b"))
    _check_persona(items, rubric)
    model = _model_name(options)
    fmt = resolve_format(judge.judge_format, model)
    done = _existing(run, [it["key"] for it in items])
    todo = [it for it in items if it["key"] not in done]
    results: dict[str, dict[str, Any]] = {}
    by_key = {it["key"]: it for it in todo}

    slots = []
    for it in todo:
        common = dict(rubric=rubric, fmt=fmt, persona=it.get("persona"), context=it.get("context"),
                      reference=it.get("reference"), allow_tie=allow_tie)
        slots.append(Slot(it["key"], "ab", pairwise_messages(it["instruction"], it["response_a"], it["response_b"],
                                                             **common)))
        slots.append(Slot(it["key"], "ba", pairwise_messages(it["instruction"], it["response_b"], it["response_a"],
                                                             **common)))

    def on_item(key: str, group: list[Slot]) -> None:
        it = by_key[key]
        ab = next(s for s in group if s.name == "ab")
        ba = next(s for s in group if s.name == "ba")
        errors = [s.error for s in (ab, ba) if s.error]
        v_ab = ab.parsed
        v_ba = SWAP[ba.parsed]
        winner, consistent = combine_orders(v_ab, v_ba)
        record = {
            "key": key,
            "winner": "error" if errors else winner,
            "consistent": None if errors else consistent,
            "verdict_ab": v_ab,
            "verdict_ba": v_ba,
            "outputs_ab": ab.outputs,
            "outputs_ba": ba.outputs,
            "reasks_ab": ab.reasks,
            "reasks_ba": ba.reasks,
            "len_a": len(it["response_a"]),
            "len_b": len(it["response_b"]),
            "rubric": rubric.name,
            "judge_format": fmt,
            "judge_model": model,
            "instruction": it["instruction"],
            "persona": it.get("persona"),
            "response_a": it["response_a"],
            "response_b": it["response_b"],
        }
        for extra in ("label_a", "label_b", "meta"):
            if extra in it:
                record[extra] = it[extra]
        if errors:
            record["error"] = "; ".join(dict.fromkeys(errors))
            if run is not None:
                run.record_failure(key, record["error"])
        elif run is not None:
            run.append(record, key=key)
        results[key] = record

    stats: dict[str, Any] = {}
    if slots:
        labels = ["A", "B", "tie"] if allow_tie else ["A", "B"]
        spec = Choice(labels, parse=lambda t: parsing.parse_pairwise(t, allow_tie=allow_tie),
                      reask=reask_message("pairwise", allow_tie=allow_tie))
        stats = run_slots(slots, options, spec=spec, reasks=judge.reasks,
                          max_tokens=judge.judge_max_tokens, on_item=on_item, progress=progress,
                          description=f"judging {len(todo)} pairs ({rubric.name})")
        _store_llm_summary(run, stats)
    return _collect(items, done, results, stats, summary, "winner")


def judge_score(
    items: Iterable[Mapping[str, Any]],
    rubric: Rubric | str = "quality",
    options: Any = None,
    run=None,
    *,
    judge: JudgeOptions | None = None,
    low: int = 1,
    high: int = 5,
    progress: bool = True,
    summary: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Score each item's ``response`` from ``low`` to ``high`` against ``rubric``.

    ``items``: dicts with ``key``, ``instruction`` (or ``prompt``), ``response``
    and optionally ``persona``, ``context``, ``reference``. Returns one dict per
    item: ``score`` (None for a parse failure), ``feedback``, ``outputs``,
    ``reasks``, ``status`` (``ok``, ``failed`` or ``error``).
    """
    from ..backends import coerce_options

    if low >= high:
        raise UsageError(f"the score scale needs low < high (got {low}..{high})")
    options = coerce_options(options)
    judge = judge or JudgeOptions()
    rubric = get_rubric(rubric)
    items = _items(items, ("response",))
    _check_persona(items, rubric)
    model = _model_name(options)
    fmt = resolve_format(judge.judge_format, model)
    done = _existing(run, [it["key"] for it in items])
    todo = [it for it in items if it["key"] not in done]
    by_key = {it["key"]: it for it in todo}
    results: dict[str, dict[str, Any]] = {}
    slots = [Slot(it["key"], "score", score_messages(it["instruction"], it["response"], rubric, fmt=fmt, low=low,
                                                     high=high, persona=it.get("persona"), context=it.get("context"),
                                                     reference=it.get("reference")))
             for it in todo]

    def on_item(key: str, group: list[Slot]) -> None:
        it = by_key[key]
        s = group[0]
        record = {
            "key": key,
            "score": s.parsed,
            "status": "error" if s.error else ("ok" if s.parsed is not None else "failed"),
            "feedback": parsing.split_feedback(s.outputs[0]) if s.outputs else "",
            "outputs": s.outputs,
            "reasks": s.reasks,
            "scale": [low, high],
            "rubric": rubric.name,
            "judge_format": fmt,
            "judge_model": model,
            "instruction": it["instruction"],
            "persona": it.get("persona"),
            "response": it["response"],
            "len_response": len(it["response"]),
        }
        if "meta" in it:
            record["meta"] = it["meta"]
        if s.error:
            record["error"] = s.error
            if run is not None:
                run.record_failure(key, s.error)
        elif run is not None:
            run.append(record, key=key)
        results[key] = record

    stats: dict[str, Any] = {}
    if slots:
        spec = IntRange(low, high, parse=lambda t: parsing.parse_score(t, low=low, high=high),
                        reask=reask_message("score", low=low, high=high))
        stats = run_slots(slots, options, spec=spec, reasks=judge.reasks,
                          max_tokens=judge.judge_max_tokens, on_item=on_item, progress=progress,
                          description=f"scoring {len(todo)} responses ({rubric.name})")
        _store_llm_summary(run, stats)
    return _collect(items, done, results, stats, summary, "score")


def _collect(items: list[dict[str, Any]], done: dict[str, Any], results: dict[str, Any], stats: dict[str, Any],
             summary: dict[str, Any] | None, verdict: str) -> list[dict[str, Any]]:
    """Fill ``summary`` and return one result per item, in order.

    An item not finished (dry run, budget reached) is reported as not judged, with ``verdict`` None.
    """
    if summary is not None:
        summary.update(stats)
        summary["already_done"] = len(done)
        summary["judged"] = len(results)
    out = []
    for it in items:
        r = done.get(it["key"]) or results.get(it["key"])
        if r is None:
            r = {"key": it["key"], verdict: None, "status": "not judged"}
        out.append(r)
    return out


class _RubricJudge:
    """A registered judge object that hands its work to a ``judge_*`` function (``_judge_fn``)."""

    name = ""
    kind = ""
    description = ""
    _judge_fn = None

    def judge(self, items, rubric="quality", options=None, run=None, **kwargs):
        return type(self)._judge_fn(items, rubric, options, run, **kwargs)

    def __call__(self, items, rubric="quality", options=None, run=None, **kwargs):
        return self.judge(items, rubric, options, run, **kwargs)


class PairwiseJudge(_RubricJudge):
    """Registered as judge ``pairwise``: both orders, inconsistency = tie."""

    name = "pairwise"
    kind = "pairwise"
    description = "Which of two responses better meets a rubric; judged in both orders, disagreement = tie."
    _judge_fn = staticmethod(judge_pairwise)


class ScoreJudge(_RubricJudge):
    """Registered as judge ``score``: an absolute 1–N score against a rubric."""

    name = "score"
    kind = "absolute"
    description = "An absolute score (default 1-5) of one response against a rubric, optional reference answer."
    _judge_fn = staticmethod(judge_score)


__all__ = ["JudgeOptions", "judge_pairwise", "judge_score", "combine_orders", "PairwiseJudge", "ScoreJudge"]
