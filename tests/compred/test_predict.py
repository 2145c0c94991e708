"""compred predict: one answer per post (dedup by post_id), stops that stop, new tokens only, keyed outputs."""

import collections
import json

import pytest

import prefkit
from prefkit.testing import MockBackend
from prefkit_compred.data import load_posts, subset
from prefkit_compred.predict import PredictOptions, predict


def test_one_request_per_post_and_stops_cut(compred_fixture, prefkit_home, tmp_path):
    def responder(req):
        return f"answer for {req.key}<|user|>\nthe model kept going"

    mock = MockBackend(responder=responder)
    opts = PredictOptions(subset="finance", context="none", data_dir=str(compred_fixture["data_dir"]))
    with mock.installed():
        res = predict("my-model", opts, prefkit.BackendOptions(backend="mock"), output_dir=str(tmp_path / "p"),
                      progress=False)
    posts, counts = load_posts(subset("finance"), data_dir=compred_fixture["data_dir"])
    assert counts["rows"] > counts["posts"] == len(posts) == 9        # test_prompts has several rows per post
    assert collections.Counter(mock.calls.values()) == {1: 9}          # each post asked once
    assert sorted(mock.calls) == sorted(p["post_id"] for p in posts)
    req = mock.requests[0]
    assert req.stop == ["<|"] and req.temperature == 0.0 and req.max_tokens == 1024
    assert req.messages[0]["content"].startswith("<|domain|>\nReddit\n<|user|>\n")
    rows = prefkit.Run.load(res["run"]).results()
    assert [r["key"] for r in rows] == [r["post_id"] for r in rows]
    assert all(r["response"] == f"answer for {r['post_id']}" for r in rows)
    assert {r["model"] for r in rows} == {"my-model"} and {r["context"] for r in rows} == {"none"}
    # resuming asks nothing again and duplicates nothing
    with mock.installed():
        predict("my-model", opts, prefkit.BackendOptions(backend="mock"), output_dir=str(tmp_path / "p"),
                progress=False)
    assert sum(mock.calls.values()) == 9
    assert len(prefkit.read_jsonl(f"{res['run']}/results.jsonl")) == 9


def test_random_subreddit_at_inference(compred_fixture, tmp_path):
    mock = MockBackend(responder=lambda r: "ok")
    opts = PredictOptions(subset="finance", context="random-subreddit", data_dir=str(compred_fixture["data_dir"]))
    with mock.installed():
        res = predict("m", opts, prefkit.BackendOptions(backend="mock"), output_dir=str(tmp_path / "r"),
                      progress=False)
    rows = prefkit.Run.load(res["run"]).results()
    assert all(r["context_subreddit"] != r["subreddit"] for r in rows)
    assert all(r["prompt"].startswith(f"<|domain|>\nr/{r['context_subreddit']}\n") for r in rows)


def test_hf_backend_greedy_new_tokens_only(compred_fixture, tiny_model, tmp_path):
    opts = PredictOptions(subset="history", context="subreddit", data_dir=str(compred_fixture["data_dir"]), limit=3)
    llm = prefkit.BackendOptions(backend="hf", max_tokens=12)
    a = predict(str(tiny_model), opts, llm, output_dir=str(tmp_path / "a"), progress=False)
    b = predict(str(tiny_model), opts, llm, output_dir=str(tmp_path / "b"), progress=False)
    ra, rb = prefkit.Run.load(a["run"]).results(), prefkit.Run.load(b["run"]).results()
    assert len(ra) == 3 and [r["response"] for r in ra] == [r["response"] for r in rb]   # deterministic
    for r in ra:
        assert "<|assistant|>" not in r["response"] and r["post"][:20] not in r["response"]
        assert "<|" not in r["response"]
    assert a["counts"]["prompt_tokens_measured"] is True


def test_predict_needs_a_subset_for_a_plain_model(tmp_path):
    with pytest.raises(prefkit.UsageError, match="--subset is required"):
        predict("m", PredictOptions(), prefkit.BackendOptions(backend="mock"), output_dir=str(tmp_path / "x"))


def test_openai_compatible_server_gets_the_text_prompt_as_is(compred_fixture, fake_openai_server, tmp_path,
                                                            monkeypatch, prefkit_home):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    bodies = []

    def responder(req):
        bodies.append(req.body)
        return "a comment"

    fake_openai_server.responder = responder
    opts = PredictOptions(subset="history", context="subreddit", data_dir=str(compred_fixture["data_dir"]), limit=2)
    llm = prefkit.BackendOptions(backend="openai", base_url=fake_openai_server.url, model="served-model")
    res = predict("served-model", opts, llm, output_dir=str(tmp_path / "o"), progress=False)
    assert res["counts"]["done"] == 2 and len(bodies) == 2
    for body in bodies:
        assert "raw_prompt" not in body and body["stop"] == ["<|"] and body["temperature"] == 0.0
        assert body["repetition_penalty"] == 1.1 and body["max_tokens"] == 1024
        content = body["messages"][0]["content"]
        assert content.startswith("<|domain|>\nr/") and content.endswith("\n<|assistant|>\n")
    assert {r["response"] for r in prefkit.Run.load(res["run"]).results()} == {"a comment"}
