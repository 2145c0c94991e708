"""Shared-prefix KV reuse, dtype auto and CPU threads in the hf backend (tiny random Llama built in the test)."""

import pytest

from prefkit.backends import ChatRequest, complete

from .conftest import fast

INSTRUCTION = ("Read the conversation below and describe, in one sentence, the user who would prefer the first "
               "answer. Keep it short and start with 'The user'. ") * 4
TAILS = ["hi", "What is the capital of France?", "Write a very long and detailed story about a cat and a dog",
         "Name three colors.", "ok", "Explain preference pairs in one sentence, please, with an example."]


def opts(model, **kw):
    base = dict(backend="hf", model=str(model), max_tokens=8, batch_size=3, extra={"min_new_tokens": 8})
    base.update(kw)
    return fast(**base)


def reqs(tails=TAILS, prefix=INSTRUCTION, **kw):
    return [ChatRequest(key=str(i), messages=[{"role": "user", "content": prefix + t}], **kw)
            for i, t in enumerate(tails)]


@pytest.fixture(autouse=True)
def _fresh_prefix_cache():
    from prefkit.backends import hf

    hf.clear_loaded_models()
    yield
    hf.clear_loaded_models()


def test_common_prefix_length():
    from prefkit.backends.hf import common_prefix_length

    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3], [1, 2, 9, 9]]) == 2
    assert common_prefix_length([[1, 2], [3]]) == 0
    assert common_prefix_length([[5, 6, 7]]) == 3
    assert common_prefix_length([]) == 0


def test_reuse_gives_the_same_greedy_outputs_and_counts(tiny_model):
    reused = complete(reqs(), opts(tiny_model), progress=False)
    plain = complete(reqs(), opts(tiny_model, extra={"min_new_tokens": 8, "prefix_cache": False}), progress=False)
    assert all(c.ok for c in reused + plain), [c.error for c in reused + plain]
    assert [c.text for c in reused] == [c.text for c in plain]
    assert [c.usage["prompt_tokens"] for c in reused] == [c.usage["prompt_tokens"] for c in plain]
    shared = {c.usage["cached_prompt_tokens"] for c in reused}
    assert len(shared) == 1 and shared.pop() >= 32  # one run-wide prefix, found automatically
    assert all(c.usage["cached_prompt_tokens"] == 0 for c in plain)


def test_prefix_is_computed_once_per_run_and_kept_as_one_sequence(tiny_model, monkeypatch):
    from prefkit.backends import hf

    computed = []
    original = hf.HFBackend._prefix_kv

    def counting(model, prefix):
        with hf._PREFIX_LOCK:
            if (id(model), prefix) not in hf._PREFIX_KV:
                computed.append(len(prefix))
        return original(model, prefix)

    monkeypatch.setattr(hf.HFBackend, "_prefix_kv", staticmethod(counting))
    out = complete(reqs(), opts(tiny_model, batch_size=2), progress=False)  # three batches
    assert all(c.ok for c in out)
    assert len(computed) == 1
    (kv,) = hf._PREFIX_KV.values()
    keys, values = kv[0]
    assert keys.shape[0] == 1 and keys.shape[-2] == computed[0]  # not expanded to the run: per batch only


def test_reuse_with_stop_sequences_and_uneven_suffixes(tiny_model):
    plain = complete(reqs(), opts(tiny_model, max_tokens=16, extra={"min_new_tokens": 16, "prefix_cache": False}),
                     progress=False)
    text = plain[2].text
    stop = next(text[i:i + 2] for i in range(3, len(text) - 2) if text[i:i + 2].strip() and text[i:i + 2] not in text[:i])
    o = opts(tiny_model, max_tokens=16, extra={})
    cut = complete(reqs(stop=[stop]), o, progress=False)
    ref = complete(reqs(stop=[stop]), o.replace(extra={"prefix_cache": False}), progress=False)
    assert [c.text for c in cut] == [c.text for c in ref]
    assert cut[2].text == text[:text.index(stop)] and cut[2].finish_reason == "stop"
    assert cut[2].usage["cached_prompt_tokens"] > 0


def test_short_common_prefix_is_not_cached(tiny_model):
    out = complete(reqs(prefix="Q: "), opts(tiny_model), progress=False)
    assert all(c.ok and c.usage["cached_prompt_tokens"] == 0 for c in out)


def test_declared_prefix_is_reused_across_calls_even_for_one_request(tiny_model):
    o = opts(tiny_model, batch_size=1)
    first = complete(reqs(TAILS[:1], meta={"shared_prefix": INSTRUCTION}), o, progress=False)[0]
    second = complete(reqs(TAILS[1:2], meta={"shared_prefix": INSTRUCTION}), o, progress=False)[0]
    plain = complete(reqs(TAILS[1:2]), o.replace(extra={"min_new_tokens": 8, "prefix_cache": False}),
                     progress=False)[0]
    assert first.usage["cached_prompt_tokens"] == second.usage["cached_prompt_tokens"] > 10
    assert second.text == plain.text
    from prefkit.backends import hf

    assert len(hf._PREFIX_KV) == 1  # the second call found the first call's prefix


def test_sampling_with_reuse_is_seeded(tiny_model):
    o = opts(tiny_model, temperature=1.0, seed=3)
    a = complete(reqs(), o, progress=False)
    b = complete(reqs(), o, progress=False)
    assert [x.text for x in a] == [x.text for x in b]
    assert all(x.usage["cached_prompt_tokens"] > 0 for x in a)


def test_dtype_auto_uses_bf16_only_with_hardware_support_and_a_faster_probe(tiny_model, monkeypatch):
    from prefkit.backends import hf

    monkeypatch.delenv("PREFKIT_CPU_BF16", raising=False)
    cases = [(set(), 9.0, "torch.float32"),            # no bf16 instructions: never bf16, nothing timed
             ({"avx512_bf16"}, 0.5, "torch.float32"),  # flags but slower when measured
             ({"amx_bf16"}, 2.0, "torch.bfloat16")]
    for flags, speedup, want in cases:
        hf.cpu_prefers_bf16.cache_clear()
        monkeypatch.setattr(hf, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.setattr(hf, "_probe_bf16_speedup", lambda s=speedup: s)
        kw, where = hf.HFBackend(opts(tiny_model))._load_kwargs()
        assert where == "cpu" and str(kw["dtype"]) == want, (flags, speedup)

    def broken():
        raise RuntimeError("no bf16 kernel")

    hf.cpu_prefers_bf16.cache_clear()
    monkeypatch.setattr(hf, "_probe_bf16_speedup", broken)
    assert hf.cpu_prefers_bf16() is False  # fallback: float32
    hf.cpu_prefers_bf16.cache_clear()


def test_cpu_threads_leave_busy_cores_out(monkeypatch):
    import os

    from prefkit.backends import hf

    monkeypatch.delenv("PREFKIT_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert hf.cpu_threads() == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert hf.cpu_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert hf.cpu_threads() == 1
    monkeypatch.setenv("PREFKIT_THREADS", "3")
    assert hf.cpu_threads() == 3


def test_first_use_conversion_shows_no_transformers_progress_bars(capsys):
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from prefkit.backends.models import quiet_transformers

    before = gguf_utils.tqdm
    with quiet_transformers():
        assert not hf_logging.is_progress_bar_enabled()
        assert list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...")) == [0, 1, 2]
        for _ in hf_logging.tqdm(range(2), desc="Writing model shards"):
            pass
    assert "Converting" not in capsys.readouterr().err
    assert gguf_utils.tqdm is before and hf_logging.is_progress_bar_enabled()  # restored afterwards
