"""The ``hf`` backend: local Hugging Face transformers models.

The engine hands it batches of ``--batch-size`` requests, planned here: grouped
by generation settings and sorted by prompt length (longest first, so an
out-of-memory error shows at once and padding stays small). Each batch is
rendered with the tokenizer's chat template, left-padded, and generated in one
``model.generate`` call in a worker thread (the event loop and progress bar keep
running). Greedy at temperature 0, sampled otherwise (``--seed`` seeds it). Stop
sequences are real: generation halts on them (``stop_strings``) and the text is
cut before them. Weights load with ``--dtype`` (auto = float32 on CPU, the
checkpoint's dtype on GPU), ``--device-map``, optional 4/8-bit via
bitsandbytes (CUDA only), and ``trust_remote_code`` only when asked.

For many GPUs or high throughput, serve the model with ``vllm serve MODEL`` and
use ``--backend openai --base-url http://localhost:8000/v1`` instead.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..errors import PrefkitError, UsageError
from .base import Backend
from .models import DEFAULT_MODEL
from .types import ChatRequest, Completion

_LOADED: dict[tuple, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()
_warned: set[str] = set()

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        from ..console import warn

        warn(message)


def clear_loaded_models() -> None:
    """Forget loaded models (frees their memory)."""
    with _LOAD_LOCK:
        _LOADED.clear()


class HFBackend(Backend):
    """Local transformers models: batched, left-padded generation with chat templates."""

    name = "hf"
    description = "Local Hugging Face transformers model"
    default_model = DEFAULT_MODEL
    local = True
    default_max_tokens = 256

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.options.model or self.default_model,
                "dtype": self.options.dtype, "batch_size": self.options.batch_size}

    def check_ready(self) -> None:
        o = self.options
        if o.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)} (got {o.dtype!r})")
        if o.load_in_4bit and o.load_in_8bit:
            raise UsageError("choose one of --load-in-4bit and --load-in-8bit")
        if o.load_in_4bit or o.load_in_8bit:
            import torch

            flag = "--load-in-4bit" if o.load_in_4bit else "--load-in-8bit"
            if not torch.cuda.is_available():
                raise UsageError(f"{flag} needs a CUDA GPU (bitsandbytes quantization); this machine has none. "
                                 "Drop the flag to run in full precision on the CPU.")
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise UsageError(f"{flag} needs the bitsandbytes package: pip install bitsandbytes") from None

    # ----------------------------------------------------------------- loading
    def _load_kwargs(self) -> tuple[dict[str, Any], str]:
        import torch

        o = self.options
        cuda = torch.cuda.is_available()
        device_map = o.device_map or ("auto" if cuda else None)
        on_cpu = device_map in (None, "cpu")
        if o.dtype == "auto":
            dtype: Any = torch.float32 if on_cpu else "auto"
        else:
            dtype = getattr(torch, o.dtype)
        kw: dict[str, Any] = {"dtype": dtype, "trust_remote_code": bool(o.trust_remote_code)}
        if device_map is not None:
            kw["device_map"] = device_map
        if o.load_in_4bit or o.load_in_8bit:
            from transformers import BitsAndBytesConfig

            if o.load_in_4bit:
                kw["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4",
                    bnb_4bit_compute_dtype=torch.bfloat16 if o.dtype == "auto" else getattr(torch, o.dtype))
            else:
                kw["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        return kw, ("cpu" if on_cpu else str(device_map))

    def load(self, name: str | None = None) -> tuple[Any, Any]:
        """(model, tokenizer) for a model name/alias/path, loaded once per process."""
        from .models import resolve_model

        self.check_ready()
        path = resolve_model(name or self.options.model or self.default_model)
        kw, where = self._load_kwargs()
        key = (path, json.dumps({k: str(v) for k, v in kw.items()}, sort_keys=True))
        with _LOAD_LOCK:
            if key in _LOADED:
                return _LOADED[key]
            _LOADED.clear()  # one local model at a time
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            try:
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(self.options.trust_remote_code))
                hf_logging.disable_progress_bar()
                model = AutoModelForCausalLM.from_pretrained(path, **kw)
            except (OSError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise PrefkitError(f"cannot load model {path!r}: {first}") from None
            finally:
                hf_logging.enable_progress_bar()
            if where == "cpu" and "device_map" not in kw:
                model = model.to("cpu")
            model.eval()
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                if tokenizer.eos_token_id is None:
                    raise PrefkitError(f"the tokenizer of {path} has neither a pad nor an eos token")
                tokenizer.pad_token = tokenizer.eos_token
            _LOADED[key] = (model, tokenizer)
            return model, tokenizer

    # ----------------------------------------------------------------- planning
    def _group_key(self, request: ChatRequest) -> str:
        return json.dumps({"model": self.model_for(request), **self.params_for(request)}, sort_keys=True, default=str)

    def plan_batches(self, requests: list[ChatRequest]) -> list[list[ChatRequest]]:
        groups: dict[str, list[ChatRequest]] = {}
        for r in requests:
            groups.setdefault(self._group_key(r), []).append(r)
        batches = []
        n = self.batch_size
        for reqs in groups.values():
            reqs = sorted(reqs, key=lambda r: -r.prompt_chars)
            batches += [reqs[i:i + n] for i in range(0, len(reqs), n)]
        return batches

    # ----------------------------------------------------------------- generation
    @staticmethod
    def render(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, bool]:
        """(prompt text, whether it came from a chat template)."""
        if getattr(tokenizer, "chat_template", None):
            try:
                return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True
            except Exception as exc:  # e.g. templates without a system role
                if messages and messages[0]["role"] == "system" and len(messages) > 1:
                    merged = [{"role": messages[1]["role"],
                               "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}, *messages[2:]]
                    return tokenizer.apply_chat_template(merged, add_generation_prompt=True, tokenize=False), True
                raise PrefkitError(f"the chat template failed: {exc}") from None
        _warn_once("the tokenizer has no chat template: prompts are plain 'role: content' text")
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:", False

    async def agenerate(self, requests: list[ChatRequest]) -> list[Completion]:
        import asyncio

        return await asyncio.to_thread(self.generate_batch, requests)

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        import torch

        model_name = self.model_for(requests[0])
        model, tok = self.load(model_name)
        params = self.params_for(requests[0])
        if params["extra"].get("raw_prompt"):  # base models: the last message's text as it is, no chat template
            rendered = [(str(r.messages[-1]["content"]), False) for r in requests]
        else:
            rendered = [self.render(tok, r.messages) for r in requests]
        templated = rendered[0][1]
        enc = tok([t for t, _ in rendered], return_tensors="pt", padding=True, add_special_tokens=not templated)
        device = getattr(model, "device", None) or next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        max_new = int(params["max_tokens"])
        temperature = float(params["temperature"] or 0.0)
        stop = [s for s in params["stop"] if s]
        gen = model.generation_config.to_dict() if getattr(model, "generation_config", None) is not None else {}
        eos = gen.get("eos_token_id")
        eos_ids = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        kw: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tok.pad_token_id,
                              "eos_token_id": sorted(eos_ids) or None}
        extra = dict(params["extra"])
        extra.pop("raw_prompt", None)
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=float(extra.pop("top_p", 1.0)),
                      top_k=int(extra.pop("top_k", 0)) or None)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        for k in ("repetition_penalty", "min_new_tokens", "no_repeat_ngram_size", "min_p"):
            if k in extra:
                kw[k] = extra.pop(k)
        if stop:
            kw.update(stop_strings=stop, tokenizer=tok)
        if params["seed"] is not None:
            torch.manual_seed(int(params["seed"]))
        with torch.inference_mode():
            out = model.generate(**enc, **kw)
        prompt_len = enc["input_ids"].shape[1]
        new = out[:, prompt_len:].tolist()
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for r, row, pcount in zip(requests, new, prompt_counts):
            n = len(row)
            finish = "length"
            for i, t in enumerate(row):
                if t in eos_ids:
                    n, finish = i, "stop"
                    break
            text = tok.decode(row[:n], skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            elif finish == "length" and n < max_new:
                finish = "stop"
            results.append(Completion(key=r.key, text=text, finish_reason=finish,
                                      usage={"prompt_tokens": int(pcount), "completion_tokens": int(n)},
                                      model=str(model_name)))
        return results
