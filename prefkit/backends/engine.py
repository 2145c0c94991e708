"""The engine every LLM call in prefkit goes through.

``execute`` takes requests and a backend and runs them as fast as the limits
allow: bounded concurrency (``--concurrency`` workers for API backends, one
batch at a time for local models), rpm/tpm token buckets, a per-request timeout,
retries with exponential backoff and full jitter that honour Retry-After (a 429
also pauses every worker for that long), fail-fast on non-retryable errors with
the provider's message, the SQLite response cache, usage and cost accounting,
a ``--max-cost`` budget that stops cleanly, ``--dry-run``, and a rich progress
bar. Completions stream to a callback as they arrive.

``complete`` / ``acomplete`` return completions in input order;
``run_requests`` streams them into a :class:`prefkit.runs.Run` (results keyed by
request key, failures recorded and retried on resume, usage/cost in metrics).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import PrefkitError, UsageError
from .base import Backend, estimate_tokens, get_backend
from .options import BackendOptions, coerce_options
from .types import BackendError, ChatRequest, Completion

ProgressFn = Callable[["EngineStats"], None]

# statuses that mean every further request would fail the same way (bad key, no access, wrong model/URL)
FATAL_STATUSES = (401, 403, 404)


@dataclass
class EngineStats:
    total: int = 0              # requests given to the engine
    done: int = 0               # successful completions (cached included)
    failed: int = 0
    cached: int = 0
    retrying: int = 0           # requests waiting to be retried right now
    retries: int = 0            # retry attempts made
    sent: int = 0               # provider calls made (per request; retries included)
    not_sent: int = 0           # left out because the budget was reached
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    estimated_cost_usd: float | None = None
    stopped: str | None = None  # "max_cost" (budget reached) or "fatal" (401/403/404)
    fatal_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0
    backend: str = ""
    model: str | None = None
    dry_run: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def throughput(self) -> float:
        el = self.elapsed_s or (time.monotonic() - self.started)
        fresh = self.finished - self.cached
        return fresh / el if el > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "model": self.model, "requests": self.total, "completed": self.done,
            "failed": self.failed, "cached": self.cached, "sent": self.sent, "retries": self.retries,
            "not_sent": self.not_sent, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6) if self.cost_known else None,
            "estimated_cost_usd": self.estimated_cost_usd, "stopped": self.stopped,
            "elapsed_s": round(self.elapsed_s, 3), "throughput_rps": round(self.throughput(), 3),
            "dry_run": self.dry_run, "errors": dict(self.errors),
        }


def completion_cost(c: Completion, backend: Backend, model: str | None = None) -> float | None:
    """What an answer cost (USD) by the price of the model that answered, else the one asked for; None if unknown."""
    from .pricing import cost_of

    cost = cost_of(c.model or model, c.prompt_tokens, c.completion_tokens, backend.name)
    if cost is None and c.request is not None:
        cost = cost_of(_model_name(backend, c.request), c.prompt_tokens, c.completion_tokens, backend.name)
    return cost


_UNPRICED = object()


def tally(stats: EngineStats, c: Completion, backend: Backend, cost: Any = _UNPRICED) -> None:
    """Count one outcome: done/cached/failed, tokens, cost (unknown once any answer has no price), errors.

    ``cost``: the answer's cost if already known (see :func:`completion_cost`).
    """
    if c.ok:
        stats.done += 1
        if c.cached:
            stats.cached += 1
            return
        stats.prompt_tokens += c.prompt_tokens
        stats.completion_tokens += c.completion_tokens
        if cost is _UNPRICED:
            cost = completion_cost(c, backend, stats.model)
        if cost is None:
            stats.cost_known = False
        else:
            stats.cost_usd += cost
    else:
        stats.failed += 1
        kind = (c.error or "error")[:160]
        stats.errors[kind] = stats.errors.get(kind, 0) + 1


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**(attempt-1))); never shorter than Retry-After."""
    rng = rng or random
    delay = rng.uniform(0.0, min(cap, base * (2 ** max(0, attempt - 1))))
    if retry_after is not None:
        delay = retry_after + rng.uniform(0.0, min(cap, base) * 0.25)
    return delay


def _classify(exc: BaseException, timeout: float) -> BackendError:
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return BackendError(f"timed out after {timeout:g}s", retryable=True)
    if isinstance(exc, (ConnectionError, OSError)):
        return BackendError(f"connection error: {type(exc).__name__}: {exc}", retryable=True)
    return BackendError(f"{type(exc).__name__}: {exc}", retryable=False)


def check_unique_keys(requests: list[ChatRequest]) -> None:
    seen: set[str] = set()
    for r in requests:
        if r.key in seen:
            raise UsageError(f"two requests share the key {r.key!r}: every request needs its own key")
        seen.add(r.key)


def _estimate(backend: Backend, request: ChatRequest) -> tuple[int, int]:
    """(prompt tokens, most completion tokens) of a request; native ``n`` candidates cost ``n`` completions."""
    params = backend.params_for(request)
    return (estimate_tokens(request.prompt_chars) + 4 * len(request.messages),
            int(params["max_tokens"] or 0) * max(1, request.n))


def _model_name(backend: Backend, request: ChatRequest) -> str | None:
    m = backend.model_for(request)
    return str(m) if m is not None else None


def _cache_key_for(backend: Backend, request: ChatRequest, salt: Any = None) -> str:
    from .cache import cache_key

    params = backend.params_for(request)
    if salt is None:
        salt = request.meta.get("cache_salt") if request.meta else None
    return cache_key(backend.name, _model_name(backend, request), params, request.messages,
                     backend.cache_namespace(), salt)


# --------------------------------------------------------------------------- candidates (n > 1)
def _cache_keys(backend: Backend, request: ChatRequest) -> list[str]:
    """One cache key per candidate (a native-``n`` answer is cached candidate by candidate)."""
    if request.n == 1:
        return [_cache_key_for(backend, request)]
    salt = request.meta.get("cache_salt") if request.meta else None
    return [_cache_key_for(backend, request, salt=[salt, "n", request.n, k]) for k in range(request.n)]


def _cache_get(cache, keys: list[str], request: ChatRequest) -> Completion | None:
    parts = [cache.get(k, request) for k in keys]
    if any(p is None for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    first.candidates = [p.text for p in parts]
    return first


def _cache_put(cache, keys: list[str], backend: Backend, c: Completion) -> None:
    if len(keys) == 1:
        cache.put(keys[0], backend.name, c)
        return
    for k, (ck, text) in enumerate(zip(keys, c.texts)):
        usage = c.usage if k == 0 else {"prompt_tokens": 0, "completion_tokens": 0}
        cache.put(ck, backend.name, Completion(key=c.key, text=text, finish_reason=c.finish_reason, usage=usage,
                                               model=c.model))


def fan_out(request: ChatRequest, base_seed: int | None = None) -> list[ChatRequest]:
    """``n`` one-candidate requests for a request with ``n > 1`` (backends without a native ``n``).

    Candidate ``k`` has key ``<key>/<k>``, its own cache salt (so candidates never share a cache
    entry) and seed ``seed + k`` when a seed is set (so seeded sampling gives different candidates).
    """
    from dataclasses import replace

    seed = request.seed if request.seed is not None else base_seed
    salt = request.meta.get("cache_salt") if request.meta else None
    return [replace(request, key=f"{request.key}/{k}", n=1, seed=(seed + k if seed is not None else None),
                    meta={**(request.meta or {}), "cache_salt": [salt, "candidate", k],
                          "candidate_of": request.key, "candidate": k})
            for k in range(request.n)]


def merge_candidates(request: ChatRequest, parts: list[Completion]) -> Completion:
    """One completion holding every candidate (a failure if any candidate failed)."""
    bad = [p for p in parts if not p.ok]
    if bad:
        return Completion.failure(request, bad[0].error or "a candidate failed", attempts=max(p.attempts for p in parts),
                                  model=bad[0].model)
    usage = {"prompt_tokens": sum(p.prompt_tokens for p in parts),
             "completion_tokens": sum(p.completion_tokens for p in parts)}
    return Completion(key=request.key, text=parts[0].text, finish_reason=parts[0].finish_reason, usage=usage,
                      model=parts[0].model, cached=all(p.cached for p in parts), request=request,
                      attempts=max(p.attempts for p in parts), latency_s=max(p.latency_s for p in parts),
                      candidates=[p.text for p in parts])


def _expand(backend: Backend, options: BackendOptions, requests: list[ChatRequest],
            emit: Callable[[Completion], None]) -> tuple[list[ChatRequest], Callable[[Completion], None]]:
    """Fan requests with ``n > 1`` out for a backend without native ``n``; merge their answers back."""
    if backend.native_n or all(r.n == 1 for r in requests):
        return requests, emit
    parents: dict[str, tuple[ChatRequest, dict[int, Completion]]] = {}
    out: list[ChatRequest] = []
    for r in requests:
        if r.n == 1:
            out.append(r)
            continue
        parents[r.key] = (r, {})
        out.extend(fan_out(r, options.seed))

    def merged_emit(c: Completion) -> None:
        meta = c.request.meta if c.request is not None else {}
        parent = meta.get("candidate_of") if meta else None
        if parent is None or parent not in parents:
            emit(c)
            return
        req, got = parents[parent]
        got[int(meta["candidate"])] = c
        if len(got) == req.n:
            del parents[parent]
            emit(merge_candidates(req, [got[k] for k in range(req.n)]))

    return out, merged_emit


async def execute(requests: Iterable[ChatRequest], options: BackendOptions | None = None, *,
                  backend: Backend | None = None, on_completion: Callable[[Completion], None] | None = None,
                  progress: bool = True, description: str = "generating",
                  on_progress: ProgressFn | None = None, raise_fatal: bool = True) -> EngineStats:
    """Run requests; call ``on_completion`` for each outcome as it arrives. Returns the stats."""
    from .pricing import cost_of, price_for

    options = coerce_options(options)
    backend = backend or get_backend(options)
    backend.options = options  # the run's options decide the parameters, also for a ready-made backend
    requests = list(requests)
    check_unique_keys(requests)
    requests, on_completion = _expand(backend, options, requests, on_completion or (lambda c: None))
    stats = EngineStats(total=len(requests), backend=backend.name,
                        model=(_model_name(backend, requests[0]) if requests else options.model),
                        dry_run=options.dry_run)
    emit = on_completion or (lambda c: None)
    use_cache = options.cache and backend.cacheable

    # ---------------------------------------------------------------- cost estimate
    def estimated_cost(reqs: list[ChatRequest]) -> float | None:
        total = 0.0
        for r in reqs:
            pt, ct = _estimate(backend, r)
            c = cost_of(_model_name(backend, r), pt, ct, backend.name)
            if c is None:
                return None
            total += c
        return total

    cache = None
    if use_cache:
        import sqlite3

        from .cache import ResponseCache

        try:
            cache = ResponseCache()
        except sqlite3.Error as exc:  # a locked/broken cache file must not stop the run
            from ..console import warn

            warn(f"response cache unavailable ({type(exc).__name__}: {exc}); running without it")
    try:
        # ------------------------------------------------------------ cache hits
        cache_keys: dict[str, list[str]] = {}
        to_send: list[ChatRequest] = []
        hits: list[Completion] = []
        for r in requests:
            if cache is not None:
                ck = cache_keys[r.key] = _cache_keys(backend, r)
                hit = _cache_get(cache, ck, r)
                if hit is not None:
                    hits.append(hit)
                    continue
            to_send.append(r)

        if options.dry_run:
            stats.cached = len(hits)
            stats.not_sent = len(to_send)
            stats.estimated_cost_usd = estimated_cost(to_send)
            pt = sum(_estimate(backend, r)[0] for r in to_send)
            ct = sum(_estimate(backend, r)[1] for r in to_send)
            stats.prompt_tokens, stats.completion_tokens = pt, ct
            stats.cost_known = stats.estimated_cost_usd is not None
            stats.cost_usd = stats.estimated_cost_usd or 0.0
            return stats

        if options.max_cost is not None and to_send:
            unknown = sorted({str(_model_name(backend, r)) for r in to_send
                              if price_for(_model_name(backend, r), backend.name) is None})
            if unknown:
                raise UsageError(
                    f"--max-cost needs a price for {', '.join(unknown)}: add one to PREFKIT_HOME/prices.json "
                    "(see docs/backends.md) or drop --max-cost")
        if to_send:
            backend.check_ready()

        # ------------------------------------------------------------ progress
        bar_ctx = None
        bar = task = None
        if progress:
            from ..console import progress as progress_bar

            bar_ctx = progress_bar(len(requests), description, fields=("stats",))
            bar, task = bar_ctx.__enter__()

        def refresh(advance: int = 0) -> None:
            if on_progress is not None:
                on_progress(stats)
            if bar is None:
                return
            cost = f" ${stats.cost_usd:.4f}" if stats.cost_known and stats.cost_usd else ""
            text = (f"[green]✓{stats.done}[/green] [red]✗{stats.failed}[/red] "
                    f"[yellow]↻{stats.retrying}[/yellow] {stats.throughput():.1f} req/s "
                    f"{stats.completion_tokens / max(1e-9, time.monotonic() - stats.started):.1f} tok/s{cost}")
            bar.update(task, advance=advance, stats=text)

        def account(c: Completion) -> None:
            tally(stats, c, backend)
            try:
                emit(c)
            finally:
                refresh(1)

        try:
            for c in hits:
                account(c)

            # -------------------------------------------------------- sending
            if to_send:
                await _send_all(backend, options, to_send, stats, account, refresh, cache, cache_keys,
                                estimated_cost)
        finally:
            stats.elapsed_s = time.monotonic() - stats.started
            if bar_ctx is not None:
                refresh(0)
                bar_ctx.__exit__(None, None, None)
        if stats.stopped == "fatal" and raise_fatal:
            raise PrefkitError(stats.fatal_error or "the backend refused the requests")
    finally:
        if cache is not None:
            cache.close()
        try:
            await backend.aclose()
        except Exception:
            pass
    return stats


async def _attempt(backend: Backend, options: BackendOptions, batch: list[ChatRequest], limiter, stats: EngineStats,
                   rng: random.Random, refresh: Callable[[int], None]) -> tuple[list[Completion], int, float]:
    """Send one batch, retrying what is worth retrying: (completions, attempts, latency of the last try)."""
    from . import keys as _keys

    est_tokens = sum(p + c for p, c in (_estimate(backend, r) for r in batch))
    max_attempts = max(0, int(options.max_retries)) + 1
    attempt = 0
    while True:
        attempt += 1
        await limiter.acquire(len(batch), est_tokens)
        stats.sent += len(batch)
        t0 = time.monotonic()
        try:
            if backend.local:
                results = await backend.agenerate(batch)
            else:
                # asyncio.timeout runs the call in this task (wait_for would wrap it in a new one)
                async with asyncio.timeout(options.timeout):
                    results = await backend.agenerate(batch)
            if len(results) != len(batch):
                raise BackendError(f"backend {backend.name!r} returned {len(results)} completions for "
                                   f"{len(batch)} requests", retryable=False)
            return list(results), attempt, time.monotonic() - t0
        except (asyncio.CancelledError, PrefkitError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            err = _classify(exc, options.timeout)
            if err.retryable and attempt < max_attempts:
                delay = backoff_delay(attempt, options.backoff_base, options.backoff_max, err.retry_after, rng)
                if err.retry_after:
                    limiter.pause(err.retry_after)
                stats.retries += len(batch)
                stats.retrying += len(batch)
                refresh(0)
                try:
                    await asyncio.sleep(delay)
                finally:
                    stats.retrying -= len(batch)
                continue
            note = f" (gave up after {attempt} attempts)" if err.retryable else ""
            message = _keys.redact(str(err)) + note
            if err.status in FATAL_STATUSES and not stats.stopped:
                # a bad key, no permission or an unknown model/URL fails every request alike: stop now
                stats.stopped = "fatal"
                stats.fatal_error = f"{backend.name}: {message}"
            latency = time.monotonic() - t0
            return [Completion.failure(r, message, attempts=attempt, latency_s=latency) for r in batch], attempt, latency


def _settle(backend: Backend, batch: list[ChatRequest], results: list[Completion], attempt: int, latency: float,
            cache, cache_keys: dict[str, list[str]] | None) -> int:
    """Finish a batch's completions (keys, model, empty answers are errors, secrets scrubbed, cache); returns tokens used."""
    from . import keys as _keys

    actual_tokens = 0
    for r, c in zip(batch, results):
        c.key = r.key
        c.request = r
        c.attempts = attempt
        if not c.latency_s:
            c.latency_s = latency
        if c.model is None:
            c.model = _model_name(backend, r)
        if c.error is None and (c.text is None or not str(c.text).strip()):
            c.error = f"empty completion from the model (finish_reason={c.finish_reason})"
            c.text = None
        if c.error is not None:
            c.text = None
            c.candidates = None
            c.error = _keys.redact(c.error)
        actual_tokens += c.prompt_tokens + c.completion_tokens
        if c.ok and cache is not None:
            ck = (cache_keys or {}).get(r.key) or _cache_keys(backend, r)
            _cache_put(cache, ck, backend, c)
    return actual_tokens


async def _send_all(backend: Backend, options: BackendOptions, to_send: list[ChatRequest], stats: EngineStats,
                    account: Callable[[Completion], None], refresh: Callable[[int], None], cache,
                    cache_keys: dict[str, list[str]], estimated_cost) -> None:
    from .limits import Limiter

    limiter = Limiter(None if backend.local else options.rpm, None if backend.local else options.tpm)
    batches = backend.plan_batches(to_send)
    workers = 1 if backend.local else max(1, min(int(options.concurrency), len(batches)))
    it = iter(batches)
    budget = options.max_cost
    reserved = 0.0
    rng = random.Random()
    remaining = {"n": len(to_send)}

    async def process(batch: list[ChatRequest]) -> None:
        est_tokens = sum(p + c for p, c in (_estimate(backend, r) for r in batch))
        results, attempt, latency = await _attempt(backend, options, batch, limiter, stats, rng, refresh)
        actual_tokens = _settle(backend, batch, results, attempt, latency, cache, cache_keys)
        for c in results:
            remaining["n"] -= 1
            account(c)
        limiter.settle(est_tokens, actual_tokens)

    async def worker() -> None:
        nonlocal reserved
        while True:
            if stats.stopped:
                return
            batch = next(it, None)
            if batch is None:
                return
            cost = None
            if budget is not None:
                cost = estimated_cost(batch) or 0.0
                if stats.cost_usd + reserved + cost > budget:
                    stats.stopped = "max_cost"
                    return
                reserved += cost
            try:
                await process(batch)
            finally:
                if cost is not None:
                    reserved -= cost

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if stats.stopped:
        stats.not_sent = remaining["n"]


# --------------------------------------------------------------------------- sync / async API
def run_sync(coro):
    """Run a coroutine from sync code, even when an event loop is already running (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target, name="prefkit-engine")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _as_requests(requests: Iterable[ChatRequest | str | dict]) -> list[ChatRequest]:
    out = []
    for i, r in enumerate(requests):
        if isinstance(r, ChatRequest):
            out.append(r)
        elif isinstance(r, str):
            out.append(ChatRequest(key=str(i), messages=r))
        elif isinstance(r, dict):
            d = dict(r)
            d.setdefault("key", str(i))
            out.append(ChatRequest(**d))
        else:
            raise TypeError(f"expected ChatRequest, str or dict, got {type(r).__name__}")
    return out


async def acomplete(requests: Iterable[ChatRequest | str | dict], options: BackendOptions | str | dict | None = None,
                    progress: bool = True, *, backend: Backend | None = None,
                    description: str = "generating") -> list[Completion]:
    """Completions for ``requests`` in the same order (failures have ``.error`` set)."""
    reqs = _as_requests(requests)
    options = coerce_options(options)
    got: dict[str, Completion] = {}
    stats = await execute(reqs, options, backend=backend, on_completion=lambda c: got.__setitem__(c.key, c),
                          progress=progress, description=description)
    out = []
    for r in reqs:
        c = got.get(r.key)
        if c is None:
            why = ("dry run: nothing was sent" if stats.dry_run
                   else f"not sent: the --max-cost budget (${options.max_cost}) was reached")
            c = Completion.failure(r, why)
        out.append(c)
    return out


def complete(requests: Iterable[ChatRequest | str | dict], options: BackendOptions | str | dict | None = None,
             progress: bool = True, *, backend: Backend | None = None,
             description: str = "generating") -> list[Completion]:
    """Sync :func:`acomplete`: completions in input order (failures have ``.error`` set)."""
    return run_sync(acomplete(requests, options, progress, backend=backend, description=description))


# --------------------------------------------------------------------------- run store
def run_requests(requests: Iterable[ChatRequest], options: BackendOptions | str | dict | None = None,
                 run=None, on_result: Callable[[Completion], dict | None] | None = None,
                 description: str = "generating", *, backend: Backend | None = None, progress: bool = True,
                 quiet: bool = False) -> dict[str, Any]:
    """Run requests into a :class:`prefkit.runs.Run`; returns a summary dict.

    Keys already done in ``run`` are skipped (a finished run makes zero
    requests). For each success, ``on_result(completion)`` gives the dict to
    append under ``request.key`` (default: text, finish_reason, usage, model);
    returning None stores nothing, raising records the item as failed. Failures
    go to the run's failures.jsonl and are retried on the next resume. Usage and
    cost accumulate in the run's metrics.json under ``"llm"``.
    """
    options = coerce_options(options)
    reqs = _as_requests(requests)
    check_unique_keys(reqs)
    pending = [r for r in reqs if run is None or not run.is_done(r.key)]
    skipped = len(reqs) - len(pending)
    callback_failed = {"n": 0}

    def on_completion(c: Completion) -> None:
        if c.ok:
            try:
                record = on_result(c) if on_result is not None else c.to_dict()
            except Exception as exc:  # noqa: BLE001 - the caller's post-processing failed on this item
                callback_failed["n"] += 1
                if run is not None:
                    run.record_failure(c.key, f"could not process the completion: {type(exc).__name__}: {exc}",
                                       text=c.text)
                return
            if record is not None and run is not None:
                run.append(record, key=c.key)
        elif run is not None:
            run.record_failure(c.key, c.error or "unknown error", attempts=c.attempts)

    old_fsync = getattr(run, "fsync_every", None)
    if run is not None and old_fsync is not None:
        run.fsync_every = max(old_fsync, 64)  # each line is still flushed at once; fsync in groups
    try:
        stats = run_sync(execute(pending, options, backend=backend, on_completion=on_completion,
                                 progress=progress, description=description)) if pending else None
    finally:
        if run is not None and old_fsync is not None:
            run.fsync_every = old_fsync
    if stats is None:
        b = backend or get_backend(options)
        stats = EngineStats(backend=b.name, model=options.model or b.default_model, dry_run=options.dry_run)
    summary = stats.as_dict()
    summary["requests"] = len(reqs)
    summary["already_done"] = skipped
    summary["pending"] = len(pending)
    if callback_failed["n"]:
        summary["failed"] += callback_failed["n"]
        summary["completed"] -= callback_failed["n"]
        summary["errors"]["could not process the completion"] = callback_failed["n"]
    if run is not None and not options.dry_run:
        _write_run_metrics(run, summary)
    if not quiet:
        print_summary(summary, run=run)
    return summary


def _write_run_metrics(run, summary: dict[str, Any]) -> None:
    prev = (run.metrics() or {}).get("llm") or {}
    add = ("sent", "retries", "prompt_tokens", "completion_tokens", "cached")
    from ..usage import merge_usage

    llm = merge_usage({k: prev[k] for k in (*add, "cost_usd") if k in prev}, summary, counts=add)
    llm.update({"backend": summary.get("backend") or prev.get("backend"),
                "model": summary.get("model") or prev.get("model"),
                "results": len(run.done_keys()), "failed_unresolved": len(run.failures()),
                "sessions": int(prev.get("sessions") or 0) + (1 if summary.get("pending") else 0),
                "last": {k: summary.get(k) for k in ("requests", "already_done", "pending", "completed", "failed",
                                                     "cached", "sent", "retries", "stopped", "elapsed_s",
                                                     "throughput_rps", "cost_usd")}})
    run.write_metrics({"llm": llm})


def _fmt_n(n: int | float | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{int(n)}"


def format_summary(summary: dict[str, Any]) -> str:
    if summary.get("dry_run"):
        cost = summary.get("estimated_cost_usd")
        cost_s = f"${cost:.4f}" if cost is not None else "unknown (no price for this model)"
        return (f"dry run: {summary.get('not_sent', 0)} requests would be sent "
                f"({summary.get('already_done', 0)} already done, {summary.get('cached', 0)} cached) · "
                f"≈{_fmt_n(summary.get('prompt_tokens'))} prompt + ≤{_fmt_n(summary.get('completion_tokens'))} "
                f"completion tokens · estimated cost ≤ {cost_s}")
    if summary.get("requests") and not summary.get("pending") and summary.get("already_done"):
        return f"nothing to do: all {summary['already_done']} requests are already done in this run (0 sent)"
    cost = summary.get("cost_usd")
    cost_s = f"${cost:.4f}" if cost is not None else "unknown (no price for this model)"
    parts = [f"{summary.get('completed', 0)} done", f"{summary.get('failed', 0)} failed"]
    if summary.get("already_done"):
        parts.append(f"{summary['already_done']} already done")
    if summary.get("cached"):
        parts.append(f"{summary['cached']} cached")
    parts.append(f"{summary.get('sent', 0)} calls ({summary.get('retries', 0)} retries)")
    parts.append(f"{_fmt_n(summary.get('prompt_tokens'))} prompt + {_fmt_n(summary.get('completion_tokens'))} "
                 "completion tokens")
    parts.append(f"cost {cost_s}")
    if summary.get("elapsed_s"):
        parts.append(f"{summary.get('throughput_rps', 0):.1f} req/s in {summary['elapsed_s']:.1f}s")
    line = f"{summary.get('backend')}/{summary.get('model') or 'default'}: " + " · ".join(parts)
    if summary.get("stopped") == "max_cost":
        line += f"\nstopped: the --max-cost budget was reached ({summary.get('not_sent', 0)} requests not sent; re-run with a larger budget to continue)"
    return line


def print_summary(summary: dict[str, Any], run=None) -> None:
    from ..console import info, warn

    info(format_summary(summary))
    if summary.get("failed") and not summary.get("dry_run"):
        where = f" in {run.failures_path}" if run is not None else ""
        top = ", ".join(f"{k} ×{v}" for k, v in sorted((summary.get("errors") or {}).items(), key=lambda kv: -kv[1])[:3])
        warn(f"{summary['failed']} requests failed ({top}); they are recorded{where} and retried when you re-run "
             "the same command")
