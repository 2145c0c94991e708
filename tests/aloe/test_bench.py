"""The ALOE benchmark on scripted fake roles (and the tiny model as the model under test).

Scores parsed and re-asked, AL/IR from the scripted scores, resume without repeated requests (also
after a failed turn), the no-interaction baseline drops the history, the judge sees the history
only with --with-history, compare gives paired differences, and the hf backend's reply is exactly
the new tokens of a greedy generation.
"""

from __future__ import annotations

import json
import re

import pytest

import prefkit
from prefkit.testing import ScriptedBackend
from prefkit_aloe import bench


@pytest.fixture(autouse=True)
def _isolated(prefkit_home, monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(prefkit_home)
    yield prefkit_home


def engine(**kw):
    base = dict(backend="mock", cache=False, backoff_base=0.01, backoff_max=0.02, max_retries=1)
    base.update(kw)
    return prefkit.BackendOptions(**base)


def roles(**kw):
    return prefkit.Roles.from_specs({"user": "mock:sim", "judge": "mock:judge"}, engine=engine(**kw))


def turn_of(messages) -> int:
    """The simulated user's chat: system, opening, then (own message, bot reply) pairs."""
    return (len(messages) - 2) // 2 + 1


def user_reply(req):
    return f"*waves* turn {turn_of(req.messages)}: I walked my dog again today."


def judge_reply(req):
    """Score = the turn number; turn 2's first answer is unreadable (re-asked once)."""
    k = int(re.search(r"turn (\d+):", req.messages[1]["content"]).group(1))
    if k == 2 and len(req.messages) == 2:
        return "Hard to say, it is a nice reply."
    return f"Warm and on topic. Score: {k}/5" if k % 2 else f"Score: {k}"


def script(**over):
    rules = {"user": user_reply, "model": lambda r: f"reply to {r.messages[-1]['content'][:12]}",
             "judge": judge_reply}
    rules.update(over)
    return ScriptedBackend(rules)


def config(**kw):
    base = dict(model=["mock:model-under-test"], personas=2, turns=3, plot=False)
    base.update(kw)
    return bench.BenchConfig(**base)


def run(tmp_path, cfg, backend, name="run", **kw):
    return bench.run_bench(cfg, roles(**kw), prefkit.RunOptions(output_dir=str(tmp_path / name)),
                           backends={"mock": backend}, progress=False)


def test_scores_are_parsed_reasked_and_summarised(tmp_path):
    b = script()
    res = run(tmp_path, config(), b)
    assert res["status"] == "done"
    s = res["models"]["model-under-test"]
    assert s["n"] == 2 and s["al"] == [1.0, 2.0, 3.0] and s["al_ci"] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert s["avg"] == pytest.approx(2.0) and s["ir"] == pytest.approx(1.0) and s["n_ir"] == pytest.approx(0.5)
    assert s["n_r2"] == pytest.approx(1.0)
    # 2 personas x 3 turns: one user and one model call each; judge once per turn + one re-ask at turn 2
    assert b.calls_by_role == {"user": 6, "model.0": 6, "judge": 8}
    assert res["counts"]["judge_reasks"] == 2
    reask = [r for r in b.requests_for("judge") if len(r.messages) == 4][0]
    assert reask.messages[-1]["content"] == bench.JUDGE_REASK and reask.messages[-1]["role"] == "user"
    assert all(r.messages[-1]["role"] == "user" for r in b.requests_for("judge"))  # a mock judge: no prefill
    rows = prefkit.Run.load(res["run"]).results()
    convs = [r for r in rows if r.get("kind") == "conversation"]
    assert sorted(c["persona_id"] for c in convs) == ["eval-00-0", "eval-01-0"]  # two profiles, not one
    assert convs[0]["scores"] == [1.0, 2.0, 3.0] and len(convs[0]["transcript"]) == 3
    # the simulated user's stage directions were stripped; user temperature defaults to 1
    assert convs[0]["transcript"][0]["user"] == "turn 1: I walked my dog again today."
    assert {r.temperature for r in b.requests_for("user")} == {1.0}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["bench"]["models"]["model-under-test"]["al"] \
        == [1.0, 2.0, 3.0]
    assert res["rows"][0]["AL1"] == "1.00±0.00" and res["rows"][0]["IR"] == "1.000"

    # resume: a finished run sends nothing and gives the same numbers
    b.reset()
    again = run(tmp_path, config(), b)
    assert b.call_count == 0 and again["models"] == res["models"]


def test_a_failed_turn_is_retried_on_resume_without_repeating_other_requests(tmp_path):
    failing = script(model=lambda r: (_ for _ in ()).throw(prefkit.BackendError("down", retryable=False))
                     if "turn 3" in r.messages[-1]["content"] else "fine")
    res = run(tmp_path, config(personas=1), failing)
    assert res["status"] == "incomplete" and res["counts"]["failed"] == 1
    assert res["models"]["model-under-test"]["n"] == 0  # not scored at every turn: left out
    b = script()
    res = run(tmp_path, config(personas=1), b)
    assert res["status"] == "done" and res["counts"]["turns_resumed"] == 2
    # turn 3's user message was stored before the model call failed: reused, not asked again
    assert b.calls_by_role == {"model.0": 1, "judge": 1}
    assert res["models"]["model-under-test"]["al"] == [1.0, 2.0, 3.0]


def test_no_interaction_drops_the_history_and_the_judge_sees_it_only_when_asked(tmp_path):
    b = script()
    run(tmp_path, config(personas=1), b, name="inter")
    sizes = [len(r.messages) for r in b.requests_for("model.0")]
    assert sizes == [1, 3, 5]  # the whole conversation so far
    assert all("conversation so far" not in r.messages[1]["content"] for r in b.requests_for("judge"))

    b = script()
    run(tmp_path, config(personas=1, interaction=False, with_history=True), b, name="alone")
    reqs = b.requests_for("model.0")
    assert [len(r.messages) for r in reqs] == [1, 1, 1]
    assert reqs[2].messages[0]["content"] == "turn 3: I walked my dog again today."
    # the simulated user still sees the whole conversation; the judge sees it with --with-history
    assert len(b.requests_for("user")[2].messages) == 6
    judge3 = [r for r in b.requests_for("judge") if "turn 3:" in r.messages[1]["content"]][0]
    assert "The conversation so far" in judge3.messages[1]["content"]
    assert "turn 1: I walked" in judge3.messages[1]["content"].split("The person's message")[0]


def test_compare_gives_curves_and_paired_differences(tmp_path):
    run(tmp_path, config(), script(), name="base")
    better = script(judge=lambda r: "Score: 5" if "turn 3:" in r.messages[1]["content"] else judge_reply(r))
    run(tmp_path, config(), better, name="tuned")
    res = bench.compare_runs([str(tmp_path / "base"), str(tmp_path / "tuned")], plot=True,
                             plot_to=str(tmp_path / "cmp.png"))
    assert res["baseline"] == "base" and list(res["models"]) == ["base", "tuned"]
    d = res["differences"]["tuned"]
    assert d["n"] == 2 and d["al_diff"] == [0.0, 0.0, 2.0] and d["avg_diff"] == pytest.approx(2 / 3)
    assert d["ir_diff"] == pytest.approx(1.0)  # slope of [0, 0, 2] is 1
    assert (tmp_path / "cmp.png").exists() and (tmp_path / "cmp.pdf").exists()
    with pytest.raises(prefkit.UsageError, match="not an `aloe bench` run"):
        prefkit.Run.open("other", output_dir=tmp_path / "other").close()
        bench.compare_runs([str(tmp_path / "other")])


def test_dry_run_counts_calls_and_sends_nothing(tmp_path):
    b = script()
    res = run(tmp_path, config(personas=3), b, dry_run=True)
    assert res["dry_run"] and res["calls"] == 3 * 3 * 3 and b.call_count == 0
    assert not (tmp_path / "run").exists()


def test_bad_input_is_a_usage_error(tmp_path):
    with pytest.raises(prefkit.UsageError, match="--model"):
        run(tmp_path, config(model=[]), script())
    with pytest.raises(prefkit.UsageError, match="only 100 personas"):
        run(tmp_path, config(personas=101), script())
    with pytest.raises(prefkit.UsageError, match="not a model directory"):
        bench.resolve_model_spec(f"hf:{tmp_path}")


def test_a_local_checkpoint_replies_with_its_new_tokens_only(tiny_model, tmp_path):
    """The model under test is hf:PATH; its stored reply is exactly the greedy new tokens, decoded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    b = script()
    res = run(tmp_path, config(model=[f"hf:{tiny_model}"], personas=1, turns=2, max_new_tokens=8), b)
    assert res["status"] == "done"
    rows = prefkit.Run.load(res["run"]).results()
    turn = [r for r in rows if r.get("kind") == "turn" and r["turn"] == 0][0]["record"]
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    text = tok.apply_chat_template([{"role": "user", "content": turn["user"]}], add_generation_prompt=True,
                                   tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    new = out[0, ids.shape[1]:].tolist()
    if tok.eos_token_id in new:
        new = new[:new.index(tok.eos_token_id)]
    assert turn["reply"] == tok.decode(new, skip_special_tokens=True)
    assert turn["user"] not in turn["reply"] and turn["reply_tokens"] <= 8
    assert res["model_specs"] == {"model": f"hf:{tiny_model}"}


def test_the_cli_says_what_is_missing_in_one_line(prefkit_cli):
    r = prefkit_cli("aloe", "bench", "--user-model", "mock:u", "--judge-model", "mock:j", "--personas", "2")
    assert r.exit_code == 2 and "Error: give --model" in r.stderr and "Traceback" not in r.output
    r = prefkit_cli("aloe", "bench", "--model", "mock:m", "--user-model", "mock:u", "--judge-model", "mock:j",
                    "--personas", "3", "--turns", "2", "--dry-run", "--json")
    assert r.exit_code == 0 and r.json()["calls"] == 3 * 2 * 3


def test_seeds_are_separate_conversations_averaged_per_persona(tmp_path):
    b = script()
    res = run(tmp_path, config(personas=2, seeds=2, turns=2), b)
    rows = prefkit.Run.load(res["run"]).results()
    convs = sorted(r["conversation"] for r in rows if r.get("kind") == "conversation")
    assert convs == ["eval-00-0~s0", "eval-00-0~s1", "eval-01-0~s0", "eval-01-0~s1"]
    assert res["models"]["model-under-test"]["n"] == 2  # personas, not conversations
    # the simulated user is seeded per (conversation seed, turn): the two seeds differ at every turn
    seeds = {(turn_of(r.messages), r.seed) for r in b.requests_for("user")}
    assert len(seeds) == 4 and len({s for _, s in seeds}) == 4 and None not in {s for _, s in seeds}


def test_a_prefilled_judge_continues_score_and_is_parsed(tmp_path):
    """--judge-prefill on: the judge's answer starts after 'Score:' (a bare ' 4' is read as the score)."""
    b = script(judge=lambda r: " 4\n\nIt fits." if r.messages[-1] == {"role": "assistant", "content": "Score:"}
               else "no prefix seen")
    res = run(tmp_path, config(judge_prefill="on", turns=2), b)
    assert res["status"] == "done"
    assert res["models"]["model-under-test"]["al"] == [4.0, 4.0]
    assert res["counts"]["judge_reasks"] == 0
    assert bench.judge_prefilled(config(), prefkit.RoleSpec(backend="hf")) is True  # auto: local hf judges only
    assert bench.judge_prefilled(config(), prefkit.RoleSpec(backend="openai")) is False
    assert bench.judge_prefilled(config(judge_prefill="off"), prefkit.RoleSpec(backend="hf")) is False
    with pytest.raises(prefkit.UsageError, match="--judge-prefill"):
        config(judge_prefill="maybe").check()
