"""judge_pairwise / judge_score through the real engine with the mock backend."""

import pytest

from prefkit.backends import BackendError, BackendOptions
from prefkit.errors import UsageError
from prefkit.judging import JudgeOptions, combine_orders, judge_pairwise, judge_score, win_rate
from prefkit.runs import Run

from .helpers import is_reask, prefer_longer, shown

MOCK = BackendOptions(backend="mock")


def _items(n=6):
    # B is longer for even keys, A is longer for odd keys
    return [{"key": f"k{i}", "instruction": f"question {i}",
             "response_a": "a" * (10 if i % 2 == 0 else 30), "response_b": "b" * 20} for i in range(n)]


@pytest.mark.parametrize("ab,ba,expected", [
    ("A", "A", ("A", True)), ("B", "B", ("B", True)), ("A", "B", ("tie", False)), ("B", "A", ("tie", False)),
    ("tie", "tie", ("tie", True)), ("A", "tie", ("tie", False)), (None, "A", ("failed", None)),
    ("B", None, ("failed", None)), (None, None, ("failed", None)),
])
def test_combine_orders(ab, ba, expected):
    assert combine_orders(ab, ba) == expected


def test_consistent_judge(mock_backend, prefkit_home):
    mock_backend.responder = lambda req: prefer_longer(req.messages)
    verdicts = judge_pairwise(_items(), "quality", MOCK, progress=False)
    assert [v["winner"] for v in verdicts] == ["B", "A"] * 3
    assert all(v["consistent"] for v in verdicts)
    assert mock_backend.call_count == 12  # both orders, once each
    # the swapped order really showed B first
    firsts = {shown(r.messages)[0] for r in mock_backend.requests if r.meta["conversation"] == "k0"}
    assert firsts == {"a" * 10, "b" * 20}
    v = verdicts[0]
    assert v["verdict_ab"] == "B" and v["verdict_ba"] == "B" and v["outputs_ba"][0].endswith("[RESULT] A")
    assert (v["len_a"], v["len_b"]) == (10, 20)


def test_position_biased_judge_gives_ties(mock_backend, prefkit_home):
    mock_backend.responder = lambda req: "Feedback: The first one. [RESULT] A"
    verdicts = judge_pairwise(_items(), "quality", MOCK, progress=False)
    assert {v["winner"] for v in verdicts} == {"tie"}
    assert all(v["verdict_ab"] == "A" and v["verdict_ba"] == "B" and v["consistent"] is False for v in verdicts)
    m = win_rate(verdicts, bootstrap=0)
    assert m["consistency_rate"] == 0.0 and m["win_rate"] is None and m["win_rate_ties_half"] == 0.5


def test_bounded_reask_then_verdict(mock_backend, prefkit_home):
    def responder(req):
        if is_reask(req.messages):
            return "[RESULT] B"
        return "Both have merits; hard to say."
    mock_backend.responder = responder
    verdicts = judge_pairwise(_items(2), "quality", MOCK, progress=False)
    # AB: B; BA: "B" shown = A original → inconsistent → tie
    assert [v["winner"] for v in verdicts] == ["tie", "tie"]
    assert all(v["reasks_ab"] == 1 and v["reasks_ba"] == 1 for v in verdicts)
    assert mock_backend.call_count == 8
    reask = next(r for r in mock_backend.requests if ".reask" in r.key)
    assert [m["role"] for m in reask.messages][-2:] == ["assistant", "user"]


def test_unparseable_counts_as_failed_never_a_win(mock_backend, prefkit_home):
    mock_backend.responder = lambda req: "I refuse to pick."
    verdicts = judge_pairwise(_items(3), "quality", MOCK, judge=JudgeOptions(reasks=2), progress=False)
    assert [v["winner"] for v in verdicts] == ["failed"] * 3
    assert mock_backend.call_count == 3 * 2 * 3  # 3 items x 2 orders x (1 + 2 re-asks)
    m = win_rate(verdicts, bootstrap=0)
    assert m["failed"] == 3 and m["A"] == m["B"] == 0 and m["win_rate"] is None
    mock_backend.reset()
    judge_pairwise(_items(1), "quality", MOCK, judge=JudgeOptions(reasks=0), progress=False)
    assert mock_backend.call_count == 2


def test_run_store_resume_and_backend_failures(mock_backend, prefkit_home, tmp_path):
    broken = {"k3"}

    def responder(req):
        if req.meta["conversation"] in broken and req.key.endswith("/ba"):
            raise BackendError("bad request", status=400)
        return prefer_longer(req.messages)
    mock_backend.responder = responder
    run = Run.open("judge pairwise", output_dir=tmp_path / "run", identity={"t": 1}, argv=["t"])
    verdicts = judge_pairwise(_items(), "quality", MOCK, run=run, progress=False)
    assert verdicts[3]["winner"] == "error" and "bad request" in verdicts[3]["error"]
    assert len(run.results()) == 5 and [f["key"] for f in run.failures()] == ["k3"]
    assert run.metrics()["llm"]["sent"] == 12
    run.finish()
    # resume: only the failed item is judged again
    broken.clear()
    mock_backend.reset()
    run = Run.open("judge pairwise", output_dir=tmp_path / "run", identity={"t": 1}, argv=["t"])
    verdicts = judge_pairwise(_items(), "quality", MOCK, run=run, progress=False)
    assert sorted({r.meta["conversation"] for r in mock_backend.requests}) == ["k3"]
    assert [v["winner"] for v in verdicts] == ["B", "A"] * 3
    assert len(run.results()) == 6 and run.failures() == []
    # a finished run makes no requests
    mock_backend.reset()
    judge_pairwise(_items(), "quality", MOCK, run=run, progress=False)
    assert mock_backend.call_count == 0
    run.finish()


def test_persona_is_required_by_the_personalization_rubric(mock_backend, prefkit_home):
    with pytest.raises(UsageError, match="2 of 2 items have none"):
        judge_pairwise(_items(2), "personalization", MOCK, progress=False)
    mock_backend.responder = lambda req: prefer_longer(req.messages)
    items = [dict(it, persona="The user is in a hurry.") for it in _items(2)]
    judge_pairwise(items, "personalization", MOCK, progress=False)
    assert all("The user is in a hurry." in r.messages[1]["content"] for r in mock_backend.requests)


def test_bad_items(prefkit_home):
    with pytest.raises(UsageError, match="no 'key'"):
        judge_pairwise([{"instruction": "q", "response_a": "a", "response_b": "b"}], "quality", MOCK)
    with pytest.raises(UsageError, match="share the key"):
        judge_pairwise([{"key": 1, "instruction": "q", "response_a": "a", "response_b": "b"}] * 2, "quality", MOCK)
    with pytest.raises(UsageError, match="has no 'response_b'"):
        judge_pairwise([{"key": 1, "instruction": "q", "response_a": "a"}], "quality", MOCK)


def test_judge_score(mock_backend, prefkit_home):
    def responder(req):
        text = req.messages[-1]["content"]
        if is_reask(req.messages):
            return "[RESULT] 2"
        if "resp-good" in text:
            assert "Score 5:" in text and "the reference" in text
            return "Feedback: Matches the reference. [RESULT] 5"
        if "resp-odd" in text:
            return "It is fine I guess, 8/10"
        return "Feedback: Weak. Score: 1"
    mock_backend.responder = responder
    items = [{"key": "g", "instruction": "q", "response": "resp-good", "reference": "the reference"},
             {"key": "o", "instruction": "q", "response": "resp-odd"},
             {"key": "w", "instruction": "q", "response": "resp-weak"}]
    out = judge_score(items, "quality", MOCK, progress=False)
    assert [(r["key"], r["score"], r["reasks"], r["status"]) for r in out] == [
        ("g", 5, 0, "ok"), ("o", 2, 1, "ok"), ("w", 1, 0, "ok")]
    assert out[0]["feedback"] == "Matches the reference."
    mock_backend.responder = lambda req: "no idea"
    out = judge_score(items[:1], "quality", MOCK, judge=JudgeOptions(reasks=1), progress=False)
    assert out[0]["score"] is None and out[0]["status"] == "failed"
    with pytest.raises(UsageError):
        judge_score(items, "quality", MOCK, low=5, high=1)


def test_registered_judges(mock_backend, prefkit_home):
    from prefkit.plugins import registry

    mock_backend.responder = lambda req: prefer_longer(req.messages)
    judge = registry("judges").get("pairwise")
    assert [v["winner"] for v in judge(_items(2), "quality", MOCK, progress=False)] == ["B", "A"]
    assert registry("judges").get("absolute").name == "score"
