"""The LLM backend engine: one fast, fault-tolerant interface to every LLM prefkit calls.

Public API::

    from prefkit.backends import ChatRequest, BackendOptions, complete, run_requests

    reqs = [ChatRequest(key=str(i), messages=[{"role": "user", "content": q}]) for i, q in enumerate(qs)]
    outs = complete(reqs, BackendOptions(backend="openai", model="gpt-4o-mini"))   # same order
    summary = run_requests(reqs, options, run=run, on_result=lambda c: {"answer": c.text})

Importing this package stays light (no SDK, no torch): providers load on use.
"""

from __future__ import annotations

from .base import Backend, BackendSpec, get_backend
from .options import BackendOptions, coerce_options
from .types import BackendError, ChatRequest, Completion


def __getattr__(name: str):
    if name in ("complete", "acomplete", "run_requests", "execute", "EngineStats", "print_summary",
                "format_summary"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'prefkit.backends' has no attribute {name!r}")


__all__ = ["ChatRequest", "Completion", "BackendOptions", "Backend", "BackendError", "BackendSpec",
           "get_backend", "complete", "acomplete", "run_requests", "execute", "coerce_options"]
