"""Rubrics (built-in, files, plugins) and the prompts built from them."""

import json

import pytest

import prefkit
from prefkit.errors import UsageError
from prefkit.judging import Rubric, get_rubric, pairwise_messages, reask_message, resolve_format, score_messages


def test_builtin_rubrics_are_registered():
    q, p = get_rubric("quality"), get_rubric("personalization")
    assert not q.uses_persona and p.uses_persona
    assert q.scale == (1, 5) and p.scale == (1, 5)
    assert "persona" in p.criteria
    with pytest.raises(UsageError, match="unknown rubric 'nope'.*personalization.*quality"):
        get_rubric("nope")


def test_rubric_files(tmp_path):
    y = tmp_path / "concise.yaml"
    y.write_text("name: concise\ncriteria: Is the response short?\nscore_descriptions:\n  1: long\n  2: short\n")
    r = get_rubric(str(y))
    assert r.name == "concise" and r.score_descriptions == {1: "long", 2: "short"} and r.scale == (1, 2)
    j = tmp_path / "j.json"
    j.write_text(json.dumps({"criteria": "Fits the persona?", "uses_persona": True, "score_descriptions": ["a", "b", "c"]}))
    r = get_rubric(j)
    assert r.name == "j" and r.uses_persona and r.score_descriptions == {1: "a", 2: "b", 3: "c"}
    t = tmp_path / "friendly.txt"
    t.write_text("Is the response friendly to the persona?\nScore 1: rude\nScore 2: neutral\nScore 3: warm\n")
    r = get_rubric(str(t))
    assert r.name == "friendly" and r.criteria == "Is the response friendly to the persona?"
    assert r.score_descriptions == {1: "rude", 2: "neutral", 3: "warm"} and r.uses_persona
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncriterion: typo\n")
    with pytest.raises(UsageError, match="unknown field.*criterion"):
        get_rubric(bad)
    with pytest.raises(UsageError, match="no such rubric file"):
        get_rubric(str(tmp_path / "missing.yaml"))


def test_plugin_rubric():
    from prefkit.testing import registered_plugin

    class Plugin:
        @prefkit.hookimpl
        def register_rubrics(self, register):
            register(Rubric("upvotes", "Would this community upvote the response?"))

    with registered_plugin(Plugin(), "rubric-plugin"):
        assert get_rubric("upvotes").criteria.startswith("Would this community")


def test_resolve_format():
    assert resolve_format("auto", "prometheus-eval/prometheus-7b-v2.0") == "prometheus"
    assert resolve_format("auto", "gpt-4o") == "chat"
    assert resolve_format("chat", "prometheus-7b") == "chat"
    with pytest.raises(UsageError):
        resolve_format("fancy", None)


def test_prometheus_pairwise_prompt():
    r = get_rubric("personalization")
    msgs = pairwise_messages("How do I bake bread?", "Use flour.", "Knead and bake.", r, fmt="prometheus",
                             persona="The user is a beginner.", reference="Mix, knead, bake.")
    assert len(msgs) == 1 and msgs[0]["role"] == "user"  # the system text is folded in
    text = msgs[0]["content"]
    for part in ("###Task Description:", "###Instruction:\nHow do I bake bread?", "###Persona:\nThe user is a beginner.",
                 "###Response A:\nUse flour.", "###Response B:\nKnead and bake.", "###Reference Answer:\nMix, knead, bake.",
                 "###Score Rubric:\n[" + r.criteria + "]", "[RESULT]"):
        assert part in text
    assert text.rstrip().endswith("###Feedback:")
    assert text.index("###Response A") < text.index("###Response B")


def test_chat_prompts():
    q = get_rubric("quality")
    msgs = pairwise_messages("Q?", "first", "second", q, fmt="chat")
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "[Response A]\nfirst\n[End of Response A]" in user and "[User persona]" not in user
    assert '"[RESULT] A"' in user and "tie" not in user
    assert '"[RESULT] tie"' in pairwise_messages("Q?", "a", "b", q, fmt="chat", allow_tie=True)[1]["content"]
    s = score_messages("Q?", "resp", q, fmt="chat", low=1, high=5, reference="ref")[1]["content"]
    assert "Score 5:" in s and "[Reference answer (would score 5)]\nref" in s
    s = score_messages("Q?", "resp", q, fmt="prometheus", low=1, high=5)[0]["content"]
    assert "###Score Rubrics:\n[" in s and "Score 1:" in s and "Reference Answer" not in s
    # a scale the descriptions do not cover: no descriptions
    s = score_messages("Q?", "resp", q, fmt="chat", low=1, high=10)[1]["content"]
    assert "Score 1:" not in s and "from 1 to 10" in s
    assert "[RESULT] N" in reask_message("score", low=1, high=10)["content"]
    assert "[RESULT] A" in reask_message("pairwise")["content"]


def test_public_api_names():
    import prefkit.judging as judging

    for name in ("Rubric", "get_rubric", "judge_pairwise", "judge_score", "win_rate"):
        assert getattr(prefkit, name) is getattr(judging, name)
    assert prefkit.plots.bar_chart is not None
    assert "JudgeOptions" in dir(judging) and "delta_pq" not in dir(judging)  # ΔPQ is the persona plugin's
    with pytest.raises(AttributeError):
        judging.nope  # noqa: B018
