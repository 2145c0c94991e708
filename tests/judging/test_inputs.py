"""Reading output files and matching rows by key (never by line position)."""

import json

import pytest

from prefkit.errors import UsageError
from prefkit.judging.inputs import build_pairwise_items, load_context, load_outputs, match_keys, strip_end_tokens


def test_strip_end_tokens():
    assert strip_end_tokens(" Hello there.<|end_of_text|>") == "Hello there."
    assert strip_end_tokens("Hi<|eot_id|>garbage after") == "Hi"
    assert strip_end_tokens("Hi</s>") == "Hi"
    assert strip_end_tokens("Hi <|im_end|>\n") == "Hi"
    assert strip_end_tokens("no token") == "no token"
    assert strip_end_tokens(None) == ""


def _write(path, rows, jsonl=False):
    if jsonl:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))
    return path


def test_json_arrays_are_keyed_by_index_and_cleaned(tmp_path):
    a = _write(tmp_path / "a.json", [{"prompt": "Prompt: Q1\nResponse:", "response": " one<|end_of_text|>"},
                                     {"prompt": "Prompt: Q2\nPersona: The user is X.\nResponse: Two is",
                                      "response": " a number<|end_of_text|>"}])
    out = load_outputs(a)
    assert out.keyed_by == "index" and out.order == ["0", "1"]
    assert out.rows["0"]["instruction"] == "Prompt: Q1\nResponse:" and out.rows["0"]["response"] == "one"
    # a caller-supplied prompt parser (the core knows no method's layout)
    def parser(text):
        head, _, prefix = text.partition("\nResponse:")
        prompt, _, persona = head.removeprefix("Prompt: ").partition("\nPersona: ")
        return {"instruction": prompt, "persona": persona or None, "response_prefix": prefix.strip()}

    out = load_outputs(a, prompt_parser=parser)
    assert out.rows["0"]["instruction"] == "Q1" and out.rows["0"]["response"] == "one"
    assert out.rows["1"]["response"] == "Two is a number" and out.rows["1"]["labelled_persona"] == "The user is X."
    raw = load_outputs(a, prompt_format="raw", prompt_parser=parser)
    assert raw.rows["1"]["instruction"].startswith("Prompt: Q2") and raw.rows["1"]["response"] == "a number"


def test_rows_are_matched_by_key_not_position(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"row_id": "x", "prompt": "p", "response": "ax"},
                                      {"row_id": "y", "prompt": "p", "response": "ay"}], jsonl=True)
    b = _write(tmp_path / "b.jsonl", [{"row_id": "y", "prompt": "p", "text": "by"},
                                      {"row_id": "x", "prompt": "p", "text": "bx"}], jsonl=True)
    oa, ob = load_outputs(a), load_outputs(b)
    keys = match_keys(oa, ob)
    items, _ = build_pairwise_items(oa, ob, keys)
    assert [(i["key"], i["response_a"], i["response_b"]) for i in items] == [("x", "ax", "bx"), ("y", "ay", "by")]


def test_key_mismatch_is_an_error_with_counts(tmp_path):
    a = _write(tmp_path / "a.json", [{"id": i, "prompt": "p", "response": "r"} for i in range(5)])
    b = _write(tmp_path / "b.json", [{"id": i, "prompt": "p", "response": "r"} for i in range(2, 8)])
    oa, ob = load_outputs(a), load_outputs(b)
    with pytest.raises(UsageError) as e:
        match_keys(oa, ob)
    msg = str(e.value)
    assert "2 of 5 rows of A are missing from B (e.g. 0, 1)" in msg
    assert "3 of 6 rows of B are missing from A (e.g. 5, 6, 7)" in msg
    assert match_keys(oa, ob, allow_missing=True) == ["2", "3", "4"]


def test_bad_keys(tmp_path):
    dup = _write(tmp_path / "dup.json", [{"row_id": 1, "prompt": "p", "response": "r"}] * 2)
    with pytest.raises(UsageError, match="appears more than once"):
        load_outputs(dup)
    partial = _write(tmp_path / "partial.json", [{"row_id": 1, "prompt": "p", "response": "r"},
                                                 {"prompt": "p", "response": "r"}])
    with pytest.raises(UsageError, match="only 1 of 2 rows have a 'row_id' field"):
        load_outputs(partial)
    nokey = _write(tmp_path / "nokey.json", [{"prompt": "p", "response": "r"}])
    with pytest.raises(UsageError, match="no 'uid' field"):
        load_outputs(nokey, key="uid")
    with pytest.raises(UsageError, match="cannot find the response field"):
        load_outputs(_write(tmp_path / "noresp.json", [{"prompt": "p", "reply": "r"}]))
    with pytest.raises(UsageError, match="no such file"):
        load_outputs(tmp_path / "missing.json")


def test_run_directory_and_message_prompts(tmp_path):
    from prefkit.runs import Run

    with Run.open("generate", output_dir=tmp_path / "run", argv=["x"]) as run:
        run.append({"row_id": "r1", "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "hello"},
                                               {"role": "user", "content": "and now?"}],
                    "text": "now this<|eot_id|>"})
    out = load_outputs(tmp_path / "run")
    assert out.label == "run" and out.rows["r1"]["instruction"] == "and now?"
    assert out.rows["r1"]["context"] == "User: hi\nAssistant: hello"
    assert out.rows["r1"]["response"] == "now this"
    assert load_outputs(tmp_path / "run" / "results.jsonl").order == ["r1"]


def test_personas_from_context_dataset(tmp_path):
    a = _write(tmp_path / "a.json", [{"prompt": "q", "response": "ra"}, {"prompt": "q2", "response": "ra2"}])
    b = _write(tmp_path / "b.json", [{"prompt": "q", "response": "rb"}, {"prompt": "q2", "response": "rb2"}])
    ctx_file = _write(tmp_path / "ctx.json", [{"gold": "The user is A."}, {"gold": "The user is B."}])
    oa, ob = load_outputs(a), load_outputs(b)
    keys = match_keys(oa, ob)
    ctx = load_context(str(ctx_file), keys)
    items, _ = build_pairwise_items(oa, ob, keys, persona_field="gold", context=ctx)
    assert [i["persona"] for i in items] == ["The user is A.", "The user is B."]
    with pytest.raises(UsageError, match="1 of 2 keys have no row"):
        load_context(str(_write(tmp_path / "short.json", [{"gold": "x"}])), keys)
