"""with_roles: per-role flags on a command, engine options once, specs reaching the right backend and model."""

import typer
from typer.testing import CliRunner

import prefkit
from prefkit.testing import ScriptedBackend


def make_app(seen):
    app = typer.Typer()

    @app.command()
    @prefkit.with_roles([prefkit.RoleDecl("user", default="mock:default-user"),
                         prefkit.RoleDecl("responder", repeatable=True), "judge"], "roles", default_backend="mock")
    def chat(turns: int = typer.Option(2, "--turns"), roles: prefkit.Roles = None):
        async def step(turn):
            u = await turn.ask("user", f"{turn.conversation} turn {turn.index}")
            for name in roles.names("responder"):
                await turn.ask(name, u.text)
            v = await turn.ask_structured("judge", "verdict?", prefkit.Choice(["A", "B"]))
            return {"verdict": v.value}

        result = prefkit.run_dialogues([prefkit.Dialogue("c0", max_turns=turns)], step, roles=roles, progress=False)
        seen.append((roles, result))

    @app.command()
    def other():  # a second command so typer keeps the command name
        pass

    return app


def test_role_flags_reach_the_right_backend_and_model():
    seen = []
    backend = ScriptedBackend({"user": "hi", "responder": "hello", "judge": "A"})
    with backend.installed():
        r = CliRunner().invoke(make_app(seen), [
            "chat", "--responder-model", "mock:resp-a", "--responder-model", "resp-b",
            "--responder-temperature", "0.7", "--judge-model", "mock:judge-x", "--judge-max-tokens", "9",
            "--concurrency", "3", "--no-cache"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    roles, result = seen[0]
    assert roles.engine.concurrency == 3 and roles.engine.cache is False
    assert roles["user"].model == "default-user" and roles["responder.1"].model == "resp-b"
    assert roles["responder.1"].backend == "mock"  # a bare model: the command's default backend
    assert result["c0"].status == "done"
    assert {q.model for q in backend.requests_for("responder.0")} == {"resp-a"}
    assert {q.temperature for q in backend.requests_for("responder.1")} == {0.7}
    assert {(q.model, q.max_tokens) for q in backend.requests_for("judge")} == {("judge-x", 9)}
    assert backend.calls_by_role == {"user": 2, "responder.0": 2, "responder.1": 2, "judge": 2}


def test_dry_run_estimates_calls_per_role_and_sends_nothing():
    seen = []
    backend = ScriptedBackend({"user": "hi", "responder": "hello", "judge": "A"})
    with backend.installed():
        r = CliRunner().invoke(make_app(seen), ["chat", "--turns", "3", "--responder-model", "mock:a", "--dry-run"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    _, result = seen[0]
    assert backend.call_count == 0
    assert result.summary["dry_run"] is True
    assert {k: v["requests"] for k, v in result.summary["roles"].items()} == {"user": 3, "responder.0": 3, "judge": 3}


def test_two_backend_option_groups_on_one_command_get_their_own_flags():
    app = typer.Typer()
    got = {}

    @app.command()
    @prefkit.with_options(prefkit.BackendOptions, "judge_llm", prefix="judge_")
    @prefkit.with_options(prefkit.BackendOptions, "llm")
    def cmd(llm: prefkit.BackendOptions = None, judge_llm: prefkit.BackendOptions = None):
        got.update(llm=llm, judge=judge_llm)

    @app.command()
    def other():
        pass

    r = CliRunner().invoke(app, ["cmd", "--model", "gen-model", "--judge-model", "judge-model",
                                 "--judge-backend", "openai", "--temperature", "0.5"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (got["llm"].model, got["llm"].temperature, got["llm"].backend) == ("gen-model", 0.5, "hf")
    assert (got["judge"].model, got["judge"].temperature, got["judge"].backend) == ("judge-model", 0.0, "openai")
