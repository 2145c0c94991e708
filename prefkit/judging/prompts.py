"""Judge prompts, built from the template files in ``prompts/``.

Two prompt styles:

* ``prometheus`` — the layout Prometheus-2 (``prometheus-eval/prometheus-7b-v2.0``)
  was trained on, as its paper describes it: ``###Task Description`` with
  numbered steps, ``###Instruction``, the response(s), an optional reference
  answer, ``###Score Rubric(s)``, and an answer of the form
  ``Feedback: ... [RESULT] X``. The system text is folded into the single user
  message (Mistral-style chat templates reject a system role).
* ``chat`` — for general chat models (GPT-4o, Claude, Command R, Llama ...): a
  system message plus a user message with clearly delimited parts, asking for
  a short assessment and a final ``[RESULT] X`` line.

``auto`` picks ``prometheus`` when the judge model's name contains
"prometheus", else ``chat``. A persona, extra context (e.g. a conversation so
far) and a reference answer are optional sections.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .rubric import Rubric

PROMPTS_DIR = Path(__file__).parent / "prompts"
FORMATS = ("auto", "prometheus", "chat")


@functools.lru_cache(maxsize=None)
def template(name: str) -> str:
    """The text of ``prompts/<name>.txt`` (trailing newline removed)."""
    path = PROMPTS_DIR / f"{name}.txt"
    return path.read_text(encoding="utf-8").rstrip("\n")


def resolve_format(judge_format: str, model: str | None) -> str:
    """``auto`` → ``prometheus`` for Prometheus models, else ``chat``."""
    fmt = (judge_format or "auto").lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown judge format {judge_format!r} (choose from {', '.join(FORMATS)})")
    if fmt == "auto":
        return "prometheus" if "prometheus" in str(model or "").lower() else "chat"
    return fmt


def _section(header: str, body: str | None, fmt: str) -> str:
    if not body or not str(body).strip():
        return ""
    body = str(body).strip()
    if fmt == "prometheus":
        return f"###{header}:\n{body}\n\n"
    return f"[{header}]\n{body}\n[End of {header[0].lower() + header[1:]}]\n\n"


def _score_lines(rubric: Rubric, low: int, high: int) -> str:
    desc = rubric.descriptions_for(low, high)
    if not desc:
        return ""
    return "\n".join(f"Score {s}: {desc[s]}" for s in range(low, high + 1))


def _messages(system: str, user: str, fmt: str) -> list[dict[str, str]]:
    if fmt == "prometheus":
        return [{"role": "user", "content": f"{system}\n\n{user}"}]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def pairwise_messages(
    instruction: str,
    response_a: str,
    response_b: str,
    rubric: Rubric,
    *,
    fmt: str = "chat",
    persona: str | None = None,
    context: str | None = None,
    reference: str | None = None,
    allow_tie: bool = False,
) -> list[dict[str, str]]:
    """Chat messages asking a judge which of two responses better meets ``rubric``."""
    fmt = resolve_format(fmt, None)
    has_ref = bool(reference and str(reference).strip())
    if fmt == "prometheus":
        values = {
            "reference_intro": "a reference answer, " if has_ref else "",
            "reference_compare": " and with the Reference Answer" if has_ref else "",
            "tie_choice": ': "A" or "B" (or "tie" only if neither is better)' if allow_tie else ': "A" or "B"',
            "result_choices": '"A", "B" or "tie"' if allow_tie else 'Either "A" or "B"',
            "context_section": _section("Context", context, fmt),
            "instruction": str(instruction).strip(),
            "persona_section": _section("Persona", persona, fmt),
            "response_a": str(response_a).strip(),
            "response_b": str(response_b).strip(),
            "reference_section": _section("Reference Answer", reference, fmt),
            "criteria": f"[{rubric.criteria}]",
        }
        user = template("prometheus_relative").format(**values)
        return _messages(template("prometheus_system_relative"), user, fmt)
    values = {
        "criteria": rubric.criteria,
        "context_section": _section("Context", context, fmt),
        "instruction": str(instruction).strip(),
        "persona_section": _section("User persona", persona, fmt),
        "response_a": str(response_a).strip(),
        "response_b": str(response_b).strip(),
        "reference_section": _section("Reference answer", reference, fmt),
        "persona_hint": " for the user described in the persona" if persona else "",
        "tie_line": ', or "[RESULT] tie" if neither is better' if allow_tie else "",
    }
    user = template("chat_pairwise").format(**values)
    return _messages(template("chat_system_pairwise"), user, fmt)


def score_messages(
    instruction: str,
    response: str,
    rubric: Rubric,
    *,
    fmt: str = "chat",
    low: int = 1,
    high: int = 5,
    persona: str | None = None,
    context: str | None = None,
    reference: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking a judge for a ``low``–``high`` score of one response against ``rubric``."""
    fmt = resolve_format(fmt, None)
    if low >= high:
        raise UsageError(f"the score scale needs low < high (got {low}..{high})")
    lines = _score_lines(rubric, low, high)
    has_ref = bool(reference and str(reference).strip())
    if fmt == "prometheus":
        values = {
            "reference_intro": f"a reference answer that would receive a score of {high}, " if has_ref else "",
            "low": low, "high": high,
            "context_section": _section("Context", context, fmt),
            "instruction": str(instruction).strip(),
            "persona_section": _section("Persona", persona, fmt),
            "response": str(response).strip(),
            "reference_section": _section(f"Reference Answer (Score {high})", reference, fmt),
            "criteria": rubric.criteria,
            "score_lines": lines,
        }
        user = template("prometheus_absolute").format(**values).replace("]\n\n\n###Feedback", "]\n\n###Feedback")
        return _messages(template("prometheus_system_absolute"), user, fmt)
    values = {
        "low": low, "high": high,
        "criteria": rubric.criteria,
        "score_lines_block": (lines + "\n\n") if lines else "",
        "context_section": _section("Context", context, fmt),
        "instruction": str(instruction).strip(),
        "persona_section": _section("User persona", persona, fmt),
        "response": str(response).strip(),
        "reference_section": _section(f"Reference answer (would score {high})", reference, fmt),
        "persona_hint": " for the user described in the persona" if persona else "",
    }
    user = template("chat_score").format(**values)
    return _messages(template("chat_system_score"), user, fmt)


def reask_message(kind: str, *, allow_tie: bool = False, low: int = 1, high: int = 5) -> dict[str, str]:
    """The follow-up user message sent when a judge's answer could not be parsed."""
    if kind == "pairwise":
        text = template("reask_pairwise").format(tie_line=', or "[RESULT] tie" if neither is better' if allow_tie else "")
    elif kind == "score":
        text = template("reask_score").format(low=low, high=high)
    else:
        raise ValueError(f"unknown judgment kind {kind!r}")
    return {"role": "user", "content": text}


def describe(fmt: str) -> dict[str, Any]:
    return {"format": fmt, "templates": sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))}


__all__ = ["pairwise_messages", "score_messages", "reask_message", "resolve_format", "template", "FORMATS"]
