"""The backend protocol and backend lookup.

A backend turns a *batch* of :class:`ChatRequest` into one :class:`Completion`
per request. The engine (``prefkit.backends.engine``) owns everything else:
concurrency, rate limits, timeouts, retries, cache, cost, progress, the run store.

* API backends (``local = False``, ``batch_size = 1``): the engine sends many
  single-request batches concurrently and retries each on its own.
* Local backends (``local = True``, e.g. ``hf``): the engine hands over batches of
  ``batch_size`` requests (ordered by :meth:`Backend.plan_batches`, e.g. by
  length), one batch at a time.

A provider failure is raised as :class:`BackendError` (``retryable`` decides
whether the engine tries again). A per-item problem inside a batch may come back
as a ``Completion`` with ``error`` set instead.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable

from .options import BackendOptions, coerce_options
from .types import ChatRequest, Completion

DEFAULT_API_MAX_TOKENS = 1024


class Backend:
    """Base class for backends. Subclasses implement :meth:`agenerate_one` or :meth:`agenerate`."""

    name: str = "base"
    description: str = ""
    default_model: str | None = None
    local: bool = False         # in-process model: batches, no timeout / rate limits
    cacheable: bool = True      # responses may go to the on-disk cache
    default_max_tokens: int = DEFAULT_API_MAX_TOKENS
    native_n: bool = False      # takes ChatRequest.n itself (else the engine fans a request out into n)
    continues_prefill: bool = False  # continues a final assistant message (an answer prefix) instead of answering it

    def __init__(self, options: BackendOptions | None = None):
        self.options = coerce_options(options)

    # ----------------------------------------------------------------- settings
    @property
    def batch_size(self) -> int:
        return max(1, int(self.options.batch_size)) if self.local else 1

    def model_for(self, request: ChatRequest) -> str | None:
        return request.model or self.options.model or self.default_model

    def params_for(self, request: ChatRequest) -> dict[str, Any]:
        """The generation parameters this request is sent with (request fields win)."""
        o = self.options
        return {
            "max_tokens": request.max_tokens if request.max_tokens is not None else (o.max_tokens or self.default_max_tokens),
            "temperature": request.temperature if request.temperature is not None else o.temperature,
            "stop": list(request.stop if request.stop is not None else (o.stop or [])),
            "seed": request.seed if request.seed is not None else o.seed,
            "extra": {**(o.extra or {}), **(request.extra or {})},
        }

    def cache_namespace(self) -> dict[str, Any]:
        """What, besides model/params/messages, decides a response (e.g. the server URL)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.options.model or self.default_model}

    # ----------------------------------------------------------------- work
    def plan_batches(self, requests: list[ChatRequest]) -> list[list[ChatRequest]]:
        """Group requests into the batches handed to :meth:`agenerate` (in order)."""
        n = self.batch_size
        return [requests[i:i + n] for i in range(0, len(requests), n)]

    async def agenerate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One completion per request, same order. Raise BackendError for a failed call."""
        if len(requests) == 1:
            return [await self.agenerate_one(requests[0])]
        import asyncio

        return list(await asyncio.gather(*(self.agenerate_one(r) for r in requests)))

    async def agenerate_one(self, request: ChatRequest) -> Completion:  # pragma: no cover - interface
        raise NotImplementedError(f"backend {self.name!r} implements neither agenerate nor agenerate_one")

    def check_ready(self) -> None:
        """Fail early with one clear line (missing key, missing package) before any work."""

    async def aclose(self) -> None:
        """Release clients/connections (called once per engine run)."""


class ApiBackend(Backend):
    """A provider SDK backend: an API key (``get_key(api_key_name)``), ``--base-url``, one lazily built client.

    Subclasses set ``api_key_name`` and implement :meth:`make_client` (which imports the SDK).
    """

    api_key_name: str = ""
    base_url_env: str = ""      # the provider SDK's own variable for the server URL (e.g. OPENAI_BASE_URL)

    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        self._client = None
        self._key: str | None = None

    @property
    def base_url(self) -> str | None:
        """``--base-url``, else the provider's own environment variable (``OPENAI_BASE_URL`` ...), else None."""
        return self.options.base_url or env_base_url(self.base_url_env)

    def cache_namespace(self) -> dict[str, Any]:
        return {"base_url": (self.base_url or "").rstrip("/")}

    def check_ready(self) -> None:
        from .keys import get_key

        self._key = get_key(self.api_key_name)

    def client(self):
        if self._client is None:
            if self._key is None:
                self.check_ready()
            self._client = self.make_client()
        return self._client

    def make_client(self):  # pragma: no cover - interface
        raise NotImplementedError(f"backend {self.name!r} does not implement make_client")


def env_base_url(variable: str) -> str | None:
    """The server URL a provider SDK would read from its environment variable (None when unset)."""
    import os

    return (os.environ.get(variable) or None) if variable else None


def add_extra(kw: dict[str, Any], extra: dict[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """Put the ``extra`` options the SDK takes (``known``) into ``kw``, the rest into ``kw["extra_body"]``.

    What the SDK does not take as an argument goes into the JSON body as it is.
    """
    known = set(known)
    body = {k: v for k, v in extra.items() if k not in known}
    kw.update({k: v for k, v in extra.items() if k in known})
    if body:
        kw["extra_body"] = body
    return kw


class BackendSpec:
    """A lazily imported backend class, registered by name (keeps ``prefkit --help`` fast)."""

    def __init__(self, name: str, target: str, description: str = "", default_model: str | None = None):
        self.name = name
        self.target = target  # "module:Class"
        self.description = description
        self.default_model = default_model

    def load(self) -> type:
        mod, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(mod), attr)

    def __call__(self, options: BackendOptions | None = None) -> Backend:
        return self.load()(options)

    def __repr__(self) -> str:
        return f"BackendSpec({self.name!r}, {self.target!r})"


def get_backend(options_or_name: Any = None, **overrides: Any) -> Backend:
    """A ready backend for ``BackendOptions`` / a dict / a backend name / a Backend instance.

    Third-party backends registered through the ``register_backends`` hook are
    found by name like the built-in ones. A registered object may be a Backend
    subclass, a factory ``f(options) -> Backend``, or a Backend instance.
    """
    if isinstance(options_or_name, Backend):
        return options_or_name
    options = coerce_options(options_or_name, **overrides)
    from ..plugins import registry

    obj = registry("backends").get(options.backend)
    if isinstance(obj, Backend):
        return obj
    backend = obj(options)
    if not isinstance(backend, Backend) and not hasattr(backend, "agenerate"):
        from ..errors import PluginError

        raise PluginError(f"backend {options.backend!r} did not produce a backend object (got {type(backend).__name__})")
    return backend


def messages_text(messages: Iterable[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


def estimate_tokens(text_or_chars: Any) -> int:
    """A quick token estimate (about 4 characters per token) for limits and dry-run costs."""
    n = text_or_chars if isinstance(text_or_chars, int) else len(str(text_or_chars))
    return max(1, (n + 3) // 4)
