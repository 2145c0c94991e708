"""The data that travels through the engine: requests, completions, errors.

Light on purpose (no SDK, no torch): every command imports it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChatRequest:
    """One chat request.

    ``key`` identifies the request in a run (results are stored under it, so a
    resumed run skips keys that are done). ``messages`` are OpenAI-style
    ``{"role", "content"}`` dicts (a plain string is taken as one user message).
    ``model``/``max_tokens``/``temperature``/``stop``/``seed`` override the
    command's options for this request; ``n`` asks for that many candidates
    (the provider's native ``n`` where it has one, e.g. OpenAI; otherwise the
    engine fans the request out into ``n`` requests with distinct cache keys and
    seeds); the answer's ``Completion.texts`` holds them. ``extra`` goes to the provider as-is
    (e.g. ``{"top_p": 0.9}``); ``meta`` is the caller's own data, carried through
    untouched (``meta["cache_salt"]`` is the one field the engine reads: requests
    that differ only in their salt do not share a cache entry).
    """

    key: str
    messages: list[dict[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    n: int = 1

    def __post_init__(self) -> None:
        self.key = str(self.key)
        self.n = int(self.n)
        if self.n < 1:
            raise ValueError(f"request {self.key!r}: n (candidates) must be at least 1, got {self.n}")
        if isinstance(self.messages, str):
            self.messages = [{"role": "user", "content": self.messages}]
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if not isinstance(self.messages, list) or not self.messages:
            raise ValueError(f"request {self.key!r}: messages must be a non-empty list of {{role, content}} dicts")
        for m in self.messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"request {self.key!r}: every message needs 'role' and 'content' (got {m!r})")

    @property
    def prompt_chars(self) -> int:
        return sum(len(str(m.get("content") or "")) for m in self.messages)


@dataclass
class Completion:
    """The outcome of one request: an answer (``ok``) or an error, never both.

    ``text`` is None whenever ``error`` is set: a failure is never an empty
    string passed off as an answer. ``texts`` holds every candidate of a request
    with ``n > 1`` (``texts[0] == text``); for ``n == 1`` it is ``[text]``.
    """

    key: str
    text: str | None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    model: str | None = None
    cached: bool = False
    error: str | None = None
    latency_s: float = 0.0
    request: ChatRequest | None = None
    attempts: int = 0
    candidates: list[str] | None = None

    @property
    def texts(self) -> list[str]:
        """Every candidate's text (one for an ordinary request); empty for a failure."""
        if self.text is None:
            return []
        return list(self.candidates) if self.candidates else [self.text]

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    @property
    def prompt_tokens(self) -> int:
        return int((self.usage or {}).get("prompt_tokens") or 0)

    @property
    def completion_tokens(self) -> int:
        return int((self.usage or {}).get("completion_tokens") or 0)

    def to_dict(self) -> dict[str, Any]:
        """What the run store keeps for a success by default (``texts`` too when there are candidates)."""
        d = {"text": self.text, "finish_reason": self.finish_reason, "usage": dict(self.usage or {}),
             "model": self.model}
        if self.candidates and len(self.candidates) > 1:
            d["texts"] = list(self.candidates)
        return d

    @classmethod
    def failure(cls, request: ChatRequest, error: str, *, attempts: int = 0, latency_s: float = 0.0,
                model: str | None = None) -> "Completion":
        return cls(key=request.key, text=None, error=error, request=request, attempts=attempts,
                   latency_s=latency_s, model=model or request.model,
                   usage={"prompt_tokens": 0, "completion_tokens": 0})


class BackendError(Exception):
    """A provider call failed.

    ``retryable`` decides whether the engine tries again (429, 5xx, timeouts,
    connection errors); ``retry_after`` (seconds) is the provider's Retry-After.
    Non-retryable errors (400, 401, 404 ...) fail at once with the provider's message.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        msg = super().__str__()
        return f"HTTP {self.status}: {msg}" if self.status and not msg.startswith("HTTP ") else msg


def retryable_status(status: int | None) -> bool:
    """429, 408, 409 (lock timeouts) and every 5xx are worth another try."""
    return status is not None and (status in (408, 409, 425, 429) or status >= 500)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        get = headers.get
    except AttributeError:
        return None
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils
        import time

        ts = email.utils.parsedate_to_datetime(value).timestamp()
        return max(0.0, ts - time.time())
    except Exception:
        return None
