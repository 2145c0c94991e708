"""The ``anthropic`` backend: the official Anthropic SDK (Messages API).

System messages become the ``system`` parameter; ``--seed`` is not supported by
the API and is ignored. The SDK's own retries are off: the engine retries.
"""

from __future__ import annotations

from typing import Any

from .base import ApiBackend, add_extra
from .openai import sdk_error
from .types import BackendError, ChatRequest, Completion

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter",
          "tool_use": "tool_calls", "pause_turn": "length"}
_PARAMS: set[str] | None = None


def _create_params() -> set[str]:
    """The keyword arguments ``messages.create`` of the installed SDK accepts."""
    global _PARAMS
    if _PARAMS is None:
        import inspect

        from anthropic.resources.messages import AsyncMessages

        _PARAMS = {n for n in inspect.signature(AsyncMessages.create).parameters if n != "self"}
    return _PARAMS


class AnthropicBackend(ApiBackend):
    """Anthropic Messages API."""

    name = "anthropic"
    description = "Anthropic Messages API"
    default_model = "claude-3-5-haiku-latest"
    api_key_name = "anthropic"
    base_url_env = "ANTHROPIC_BASE_URL"

    def make_client(self):
        import anthropic

        return anthropic.AsyncAnthropic(api_key=self._key, base_url=self.base_url or None,
                                        max_retries=0, timeout=self.options.timeout)

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        p = self.params_for(request)
        system = "\n\n".join(str(m["content"]) for m in request.messages if m["role"] == "system")
        messages = [{"role": m["role"], "content": m["content"]} for m in request.messages if m["role"] != "system"]
        kw: dict[str, Any] = {"model": self.model_for(request), "messages": messages,
                              "max_tokens": int(p["max_tokens"])}
        if system:
            kw["system"] = system
        if p["stop"]:
            kw["stop_sequences"] = list(p["stop"])
        extra = dict(p["extra"])
        if p["temperature"] is not None:
            extra.setdefault("temperature", float(p["temperature"]))
        # what this SDK version does not take as an argument goes into the JSON body as it is
        # (recent SDKs dropped temperature/top_p/top_k arguments; the API still reads them)
        return add_extra(kw, extra, _create_params())

    async def agenerate_one(self, request: ChatRequest) -> Completion:
        client = self.client()
        try:
            resp = await client.messages.create(**self.request_kwargs(request))
        except Exception as exc:  # noqa: BLE001
            raise sdk_error(exc, "anthropic") from None
        blocks = getattr(resp, "content", None) or []
        texts = [b.text for b in blocks if getattr(b, "type", None) == "text"]
        finish = FINISH.get(resp.stop_reason or "", resp.stop_reason)
        if not texts:
            raise BackendError(f"anthropic: no text in the answer (stop_reason={resp.stop_reason})", retryable=False)
        usage = getattr(resp, "usage", None)
        return Completion(key=request.key, text="".join(texts), finish_reason=finish,
                          usage={"prompt_tokens": int(getattr(usage, "input_tokens", 0) or 0),
                                 "completion_tokens": int(getattr(usage, "output_tokens", 0) or 0)},
                          model=getattr(resp, "model", None) or self.model_for(request))

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            finally:
                self._client = None
