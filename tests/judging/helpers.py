"""A judge-like responder for the mock backend and the fake server: reads the shown responses, emits verdicts."""

from __future__ import annotations

import re

_CHAT = re.compile(r"\[Response A\]\n(.*?)\n\[End of Response A\].*?\[Response B\]\n(.*?)\n\[End of Response B\]", re.S)
_PROM = re.compile(r"###Response A:\n(.*?)\n\n###Response B:\n(.*?)\n\n###", re.S)


def shown(messages) -> tuple[str, str] | None:
    """(shown as A, shown as B) from the first user message of a pairwise judge prompt."""
    text = next(m["content"] for m in messages if m["role"] == "user")
    m = _CHAT.search(text) or _PROM.search(text)
    return (m.group(1), m.group(2)) if m else None


def is_reask(messages) -> bool:
    return len(messages) > 2 and messages[-1]["role"] == "user" and "did not end" in messages[-1]["content"]


def prefer_longer(messages) -> str:
    """A consistent judge: the longer response wins, whatever its position."""
    a, b = shown(messages)
    return "Feedback: The longer response is more thorough. [RESULT] " + ("A" if len(a) >= len(b) else "B")
