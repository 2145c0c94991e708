"""The preference record: TRL's conversational preference format plus who prefers it.

``prompt`` is a list of chat messages; ``chosen``/``rejected`` are lists holding the
assistant message(s). Optional personalisation fields say whose preference it is:
``persona`` (the user the pair is conditioned on), ``chosen_persona`` and
``rejected_persona`` (a user who would prefer each side), ``community``,
``user_id``. ``row_id`` is stable across runs (the source row's id column, else
its index in the split), so results can be joined back to the data.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]

_TURN = re.compile(r"(?:^|\n)\s*(Human|Assistant|User):\s?", re.M)


def messages(content: str | list[Message] | None, role: str = "user") -> list[Message]:
    """Normalise a string or message list into a message list."""
    if content is None:
        return []
    if isinstance(content, list):
        return [dict(m) for m in content]
    return [{"role": role, "content": str(content)}]


def parse_dialogue(text: str) -> list[Message]:
    """Split ``Human: ... Assistant: ...`` transcripts (Anthropic HH style) into messages.

    Plain text without turn markers becomes one user message. A trailing empty
    ``Assistant:`` turn (the slot to answer) is dropped.
    """
    marks = list(_TURN.finditer(text))
    if len(marks) < 1 or not any(m.group(1) in ("Human", "User") for m in marks):
        return [{"role": "user", "content": text.strip()}]
    out: list[Message] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[m.end():end].strip()
        role = "user" if m.group(1) in ("Human", "User") else "assistant"
        if not content and i == len(marks) - 1 and role == "assistant":
            continue
        out.append({"role": role, "content": content})
    return out


def text_of(msgs: list[Message] | str | None) -> str:
    """The text of a message list (its assistant turns, or everything)."""
    if msgs is None:
        return ""
    if isinstance(msgs, str):
        return msgs
    return "\n\n".join(m.get("content", "") for m in msgs)


@dataclass
class PreferenceRecord:
    row_id: str
    prompt: list[Message]
    chosen: list[Message] = field(default_factory=list)
    rejected: list[Message] = field(default_factory=list)
    persona: str | None = None
    chosen_persona: str | None = None
    rejected_persona: str | None = None
    community: str | None = None
    user_id: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw_prompt: str | None = None

    @property
    def prompt_text(self) -> str:
        """The prompt as the source wrote it (transcripts keep their markers)."""
        if self.raw_prompt is not None:
            return self.raw_prompt
        if len(self.prompt) == 1:
            return self.prompt[0]["content"]
        names = {"user": "Human", "assistant": "Assistant", "system": "System"}
        return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in self.prompt)

    @property
    def chosen_text(self) -> str:
        return text_of(self.chosen)

    @property
    def rejected_text(self) -> str:
        return text_of(self.rejected)

    def to_dict(self, include_extra: bool = True) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.pop("raw_prompt")
        d = {k: v for k, v in d.items() if v is not None}
        if include_extra:
            for k, v in extra.items():
                d.setdefault(k, v)
        return d

    def to_trl(self) -> dict[str, Any]:
        """TRL's conversational preference example."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreferenceRecord":
        known = {"row_id", "prompt", "chosen", "rejected", "persona", "chosen_persona", "rejected_persona",
                 "community", "user_id", "source"}
        prompt = d.get("prompt")
        raw = prompt if isinstance(prompt, str) else None
        return cls(
            row_id=str(d["row_id"]),
            prompt=parse_dialogue(prompt) if isinstance(prompt, str) else messages(prompt),
            chosen=messages(d.get("chosen"), "assistant"),
            rejected=messages(d.get("rejected"), "assistant"),
            persona=d.get("persona"),
            chosen_persona=d.get("chosen_persona"),
            rejected_persona=d.get("rejected_persona"),
            community=d.get("community"),
            user_id=None if d.get("user_id") is None else str(d.get("user_id")),
            source=d.get("source"),
            extra={k: v for k, v in d.items() if k not in known},
            raw_prompt=raw,
        )
