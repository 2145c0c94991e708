"""A long-lived engine for requests that arrive one at a time (multi-turn conversations).

:func:`prefkit.backends.engine.execute` runs a list of requests known in
advance. A conversation's next request depends on the previous answer, so
:class:`EngineSession` takes requests one by one (``await session.submit(request,
options)``) from any number of concurrent tasks and applies *one* set of limits
to all of them:

* ``concurrency`` requests in flight at once over every API backend;
* rpm / tpm token buckets and the Retry-After pause per provider endpoint
  (backend + base URL), shared by every role that uses it;
* one ``max_cost`` budget over everything (a request that would pass it is not
  sent: ``stopped == "max_cost"``, the caller keeps the work pending);
* one response cache, one set of stats (also per role: ``request.meta["role"]``);
* local backends (``hf``) get the requests queued meanwhile as batches of
  ``batch_size``, one batch at a time;
* ``n > 1`` candidates: the provider's native ``n`` or a fan-out (distinct keys,
  cache salts and seeds), merged back into one completion;
* ``dry_run``: nothing is sent; each request is answered with a placeholder of
  ``max_tokens`` tokens and counted (calls, tokens, estimated cost per role).

Retries, timeouts and error classification are the engine's own (the same code
as :func:`execute`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import PrefkitError, UsageError
from .base import Backend, get_backend
from .engine import (EngineStats, _attempt, completion_cost, tally, _cache_get, _cache_keys, _estimate, _model_name, _settle, fan_out,
                     merge_candidates)
from .options import BackendOptions, coerce_options
from .types import ChatRequest, Completion

DRY_RUN_FINISH = "dry_run"
_NO_PRICE = object()


@dataclass
class _Lane:
    """One backend instance (per provider endpoint; per model for local backends)."""

    backend: Backend
    options: BackendOptions
    limiter: Any
    ready: bool = False
    queue: list[tuple[ChatRequest, asyncio.Future]] = field(default_factory=list)
    consumer: asyncio.Task | None = None


def with_role_defaults(request: ChatRequest, options: BackendOptions) -> ChatRequest:
    """The request with every generation setting it leaves open taken from ``options`` (a role's settings)."""
    changes: dict[str, Any] = {}
    for name in ("model", "max_tokens", "temperature", "seed"):
        if getattr(request, name) is None and getattr(options, name) is not None:
            changes[name] = getattr(options, name)
    if request.stop is None and options.stop:
        changes["stop"] = list(options.stop)
    if options.extra:
        changes["extra"] = {**options.extra, **(request.extra or {})}
    return replace(request, **changes) if changes else request


class EngineSession:
    """Submit requests one at a time from many tasks under one set of limits. Use ``async with``."""

    def __init__(self, options: BackendOptions | None = None, *,
                 on_completion: Callable[[Completion], None] | None = None,
                 on_progress: Callable[["EngineSession"], None] | None = None,
                 backends: dict[str, Backend] | None = None):
        self.options = coerce_options(options)
        self.stats = EngineStats(dry_run=self.options.dry_run)
        self.by_role: dict[str, EngineStats] = {}
        self.on_completion = on_completion
        self.on_progress = on_progress
        self._given = dict(backends or {})
        self._lanes: dict[tuple, _Lane] = {}
        self._limiters: dict[tuple, Any] = {}
        self._sem: asyncio.Semaphore | None = None
        self._reserved = 0.0
        self._prices: dict[tuple, Any] = {}
        self._rng = random.Random()
        self.cache = None
        if self.options.cache and not self.options.dry_run:
            import sqlite3

            from .cache import ResponseCache

            try:
                self.cache = ResponseCache()
            except sqlite3.Error as exc:  # a locked/broken cache file must not stop the run
                from ..console import warn

                warn(f"response cache unavailable ({type(exc).__name__}: {exc}); running without it")

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "EngineSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        import time

        self.stats.elapsed_s = time.monotonic() - self.stats.started
        for lane in self._lanes.values():
            if lane.consumer is not None and not lane.consumer.done():
                lane.consumer.cancel()
            try:
                await lane.backend.aclose()
            except Exception:
                pass
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    # ----------------------------------------------------------------- lanes
    def lane(self, options: BackendOptions) -> _Lane:
        """The backend instance serving ``options`` (built once per endpoint)."""
        from .limits import Limiter

        endpoint = (options.backend, (options.base_url or "").rstrip("/"))
        for key in (endpoint, endpoint + (options.model,)):  # API lanes by endpoint, local ones by model
            if key in self._lanes:
                return self._lanes[key]
        lane_opts = replace(self.options, backend=options.backend, base_url=options.base_url, model=options.model,
                            batch_size=options.batch_size, dtype=options.dtype, device_map=options.device_map)
        given = self._given.get(options.backend)
        backend = given if given is not None else get_backend(lane_opts)
        key = endpoint + (options.model,) if backend.local else endpoint
        backend.options = lane_opts
        limiter = self._limiters.get(endpoint)
        if limiter is None:
            limiter = self._limiters[endpoint] = Limiter(None if backend.local else self.options.rpm,
                                                            None if backend.local else self.options.tpm)
        lane = self._lanes[key] = _Lane(backend, lane_opts, limiter)
        return lane

    def prepare(self, options: BackendOptions) -> None:
        """Check a role's backend (key, package) and build its client before any request is in flight.

        Importing a provider SDK takes seconds of CPU; done while other requests wait
        on the network it would stall the event loop past their timeouts.
        """
        lane = self.lane(options)
        if self.options.dry_run or lane.ready:
            return
        lane.backend.check_ready()
        lane.ready = True
        from .base import ApiBackend

        if isinstance(lane.backend, ApiBackend):
            lane.backend.client()

    # ----------------------------------------------------------------- accounting
    def _role_stats(self, request: ChatRequest) -> EngineStats:
        role = str((request.meta or {}).get("role") or "default")
        st = self.by_role.get(role)
        if st is None:
            st = self.by_role[role] = EngineStats(dry_run=self.options.dry_run)
        return st

    def _account(self, c: Completion, backend: Backend) -> None:
        role = self._role_stats(c.request) if c.request is not None else None
        cost = self._cost(c, backend) if c.ok and not c.cached else None
        for st in (self.stats, role):
            if st is None:
                continue
            st.total += 1
            st.backend = st.backend or backend.name
            st.model = st.model or c.model
            tally(st, c, backend, cost)
        if self.on_completion is not None:
            self.on_completion(c)
        self._refresh(0)

    def _cost(self, c: Completion, backend: Backend) -> float | None:
        """The answer's cost, with the price looked up once per (backend, model) in this session."""
        model = c.model or (_model_name(backend, c.request) if c.request is not None else None)
        key = (backend.name, model, c.request.model if c.request is not None else None)
        price = self._prices.get(key, _NO_PRICE)
        if price is _NO_PRICE:
            unit = Completion(key="", text="x", usage={"prompt_tokens": 1_000_000, "completion_tokens": 0},
                              model=c.model, request=c.request)
            per_in = completion_cost(unit, backend)
            unit.usage = {"prompt_tokens": 0, "completion_tokens": 1_000_000}
            price = self._prices[key] = None if per_in is None else (per_in, completion_cost(unit, backend))
        if price is None:
            return None
        return (c.prompt_tokens * price[0] + c.completion_tokens * price[1]) / 1_000_000

    def _refresh(self, _advance: int = 0) -> None:
        if self.on_progress is not None:
            self.on_progress(self)

    # ----------------------------------------------------------------- submit
    async def submit(self, request: ChatRequest, options: BackendOptions | None = None) -> Completion:
        """Send one request (with ``options`` the settings of its role) and return its completion.

        Never raises for a provider failure (the completion carries ``error``);
        raises :class:`prefkit.PrefkitError` when the backend refuses every request
        (bad key, unknown model: the run must stop) or is not ready.
        """
        options = coerce_options(options) if options is not None else self.options
        lane = self.lane(options)
        backend = lane.backend
        request = with_role_defaults(request, options)
        if request.n > 1 and not backend.native_n:
            subs = fan_out(request, options.seed)
            parts = await asyncio.gather(*(self.submit(s, options) for s in subs))
            return merge_candidates(request, list(parts))
        if self.cache is not None and backend.cacheable:
            keys = _cache_keys(backend, request)
            hit = _cache_get(self.cache, keys, request)
            if hit is not None:
                hit.request = request
                self._account(hit, backend)
                return hit
        else:
            keys = None
        pt, ct = _estimate(backend, request)
        if self.options.dry_run:
            return self._dry(backend, request, pt, ct)
        if self.stats.stopped:
            return self._not_sent(request, backend)
        cost = None
        if self.options.max_cost is not None:
            from .pricing import cost_of

            cost = cost_of(_model_name(backend, request), pt, ct, backend.name)
            if cost is None:
                raise UsageError(
                    f"--max-cost needs a price for {_model_name(backend, request)}: add one to PREFKIT_HOME/prices.json "
                    "(see docs/backends.md) or drop --max-cost")
            if self.stats.cost_usd + self._reserved + cost > self.options.max_cost:
                self.stats.stopped = "max_cost"
                return self._not_sent(request, backend)
            self._reserved += cost
        try:
            if not lane.ready:
                backend.check_ready()
                lane.ready = True
            if backend.local:
                c = await self._local(lane, request, keys)
            else:
                if self._sem is None:
                    self._sem = asyncio.Semaphore(max(1, int(self.options.concurrency)))
                async with self._sem:
                    if self.stats.stopped and self.stats.stopped != "max_cost":
                        return self._not_sent(request, backend)
                    results, attempt, latency = await _attempt(backend, lane.options, [request], lane.limiter,
                                                               self.stats, self._rng, self._refresh)
                    tokens = _settle(backend, [request], results, attempt, latency, self.cache,
                                     {request.key: keys} if keys else None)
                    lane.limiter.settle(pt + ct, tokens)
                c = results[0]
        finally:
            if cost is not None:
                self._reserved -= cost
        self._account(c, backend)
        if self.stats.stopped == "fatal":
            raise PrefkitError(self.stats.fatal_error or "the backend refused the requests")
        return c

    async def _local(self, lane: _Lane, request: ChatRequest, keys: list[str] | None) -> Completion:
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        lane.queue.append((request, fut))
        if lane.consumer is None or lane.consumer.done():
            lane.consumer = asyncio.ensure_future(self._consume(lane))
        return await fut

    async def _consume(self, lane: _Lane) -> None:
        """Serve a local backend: everything queued meanwhile goes out as batches, one batch at a time."""
        backend = lane.backend
        while lane.queue:
            await asyncio.sleep(0)  # let the other conversations queue their calls first
            items, lane.queue = lane.queue, []
            futures = {id(r): f for r, f in items}
            try:
                for batch in backend.plan_batches([r for r, _ in items]):
                    results, attempt, latency = await _attempt(backend, lane.options, batch, lane.limiter,
                                                               self.stats, self._rng, self._refresh)
                    _settle(backend, batch, results, attempt, latency, self.cache, None)
                    for r, c in zip(batch, results):
                        f = futures.pop(id(r))
                        if not f.done():
                            f.set_result(c)
            except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiting caller
                for f in futures.values():
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else PrefkitError("cancelled"))
                if not isinstance(exc, Exception):
                    raise

    def _not_sent(self, request: ChatRequest, backend: Backend) -> Completion:
        self.stats.not_sent += 1
        why = ("not sent: the --max-cost budget was reached" if self.stats.stopped == "max_cost"
               else f"not sent: the run stopped ({self.stats.stopped})")
        c = Completion.failure(request, why, model=_model_name(backend, request))
        c.meta_not_sent = True  # type: ignore[attr-defined]
        return c

    def _dry(self, backend: Backend, request: ChatRequest, pt: int, ct: int) -> Completion:
        from .pricing import cost_of

        per = max(1, ct // max(1, request.n))
        text = placeholder_text(per)
        model = _model_name(backend, request)
        cost = cost_of(model, pt, ct, backend.name)
        for st in (self.stats, self._role_stats(request)):
            st.total += 1
            st.not_sent += 1
            st.backend = st.backend or backend.name
            st.model = st.model or model
            st.prompt_tokens += pt
            st.completion_tokens += ct
            if cost is None:
                st.cost_known = False
            else:
                st.cost_usd += cost
        c = Completion(key=request.key, text=text, finish_reason=DRY_RUN_FINISH,
                       usage={"prompt_tokens": pt, "completion_tokens": ct}, model=model, request=request,
                       candidates=[text] * request.n if request.n > 1 else None)
        self._refresh(0)
        return c

    def role_summaries(self) -> dict[str, dict[str, Any]]:
        out = {}
        for role, st in sorted(self.by_role.items()):
            d = st.as_dict()
            if self.options.dry_run:
                d["estimated_cost_usd"] = round(st.cost_usd, 6) if st.cost_known else None
            out[role] = d
        return out

    def summary(self) -> dict[str, Any]:
        d = self.stats.as_dict()
        if self.options.dry_run:
            d["estimated_cost_usd"] = round(self.stats.cost_usd, 6) if self.stats.cost_known else None
        d["roles"] = self.role_summaries()
        return d


def placeholder_text(tokens: int) -> str:
    """A dry-run stand-in answer about ``tokens`` tokens long (for worst-case prompt growth)."""
    return ("lorem " * max(1, int(tokens) * 4 // 6 + 1)).strip()


__all__ = ["EngineSession", "with_role_defaults", "placeholder_text"]
