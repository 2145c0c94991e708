"""The ``cohere`` backend: the official Cohere SDK, v2 chat API (``AsyncClientV2.chat``).

The key comes from ``CO_API_KEY`` (or ``COHERE_API_KEY``). The SDK's own retries
are off: the engine retries.
"""

from __future__ import annotations

from typing import Any

from .base import ApiBackend
from .types import BackendError, ChatRequest, Completion, parse_retry_after, retryable_status

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
          "ERROR": "error", "TIMEOUT": "length"}
KNOWN = {"p", "k", "frequency_penalty", "presence_penalty", "response_format", "safety_mode", "documents",
         "tools", "tool_choice", "citation_options", "logprobs", "thinking", "priority", "strict_tools"}
ALIASES = {"top_p": "p", "top_k": "k"}


def cohere_error(exc: BaseException) -> BackendError:
    status = getattr(exc, "status_code", None)
    if status is not None:
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, dict) else (str(body) if body else str(exc))
        return BackendError(f"cohere {type(exc).__name__}: {message}", status=status,
                            retryable=retryable_status(status), retry_after=parse_retry_after(getattr(exc, "headers", None)))
    name = type(exc).__name__
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return BackendError(f"cohere request timed out ({name})", retryable=True)
        if isinstance(exc, httpx.TransportError):
            return BackendError(f"cohere connection error: {name}: {exc}", retryable=True)
    except ImportError:  # pragma: no cover
        pass
    return BackendError(f"cohere {name}: {exc}", retryable=False)


class CohereBackend(ApiBackend):
    """Cohere chat API (v2)."""

    name = "cohere"
    description = "Cohere chat API (v2)"
    default_model = "command-r-plus"
    api_key_name = "cohere"
    base_url_env = "CO_API_URL"

    def make_client(self):
        import cohere

        kw: dict[str, Any] = {"api_key": self._key, "timeout": self.options.timeout, "max_retries": 0}
        if self.base_url:
            kw["base_url"] = self.base_url
        return cohere.AsyncClientV2(**kw)

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        p = self.params_for(request)
        kw: dict[str, Any] = {"model": self.model_for(request),
                              "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
                              "max_tokens": int(p["max_tokens"])}
        if p["temperature"] is not None:
            kw["temperature"] = float(p["temperature"])
        if p["stop"]:
            kw["stop_sequences"] = list(p["stop"])
        if p["seed"] is not None:
            kw["seed"] = int(p["seed"])
        extra = {ALIASES.get(k, k): v for k, v in p["extra"].items()}
        unknown = sorted(set(extra) - KNOWN)
        if unknown:
            from ..errors import UsageError

            raise UsageError(f"the cohere backend does not know the option(s) {', '.join(unknown)}")
        kw.update(extra)
        return kw

    async def agenerate_one(self, request: ChatRequest) -> Completion:
        client = self.client()
        try:
            resp = await client.chat(**self.request_kwargs(request))
        except Exception as exc:  # noqa: BLE001
            raise cohere_error(exc) from None
        message = getattr(resp, "message", None)
        parts = getattr(message, "content", None) or []
        texts = [getattr(c, "text", "") for c in parts if getattr(c, "type", "text") == "text"]
        finish_raw = str(getattr(resp, "finish_reason", "") or "")
        finish = FINISH.get(finish_raw, finish_raw.lower() or None)
        if not texts:
            raise BackendError(f"cohere: no text in the answer (finish_reason={finish_raw})", retryable=False)
        usage = getattr(resp, "usage", None)
        tokens = getattr(usage, "tokens", None) or getattr(usage, "billed_units", None)
        return Completion(key=request.key, text="".join(texts), finish_reason=finish,
                          usage={"prompt_tokens": int(getattr(tokens, "input_tokens", 0) or 0),
                                 "completion_tokens": int(getattr(tokens, "output_tokens", 0) or 0)},
                          model=self.model_for(request))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        wrapper = getattr(client, "_client_wrapper", None)
        httpx_client = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
        if httpx_client is not None:
            try:
                await httpx_client.aclose()
            except Exception:
                pass
