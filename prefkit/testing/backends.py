"""Test doubles for the LLM engine: a scriptable mock backend and a fake LLM API server.

* :class:`MockBackend` (backend name ``mock``): deterministic answers, scriptable
  with a function, counts calls per key. ``with MockBackend(responder=fn).installed():``
  makes ``--backend mock`` on the CLI use that instance.
* :class:`Script` and :class:`ScriptedBackend`: answers per *role* for
  multi-role plugin tests: rules matched on the request (role, model, text),
  first match wins; the backend counts calls per role and keeps each role's
  requests. A :class:`Script` is also a :class:`FakeOpenAIServer` responder.
* :class:`FakeOpenAIServer`: a real HTTP server on 127.0.0.1 (background thread)
  that speaks the OpenAI chat-completions API (and the Anthropic Messages and
  Cohere v2 chat APIs, so each official SDK can be tested over real HTTP), with
  a pluggable responder and fault injection: 429 with Retry-After, 500, dropped
  connections, slow answers, hung requests. It counts requests and successful
  answers per prompt so tests can assert that no item was answered twice.

Run it standalone (e.g. for a benchmark in another process)::

    python -m prefkit.testing.backends --latency 0.1 --port 8123
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from prefkit.backends.base import Backend
from prefkit.backends.types import BackendError, ChatRequest, Completion


# =========================================================================== mock backend
def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            return str(c or "")
    return str(messages[-1].get("content") or "") if messages else ""


def _words(text: str) -> int:
    return len(str(text).split())


class MockBackend(Backend):
    """A deterministic backend for tests.

    ``responder(request) -> str | Completion`` scripts the answers (raise
    :class:`prefkit.backends.BackendError` to simulate provider errors, e.g.
    ``BackendError("busy", status=429, retryable=True)``); the default answers
    ``"mock answer: <last user message>"``. ``calls`` counts provider calls per
    key, ``requests`` lists every request received, ``peak_in_flight`` the most
    calls answered at once (give a ``latency`` to make calls overlap).
    """

    name = "mock"
    description = "Deterministic offline backend for tests"
    default_model = "mock"
    default_max_tokens = 256
    _active: "MockBackend | None" = None

    def __init__(self, options=None, responder: Callable[[ChatRequest], Any] | None = None, *,
                 latency: float = 0.0, cacheable: bool = False, local: bool = False):
        super().__init__(options)
        self.responder = responder
        self.latency = latency
        self.cacheable = cacheable
        self.local = local
        self.calls: collections.Counter[str] = collections.Counter()
        self.successes: collections.Counter[str] = collections.Counter()
        self.requests: list[ChatRequest] = []
        self.batches: list[list[str]] = []
        self.in_flight = 0          # calls being answered right now
        self.peak_in_flight = 0     # the most at once (to check concurrency limits)
        self._lock = threading.Lock()

    @property
    def call_count(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.successes.clear()
        self.requests.clear()
        self.batches.clear()

    @contextlib.contextmanager
    def installed(self) -> Iterator["MockBackend"]:
        """Make ``--backend mock`` (and ``get_backend("mock")``) use this instance."""
        prev = MockBackend._active
        MockBackend._active = self
        try:
            yield self
        finally:
            MockBackend._active = prev

    async def agenerate(self, requests: list[ChatRequest]) -> list[Completion]:
        with self._lock:
            self.batches.append([r.key for r in requests])
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return [self._answer(r) for r in requests]
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, request: ChatRequest) -> Completion:
        with self._lock:
            self.calls[request.key] += 1
            self.requests.append(request)
        result = self.responder(request) if self.responder is not None else f"mock answer: {_last_user(request.messages)}"
        if isinstance(result, Completion):
            c = result
            c.key = request.key
        else:
            text = str(result)
            params = self.params_for(request)
            finish = "stop"
            for s in params["stop"]:
                if s and s in text:
                    text, finish = text[:text.index(s)], "stop"
            words = text.split(" ")
            if params["max_tokens"] and len(words) > params["max_tokens"]:
                text, finish = " ".join(words[: params["max_tokens"]]), "length"
            c = Completion(key=request.key, text=text, finish_reason=finish,
                           usage={"prompt_tokens": sum(_words(m.get("content", "")) for m in request.messages),
                                  "completion_tokens": _words(text)},
                           model=self.model_for(request))
        if c.ok:
            with self._lock:
                self.successes[request.key] += 1
        return c


def mock_factory(options=None) -> MockBackend:
    """What ``--backend mock`` builds: the installed instance, else a fresh default mock."""
    if MockBackend._active is not None:
        return MockBackend._active
    return MockBackend(options)


# =========================================================================== per-role script
def _request_view(request: Any) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """(role, model, messages) of a ChatRequest or a FakeRequest."""
    meta = getattr(request, "meta", None) or {}
    role = meta.get("role") if isinstance(meta, dict) else None
    return role, getattr(request, "model", None), list(getattr(request, "messages", None) or [])


@dataclass
class _Rule:
    reply: Any
    role: str | None = None
    model: str | None = None
    contains: str | None = None
    match: Callable[[Any], bool] | None = None
    served: int = 0

    def matches(self, request: Any, role: str | None, model: str | None, text: str) -> bool:
        if self.role is not None and role != self.role and not (role or "").startswith(self.role + "."):
            return False
        if self.model is not None and model != self.model:
            return False
        if self.contains is not None and self.contains not in text:
            return False
        return self.match is None or bool(self.match(request))


class Script:
    """Scripted answers for a multi-role test, matched on the request; the first matching rule answers.

    ``Script({"user": "Tell me more.", "judge": "[RESULT] A"})`` answers by role
    (``request.meta["role"]``, set by :func:`prefkit.run_dialogues`; a rule for
    ``responder`` also answers ``responder.0``, ``responder.1``). More rules with
    :meth:`on`: ``script.on(role="judge", contains="Response A", reply="A")``,
    ``script.on(model="gpt-4o", reply=fn)``. A reply is a string, a function
    ``request -> str`` (or :class:`prefkit.Completion` / :class:`FakeReply`), a list
    of replies served in turn (the last one repeats), or an exception instance to
    raise (e.g. ``BackendError("busy", status=429, retryable=True)``). With no
    matching rule, ``default`` answers (a string or function), else it is an error.
    """

    def __init__(self, rules: dict[str, Any] | None = None, *, default: Any = None):
        self.rules: list[_Rule] = []
        self.default = default
        for role, reply in (rules or {}).items():
            self.on(role=role, reply=reply)

    def on(self, role: str | None = None, *, reply: Any, model: str | None = None, contains: str | None = None,
           match: Callable[[Any], bool] | None = None) -> "Script":
        """Add a rule (checked after the earlier ones). Returns the script, for chaining."""
        self.rules.append(_Rule(reply, role, model, contains, match))
        return self

    def __call__(self, request: Any) -> Any:
        role, model, messages = _request_view(request)
        text = "\n".join(str(m.get("content") or "") for m in messages)
        for rule in self.rules:
            if rule.matches(request, role, model, text):
                reply = rule.reply
                if isinstance(reply, (list, tuple)):
                    reply = reply[min(rule.served, len(reply) - 1)]
                rule.served += 1
                return self._resolve(reply, request)
        if self.default is not None:
            return self._resolve(self.default, request)
        raise BackendError(f"Script: no rule answers role={role!r} model={model!r} (last message: "
                           f"{_last_user(messages)[:80]!r})", retryable=False)

    @staticmethod
    def _resolve(reply: Any, request: Any) -> Any:
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(request)
        return reply


class ScriptedBackend(MockBackend):
    """A mock backend answering per role from a :class:`Script` (or a dict of role -> reply).

    ``calls_by_role`` counts calls per role; ``requests_for(role)`` lists the
    requests a role received (e.g. to assert which model each role used). Use it
    like :class:`MockBackend`: ``with ScriptedBackend({...}).installed():`` makes
    ``mock:`` role specs (``--judge-model mock:judge-model``) and ``--backend mock``
    use it, or pass it to ``run_dialogues(..., backends={"mock": backend})``.
    """

    def __init__(self, script: Script | dict[str, Any] | None = None, options=None, *, default: Any = None,
                 latency: float = 0.0, cacheable: bool = False, local: bool = False):
        self.script = script if isinstance(script, Script) else Script(script, default=default)
        super().__init__(options, responder=self.script, latency=latency, cacheable=cacheable, local=local)
        self.calls_by_role: collections.Counter[str] = collections.Counter()

    def _answer(self, request: ChatRequest) -> Completion:
        role = str((request.meta or {}).get("role") or "")
        with self._lock:
            self.calls_by_role[role] += 1
        return super()._answer(request)

    def requests_for(self, role: str) -> list[ChatRequest]:
        return [r for r in self.requests if (r.meta or {}).get("role") == role]

    def reset(self) -> None:
        super().reset()
        self.calls_by_role.clear()


# =========================================================================== fake server
@dataclass
class FakeRequest:
    """What a responder sees: the protocol, the parsed JSON body and its chat messages."""

    protocol: str               # "openai" | "anthropic" | "cohere"
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    messages: list[dict[str, Any]]
    model: str | None
    key: str                    # what requests are counted by (default: the last user message)
    attempt: int = 1            # how many times this key has been seen (1 = first)
    candidate: int = 0          # which of the ``n`` candidates is being answered (OpenAI ``n``)

    @property
    def prompt(self) -> str:
        return _last_user(self.messages)


@dataclass
class FakeReply:
    """A full reply: ``FakeReply(401, {"error": {"message": "bad key"}})``; text for a normal answer."""

    status: int = 200
    body: dict[str, Any] | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


FAULTS = ("429", "500", "drop", "slow", "hang")


class FakeOpenAIServer:
    """A local OpenAI-compatible (also Anthropic/Cohere-compatible) HTTP server for tests.

    ``responder(FakeRequest) -> str | FakeReply`` (default: ``"echo: <prompt>"``).
    ``latency`` (s) delays every answer. ``faults`` maps a fault to its
    probability per request: ``"429"`` (with ``Retry-After: retry_after``), ``"500"``,
    ``"drop"`` (close the connection without answering), ``"slow"`` (answer after
    ``slow_s``), ``"hang"`` (never answer: the client must time out). At most
    ``max_faults_per_key`` faults hit one prompt, so every item can complete.
    ``queue_faults("429", "drop", ...)`` forces faults on the next requests.
    """

    def __init__(self, responder: Callable[[FakeRequest], Any] | None = None, *, latency: float = 0.0,
                 faults: dict[str, float] | None = None, retry_after: float = 0.05, slow_s: float = 0.3,
                 hang_s: float = 30.0, max_faults_per_key: int = 3, seed: int = 0, host: str = "127.0.0.1",
                 port: int = 0, key_fn: Callable[[FakeRequest], str] | None = None):
        self.responder = responder
        self.latency = latency
        self.faults = dict(faults or {})
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.hang_s = hang_s
        self.max_faults_per_key = max_faults_per_key
        self.host = host
        self.port = port
        self.key_fn = key_fn
        self._rng = random.Random(seed)
        self._queued: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self.reset_stats()

    # ------------------------------------------------------------------ stats
    def reset_stats(self) -> None:
        with self._lock:
            self.request_count = 0                 # every HTTP request received
            self.seen: collections.Counter[str] = collections.Counter()        # requests per key
            self.success_counts: collections.Counter[str] = collections.Counter()  # 200 answers per key
            self.fault_counts: collections.Counter[str] = collections.Counter()    # faults per kind
            self.faults_per_key: collections.Counter[str] = collections.Counter()
            self.bodies: list[dict[str, Any]] = []
            self.headers_seen: list[dict[str, str]] = []
            self.in_flight = 0
            self.max_in_flight = 0

    @property
    def success_count(self) -> int:
        return sum(self.success_counts.values())

    def duplicates(self) -> dict[str, int]:
        """Keys answered successfully more than once (should be empty)."""
        return {k: n for k, n in self.success_counts.items() if n > 1}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.request_count, "successes": self.success_count,
                    "distinct_keys": len(self.success_counts), "duplicates": len(self.duplicates()),
                    "faults": dict(self.fault_counts), "max_in_flight": self.max_in_flight}

    def queue_faults(self, *faults: str) -> None:
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._queued.extend(faults)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL for the OpenAI SDK (``.../v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "FakeOpenAIServer":
        ready = threading.Event()
        error: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, backlog=1024))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001
                error.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._server.close()
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=main, name="fake-openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    method, target, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    break
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length") or 0)
                body = await reader.readexactly(n) if n else b""
                keep = await self._dispatch(method, target.split("?")[0], headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error"}.get(status, "Status")
        head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(data)}",
                "connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    def _protocol(self, path: str) -> str | None:
        if path.endswith("/chat/completions"):
            return "openai"
        if path.endswith("/messages"):
            return "anthropic"
        if path.endswith("/v2/chat") or path.endswith("/chat"):
            return "cohere"
        return None

    def _pick_fault(self, key: str) -> str | None:
        with self._lock:
            if self._queued:
                return self._queued.popleft()
            if not self.faults or self.faults_per_key[key] >= self.max_faults_per_key:
                return None
            x = self._rng.random()
            acc = 0.0
            for name in FAULTS:
                acc += self.faults.get(name, 0.0)
                if x < acc:
                    return name
        return None

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        if method == "GET" and path.endswith("/_stats"):
            await self._send(writer, 200, self.stats())
            return True
        if method == "GET" and path.endswith("/models"):
            await self._send(writer, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            return True
        protocol = self._protocol(path)
        if method != "POST" or protocol is None:
            await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            await self._send(writer, 400, {"error": {"message": "body is not JSON"}})
            return True
        messages = list(body.get("messages") or [])
        if protocol == "anthropic" and body.get("system"):
            messages = [{"role": "system", "content": body["system"]}, *messages]
        req = FakeRequest(protocol=protocol, path=path, body=body, headers=headers, messages=messages,
                          model=body.get("model"), key="")
        req.key = self.key_fn(req) if self.key_fn else req.prompt
        with self._lock:
            self.request_count += 1
            self.seen[req.key] += 1
            req.attempt = self.seen[req.key]
            self.bodies.append(body)
            self.headers_seen.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self._pick_fault(req.key)
            if fault is not None:
                with self._lock:
                    self.fault_counts[fault] += 1
                    self.faults_per_key[req.key] += 1
                if fault == "429":
                    await self._send(writer, 429, self._error(protocol, "rate limited (injected)", "rate_limit_error"),
                                     {"retry-after": f"{self.retry_after:g}"})
                    return True
                if fault == "500":
                    await self._send(writer, 500, self._error(protocol, "internal error (injected)", "api_error"))
                    return True
                if fault == "drop":
                    writer.transport.abort()
                    return False
                if fault == "hang":
                    await asyncio.sleep(self.hang_s)
                    writer.transport.abort()
                    return False
                if fault == "slow":
                    await asyncio.sleep(self.slow_s)
            if self.latency:
                await asyncio.sleep(self.latency)
            n = max(1, int(body.get("n") or 1)) if protocol == "openai" else 1
            replies = []
            for k in range(n):
                req.candidate = k
                reply = self.responder(req) if self.responder is not None else f"echo: {req.prompt}"
                if not isinstance(reply, FakeReply):
                    reply = FakeReply(text=str(reply))
                if reply.status != 200:
                    payload = reply.body or self._error(protocol, reply.text or f"error {reply.status}", "error")
                    await self._send(writer, reply.status, payload, reply.headers)
                    return True
                replies.append(reply)
            reply = replies[0]
            payload = reply.body or self._answer(protocol, req, reply)
            if n > 1 and not reply.body:
                extra = [self._answer(protocol, req, r)["choices"][0] for r in replies[1:]]
                for k, ch in enumerate(extra, start=1):
                    ch["index"] = k
                payload["choices"].extend(extra)
            await self._send(writer, 200, payload, reply.headers)
            with self._lock:
                self.success_counts[req.key] += 1
            return True
        finally:
            with self._lock:
                self.in_flight -= 1

    @staticmethod
    def _error(protocol: str, message: str, kind: str) -> dict[str, Any]:
        if protocol == "anthropic":
            return {"type": "error", "error": {"type": kind, "message": message}}
        if protocol == "cohere":
            return {"message": message}
        return {"error": {"message": message, "type": kind, "code": None}}

    def _answer(self, protocol: str, req: FakeRequest, reply: FakeReply) -> dict[str, Any]:
        text = reply.text or ""
        finish = reply.finish_reason
        body = req.body
        stops = body.get("stop") or body.get("stop_sequences") or []
        if isinstance(stops, str):
            stops = [stops]
        for s in stops:
            if s and s in text:
                text, finish = text[:text.index(s)], "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        words = text.split(" ")
        if limit and len(words) > int(limit):
            text, finish = " ".join(words[: int(limit)]), "length"
        pt = sum(_words(m.get("content", "") if isinstance(m.get("content"), str) else "") for m in req.messages)
        ct = _words(text)
        model = req.model or "fake-model"
        n = next(self._ids)
        if protocol == "anthropic":
            stop_reason = {"stop": "end_turn", "length": "max_tokens"}.get(finish, finish)
            return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
                    "usage": {"input_tokens": pt, "output_tokens": ct}}
        if protocol == "cohere":
            reason = {"stop": "COMPLETE", "length": "MAX_TOKENS"}.get(finish, "COMPLETE")
            return {"id": f"c-{n}", "finish_reason": reason,
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                    "usage": {"billed_units": {"input_tokens": pt, "output_tokens": ct},
                              "tokens": {"input_tokens": pt, "output_tokens": ct}}}
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                             "logprobs": None}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


def _main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server until interrupted.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    for f in FAULTS:
        p.add_argument(f"--p-{f}", type=float, default=0.0, help=f"probability of a {f} fault")
    args = p.parse_args(argv)
    faults = {f: getattr(args, f"p_{f}") for f in FAULTS if getattr(args, f"p_{f}")}
    server = FakeOpenAIServer(latency=args.latency, faults=faults, host=args.host, port=args.port).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    _main()
