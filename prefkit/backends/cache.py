"""The on-disk response cache (SQLite, ``PREFKIT_HOME/cache.sqlite``).

Keyed by backend, model, server, generation parameters and messages (plus the
request's ``meta["cache_salt"]``, if any). Only successful completions are
stored. Sampled outputs (temperature > 0) are cached too: the same request gives
the same answer on a re-run; pass ``--no-cache`` or vary ``seed``/``cache_salt``
for fresh samples.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .types import ChatRequest, Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT,
    model TEXT,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created REAL
)
"""


def cache_key(backend: str, model: str | None, params: dict[str, Any], messages: list[dict[str, Any]],
              namespace: dict[str, Any] | None = None, salt: Any = None) -> str:
    payload = {"backend": backend, "model": model, "params": params, "messages": messages,
               "namespace": namespace or {}, "salt": salt}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path | None = None, timeout: float = 10.0):
        if path is None:
            from ..paths import home

            path = home() / "cache.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=timeout)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(SCHEMA)
        self._conn.commit()
        self._pending = 0
        self._first_pending = 0.0
        self.disabled_reason: str | None = None

    def _failed(self, exc: Exception) -> None:
        """The cache is an optimisation: a locked or broken database must never cost results."""
        if self.disabled_reason is None:
            self.disabled_reason = f"{type(exc).__name__}: {exc}"
            from ..console import warn

            warn(f"response cache {self.path} disabled for this run ({self.disabled_reason}); results are unaffected")

    def get(self, key: str, request: ChatRequest) -> Completion | None:
        if self.disabled_reason:
            return None
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT text, finish_reason, prompt_tokens, completion_tokens, model FROM responses WHERE key=?",
                    (key,)).fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return None
        if row is None:
            return None
        text, finish, pt, ct, model = row
        return Completion(key=request.key, text=text, finish_reason=finish,
                          usage={"prompt_tokens": pt or 0, "completion_tokens": ct or 0}, model=model,
                          cached=True, request=request)

    def put(self, key: str, backend: str, completion: Completion) -> None:
        if not completion.ok or self.disabled_reason:
            return
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?)",
                    (key, backend, completion.model, completion.text, completion.finish_reason,
                     completion.prompt_tokens, completion.completion_tokens, time.time()))
                now = time.monotonic()
                if self._pending == 0:
                    self._first_pending = now
                self._pending += 1
                # commit in groups for throughput, but never hold the write lock long: other
                # prefkit processes share this file (slow local generation would otherwise starve them)
                if self._pending >= 32 or now - self._first_pending > 0.5:
                    self._conn.commit()
                    self._pending = 0
        except sqlite3.Error as exc:
            self._failed(exc)

    def flush(self) -> None:
        try:
            with self._lock:
                self._conn.commit()
                self._pending = 0
        except sqlite3.Error as exc:
            self._failed(exc)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> int:
        with self._lock:
            n = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            self._conn.execute("DELETE FROM responses")
            self._conn.commit()
        return n

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.commit()
                self._conn.close()
            except sqlite3.ProgrammingError:
                pass
