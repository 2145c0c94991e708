"""`prefkit judge pairwise|score` and `prefkit winrate` end to end (fake OpenAI-compatible server, mock backend)."""

import json

import pytest

from .helpers import is_reask, prefer_longer

KEY_ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key"}


def _paper(persona_data, name):
    return str(persona_data / "paper-outputs" / "BeaverTails" / f"{name}.json")


@pytest.mark.slow
def test_judge_pairwise_against_fake_server(persona_data, prefkit_cli, fake_openai_server, tmp_path):
    def responder(req):
        if is_reask(req.messages):
            return "[RESULT] A"
        if "carbon footprint" in req.messages[0]["content"]:
            return "Feedback: I am not sure."  # forces a re-ask for this pair
        return prefer_longer(req.messages)

    fake_openai_server.responder = responder
    a = _paper(persona_data, "dpo__train-none__infer-none")
    b = _paper(persona_data, "dpo__train-chosen__infer-gold-chosen")
    out = tmp_path / "run"
    args = ["judge", "pairwise", "--a", a, "--b", b, "--rubric", "quality", "--backend", "openai",
            "--base-url", fake_openai_server.url, "--model", "prometheus-eval/prometheus-7b-v2.0", "--limit", "12",
            "-o", str(out), "--bootstrap", "200", "--length-controlled", "--json"]
    r = prefkit_cli(*args, env=KEY_ENV)
    assert r.exit_code == 0, r.stderr
    data = r.json()
    m = data["metrics"]
    assert m["n"] == 12 and m["A"] + m["B"] + m["tie"] + m["failed"] == 12
    assert m["win_rate_ci"] is not None and "lc_win_rate" in m
    assert data["judge_format"] == "prometheus" and data["rubric"] == "quality"
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(int(x["key"]) for x in results) == list(range(12))
    # the judge saw clean text: no end tokens, no persona section (the core knows no method's prompt layout)
    bodies = fake_openai_server.bodies
    first = bodies[0]["messages"]
    assert len(first) == 1 and first[0]["role"] == "user"  # prometheus: one user message
    assert "<|end_of_text|>" not in first[0]["content"] and "###Persona:" not in first[0]["content"]
    # judged by length, both orders agree; the carbon-footprint pair was re-asked ("A" both times → tie)
    reasked = [x for x in results if x["reasks_ab"] or x["reasks_ba"]]
    assert len(reasked) == 1 and reasked[0]["winner"] == "tie" and reasked[0]["consistent"] is False
    for x in results:
        if x not in reasked:
            assert x["winner"] == ("A" if x["len_a"] >= x["len_b"] else "B") and x["consistent"]
    assert (out / "winrate.png").exists() and (out / "winrate-outcomes.pdf").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert "sk-test" not in (out / "manifest.json").read_text()

    # re-running resumes: nothing new is sent; a larger --limit judges only the new rows
    sent = fake_openai_server.request_count
    args.append("--no-plot")
    r = prefkit_cli(*args, env=KEY_ENV)
    assert r.exit_code == 0 and fake_openai_server.request_count == sent
    args[args.index("--limit") + 1] = "15"
    r = prefkit_cli(*args, "--no-cache", env=KEY_ENV)
    assert r.exit_code == 0, r.stderr
    assert fake_openai_server.request_count == sent + 6
    assert r.json()["metrics"]["n"] == 15

    # prefkit winrate on the run
    r = prefkit_cli("winrate", str(out), "--json", "--bootstrap", "300", "--bootstrap-seed", "1", "--length-controlled",
                    "--plot-to", str(tmp_path / "wr.png"))
    assert r.exit_code == 0, r.stderr
    w = r.json()["runs"][0]
    assert w["kind"] == "pairwise" and w["metrics"]["n"] == 15 and w["rubric"] == "quality"
    assert w["label_a"] == "dpo__train-none__infer-none"
    assert (tmp_path / "wr.png").exists() and (tmp_path / "wr.pdf").exists()
    assert (tmp_path / "wr-outcomes.png").exists()
    r = prefkit_cli("winrate", str(out))
    assert r.exit_code == 0 and "win rate of B, ties excluded" in r.stdout


def test_key_mismatch_errors(prefkit_cli, tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps([{"prompt": "q", "response": "r"}] * 5))
    b.write_text(json.dumps([{"prompt": "q", "response": "r"}] * 3))
    r = prefkit_cli("judge", "pairwise", "--a", str(a), "--b", str(b), "--backend", "mock", "-o", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert "2 of 5 rows of A are missing from B" in r.stderr and "0 of 3 rows of B are missing from A" in r.stderr
    assert "Traceback" not in r.stderr
    r = prefkit_cli("judge", "pairwise", "--a", str(a), "--b", str(tmp_path / "nope.json"), "--backend", "mock")
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = prefkit_cli("judge", "pairwise", "--a", str(a), "--b", str(a), "--rubric", "personalization",
                    "--backend", "mock", "-o", str(tmp_path / "p"))
    assert r.exit_code == 2 and "--persona-field" in r.stderr


def test_mock_backend_score_and_winrates(prefkit_cli, mock_backend, tmp_path):
    def responder(req):
        if is_reask(req.messages):
            return "[RESULT] 3"
        if any("[Response A]" in m["content"] for m in req.messages):
            return prefer_longer(req.messages)
        return "Feedback: decent. [RESULT] 4"

    mock_backend.responder = responder
    rows_a = [{"row_id": f"r{i}", "prompt": f"q{i}", "response": "short", "persona": "The user likes detail."}
              for i in range(8)]
    rows_b = [{"row_id": f"r{i}", "prompt": f"q{i}", "response": "a much longer answer" * (i % 3),
               "persona": "The user likes detail."} for i in reversed(range(8))]
    fa, fb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    fa.write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    fb.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    runs = []
    for rubric in ("personalization", "quality"):
        out = tmp_path / rubric
        r = prefkit_cli("judge", "pairwise", "--a", str(fa), "--b", str(fb), "--rubric", rubric, "--persona-field",
                        "persona", "--backend", "mock", "-o", str(out), "--bootstrap", "100", "--json")
        assert r.exit_code == 0, r.stderr
        m = r.json()["metrics"]
        # B is longer except for i % 3 == 0 (empty response)
        assert (m["A"], m["B"]) == (3, 5)
        runs.append(str(out))
    r = prefkit_cli("winrate", *runs, "--json", "--bootstrap", "100")
    assert r.exit_code == 0, r.stderr
    assert [e["metrics"]["win_rate"] for e in r.json()["runs"]] == [pytest.approx(5 / 8)] * 2
    assert "delta_pq" not in r.json()  # ΔPQ is the persona plugin's (prefkit tailor delta-pq)

    out = tmp_path / "score"
    r = prefkit_cli("judge", "score", "--input", str(fa), "--rubric", "quality", "--backend", "mock", "-o", str(out),
                    "--json", "--bootstrap", "50")
    assert r.exit_code == 0, r.stderr
    m = r.json()["metrics"]
    assert m["mean"] == 4.0 and m["n_scored"] == 8 and m["histogram"]["4"] == 8
    assert (out / "scores.png").exists()
    r = prefkit_cli("winrate", str(out), "--json")
    assert r.exit_code == 0 and r.json()["runs"][0]["kind"] == "score"


def test_dry_run_sends_nothing(prefkit_cli, mock_backend, tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps([{"prompt": "q", "response": "r"}] * 3))
    r = prefkit_cli("judge", "pairwise", "--a", str(f), "--b", str(f), "--backend", "mock", "--dry-run",
                    "-o", str(tmp_path / "d"))
    assert r.exit_code == 0, r.stderr
    assert mock_backend.call_count == 0 and "6 requests would be sent" in r.stderr


def test_rubrics_command(prefkit_cli):
    r = prefkit_cli("judge", "rubrics", "--json")
    assert r.exit_code == 0
    assert {x["name"] for x in r.json()} >= {"quality", "personalization"}
