"""The conversation API end to end with the scripted per-role backend: turns, roles, candidates, resume."""

import prefkit
from prefkit.testing import ScriptedBackend

from .conftest import fast


def make_step():
    async def step(turn):
        history = [m for t in turn.history for m in t["messages"]]
        user = await turn.ask("user", [*history, {"role": "user", "content": f"[{turn.conversation}/{turn.index}] "
                                                                            f"persona {turn.data}"}])
        answer = await turn.ask("responder", [*history, {"role": "user", "content": user.text}], n=2)
        verdict = await turn.ask_structured("judge", f"which is better? {answer.texts}", prefkit.Choice(["A", "B"]))
        pick = turn.rng.randrange(2)
        return {"messages": [{"role": "user", "content": user.text},
                             {"role": "assistant", "content": answer.texts[pick]}],
                "verdict": verdict.value, "reasks": verdict.reasks, "pick": pick}
    return step


def scripted():
    return ScriptedBackend({
        "user": lambda r: "question about " + r.messages[-1]["content"],
        "responder": lambda r: f"answer {r.meta['candidate'] if 'candidate' in r.meta else 0}: "
                               + r.messages[-1]["content"],
        # turn 0's first judge answer is unparseable: re-asked once
        "judge": lambda r: "not sure" if r.meta["turn"] == 0 and len(r.messages) == 1 else "B",
    })


def test_dialogues_commit_every_turn_store_calls_and_resume_without_requests(tmp_path):
    backend = scripted()
    roles = prefkit.Roles.from_specs({"user": "mock:user-model", "responder": "mock:resp-model", "judge": "mock:judge"},
                                     engine=fast(backend="mock"))
    dialogues = [prefkit.Dialogue(f"c{i}", data=i, max_turns=3) for i in range(5)]
    run = prefkit.Run.open("conv test", output_dir=tmp_path / "run")
    result = prefkit.run_dialogues(dialogues, make_step(), roles=roles, run=run, seed=7,
                                   backends={"mock": backend}, progress=False)
    run.close()
    assert [c.status for c in result.conversations] == ["done"] * 5
    c0 = result["c0"]
    assert len(c0.turns) == 3
    # candidates differ (distinct fan-out requests), judge re-asked once, then parsed
    assert c0.turns[0]["verdict"] == "B" and c0.turns[0]["reasks"] == 1
    assert backend.calls_by_role == {"user": 15, "responder": 30, "judge": 20}
    assert all(c.turns[0]["reasks"] == 1 and c.turns[1]["reasks"] == 0 for c in result.conversations)
    # each role's requests carried that role's model
    assert {r.model for r in backend.requests_for("user")} == {"user-model"}
    assert {r.model for r in backend.requests_for("judge")} == {"judge"}
    rows = prefkit.Run.load(tmp_path / "run").results()
    turns = [r for r in rows if r["kind"] == "turn"]
    assert sorted(r["key"] for r in turns) == sorted(f"c{i}/{t}" for i in range(5) for t in range(3))
    assert "c0/0/responder/1" in {r["key"] for r in rows} and "c0/0/judge.reask1" in {r["key"] for r in rows}

    # resume: a finished run makes no request and returns the same conversations
    backend.reset()
    run = prefkit.Run.open("conv test", output_dir=tmp_path / "run")
    again = prefkit.run_dialogues(dialogues, make_step(), roles=roles, run=run, seed=7, backends={"mock": backend},
                                  progress=False)
    run.close()
    assert backend.call_count == 0
    assert [c.turns for c in again.conversations] == [c.turns for c in result.conversations]


def test_role_specs_parse_backend_and_model():
    assert prefkit.parse_model_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert prefkit.parse_model_spec("hf:HuggingFaceTB/SmolLM2-135M-Instruct") == ("hf", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert prefkit.parse_model_spec("claude:claude-sonnet-4-5") == ("anthropic", "claude-sonnet-4-5")  # alias
    assert prefkit.parse_model_spec("gpt-4o") == (None, "gpt-4o")
    assert prefkit.parse_model_spec("llama3:8b") == (None, "llama3:8b")  # not a backend: part of the model
    roles = prefkit.Roles.from_specs({"user": "gpt-4o-mini", "judge": "anthropic:claude-sonnet-4-5",
                                      "responder": ["hf:smollm2", "openai:gpt-4o"]},
                                     engine=prefkit.BackendOptions(concurrency=3), default_backend="openai")
    assert roles["user"].backend == "openai" and roles.names("responder") == ["responder.0", "responder.1"]
    assert roles.options_for("responder.0").backend == "hf" and roles.options_for("judge").concurrency == 3


def test_structured_specs_parse_or_refuse():
    assert prefkit.Choice(["first", "second"]).parse("**Second**") == "second"
    assert prefkit.Choice(["A", "B"]).parse("Answer: A") == "A"
    assert prefkit.parse_answer("A or B", prefkit.Choice(["A", "B"]))[0] is None
    assert prefkit.IntRange(1, 5).parse("Score: 4") == 4
    assert prefkit.parse_answer("7", prefkit.IntRange(1, 5))[0] is None
    assert prefkit.JsonObject(["name"]).parse('```json\n{"name": "x", "n": 1}\n```') == {"name": "x", "n": 1}
    assert prefkit.parse_answer('{"other": 1}', prefkit.JsonObject(["name"]))[0] is None


def test_the_scripted_backend_fixture_answers_per_role(scripted_backend):
    scripted_backend.script.on(role="judge", contains="cats", reply="B").on(role="judge", reply="A")

    async def step(turn):
        v = await turn.ask_structured("judge", f"about {turn.data}", prefkit.Choice(["A", "B"]))
        return v.value

    res = prefkit.run_dialogues([prefkit.Dialogue("d0", data="cats"), prefkit.Dialogue("d1", data="dogs")], step,
                                roles={"judge": "mock:j"}, options=fast(), progress=False)
    assert [c.turns for c in res.conversations] == [["B"], ["A"]]
    assert scripted_backend.calls_by_role == {"judge": 2}
