"""compred judge: joined on post_id (mismatch errors count the rows), both orders, win rates, per subreddit."""

import json

import pytest

import prefkit
from prefkit_compred.evaluate import join_outputs, judge, JudgeConfig, report

KEY_ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key"}


def _outputs(path, ids, subs, tag):
    path.write_text("".join(json.dumps({"post_id": i, "subreddit": s, "post": f"Post {i}\nbody",
                                        "response": f"{tag} answer to {i}", "context": tag}) + "\n"
                            for i, s in zip(ids, subs)))
    return str(path)


def test_join_mismatch_is_an_error_that_counts(tmp_path):
    a = [{"post_id": str(i), "subreddit": "x", "response": "a"} for i in range(5)]
    b = [{"post_id": str(i), "subreddit": "x", "response": "b"} for i in range(2, 8)]
    with pytest.raises(prefkit.UsageError, match=r"2 of A's 5 posts are missing from B and 3 of B's 6"):
        join_outputs(a, b)
    pairs, counts = join_outputs(a, b, intersect=True)
    assert [x["post_id"] for x, _ in pairs] == ["2", "3", "4"] and counts["only_a"] == 2 and counts["only_b"] == 3
    with pytest.raises(prefkit.UsageError, match="subreddit"):
        join_outputs(a, [{**r, "subreddit": "y"} for r in a])


def test_judge_against_fake_server(fake_openai_server, tmp_path, monkeypatch, prefkit_home):
    for k, v in KEY_ENV.items():
        monkeypatch.setenv(k, v)
    ids = [f"p{i}" for i in range(8)]
    subs = ["investing"] * 4 + ["personalfinance"] * 4
    a = _outputs(tmp_path / "a.jsonl", ids, subs, "none")
    b = _outputs(tmp_path / "b.jsonl", list(reversed(ids)), list(reversed(subs)), "subreddit")
    seen = []

    def responder(req):
        text = req.prompt
        seen.append(text)
        # prefer the "subreddit" answer on investing posts, the "none" answer elsewhere; position-free
        first = text.index("[Response A]")
        resp_a = text[first:text.index("[Response B]")]
        want = "subreddit" if "r/investing" in text else "none"
        return "Assessment.\n[RESULT] " + ("A" if want in resp_a else "B")

    fake_openai_server.responder = responder
    llm = prefkit.BackendOptions(backend="openai", base_url=fake_openai_server.url, model="judge-model", cache=False)
    res = judge(a, b, JudgeConfig(bootstrap=200), llm, output_dir=str(tmp_path / "j"), progress=False)
    assert len(seen) == 16                                     # both orders of 8 posts
    assert all("r/investing" in t or "r/personalfinance" in t for t in seen)   # the judge sees the subreddit
    assert all("Post p" in t for t in seen)                                   # ... and the post
    per = res["per_subreddit"]
    assert per["investing"]["B"] == 4 and per["investing"]["win_rate"] == 1.0
    assert per["personalfinance"]["A"] == 4 and per["personalfinance"]["win_rate"] == 0.0
    o = res["overall"]
    assert (o["win_rate"], o["win_rate_ties_half"], o["n"]) == (0.5, 0.5, 8)
    assert o["win_rate_ci"] is not None and res["plot"]
    assert res["counts"]["judged"] == 8 and res["counts"]["not_judged_limit"] == 0
    # an explicit --limit judges fewer and says so; a mismatch fails before any request
    res2 = judge(a, b, JudgeConfig(limit=3, bootstrap=0), llm, output_dir=str(tmp_path / "j2"), progress=False)
    assert res2["counts"]["judged"] == 3 and res2["counts"]["not_judged_limit"] == 5
    c = _outputs(tmp_path / "c.jsonl", ids[:6], subs[:6], "subreddit")
    n = len(seen)
    with pytest.raises(prefkit.UsageError, match="2 of A's 8 posts are missing"):
        judge(a, c, JudgeConfig(), llm, output_dir=str(tmp_path / "j3"), progress=False)
    assert len(seen) == n
    rep = report([res["run"]], output=str(tmp_path / "rep.png"))
    assert rep["rows"][0]["value"] == 0.5 and rep["rows"][0]["comparison"] == "subreddit vs none"
