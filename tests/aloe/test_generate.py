"""ALOE preference trees against scripted fake roles: judge order swap, tie rule, seeded continuation,
several responder models, atomic turns under injected faults, resume (also after SIGKILL) with no
repeated request, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import prefkit
from prefkit.testing import FakeOpenAIServer, Script, ScriptedBackend, cli

from prefkit_aloe.generate import TurnRecord, decide_pair, read_turns

from .conftest import aloe_script, run_generate, scripted_backend, write_personas


def turns_of(run_dir):
    return read_turns(run_dir)


def test_the_judge_sees_both_orders_and_a_consistent_verdict_labels_the_pair(tmp_path, personas_file):
    backend = scripted_backend("aware")
    res = run_generate(personas_file, tmp_path / "run", backend, turns=3)
    assert res.status == "done" and [c["turns"] for c in res.conversations] == [3, 3, 3]
    judge_reqs = backend.requests_for("judge")
    assert len(judge_reqs) == 3 * 3 * 2  # two orders per turn
    by_turn = {}
    for r in judge_reqs:
        body = r.messages[-1]["content"]
        first = body.split("First reply:\n")[1].split("\n\n")[0]
        by_turn.setdefault(r.key.rsplit("/", 1)[0], []).append(first.split()[0])
    assert all(sorted(v) == ["AWARE", "PLAIN0"] for v in by_turn.values())  # aware in slot 1 once, in slot 2 once
    # the judge sees the true persona and the user's message
    assert "person number" in judge_reqs[0].messages[-1]["content"] and "msg " in judge_reqs[0].messages[-1]["content"]
    recs = [TurnRecord.from_dict(t) for ts in turns_of(tmp_path / "run").values() for t in ts]
    assert len(recs) == 9
    for r in recs:
        assert r.preferred == f"AWARE {r.turn} {r.conversation_id}" and r.preferred_source == "aware"
        assert r.rejected == [f"PLAIN0 {r.turn} {r.conversation_id}"] and r.rejected_sources == ["plain.0"]
        assert not r.tie and r.judge[0]["outcome"] == "aware" and r.rejected_ties == [False]
        assert r.conversation_id.startswith(r.persona_id) and r.inferred == {"profile": "He is a baker.",
                                                                             "personality": "None"}
    assert res.judge["first_slot_share"] == 0.5 and res.judge["ties"] == 0 and res.judge["aware_wins"] == 9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["judge"]["pairs"] == 9 and metrics["conversations"]["turns_committed"] == 9


@pytest.mark.parametrize("rule,preferred", [("aware", "AWARE"), ("plain", "PLAIN0")])
def test_a_position_biased_judge_gives_ties_resolved_by_the_rule(tmp_path, personas_file, rule, preferred):
    res = run_generate(personas_file, tmp_path / rule, scripted_backend("first"), turns=2, tie_rule=rule)
    recs = [t for ts in turns_of(tmp_path / rule).values() for t in ts]
    assert len(recs) == 6
    assert all(r["tie"] and r["judge"][0]["tie_reason"] == "inconsistent" for r in recs)
    assert all(r["preferred"].startswith(preferred) for r in recs)
    assert all(r["rejected_ties"] == [True] for r in recs)
    j = res.judge
    assert j["ties"] == j["ties_inconsistent"] == 6 and j["first_slot_share"] == 1.0 and j["consistent"] == 0


def test_an_unreadable_verdict_is_reasked_then_a_tie(tmp_path, personas_file):
    backend = scripted_backend("unreadable")
    res = run_generate(personas_file, tmp_path / "run", backend, turns=1)
    assert res.judge["ties_unreadable"] == 3 and res.judge["verdicts_unreadable"] == 6
    assert backend.calls_by_role["judge"] == 3 * 2 * 3  # each order: the ask and two re-asks


def test_the_tie_rule_random_is_seeded():
    import random

    picks = {decide_pair(0, "aware", "plain", "random", random.Random(s)).resolved for s in range(20)}
    assert picks == {"aware", "plain"}
    a = [decide_pair(0, None, "plain", "random", random.Random(7)).resolved for _ in range(3)]
    assert len(set(a)) == 1
    p = decide_pair(0, "plain", "plain", "aware", random.Random(0))
    assert p.outcome == "plain" and p.resolved is None and p.winner == "plain"


def test_the_continuation_is_seeded_and_histories_mix_preferred_and_rejected(tmp_path):
    personas = tmp_path / "p.jsonl"
    write_personas(personas, 4)
    a = run_generate(personas, tmp_path / "a", scripted_backend(), turns=6, seed=5)
    b = run_generate(personas, tmp_path / "b", scripted_backend(), turns=6, seed=5)
    c = run_generate(personas, tmp_path / "c", scripted_backend(), turns=6, seed=6)
    chosen = lambda d: {k: [t["chosen_index"] for t in v] for k, v in turns_of(d).items()}  # noqa: E731
    assert chosen(tmp_path / "a") == chosen(tmp_path / "b")
    assert chosen(tmp_path / "a") != chosen(tmp_path / "c")
    flat = [i for v in chosen(tmp_path / "a").values() for i in v]
    assert 0 in flat and 1 in flat  # both branches continue the dialogues
    assert a.judge["continued_preferred"] == flat.count(0)
    # the next turn's prompts hold the continuation that was chosen (the realised history)
    backend = scripted_backend()
    run_generate(personas, tmp_path / "d", backend, turns=6, seed=5)
    recs = turns_of(tmp_path / "d")
    for conv, ts in recs.items():
        for t in ts[1:]:
            prev = ts[t["turn"] - 1]
            user_req = next(r for r in backend.requests_for("user") if r.key == f"{conv}/{t['turn']}/user")
            assert user_req.messages[-1]["content"].startswith(prev["assistant"])
            plain_req = next(r for r in backend.requests_for("responder.0") if r.key == f"{conv}/{t['turn']}/plain0")
            assert plain_req.messages[-2] == {"role": "assistant", "content": prev["assistant"]}
            aware_req = next(r for r in backend.requests_for("responder.0") if r.key == f"{conv}/{t['turn']}/aware")
            assert "Private note" in aware_req.messages[-1]["content"]
            assert "Private note" not in plain_req.messages[-1]["content"]


def test_several_responder_models_make_a_list_of_rejected_replies(tmp_path, personas_file):
    backend = scripted_backend("aware")
    res = run_generate(personas_file, tmp_path / "run", backend, turns=2, n_responders=2)
    recs = [t for ts in turns_of(tmp_path / "run").values() for t in ts]
    for r in recs:
        assert r["rejected"] == [f"PLAIN0 {r['turn']} {r['conversation_id']}", f"PLAIN1 {r['turn']} {r['conversation_id']}"]
        assert r["rejected_sources"] == ["plain.0", "plain.1"] and len(r["judge"]) == 2
        assert r["assistant"] in [r["preferred"], *r["rejected"]]
    assert {q.model for q in backend.requests_for("responder.1")} == {"resp-1"}
    assert backend.calls_by_role["responder.1"] == 6 and backend.calls_by_role["responder.0"] == 12
    assert backend.calls_by_role["judge"] == 6 * 4
    # a plain reply that wins becomes the preferred one; the aware reply is then the one rejected
    backend = scripted_backend("plain")
    run_generate(personas_file, tmp_path / "plain", backend, turns=1, n_responders=2)
    recs = [t for ts in turns_of(tmp_path / "plain").values() for t in ts]
    assert all(r["preferred_source"] == "plain.0" and r["rejected_sources"] == ["aware"] for r in recs)


def test_turns_are_atomic_under_injected_faults_and_resume_repeats_no_request(tmp_path, personas_file):
    convs = [json.loads(line)["id"] for line in personas_file.read_text().splitlines()]
    victim = f"{convs[1]}-0/1/judge0b"
    failing = [True]
    script = aloe_script("aware", fail=lambda r: failing[0] and r.key == victim)
    from prefkit.testing import ScriptedBackend

    backend = ScriptedBackend(script)
    res = run_generate(personas_file, tmp_path / "run", backend, turns=3)
    assert res.status == "incomplete"
    st = {c["id"]: (c["status"], c["turns"]) for c in res.conversations}
    assert st[f"{convs[1]}-0"] == ("failed", 1) and st[f"{convs[0]}-0"] == ("done", 3)
    recs = turns_of(tmp_path / "run")
    assert [t["turn"] for t in recs[f"{convs[1]}-0"]] == [0]  # the failed turn left nothing behind
    assert all(set(TurnRecord.__dataclass_fields__) <= set(t) for ts in recs.values() for t in ts)
    first_keys = {r.key for r in backend.requests}
    # resume: only the failed call and the turns after it are asked; nothing already answered is re-sent
    failing[0] = False
    backend.reset()
    res2 = run_generate(personas_file, tmp_path / "run", backend, turns=3)
    assert res2.status == "done" and res2.summary["turns_resumed"] == 7
    again = [r.key for r in backend.requests]
    assert set(again) & first_keys == {victim}
    assert all(k.startswith(f"{convs[1]}-0/") for k in again)
    assert len(again) == 1 + 6  # the failed judge call, then turn 2 (6 calls)
    assert [t["turn"] for t in turns_of(tmp_path / "run")[f"{convs[1]}-0"]] == [0, 1, 2]
    # a third run makes no request at all
    backend.reset()
    run_generate(personas_file, tmp_path / "run", backend, turns=3)
    assert backend.call_count == 0


def test_a_user_who_breaks_character_is_asked_afresh(tmp_path):
    personas = tmp_path / "p.jsonl"
    write_personas(personas, 1)
    answers = ["As an AI language model, I cannot chat.", "*smiles*", "Hey, I bake bread all day!"]
    backend = scripted_backend("aware", user=lambda r: answers.pop(0) if answers else "More bread today.")
    res = run_generate(personas, tmp_path / "run", backend, turns=1, turn_attempts=3)
    assert res.status == "done"
    rec = next(iter(turns_of(tmp_path / "run").values()))[0]
    assert rec["user"] == "Hey, I bake bread all day!"
    keys = [r.key.split("/", 1)[1] for r in backend.requests_for("user")]
    assert keys == ["0/user", "0/user@2", "0/user@3"]
    failures = prefkit.Run.load(tmp_path / "run").failures(unresolved=False)
    assert [f["kind"] for f in failures] == ["rejected", "rejected"]


def test_dry_run_counts_calls_and_sends_nothing(tmp_path, personas_file):
    backend = scripted_backend()
    with backend.installed():
        r = cli("aloe", "generate", "--personas", str(personas_file), "--turns", "10", "--backend", "mock",
                "--responder-model", "mock:a", "--responder-model", "mock:b", "--dry-run", "--json",
                "-o", str(tmp_path / "never"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # per turn: user + extractor + aware + 2 plain + 2 x 2 judge = 9
    assert out["summary"]["calls"] == 3 * 10 * 9 and out["dry_run"] is True
    assert out["summary"]["roles"]["judge"]["requests"] == 3 * 10 * 4
    assert backend.call_count == 0 and not (tmp_path / "never").exists()


def test_the_cli_generates_resumes_and_reports(tmp_path, personas_file):
    backend = scripted_backend("first")
    args = ("aloe", "generate", "--personas", str(personas_file), "--turns", "2", "--conversations", "2",
            "--backend", "mock", "-o", str(tmp_path / "run"))
    with backend.installed():
        r = cli(*args)
        assert r.exit_code == 0, r.output
        text = " ".join(r.output.split())
        assert "first-slot share" in text and "4 (4 inconsistent, 0 unreadable)" in text
        n = backend.call_count
        assert n == 2 * 2 * 6
        again = cli(*args, "--json")
        assert again.exit_code == 0 and backend.call_count == n  # resumed: nothing asked again
        out = json.loads(again.stdout)
        assert out["summary"]["turns_resumed"] == 4 and out["judge"]["ties"] == 4
        lines = (tmp_path / "run" / "conversations.jsonl").read_text().splitlines()
        assert [len(json.loads(x)["turns"]) for x in lines] == [2, 2]
        bad = cli("aloe", "generate", "--turns", "2", "--backend", "mock")
        assert bad.exit_code == 2 and "--personas is required" in bad.output
        bad = cli("aloe", "generate", "--personas", str(personas_file), "--tie-rule", "coin", "--backend", "mock")
        assert bad.exit_code == 2 and "--tie-rule" in bad.output and "Traceback" not in bad.output


# ----------------------------------------------------------------------------- SIGKILL
def _server_script():
    """Deterministic answers over HTTP, from the prompt (so a resumed run sees the same conversation)."""
    import hashlib

    def h(req):
        return hashlib.sha1(json.dumps(req.messages, sort_keys=True).encode()).hexdigest()[:8]

    def responder(req):
        aware = "Private note" in req.messages[-1]["content"]
        return f"{'AWARE' if aware else 'PLAIN0'} {h(req)}"

    def judge(req):
        body = req.messages[-1]["content"]
        if "First reply" not in body:
            return "first"
        first = body.split("First reply:\n")[1]
        return "first" if first.startswith("AWARE") else "second"

    return (Script().on(model="user-model", reply=lambda r: f"message {h(r)}")
            .on(model="ext-model", reply="Profile: He is a baker.\nPersonality: None")
            .on(model="resp-model", reply=responder).on(model="judge-model", reply=judge))


def _key(req):
    import hashlib

    return f"{req.model}|{hashlib.sha1(json.dumps(req.messages, sort_keys=True).encode()).hexdigest()}"


def _spawn(url, personas, out, log):
    env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "test-key", "PREFKIT_NO_CLI_CACHE": "1"}
    cmd = [sys.executable, "-m", "prefkit", "aloe", "generate", "--personas", str(personas), "--turns", "5",
           "--backend", "openai", "--user-model", "user-model", "--extractor-model", "ext-model",
           "--responder-model", "resp-model", "--judge-model", "judge-model", "--no-cache", "--concurrency", "4",
           "--seed", "3", "--backoff-base", "0.01", "--backoff-max", "0.05", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def test_resume_after_sigkill_repeats_no_committed_request(tmp_path):
    personas = tmp_path / "p.jsonl"
    write_personas(personas, 6)
    with FakeOpenAIServer(_server_script(), key_fn=_key, latency=0.03, faults={"429": 0.05, "500": 0.05, "drop": 0.03},
                          retry_after=0.02, max_faults_per_key=2, seed=4) as server:
        out = tmp_path / "killed"
        results = out / "results.jsonl"
        with open(tmp_path / "log1", "w") as log:
            proc = _spawn(server.url, personas, out, log)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                n = sum(1 for line in open(results) if '"kind": "turn"' in line) if results.exists() else 0
                if n >= 8:
                    break
                assert proc.poll() is None, (tmp_path / "log1").read_text()
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        committed = sum(1 for line in open(results) if '"kind": "turn"' in line)
        assert 8 <= committed < 30
        drain = time.monotonic() + 10
        while server.in_flight and time.monotonic() < drain:
            time.sleep(0.01)
        time.sleep(0.05)
        answered_before = set(server.success_counts)
        with open(tmp_path / "log2", "w") as log:
            proc = _spawn(server.url, personas, out, log)
            assert proc.wait(timeout=120) == 0, (tmp_path / "log2").read_text()
        repeated = {k for k, c in server.success_counts.items() if c > 1}
        assert repeated <= answered_before and len(repeated) <= 4  # at most the calls in flight at the kill
        rows = prefkit.Run.load(out).results()
        keys = [r["key"] for r in rows if r["kind"] == "turn"]
        assert len(keys) == len(set(keys)) == 30  # every turn committed exactly once
        ref = tmp_path / "ref"
        with open(tmp_path / "log3", "w") as log:
            proc = _spawn(server.url, personas, ref, log)
            assert proc.wait(timeout=120) == 0, (tmp_path / "log3").read_text()
        assert sum(server.fault_counts.values()) > 5  # the calls met 429s, 500s and dropped connections
    assert read_turns(out) == read_turns(ref)  # the interrupted run equals an uninterrupted one


# ----------------------------------------------------------------------------- prompts
def test_the_simulator_sees_the_conversation_with_roles_flipped():
    from prefkit_aloe import prompts
    from prefkit_aloe.pools import eval_personas

    p = eval_personas()[0]
    first = prompts.user_turn_messages(p, [])
    assert [m["role"] for m in first] == ["system", "user"] and p.profile in first[0]["content"]
    assert p.personality in first[0]["content"] and "Never say" in first[0]["content"]
    later = prompts.user_turn_messages(p, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}])
    assert [(m["role"], m["content"][:6]) for m in later[1:]] == [("user", "(The c"), ("assistant", "hi"), ("user", "hello!")]
    assert "at most 3 sentences" in later[-1]["content"]
    with pytest.raises(prefkit.UsageError):
        prompts.user_turn_messages(p, [{"role": "user", "content": "hi"}])  # must end with the bot's reply


@pytest.mark.parametrize("raw,clean", [
    ('User: "*waves* Hey, long day at the bakery!"', "Hey, long day at the bakery!"),
    ("  Me: I just got back from a run.  ", "I just got back from a run."),
    ("**A:** Guess what my cat did today?", "Guess what my cat did today?"),
    ("I love role-playing games with my friends on Fridays.", "I love role-playing games with my friends on Fridays."),
])
def test_user_messages_are_cleaned(raw, clean):
    from prefkit_aloe.prompts import clean_user_message

    assert clean_user_message(raw) == clean


@pytest.mark.parametrize("raw", ["*sighs*", "   ", "As an AI language model I can't.", "I am role-playing a baker.",
                                 "Hi! I'm an AI assistant, how can I help?"])
def test_unusable_user_messages_reject_the_turn(raw):
    from prefkit_aloe.prompts import clean_user_message

    with pytest.raises(prefkit.Reject):
        clean_user_message(raw)


def test_the_extractors_two_lines_are_read_tolerantly():
    from prefkit_aloe.prompts import parse_inferred, trim_unfinished

    assert parse_inferred("Profile: He is a chef.\nPersonality: He is sarcastic.") == {
        "profile": "He is a chef.", "personality": "He is sarcastic."}
    assert parse_inferred("- **Profile:** She bakes.\n- **Personalities:** None") == {
        "profile": "She bakes.", "personality": "None"}
    assert parse_inferred("Profile: He is a chef who") == {"profile": "He is a chef who", "personality": "None"}
    assert parse_inferred("I cannot tell.") is None
    assert trim_unfinished("I bake. I also like to") == "I bake." and trim_unfinished("no end") == "no end"


def test_per_role_settings_are_part_of_the_run_identity_and_the_card(tmp_path, personas_file):
    from prefkit_aloe.export import ExportConfig, export
    from prefkit_aloe.generate import GenerateConfig, generate

    def roles(judge_tokens):
        return prefkit.Roles.from_specs(
            {"user": "mock:u", "extractor": "mock:e", "responder": ["mock:r"],
             "judge": prefkit.RoleSpec(backend="mock", model="j", max_tokens=judge_tokens)},
            prefkit.BackendOptions(backend="mock", cache=False), default_backend="mock")

    cfg = GenerateConfig(personas=str(personas_file), turns=1)
    res = generate(cfg, roles(16), output_dir=str(tmp_path / "g"), progress=False,
                   backends={"mock": scripted_backend()})
    assert res.status == "done"
    with pytest.raises(prefkit.UsageError, match="other settings"):
        generate(cfg, roles(8), output_dir=str(tmp_path / "g"), progress=False, backends={"mock": scripted_backend()})
    export(str(tmp_path / "g"), ExportConfig(), output_dir=str(tmp_path / "x"))
    card = (tmp_path / "x" / "README.md").read_text()
    assert '"max_new": 16' in card and "| judge | `mock:j` |" in card


def test_a_prefilled_extractor_continues_profile_and_is_read(tmp_path, personas_file):
    """--extractor-prefill on: the request ends with the answer prefix 'Profile:'; the continuation is read."""
    def extractor(req):
        if req.messages[-1] == {"role": "assistant", "content": "Profile:"}:
            return " He is a chess player.\nPersonality: None"
        return "no prefix seen"

    script = Script().on("extractor", reply=extractor)  # checked before the shared script's rules
    script.rules += aloe_script().rules
    backend = ScriptedBackend(script)
    res = run_generate(personas_file, tmp_path / "run", backend, turns=2, extractor_prefill="on")
    assert res.status == "done"
    recs = [t for ts in turns_of(tmp_path / "run").values() for t in ts]
    assert recs and all(TurnRecord.from_dict(t).inferred == {"profile": "He is a chess player.", "personality": "None"}
                        for t in recs)
    # auto (the default) prefills only a local hf extractor: the mock extractor is asked plainly
    plain = scripted_backend()
    run_generate(personas_file, tmp_path / "run2", plain, turns=1)
    assert all(r.messages[-1]["role"] == "user" for r in plain.requests_for("extractor"))


def test_the_conversation_is_sampled_and_a_run_grows_in_place(tmp_path, personas_file):
    """User and responders sample at T=1 (the reference's API default) unless given; extractor and judge stay
    greedy. Re-running with a larger --conversations keeps the committed ones and asks only the new one."""
    backend = scripted_backend()
    res = run_generate(personas_file, tmp_path / "run", backend, turns=2, conversations=1)
    assert res.status == "done" and len(res.conversations) == 1
    temps = {role: {r.temperature for r in backend.requests if r.meta["role"].split(".")[0] == role}
             for role in ("user", "responder", "extractor", "judge")}
    assert temps["user"] == {1.0} and temps["responder"] == {1.0}
    assert temps["extractor"] == {0.0} and temps["judge"] == {0.0}  # the engine default: greedy
    before = len(backend.requests)
    res = run_generate(personas_file, tmp_path / "run", backend, turns=2, conversations=2)
    assert res.status == "done" and len(res.conversations) == 2
    new = backend.requests[before:]
    assert new and {r.meta["conversation"] for r in new} == {res.conversations[1]["id"]}


def test_random_tie_draws_come_from_the_run_seed(tmp_path, personas_file):
    """--tie-rule random through the engine's per-conversation RNG: the same --seed gives the same draws in a
    fresh run; another seed gives other draws (12 inconsistent pairs: 2^-12 odds of a false pass)."""
    def draws(name, seed):
        run_generate(personas_file, tmp_path / name, scripted_backend("first"), turns=4, tie_rule="random",
                     seed=seed)
        recs = sorted((t for ts in turns_of(tmp_path / name).values() for t in ts),
                      key=lambda r: (r["conversation_id"], r["turn"]))
        assert len(recs) == 12 and all(r["tie"] for r in recs)
        return [r["preferred"].split()[0] for r in recs]

    a, b, c = draws("a", 3), draws("b", 3), draws("c", 4)
    assert a == b and set(a) == {"AWARE", "PLAIN0"}
    assert a != c


def test_prefill_modes_are_checked_and_the_prefix_is_restored_once():
    from prefkit_aloe import prompts
    from prefkit_aloe.generate import GenerateConfig

    with pytest.raises(prefkit.UsageError, match="--extractor-prefill must be auto, on or off"):
        GenerateConfig(personas="personas.jsonl", extractor_prefill="maybe").check()
    assert prompts.prefill_wanted("auto", "hf") and not prompts.prefill_wanted("auto", "openai")
    assert prompts.prefill_wanted("on", "openai") and not prompts.prefill_wanted("off", "hf")
    assert prompts.restore_prefix("Profile:", " He is a baker.") == "Profile: He is a baker."
    assert prompts.restore_prefix("Profile:", "**Profile:** He is a baker.") == "**Profile:** He is a baker."
    assert prompts.restore_prefix("Score:", "score: 4") == "score: 4"  # a re-ask's answer carries its own label
