"""``BackendOptions``: the LLM options every command shares, defined once.

Any command that calls an LLM takes them with::

    @app.command()
    @with_options(BackendOptions, "llm")
    def my_command(..., llm: BackendOptions): ...

and the same dataclass drives the Python API (``complete(requests, BackendOptions(backend="openai"))``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..options import opt, split_csv

DEFAULT_BACKEND = "hf"


def _positive_int(v: Any) -> int:
    v = int(v)
    if v < 1:
        from ..errors import UsageError

        raise UsageError(f"expected a positive integer, got {v}")
    return v


def _non_negative(v: Any) -> float:
    v = float(v)
    if v < 0:
        from ..errors import UsageError

        raise UsageError(f"expected 0 or more, got {v:g}")
    return v


@dataclass
class BackendOptions:
    """How LLM requests are sent: which backend and model, how fast, how safely."""

    backend: str = opt(DEFAULT_BACKEND, help="LLM backend: hf (local transformers), openai (also any "
                       "OpenAI-compatible server with --base-url), anthropic, cohere, mock. `prefkit backends` lists them.")
    model: str | None = opt(None, help="Model name, alias (e.g. smollm2) or local path (default: the backend's "
                            "default model; hf: SmolLM2-135M-Instruct, fetched on first use).")
    base_url: str | None = opt(None, help="API base URL, e.g. http://localhost:8000/v1 for `vllm serve`, llama.cpp, Ollama, LM Studio.")
    concurrency: int = opt(16, help="Requests in flight at once (API backends).", parser=_positive_int)
    rpm: float | None = opt(None, help="Requests-per-minute limit (token bucket).")
    tpm: float | None = opt(None, help="Tokens-per-minute limit (token bucket; prompt estimate + max tokens).")
    max_tokens: int | None = opt(None, help="Most tokens to generate per request (default: 1024 for APIs, 256 for hf).")
    temperature: float = opt(0.0, help="Sampling temperature (0 = greedy/deterministic).", parser=_non_negative)
    stop: list[str] = opt(default_factory=list, parser=split_csv,
                          help="Stop sequence (repeat the flag or give a comma list); not included in the output.")
    seed: int | None = opt(None, help="Sampling seed (passed to providers that take one; seeds local sampling).")
    cache: bool = opt(True, help="Use the on-disk response cache (PREFKIT_HOME/cache.sqlite); --no-cache bypasses it.")
    max_cost: float | None = opt(None, help="Stop cleanly before the estimated spend (USD) passes this budget.")
    dry_run: bool = opt(False, help="Print the request count and estimated cost without calling anything.")
    timeout: float = opt(120.0, help="Per-request timeout in seconds (API backends).")
    max_retries: int = opt(6, help="Retries per request for 429/5xx/timeouts/connection errors (then it is recorded as failed).")
    backoff_base: float = opt(0.5, help="First retry waits up to this many seconds (exponential backoff, full jitter).", hidden=True)
    backoff_max: float = opt(30.0, help="Longest backoff wait in seconds (a longer Retry-After is still honoured).", hidden=True)
    # local (hf) generation
    batch_size: int = opt(8, help="hf: prompts generated together (sorted by length, left-padded).", parser=_positive_int)
    dtype: str = opt("auto", help="hf: weight dtype: auto, float32, bfloat16, float16 (auto = float32 on CPU, the checkpoint's dtype on GPU).")
    device_map: str | None = opt(None, help="hf: device map, e.g. auto, cpu, cuda:0 (default: auto with CUDA, else cpu).")
    trust_remote_code: bool = opt(False, help="hf: run model code shipped with the checkpoint (off unless you pass it).")
    load_in_4bit: bool = opt(False, help="hf: load 4-bit through bitsandbytes (needs CUDA).")
    load_in_8bit: bool = opt(False, help="hf: load 8-bit through bitsandbytes (needs CUDA).")
    extra: dict[str, Any] = opt(default_factory=dict, cli=False,
                                help="Provider options added to every request (Python API only).")

    @property
    def no_cache(self) -> bool:
        return not self.cache

    def replace(self, **changes: Any) -> "BackendOptions":
        """A copy with some fields changed (``opts.replace(temperature=0.7)``)."""
        if "no_cache" in changes:
            changes["cache"] = not changes.pop("no_cache")
        return replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """The settings that decide the outputs (for a run's identity)."""
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "stop": list(self.stop or []),
                "seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def coerce_options(options: Any = None, **overrides: Any) -> BackendOptions:
    """Accept a BackendOptions, a dict, a backend name or None."""
    if options is None:
        opts = BackendOptions()
    elif isinstance(options, BackendOptions):
        opts = options
    elif isinstance(options, str):
        opts = BackendOptions(backend=options)
    elif isinstance(options, dict):
        d = dict(options)
        if "no_cache" in d:
            d["cache"] = not d.pop("no_cache")
        opts = BackendOptions(**d)
    else:
        raise TypeError(f"expected BackendOptions, a dict or a backend name, got {type(options).__name__}")
    if overrides:
        opts = opts.replace(**overrides)
    if isinstance(opts.stop, str):
        opts = replace(opts, stop=split_csv(opts.stop))
    return opts
