"""The ``openai`` backend: the official OpenAI SDK, also for any OpenAI-compatible server.

``--base-url`` points it at ``vllm serve`` (the way to scale local generation to
many GPUs), llama.cpp's server, Ollama, LM Studio ... A key is needed for the
OpenAI API (``OPENAI_API_KEY``); for a custom ``--base-url`` it is optional.
The SDK's own retries are off: the engine retries (with Retry-After) itself.
"""

from __future__ import annotations

from typing import Any

from .base import Backend
from .types import BackendError, ChatRequest, Completion, parse_retry_after, retryable_status

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls",
          "function_call": "tool_calls"}


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


class OpenAIBackend(Backend):
    """OpenAI chat completions (and any OpenAI-compatible server via --base-url)."""

    name = "openai"
    description = "OpenAI API, or any OpenAI-compatible server with --base-url"
    default_model = "gpt-4o-mini"

    def __init__(self, options=None):
        super().__init__(options)
        self._client = None
        self._key: str | None = None

    def cache_namespace(self) -> dict[str, Any]:
        return {"base_url": (self.options.base_url or "").rstrip("/")}

    def check_ready(self) -> None:
        from .keys import get_key

        try:
            import openai  # noqa: F401
        except ImportError:  # pragma: no cover - a dependency
            from ..errors import PrefkitError

            raise PrefkitError("the openai backend needs the openai package: pip install openai") from None
        # a custom server (vllm serve, llama.cpp ...) usually needs no key
        self._key = get_key("openai", required=not self.options.base_url) or "not-needed"

    def client(self):
        if self._client is None:
            import openai

            if self._key is None:
                self.check_ready()
            o = self.options
            self._client = openai.AsyncOpenAI(api_key=self._key, base_url=o.base_url or None, max_retries=0,
                                              timeout=o.timeout)
        return self._client

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
        extra = dict(p["extra"])
        # options the SDK does not know go in the JSON body as they are (vLLM's top_k, min_p, ...)
        known = {"top_p", "n", "presence_penalty", "frequency_penalty", "logit_bias", "response_format",
                 "user", "logprobs", "top_logprobs", "max_completion_tokens", "reasoning_effort",
                 "service_tier", "tools", "tool_choice", "metadata"}
        body = {k: extra.pop(k) for k in list(extra) if k not in known}
        if "max_completion_tokens" in extra:
            kw.pop("max_tokens", None)
        kw.update(extra)
        if body:
            kw["extra_body"] = body
        return kw

    async def agenerate_one(self, request: ChatRequest) -> Completion:
        client = self.client()
        try:
            resp = await client.chat.completions.create(**self.request_kwargs(request))
        except Exception as exc:  # noqa: BLE001 - mapped to retryable / not
            raise sdk_error(exc, "openai") from None
        if not getattr(resp, "choices", None):
            raise BackendError("openai: the response has no choices", retryable=True)
        choice = resp.choices[0]
        text = choice.message.content if choice.message is not None else None
        usage = getattr(resp, "usage", None)
        finish = FINISH.get(choice.finish_reason or "", choice.finish_reason)
        if text is None:
            refusal = getattr(choice.message, "refusal", None)
            return Completion(key=request.key, text=None, finish_reason=finish, model=resp.model,
                              error=f"openai: no text in the answer (finish_reason={finish}"
                                    + (f", refusal: {refusal}" if refusal else "") + ")")
        return Completion(key=request.key, text=text, finish_reason=finish,
                          usage={"prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                                 "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0)},
                          model=getattr(resp, "model", None) or self.model_for(request))

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            finally:
                self._client = None
