"""The ``openai`` backend: the official OpenAI SDK, also for any OpenAI-compatible server.

``--base-url`` points it at ``vllm serve`` (the way to scale local generation to
many GPUs), llama.cpp's server, Ollama, LM Studio ... A key is needed for the
OpenAI API (``OPENAI_API_KEY``); for a custom ``--base-url`` it is optional.
The SDK's own retries are off: the engine retries (with Retry-After) itself.
"""

from __future__ import annotations

from typing import Any

from .base import ApiBackend, add_extra
from .types import BackendError, ChatRequest, Completion, parse_retry_after, retryable_status

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls",
          "function_call": "tool_calls"}


_SSL_CONTEXT = None


def _ssl_context(base_url: str | None):
    """One TLS context for every client (building one loads the CA bundle: ~60 ms of CPU each)."""
    global _SSL_CONTEXT
    if base_url and base_url.startswith("http://"):
        return False  # plain HTTP (a local server): no TLS at all
    if _SSL_CONTEXT is None:
        import ssl

        try:
            import certifi

            _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
        except ImportError:  # pragma: no cover
            _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _raw_response_type():
    """The HTTP response class the installed SDK uses (httpx2 in recent SDKs, httpx before)."""
    import openai._base_client as base

    return base.httpx.Response if hasattr(base, "httpx") else base.httpx2.Response


def sdk_error(exc: BaseException, provider: str) -> BackendError:
    """Map an openai/anthropic-style SDK exception to a BackendError (both SDKs share the shape)."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    name = type(exc).__name__
    if status is not None:
        message = _provider_message(exc) or str(exc)
        return BackendError(f"{provider} {name}: {message}", status=status, retryable=retryable_status(status),
                            retry_after=parse_retry_after(headers))
    if "Timeout" in name:
        return BackendError(f"{provider} request timed out ({name})", retryable=True)
    if "Connection" in name:
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}: {cause}" if cause else ""
        return BackendError(f"{provider} connection error{detail}", retryable=True)
    return BackendError(f"{provider} {name}: {exc}", retryable=False)


def _provider_message(exc: BaseException) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if body.get("message"):
            return str(body["message"])
    return None


class OpenAIBackend(ApiBackend):
    """OpenAI chat completions (and any OpenAI-compatible server via --base-url)."""

    name = "openai"
    description = "OpenAI API, or any OpenAI-compatible server with --base-url"
    default_model = "gpt-4o-mini"
    api_key_name = "openai"
    base_url_env = "OPENAI_BASE_URL"
    native_n = True

    # httpx's connection pool scans every connection on each request, so one pool serving many
    # concurrent requests costs CPU per request that grows with the pool: share the load over
    # several clients of at most this many connections each.
    connections_per_client = 8

    def __init__(self, options=None):
        super().__init__(options)
        self._clients: list = []
        self._next = 0

    def check_ready(self) -> None:
        from .keys import get_key

        try:
            import openai  # noqa: F401
        except ImportError:  # pragma: no cover - a dependency
            from ..errors import PrefkitError

            raise PrefkitError("the openai backend needs the openai package: pip install openai") from None
        # a custom server (vllm serve, llama.cpp ...) usually needs no key
        self._key = get_key(self.api_key_name, required=not self.base_url) or "not-needed"

    def client(self):
        if not self._clients:
            import openai

            if self._key is None:
                self.check_ready()
            o = self.options
            n = max(1, -(-int(o.concurrency) // self.connections_per_client))
            verify = _ssl_context(self.base_url)
            self._clients = [
                openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url or None, max_retries=0, timeout=o.timeout,
                                   http_client=openai.DefaultAsyncHttpxClient(verify=verify, timeout=o.timeout))
                for _ in range(n)]
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        p = self.params_for(request)
        kw: dict[str, Any] = {"model": self.model_for(request), "messages": request.messages}
        if p["max_tokens"]:
            kw["max_tokens"] = int(p["max_tokens"])
        if p["temperature"] is not None:
            kw["temperature"] = float(p["temperature"])
        if p["stop"]:
            kw["stop"] = list(p["stop"])
        if p["seed"] is not None:
            kw["seed"] = int(p["seed"])
        if request.n > 1:
            kw["n"] = int(request.n)
        extra = dict(p["extra"])
        # options the SDK does not know go in the JSON body as they are (vLLM's top_k, min_p, ...)
        known = {"top_p", "n", "presence_penalty", "frequency_penalty", "logit_bias", "response_format",
                 "user", "logprobs", "top_logprobs", "max_completion_tokens", "reasoning_effort",
                 "service_tier", "tools", "tool_choice", "metadata"}
        if "max_completion_tokens" in extra:
            kw.pop("max_tokens", None)
        return add_extra(kw, extra, known)

    async def agenerate_one(self, request: ChatRequest) -> Completion:
        client = self.client()
        kw = self.request_kwargs(request)
        body = {**{k: v for k, v in kw.items() if k != "extra_body"}, **kw.get("extra_body", {})}
        try:
            # The SDK's documented raw call (``client.post``) with its auth, headers and error types, but
            # without its per-request type transformation and response model building, which cost more
            # CPU than everything else together when thousands of requests are in flight.
            raw = await client.post("/chat/completions", body=body, cast_to=_raw_response_type())
            data = raw.json()
        except Exception as exc:  # noqa: BLE001 - mapped to retryable / not
            raise sdk_error(exc, "openai") from None
        return self.parse(request, data)

    def parse(self, request: ChatRequest, data: dict[str, Any]) -> Completion:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            message = (data.get("error") or {}).get("message") if isinstance(data, dict) and isinstance(data.get("error"), dict) else None
            raise BackendError(f"openai: the response has no choices{': ' + message if message else ''}", retryable=True)
        choices = sorted(choices, key=lambda c: int(c.get("index") or 0))
        usage = data.get("usage") or {}
        model = data.get("model") or self.model_for(request)
        texts, finish = [], None
        for choice in choices[:max(1, request.n)]:
            msg = choice.get("message") or {}
            text = msg.get("content")
            if isinstance(text, list):  # content parts
                text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
            finish = finish or FINISH.get(choice.get("finish_reason") or "", choice.get("finish_reason"))
            if text is None or (request.n > 1 and not str(text).strip()):
                refusal = msg.get("refusal")
                return Completion(key=request.key, text=None, finish_reason=finish, model=model,
                                  error=f"openai: no text in the answer (finish_reason={finish}"
                                        + (f", refusal: {refusal}" if refusal else "") + ")")
            texts.append(text)
        if len(texts) < request.n:
            raise BackendError(f"openai: asked for {request.n} candidates, got {len(texts)}", retryable=True)
        return Completion(key=request.key, text=texts[0], finish_reason=finish,
                          usage={"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                                 "completion_tokens": int(usage.get("completion_tokens") or 0)},
                          model=model, candidates=texts if request.n > 1 else None)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for c in clients:
            try:
                await c.close()
            except Exception:
                pass
