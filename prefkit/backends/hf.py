"""The ``hf`` backend: local Hugging Face transformers models.

The engine hands it batches of ``--batch-size`` requests, planned here: grouped
by generation settings and sorted by prompt length (longest first, so an
out-of-memory error shows at once and padding stays small). Each batch is
rendered with the tokenizer's chat template, left-padded, and generated in one
``model.generate`` call in a worker thread (the event loop and progress bar keep
running). Greedy at temperature 0, sampled otherwise (``--seed`` seeds it). Stop
sequences are real: generation halts on them (``stop_strings``) and the text is
cut before them. Weights load with ``--dtype`` (auto: on a CPU bfloat16 only
where the CPU has bf16 matrix instructions *and* a quick probe measures it
faster, else float32; the checkpoint's dtype on GPU), ``--device-map``,
optional 4/8-bit via bitsandbytes (CUDA only), and ``trust_remote_code`` only
when asked. On a CPU, torch gets one thread per core that is not already busy
(unless ``OMP_NUM_THREADS`` or ``PREFKIT_THREADS`` says otherwise).

Shared-prefix KV reuse: requests of one run that start with the same tokens
(an instruction and few-shot demonstrations, a judge's rubric) have that
prefix's key/value cache computed once and reused for every batch. The prefix
is the longest common token prefix of the run's requests (per group of
generation settings) when it is at least ``prefix_min_tokens`` (32) long, or
the part of the prompt up to a text the caller declares in
``request.meta["shared_prefix"]``. Each batch is laid out as
``[prefix][left padding][suffix]`` with the padding masked out and position
ids counted past it, so every request sees exactly the positions it would
alone; the cache is expanded to the batch (memory grows per batch, not per
run) and at most two prefixes are kept per process. ``extra={"prefix_cache":
False}`` (Python API) turns it off.

For many GPUs or high throughput, serve the model with ``vllm serve MODEL`` and
use ``--backend openai --base-url http://localhost:8000/v1`` instead.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from ..errors import PrefkitError, UsageError
from .base import Backend
from .models import DEFAULT_MODEL
from .types import ChatRequest, Completion

_LOADED: dict[tuple, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()
_warned: set[str] = set()

DTYPES = ("auto", "float32", "bfloat16", "float16")

PREFIX_MIN_TOKENS = 32   # an automatically found shared prefix shorter than this is not worth a cache
PREFIX_SLOTS = 2         # prefix caches kept per process (each is one sequence's keys/values)
_PREFIX_KV: "OrderedDict[tuple, list[tuple[Any, Any]] | None]" = OrderedDict()
_PREFIX_LOCK = threading.Lock()
_threads_set = False


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        from ..console import warn

        warn(message)


def clear_loaded_models() -> None:
    """Forget loaded models and their prefix caches (frees their memory)."""
    with _LOAD_LOCK:
        _LOADED.clear()
    with _PREFIX_LOCK:
        _PREFIX_KV.clear()


# --------------------------------------------------------------------------- CPU settings
def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_prefers_bf16() -> bool:
    """Whether bfloat16 matrix products beat float32 on this CPU: hardware flags first, then a quick probe.

    Without bf16 instructions (``avx512_bf16`` / ``amx_bf16``) torch emulates bf16 and is several times
    slower than float32 (measured 6x on an AVX2-only EPYC), so the answer is no without timing anything.
    With them, a ~0.1 s probe of a model-sized product decides (bf16 must be at least 1.2x faster).
    Any failure answers no (float32 is always right, only sometimes slower).
    """
    if os.environ.get("PREFKIT_CPU_BF16") in ("0", "1"):
        return os.environ["PREFKIT_CPU_BF16"] == "1"
    if not (cpu_flags() & set(BF16_FLAGS)):
        return False
    try:
        return _probe_bf16_speedup() >= 1.2
    except Exception:
        return False


def _probe_bf16_speedup() -> float:
    import time

    import torch
    import torch.nn.functional as F

    def rate(dtype) -> float:
        x = torch.randn(256, 1024, dtype=dtype)
        w = torch.randn(2048, 1024, dtype=dtype)
        F.linear(x, w)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            F.linear(x, w)
            best = min(best, time.perf_counter() - t)
        return 1.0 / best

    return rate(torch.bfloat16) / rate(torch.float32)


def cpu_threads() -> int:
    """Threads for CPU generation: PREFKIT_THREADS, else one per usable core that is not already busy.

    Threads waiting for a core that another process holds spin and stall each other (on the shared
    2-core box, 2 threads under load were ~7x slower than 1), so the cores already busy (the 1-minute
    load average) are left out; at least one thread.
    """
    env = os.environ.get("PREFKIT_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def configure_cpu_threads() -> None:
    """Set torch's thread count once per process, unless OMP_NUM_THREADS/MKL_NUM_THREADS already chose it."""
    global _threads_set
    if _threads_set:
        return
    _threads_set = True
    if os.environ.get("PREFKIT_THREADS") is None and (os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")):
        return
    import torch

    torch.set_num_threads(cpu_threads())


# --------------------------------------------------------------------------- shared prefixes
def common_prefix_length(seqs: list[list[int]]) -> int:
    """Length of the longest common prefix of token lists."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(x) for x in seqs)
    for x in seqs[1:]:
        i = 0
        while i < n and x[i] == first[i]:
            i += 1
        n = i
        if n == 0:
            break
    return n


class HFBackend(Backend):
    """Local transformers models: batched, left-padded generation with chat templates."""

    name = "hf"
    continues_prefill = True    # see render(): continue_final_message
    description = "Local Hugging Face transformers model"
    default_model = DEFAULT_MODEL
    local = True
    default_max_tokens = 256

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.options.model or self.default_model,
                "dtype": self.options.dtype, "batch_size": self.options.batch_size}

    def __init__(self, options=None):
        super().__init__(options)
        self._planned: dict[str, list[ChatRequest]] = {}   # group key -> the run's requests of that group
        self._run_prefix: dict[str, tuple[int, ...]] = {}  # group key -> the run's shared token prefix

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
            dtype: Any = (torch.bfloat16 if cpu_prefers_bf16() else torch.float32) if on_cpu else "auto"
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

            from .models import quiet_transformers

            try:
                with quiet_transformers():
                    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(self.options.trust_remote_code))
                    model = AutoModelForCausalLM.from_pretrained(path, **kw)
            except (OSError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise PrefkitError(f"cannot load model {path!r}: {first}") from None
            if where == "cpu" and "device_map" not in kw:
                model = model.to("cpu")
            if where == "cpu":
                configure_cpu_threads()
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
        self._planned = groups  # the shared prefix is looked for over all of a group's requests
        self._run_prefix = {}
        return batches

    # ----------------------------------------------------------------- generation
    @staticmethod
    def render(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, bool]:
        """(prompt text, whether it came from a chat template).

        A conversation that ends with an ``assistant`` message is an answer prefix: the model continues
        that message (``continue_final_message``) instead of starting a new one, and the completion is
        the continuation only (e.g. a judge's reply prefilled with ``Score:``).
        """
        prefill = bool(messages) and messages[-1]["role"] == "assistant"
        how = {"continue_final_message": True} if prefill else {"add_generation_prompt": True}
        if getattr(tokenizer, "chat_template", None):
            try:
                return tokenizer.apply_chat_template(messages, tokenize=False, **how), True
            except Exception as exc:  # e.g. templates without a system role
                if messages and messages[0]["role"] == "system" and len(messages) > 1:
                    merged = [{"role": messages[1]["role"],
                               "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}, *messages[2:]]
                    return tokenizer.apply_chat_template(merged, tokenize=False, **how), True
                raise PrefkitError(f"the chat template failed: {exc}") from None
        _warn_once("the tokenizer has no chat template: prompts are plain 'role: content' text")
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + ("" if prefill else "\nassistant:"), False

    async def agenerate(self, requests: list[ChatRequest]) -> list[Completion]:
        import asyncio

        return await asyncio.to_thread(self.generate_batch, requests)

    def _prompts(self, tok: Any, requests: list[ChatRequest], raw: bool) -> tuple[list[list[int]], bool, list[int] | None]:
        """Token ids of each request's prompt (unpadded), whether they came from a chat template, and how many
        leading tokens each request declares shared (``meta["shared_prefix"]``; None when none declares one)."""
        if raw:  # base models: the last message's text as it is, no chat template
            rendered = [(str(r.messages[-1]["content"]), False) for r in requests]
        else:
            rendered = [self.render(tok, r.messages) for r in requests]
        templated = rendered[0][1]
        ids = tok([t for t, _ in rendered], add_special_tokens=not templated)["input_ids"]
        texts = [r.meta.get("shared_prefix") if r.meta else None for r in requests]
        if not any(texts):
            return ids, templated, None
        declared = []
        for (text, _), d, full in zip(rendered, texts, ids):
            at = text.find(d) if d else -1
            if at < 0:
                declared.append(0)
                continue
            # the tokens of the text up to the end of the declared part that the whole prompt also starts with,
            # less the last one (it may merge with what follows), so that every request gets the same prefix
            head = tok([text[:at + len(d)]], add_special_tokens=not templated)["input_ids"][0]
            declared.append(min(common_prefix_length([head, full]), len(head) - 1))
        return ids, templated, declared

    def _shared_prefix(self, tok: Any, requests: list[ChatRequest], ids: list[list[int]], raw: bool,
                       min_tokens: int, declared: list[int] | None) -> tuple[int, ...]:
        """The token prefix this batch reuses a cache for (empty: none)."""
        shortest = min(len(x) for x in ids)
        if declared is not None:  # the caller named the prefix: trust it down to the batch's common tokens
            n = min(min(declared), common_prefix_length(ids), shortest - 1)
            return tuple(ids[0][:n]) if n >= 1 else ()
        group = self._group_key(requests[0])
        if group in self._planned and group not in self._run_prefix:
            planned = self._planned[group]
            if len(planned) > len(requests):
                every = self._prompts(tok, planned, raw)[0]
                n = common_prefix_length(every)
                self._run_prefix[group] = tuple(every[0][:n]) if n >= min_tokens else ()
            else:
                self._run_prefix[group] = ()
        run = self._run_prefix.get(group, ())
        if run and len(run) < shortest and all(x[:len(run)] == list(run) for x in ids):
            return run
        n = min(common_prefix_length(ids), shortest - 1) if len(ids) > 1 else 0
        return tuple(ids[0][:n]) if n >= min_tokens else ()

    @staticmethod
    def _prefix_kv(model: Any, prefix: tuple[int, ...]) -> list[tuple[Any, Any]] | None:
        """Keys/values of a prefix (one sequence), computed once per (model, prefix); None if the model can't reuse."""
        key = (id(model), prefix)
        with _PREFIX_LOCK:
            if key in _PREFIX_KV:
                _PREFIX_KV.move_to_end(key)
                return _PREFIX_KV[key]
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        device = getattr(model, "device", None) or next(model.parameters()).device
        kv = None
        try:
            with torch.inference_mode():
                cache = DynamicCache(config=model.config)
                ids = torch.tensor([list(prefix)], device=device)
                try:
                    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
                except TypeError:
                    out = model(input_ids=ids, cache=cache, use_cache=True)
                layers = getattr(out.cache, "layers", None) or []
                # plain full-attention layers only (sliding windows, linear attention: no reuse)
                if layers and all(type(layer) is DynamicLayer and layer.get_seq_length() == len(prefix)
                                  for layer in layers):
                    kv = [(layer.keys, layer.values) for layer in layers]
        except Exception:  # noqa: BLE001 - an architecture that can't do this simply generates without reuse
            kv = None
        with _PREFIX_LOCK:
            _PREFIX_KV[key] = kv
            while len(_PREFIX_KV) > PREFIX_SLOTS:
                _PREFIX_KV.popitem(last=False)
        return kv

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        import torch

        model_name = self.model_for(requests[0])
        model, tok = self.load(model_name)
        params = self.params_for(requests[0])
        extra = dict(params["extra"])
        raw = bool(extra.pop("raw_prompt", False))
        reuse = extra.pop("prefix_cache", True) not in (False, 0, "0", "false", "off")
        min_tokens = int(extra.pop("prefix_min_tokens", PREFIX_MIN_TOKENS))
        ids, templated, declared = self._prompts(tok, requests, raw)
        device = getattr(model, "device", None) or next(model.parameters()).device
        prefix = self._shared_prefix(tok, requests, ids, raw, max(1, min_tokens), declared) if reuse else ()
        kv = self._prefix_kv(model, prefix) if prefix else None
        pad = tok.pad_token_id
        cache = None
        if kv is not None:  # [prefix][padding][suffix]: padding masked out, positions count past it
            p = len(prefix)
            width = max(len(x) for x in ids) - p
            rows = [list(prefix) + [pad] * (width - len(x) + p) + x[p:] for x in ids]
            mask = [[1] * p + [0] * (width - len(x) + p) + [1] * (len(x) - p) for x in ids]
            from transformers import DynamicCache

            b = len(ids)
            cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv],
                                 config=model.config)
        else:  # plain left padding
            prefix = ()
            width = max(len(x) for x in ids)
            rows = [[pad] * (width - len(x)) + x for x in ids]
            mask = [[0] * (width - len(x)) + [1] * len(x) for x in ids]
        enc = {"input_ids": torch.tensor(rows, device=device), "attention_mask": torch.tensor(mask, device=device)}
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
        if cache is not None:
            kw["cache"] = cache
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
        results = []
        for r, row, pids in zip(requests, new, ids):
            pcount = len(pids)
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
                                      usage={"prompt_tokens": int(pcount), "completion_tokens": int(n),
                                             "cached_prompt_tokens": len(prefix)},
                                      model=str(model_name)))
        return results
