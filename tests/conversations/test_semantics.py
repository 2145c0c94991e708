"""Turn commit rules, resume after failures and rejections, the shared budget and concurrency, candidates,
structured answers over HTTP, local batching and provider base-URL variables."""


import pytest

import prefkit
from prefkit import BackendError, ChatRequest, complete
from prefkit.testing import FakeOpenAIServer, MockBackend, ScriptedBackend

from .conftest import fast


def dialogues(n=3, turns=3):
    return [prefkit.Dialogue(f"c{i}", max_turns=turns) for i in range(n)]


async def two_role_step(turn):
    a = await turn.ask("writer", f"{turn.conversation}/{turn.index} write")
    b = await turn.ask("critic", f"{turn.conversation}/{turn.index} critique {a.text}")
    return {"a": a.text, "b": b.text}


ROLES = {"writer": "mock:w", "critic": "mock:c"}


def open_run(path):
    return prefkit.Run.open("conv semantics", output_dir=path)


def test_a_failed_call_leaves_no_half_turn_and_resume_resends_only_that_call(tmp_path):
    broken = {"c1/1/critic"}

    def critic(r):
        if r.key in broken:
            raise BackendError("bad request", status=400)
        return "fine"

    backend = ScriptedBackend({"writer": lambda r: "draft " + r.key, "critic": critic})
    run = open_run(tmp_path / "r")
    res = prefkit.run_dialogues(dialogues(), two_role_step, roles=ROLES, options=fast(), run=run,
                                backends={"mock": backend}, progress=False)
    run.close()
    assert [c.status for c in res.conversations] == ["done", "failed", "done"]
    assert len(res["c1"].turns) == 1 and "bad request" in res["c1"].error
    rows = prefkit.Run.load(tmp_path / "r").results()
    keys = {r["key"] for r in rows}
    assert "c1/1" not in keys and "c1/1/writer" in keys and "c1/1/critic" not in keys  # the call is kept, no turn
    fails = prefkit.Run.load(tmp_path / "r").failures()
    assert [(f["key"], f["kind"]) for f in fails] == [("c1/1", "call_failed")]

    broken.clear()
    backend.reset()
    run = open_run(tmp_path / "r")
    res = prefkit.run_dialogues(dialogues(), two_role_step, roles=ROLES, options=fast(), run=run,
                                backends={"mock": backend}, progress=False)
    run.close()
    assert [c.status for c in res.conversations] == ["done"] * 3
    # the stored writer call of c1/1 was reused: one critic call for it, then turn 2's two calls
    assert [r.key for r in backend.requests] == ["c1/1/critic", "c1/2/writer", "c1/2/critic"]
    assert res.summary["calls_reused"] == 1 and res.summary["turns_resumed"] == 7
    assert prefkit.Run.load(tmp_path / "r").failures() == []


def test_a_rejected_turn_is_asked_afresh_on_resume(tmp_path):
    reject = {"on": True}

    async def step(turn):
        a = await turn.ask("writer", f"{turn.conversation}/{turn.index} write")
        if reject["on"] and turn.conversation == "c0" and turn.index == 0:
            raise prefkit.Reject("too short")
        return {"a": a.text, "attempt": turn.attempt}

    backend = ScriptedBackend({"writer": lambda r: "draft " + r.key})
    run = open_run(tmp_path / "r")
    res = prefkit.run_dialogues(dialogues(2, 1), step, roles=ROLES, options=fast(), run=run,
                                backends={"mock": backend}, progress=False)
    run.close()
    assert res["c0"].status == "failed" and res["c0"].error == "rejected: too short"
    reject["on"] = False
    backend.reset()
    run = open_run(tmp_path / "r")
    res = prefkit.run_dialogues(dialogues(2, 1), step, roles=ROLES, options=fast(), run=run,
                                backends={"mock": backend}, progress=False)
    run.close()
    assert [r.key for r in backend.requests] == ["c0/0/writer@2"]  # a fresh call, not the rejected one
    assert res["c0"].turns == [{"a": "draft c0/0/writer@2", "attempt": 2}]


def test_turn_attempts_ask_a_rejected_turn_again_in_the_same_run(tmp_path):
    async def step(turn):
        a = await turn.ask("writer", f"{turn.conversation}/{turn.index} write")
        if turn.attempt < 3:
            raise prefkit.Reject(f"attempt {turn.attempt} not good enough")
        return {"a": a.text}

    backend = ScriptedBackend({"writer": lambda r: "draft " + r.key})
    seen = []
    run = open_run(tmp_path / "r")
    res = prefkit.run_dialogues(dialogues(1, 2), step, roles=ROLES, options=fast(), run=run, turn_attempts=3,
                                backends={"mock": backend}, progress=False, on_failure=lambda *a: seen.append(a))
    run.close()
    assert res["c0"].status == "done" and seen == []
    assert [r.key for r in backend.requests] == ["c0/0/writer", "c0/0/writer@2", "c0/0/writer@3",
                                                 "c0/1/writer", "c0/1/writer@2", "c0/1/writer@3"]
    fails = prefkit.Run.load(tmp_path / "r").failures(unresolved=False)
    assert [(f["key"], f["attempt"]) for f in fails] == [("c0/0", 1), ("c0/0", 2), ("c0/1", 1), ("c0/1", 2)]


def test_one_budget_and_one_concurrency_limit_over_all_conversations_and_roles(tmp_path):
    from prefkit.backends import pricing

    backend = ScriptedBackend({"writer": "w " * 10, "critic": "c " * 10}, latency=0.01)
    res = prefkit.run_dialogues(dialogues(20, 3), two_role_step, roles=ROLES, options=fast(concurrency=5),
                                backends={"mock": backend}, progress=False)
    assert res.summary["conversations_done"] == 20 and backend.peak_in_flight == 5

    pricing.register_price("w", 1000.0, 1000.0)
    pricing.register_price("c", 1000.0, 1000.0)
    try:
        backend.reset()
        run = open_run(tmp_path / "r")
        res = prefkit.run_dialogues(dialogues(20, 3), two_role_step, roles=ROLES,
                                    options=fast(concurrency=4, max_cost=1.0, max_tokens=20),
                                    run=run, backends={"mock": backend}, progress=False)
        run.close()
        assert res.summary["stopped"] == "max_cost" and res.summary["cost_usd"] <= 1.0
        assert res.summary["conversations_pending"] > 0 and res.summary["conversations_failed"] == 0
        committed = res.summary["turns_committed"]
        run = open_run(tmp_path / "r")
        more = prefkit.run_dialogues(dialogues(20, 3), two_role_step, roles=ROLES,
                                     options=fast(concurrency=4, max_cost=100.0, max_tokens=20),
                                     run=run, backends={"mock": backend}, progress=False)
        run.close()
        assert more.summary["conversations_done"] == 20 and more.summary["turns_resumed"] == committed
    finally:
        pricing._user.pop("w", None)
        pricing._user.pop("c", None)


def test_candidates_fan_out_with_distinct_keys_seeds_and_cache_entries():
    mock = MockBackend(responder=lambda r: f"sample seed={r.seed}", cacheable=True)
    opts = fast(backend="mock", seed=10, cache=True)
    out = complete([ChatRequest(key="q", messages="hi", n=3)], opts, backend=mock, progress=False)
    assert out[0].texts == ["sample seed=10", "sample seed=11", "sample seed=12"]
    assert sorted(mock.calls) == ["q/0", "q/1", "q/2"]
    mock.reset()
    again = complete([ChatRequest(key="q", messages="hi", n=3)], opts, backend=mock, progress=False)
    assert again[0].texts == out[0].texts and again[0].cached and mock.call_count == 0  # three cache entries


def test_native_n_for_openai_and_fan_out_for_anthropic_over_http(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with FakeOpenAIServer(lambda req: f"cand {req.candidate} of {req.prompt}") as server:
        o = complete([ChatRequest(key="q", messages="hello", n=3)],
                     fast(backend="openai", base_url=server.url), progress=False)
        assert o[0].texts == ["cand 0 of hello", "cand 1 of hello", "cand 2 of hello"]
        assert server.request_count == 1 and server.bodies[0]["n"] == 3
        server.reset_stats()
        a = complete([ChatRequest(key="q", messages="hello", n=2)],
                     fast(backend="anthropic", base_url=server.root_url), progress=False)
        assert a[0].ok and len(a[0].texts) == 2 and server.request_count == 2
        assert all("n" not in b for b in server.bodies)


def test_json_object_answers_use_the_providers_schema_and_are_validated():
    replies = iter(['{"name": "Ada"', '{"name": "Ada", "age": 36}'])  # the first is cut off: re-asked
    with FakeOpenAIServer(lambda req: next(replies)) as server:
        async def step(turn):
            ans = await turn.ask_structured("extractor", "who?", prefkit.JsonObject(["name", "age"]))
            return ans.to_dict()

        res = prefkit.run_dialogues(dialogues(1, 1), step, roles={"extractor": "openai:x"},
                                    options=fast(backend="openai", base_url=server.url), progress=False)
        record = res["c0"].turns[0]
        assert record["value"] == {"name": "Ada", "age": 36} and record["reasks"] == 1
        fmt = server.bodies[0]["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["name", "age"]


def test_unparseable_after_reasks_is_a_recorded_failure_not_a_default():
    backend = ScriptedBackend({"judge": "I cannot decide."})

    async def step(turn):
        ans = await turn.ask_structured("judge", "A or B?", prefkit.Choice(["A", "B"]), reasks=2)
        return ans.to_dict()

    res = prefkit.run_dialogues(dialogues(1, 1), step, roles={"judge": "mock:j"}, options=fast(),
                                backends={"mock": backend}, progress=False)
    rec = res["c0"].turns[0]
    assert rec["ok"] is False and rec["value"] is None and rec["reasks"] == 2 and len(rec["outputs"]) == 3
    assert rec["error"].startswith("unparseable after 2 re-asks")


def test_local_backends_get_the_queued_calls_as_batches():
    backend = ScriptedBackend({"writer": "w", "critic": "c"}, local=True)
    res = prefkit.run_dialogues(dialogues(12, 2), two_role_step, roles=ROLES, options=fast(batch_size=8),
                                backends={"mock": backend}, progress=False)
    assert res.summary["conversations_done"] == 12
    sizes = [len(b) for b in backend.batches]
    assert max(sizes) == 8 and sum(sizes) == 48 and len(sizes) < 20


def test_provider_base_url_variables_are_the_default(monkeypatch):
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)  # and no OPENAI_API_KEY: a custom server needs none
        roles = prefkit.Roles.from_specs({"user": "openai:m"})
        assert roles["user"].base_url == server.url
        out = complete(["hi"], fast(backend="openai"), progress=False)
        assert out[0].text == "echo: hi" and server.request_count == 1


def test_an_unknown_role_is_one_clear_error():
    async def step(turn):
        await turn.ask("narrator", "hi")

    with pytest.raises(prefkit.UsageError, match="no model was given for it"):
        prefkit.run_dialogues(dialogues(1, 1), step, roles={"user": "mock:u"}, options=fast(), progress=False)
