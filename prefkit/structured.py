"""Structured answers: turn a model's reply into a typed value, or re-ask (bounded).

An *answer spec* says what a reply must contain and how to read it::

    Choice(["first", "second"])              # one of these labels
    IntRange(1, 5)                           # an integer in [1, 5]
    JsonObject(["persona", "confidence"])    # a JSON object with these fields

``spec.parse(text)`` returns the value, or raises :class:`Unparseable`. In a
conversation step, ``await turn.ask_structured(role, messages, spec, reasks=2)``
sends the request, parses the reply and, while it is unparseable, re-asks at
most ``reasks`` times (the conversation so far plus ``spec.reask_message()``).
The result is an :class:`Answer`: ``ok`` with ``value``, or a recorded parse
failure (``ok`` False, ``value`` None, ``error`` says why) — never a default
value passed off as the model's answer.

Where a provider has a JSON mode or JSON schemas (OpenAI ``response_format``,
Cohere ``response_format``), :class:`JsonObject` asks for it
(:meth:`AnswerSpec.request_extra`); the reply is still validated.

Any function ``text -> value`` (raising :class:`Unparseable` or returning None
when the text does not hold an answer) can be a spec too: ``AnswerSpec(parse=fn,
reask="Answer with one word: yes or no.")``; the judges use their tolerant
verdict parsers this way (:class:`Choice` and :class:`IntRange` take ``parse=``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class Unparseable(ValueError):
    """The reply does not hold an answer of the asked form."""


@dataclass
class Answer:
    """The outcome of a structured ask.

    ``value`` (when ``ok``); ``outputs``: every raw reply, re-asks included;
    ``reasks``: how many re-asks were made; ``error``: why there is no value
    (``"unparseable after 2 re-asks: ..."``); ``keys``: the stored call keys.
    """

    value: Any = None
    ok: bool = False
    outputs: list[str] = field(default_factory=list)
    reasks: int = 0
    error: str | None = None
    finish_reasons: list[str | None] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def parse_failure(self) -> bool:
        return not self.ok

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ok": self.ok, "outputs": list(self.outputs), "reasks": self.reasks,
                "error": self.error}


class AnswerSpec:
    """What a reply must contain. Subclass it, or give ``parse`` (and ``reask``) directly."""

    kind = "custom"

    def __init__(self, parse: Callable[[str], Any] | None = None, reask: str | dict[str, str] | None = None,
                 placeholder: Any = None):
        self._parse = parse
        self._reask = reask
        self._placeholder = placeholder

    # ---------------------------------------------------------------- reading
    def parse(self, text: str | None) -> Any:
        """The typed value in ``text``; raises :class:`Unparseable` when there is none."""
        if text is None or not str(text).strip():
            raise Unparseable("empty reply")
        if self._parse is not None:
            value = self._parse(str(text))
            if value is None:
                raise Unparseable(f"expected {self.describe()}, found none in the reply")
            return value
        return self.parse_default(str(text))

    def parse_default(self, text: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError("give parse= or subclass AnswerSpec")

    def describe(self) -> str:
        return "answer"

    # ---------------------------------------------------------------- asking
    def instructions(self) -> str:
        """One sentence to add to a prompt saying how to answer (optional for callers)."""
        return f"Answer with {self.describe()} only."

    def reask_message(self) -> dict[str, str]:
        """The user message sent after an unparseable reply."""
        r = self._reask
        if isinstance(r, dict):
            return dict(r)
        return {"role": "user", "content": r or f"I could not read your answer. Reply again with {self.describe()} only."}

    def request_extra(self, backend: str) -> dict[str, Any]:
        """Provider options that constrain the reply (JSON mode / schema) for ``backend``; {} if none."""
        return {}

    def placeholder(self) -> Any:
        """A valid value standing in for an answer in a ``--dry-run`` (nothing is sent)."""
        return self._placeholder


class Choice(AnswerSpec):
    """One label out of ``labels`` (case-insensitive; quotes, brackets and punctuation around it are ignored).

    The default reader takes a reply that is just the label, else the label after
    ``answer:``/``choice:``/``verdict:`` on the last such line, else the one label
    that occurs as a whole word (two different labels occurring = unparseable).
    """

    kind = "choice"

    def __init__(self, labels: Sequence[str], *, parse: Callable[[str], Any] | None = None,
                 reask: str | dict[str, str] | None = None):
        labels = [str(x) for x in labels]
        if len(labels) < 2 or len({x.lower() for x in labels}) != len(labels):
            raise ValueError(f"Choice needs two or more distinct labels, got {labels}")
        super().__init__(parse, reask, labels[0])
        self.labels = labels

    def describe(self) -> str:
        return "one of " + ", ".join(repr(x) for x in self.labels)

    def _label(self, token: str) -> str | None:
        t = token.strip().strip("\"'`*()[]{}.,:;!").strip().lower()
        for x in self.labels:
            if t == x.lower():
                return x
        return None

    def parse_default(self, text: str) -> Any:
        whole = self._label(text)
        if whole is not None:
            return whole
        found = None
        for m in re.finditer(r"(?im)^\W*(?:final\s+)?(?:answer|choice|verdict|label|result)\s*[:=\-]\s*(.+?)\s*$", text):
            found = self._label(m.group(1))
        if found is not None:
            return found
        hits = set()
        for x in self.labels:
            if re.search(r"(?<![\w-])" + re.escape(x) + r"(?![\w-])", text, re.I):
                hits.add(x)
        if len(hits) == 1:
            return hits.pop()
        raise Unparseable(f"expected {self.describe()}" + (f", found several ({', '.join(sorted(hits))})" if hits else ""))

    def request_extra(self, backend: str) -> dict[str, Any]:
        return {}


class IntRange(AnswerSpec):
    """An integer in ``[low, high]``: the reply's only integer, or the one after ``score:``/``answer:``.

    Out-of-range numbers, fractions and several different integers are unparseable.
    """

    kind = "int"

    def __init__(self, low: int, high: int, *, parse: Callable[[str], Any] | None = None,
                 reask: str | dict[str, str] | None = None):
        if int(low) > int(high):
            raise ValueError(f"IntRange needs low <= high, got {low}..{high}")
        super().__init__(parse, reask, int(low))
        self.low, self.high = int(low), int(high)

    def describe(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    def parse_default(self, text: str) -> Any:
        labelled = re.findall(r"(?i)(?:answer|score|rating|value|result)\s*[:=\-]\s*(-?\d+(?:\.\d+)?)", text)
        numbers = labelled[-1:] if labelled else re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]|/)", text)
        values = set()
        for n in numbers:
            v = float(n)
            if not v.is_integer():
                raise Unparseable(f"{n} is not an integer")
            values.add(int(v))
        if len(values) != 1:
            raise Unparseable(f"expected {self.describe()}" + (f", found {sorted(values)}" if values else ""))
        v = values.pop()
        if not self.low <= v <= self.high:
            raise Unparseable(f"{v} is outside {self.low}..{self.high}")
        return v


class JsonObject(AnswerSpec):
    """A JSON object with the ``required`` fields (a ```json fence or text around the object is fine).

    ``schema`` (a JSON schema) is sent to providers that take one; without it a
    schema is built that requires the fields. ``types`` optionally maps a field to
    a Python type the value must have (``{"confidence": float}``).
    """

    kind = "json"

    def __init__(self, required: Sequence[str] = (), *, schema: dict[str, Any] | None = None,
                 types: dict[str, type | tuple[type, ...]] | None = None,
                 parse: Callable[[str], Any] | None = None, reask: str | dict[str, str] | None = None,
                 name: str = "answer"):
        self.required = [str(r) for r in required]
        self.types = dict(types or {})
        self.name = name
        self.schema = schema or {"type": "object", "properties": {k: {} for k in self.required},
                                 "required": list(self.required)}
        super().__init__(parse, reask, {k: "" for k in self.required})

    def describe(self) -> str:
        fields_ = ", ".join(f'"{k}"' for k in self.required)
        return f"a JSON object with the fields {fields_}" if self.required else "a JSON object"

    def parse_default(self, text: str) -> Any:
        obj = _find_json_object(text)
        if obj is None:
            raise Unparseable("no JSON object in the reply")
        missing = [k for k in self.required if k not in obj]
        if missing:
            raise Unparseable(f"the JSON object lacks {', '.join(missing)}")
        for k, t in self.types.items():
            if k in obj and not isinstance(obj[k], t):
                raise Unparseable(f"field {k!r} has the wrong type ({type(obj[k]).__name__})")
        return obj

    def request_extra(self, backend: str) -> dict[str, Any]:
        if backend == "openai":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": self.name, "schema": self.schema, "strict": False}}}
        if backend == "cohere":
            return {"response_format": {"type": "json_object", "json_schema": self.schema}}
        return {}


def _find_json_object(text: str) -> dict[str, Any] | None:
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", t, re.S)
    candidates = [fence.group(1)] if fence else []
    candidates.append(t)
    dec = json.JSONDecoder()
    for c in candidates:
        for i, ch in enumerate(c):
            if ch != "{":
                continue
            try:
                obj, _ = dec.raw_decode(c[i:])
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def parse_answer(text: str | None, spec: AnswerSpec) -> tuple[Any, str | None]:
    """``(value, None)`` for a readable reply, ``(None, why)`` for an unparseable one."""
    try:
        return spec.parse(text), None
    except Unparseable as exc:
        return None, str(exc)


def as_spec(spec: AnswerSpec | Callable[[str], Any] | Sequence[str]) -> AnswerSpec:
    """An AnswerSpec from a spec, a parse function, or a list of labels."""
    if isinstance(spec, AnswerSpec):
        return spec
    if callable(spec):
        return AnswerSpec(parse=spec)
    return Choice(list(spec))


__all__ = ["Answer", "AnswerSpec", "Choice", "IntRange", "JsonObject", "Unparseable", "parse_answer", "as_spec"]
