"""Persona tailoring through the CLI: importing the paper's outputs, judging runs, bad input."""

from __future__ import annotations

import json
import re

import pytest

PAPER = "paper-outputs/BeaverTails/dpo__train-{}.json"


def overlap_judge(request):
    """A deterministic stand-in judge: personalization prefers the answer sharing more words with the persona,
    quality the longer answer. Reads the sections of the core judge's chat prompt."""
    text = request.messages[-1]["content"]
    if "[RESULT]" in text and "verdict" in text and "[Response A]" not in text:  # a re-ask
        return "[RESULT] A"
    a = re.search(r"\[Response A\]\n(.*?)\n\[End of Response A\]", text, re.S).group(1)
    b = re.search(r"\[Response B\]\n(.*?)\n\[End of Response B\]", text, re.S).group(1)
    persona = re.search(r"\[User persona\]\n(.*?)\n\[End of", text, re.S)
    if persona:
        words = set(re.findall(r"[a-z]{4,}", persona.group(1).lower()))
        sa, sb = (len(words & set(re.findall(r"[a-z]{4,}", x.lower()))) for x in (a, b))
    else:
        sa, sb = len(a), len(b)
    return f"Assessment.\n[RESULT] {'A' if sa > sb else 'B'}"


@pytest.fixture
def judge_backend():
    from prefkit.testing import MockBackend

    backend = MockBackend(responder=overlap_judge)
    with backend.installed():
        yield backend


def _import(cli, persona_data, name, *extra):
    r = cli("tailor", "import-outputs", str(persona_data / PAPER.format(name)), "--split", "BeaverTails",
            "--data-dir", str(persona_data), "--json", *extra)
    assert r.exit_code == 0, r.output
    return r.json()


def test_import_outputs_attaches_row_ids_and_resumes(prefkit_cli, persona_data):
    out = _import(prefkit_cli, persona_data, "chosen__infer-gold-rejected")
    assert out["imported"] == out["written"] == 499 and out["input_mismatches"] == 0
    assert out["training_type"] == "chosen" and out["inference_type"] == "gold-rejected" and out["method"] == "dpo"
    import prefkit

    run = prefkit.Run.load(out["run"])
    results = run.results()
    assert [r["row_id"] for r in results] == [str(i) for i in range(499)]
    first = results[0]
    assert first["response"].startswith("No, this is not true.") and "<|end_of_text|>" not in first["response"]
    assert first["persona"].startswith("The user is law-abiding")
    assert first["input"].endswith("\nResponse:") and first["eos"] is True
    # importing again writes nothing new
    again = _import(prefkit_cli, persona_data, "chosen__infer-gold-rejected")
    assert again["written"] == 0 and len(prefkit.Run.load(out["run"]).results()) == 499


def test_import_mnemonic_keeps_the_seed(prefkit_cli, persona_data):
    r = prefkit_cli("tailor", "import-outputs", str(persona_data / "paper-outputs/Mnemonic/dpo__train-none__infer-none.json"),
                    "-s", "mnemonic", "--data-dir", str(persona_data), "--json")
    assert r.exit_code == 0, r.output
    import prefkit

    first = prefkit.Run.load(r.json()["run"]).results()[0]
    assert first["response"].startswith('Negligible sounds like "neglectable,"')


def test_import_refuses_misordered_or_foreign_files(prefkit_cli, persona_data, tmp_path):
    items = json.loads((persona_data / PAPER.format("none__infer-none")).read_text())
    shuffled = tmp_path / "dpo__train-none__infer-none.json"
    shuffled.write_text(json.dumps([items[1], items[0], *items[2:]]))
    r = prefkit_cli("tailor", "import-outputs", str(shuffled), "-s", "BeaverTails", "--data-dir", str(persona_data))
    assert r.exit_code == 2
    assert "item 0 does not match row 0 of the BeaverTails test split" in r.stderr
    short = tmp_path / "short.json"
    short.write_text(json.dumps(items[:10]))
    r = prefkit_cli("tailor", "import-outputs", str(short), "-s", "BeaverTails", "-t", "none", "-i", "none",
                    "--data-dir", str(persona_data))
    assert r.exit_code == 2 and "has 10 items but the BeaverTails test split has 499 rows" in r.stderr
    r = prefkit_cli("tailor", "import-outputs", str(short), "-s", "BeaverTails", "--data-dir", str(persona_data))
    assert r.exit_code == 2 and "cannot tell the training and inference type" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"prompt": 1}')
    r = prefkit_cli("tailor", "import-outputs", str(bad), "-s", "BeaverTails", "-t", "none", "-i", "none",
                    "--data-dir", str(persona_data))
    assert r.exit_code == 2 and "expected a JSON array" in r.stderr
    # the Mnemonic file does not fit BeaverTails
    r = prefkit_cli("tailor", "import-outputs", str(persona_data / "paper-outputs/Mnemonic/dpo__train-none__infer-none.json"),
                    "-s", "BeaverTails", "--data-dir", str(persona_data))
    assert r.exit_code == 2 and "500 items but the BeaverTails test split has 499 rows" in r.stderr


def test_judge_two_paper_runs(prefkit_cli, persona_data, judge_backend, tmp_path):
    base = _import(prefkit_cli, persona_data, "none__infer-none")["run"]
    test = _import(prefkit_cli, persona_data, "chosen__infer-gold-chosen")["run"]
    out = tmp_path / "judge"
    r = prefkit_cli("tailor", "judge", base, test, "--backend", "mock", "--limit", "12", "--bootstrap", "200",
                    "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    rep = r.json()
    assert rep["persona_type"] == "gold-chosen" and rep["shared"] == 499 and rep["split"] == "BeaverTails"
    # the paper's personalization criterion is the default; ΔPQ pairs it with quality
    assert rep["roles"] == {"quality": "quality", "personalization": "tailoring-personalization"}
    q, p = rep["rubrics"]["quality"], rep["rubrics"]["tailoring-personalization"]
    assert q["n"] == p["n"] == 12 and q["failed"] == p["failed"] == 0
    assert q["test_wins"] + q["ties"] + q["base_wins"] == 12
    for v in (p, q):  # both conventions reported
        assert v["win_rate"] == pytest.approx(v["test_wins"] / (v["test_wins"] + v["base_wins"]))
        assert v["win_rate_ties_half"] == pytest.approx((v["test_wins"] + v["ties"] / 2) / 12)
    d = rep["delta_pq"]
    assert d["metric"] == "win_rate"  # the paper's: ties excluded
    assert d["delta_pq"] == pytest.approx(p["win_rate"] + q["win_rate"] - 1)
    assert d["delta_pq_ci"][0] <= d["delta_pq"] <= d["delta_pq_ci"][1]
    half = d["by_metric"]["win_rate_ties_half"]
    assert half["delta_pq"] == pytest.approx(p["win_rate_ties_half"] + q["win_rate_ties_half"] - 1)
    assert (out / "winrates.png").stat().st_size > 1000
    # both orders were asked, and the personalization judge saw the test row's chosen gold persona
    asked = judge_backend.requests
    assert len(asked) == 2 * 2 * 12
    from prefkit_persona.tailoring.data import load_tailoring_rows

    row0 = load_tailoring_rows("BeaverTails", "test", data_dir=persona_data, limit=1)[0]
    assert any(row0["chosen_persona_gold"] in m["content"] for req in asked for m in req.messages)
    # the judge's verdicts per rubric and row are stored; re-running asks nothing again
    keys = {json.loads(x)["key"] for x in (out / "results.jsonl").read_text().splitlines()}
    assert "quality/0" in keys and "tailoring-personalization/11" in keys and len(keys) == 24
    n_before = len(asked)
    r2 = prefkit_cli("tailor", "judge", base, test, "--backend", "mock", "--limit", "12", "--bootstrap", "200",
                     "-o", str(out), "--json")
    assert r2.exit_code == 0 and len(judge_backend.requests) == n_before
    assert r2.json()["rubrics"] == rep["rubrics"]
    # human-readable report
    r3 = prefkit_cli("tailor", "judge", base, test, "--backend", "mock", "--limit", "12", "-o", str(out),
                     "--bootstrap", "200")
    assert "ΔPQ" in r3.stdout and "personalization" in r3.stdout
    assert "ties excluded (paper)" in r3.stdout and "ties count half" in r3.stdout
    # the other convention on request
    r4 = prefkit_cli("tailor", "judge", base, test, "--backend", "mock", "--limit", "12", "-o", str(out),
                     "--bootstrap", "200", "--delta-pq-metric", "win_rate_ties_half", "--json")
    assert r4.exit_code == 0 and r4.json()["delta_pq"]["delta_pq"] == pytest.approx(half["delta_pq"])


def test_judge_needs_a_persona_and_generation_runs(prefkit_cli, persona_data, judge_backend, tmp_path):
    base = _import(prefkit_cli, persona_data, "none__infer-none")["run"]
    r = prefkit_cli("tailor", "judge", base, base, "--backend", "mock", "--limit", "2")
    assert r.exit_code == 2 and "needs a persona" in r.stderr and "--persona-type" in r.stderr
    # with a persona type given it runs
    r = prefkit_cli("tailor", "judge", base, base, "--backend", "mock", "--limit", "2", "--persona-type", "retr-rejected",
                    "--no-plot", "-o", str(tmp_path / "j"), "--json")
    assert r.exit_code == 0, r.output
    assert r.json()["persona_type"] == "retr-rejected"
    # only the quality rubric: no persona needed
    r = prefkit_cli("tailor", "judge", base, base, "--backend", "mock", "--limit", "2", "--rubrics", "quality",
                    "--no-plot", "-o", str(tmp_path / "j2"), "--json")
    assert r.exit_code == 0 and "delta_pq" not in r.json()
    r = prefkit_cli("tailor", "judge", str(tmp_path / "j"), base, "--backend", "mock")
    assert r.exit_code == 2 and "is a 'tailor judge' run, not a generation run" in r.stderr
    r = prefkit_cli("tailor", "judge", str(tmp_path / "nothing"), base, "--backend", "mock")
    assert r.exit_code == 2 and "not a prefkit run directory" in r.stderr


def test_bad_inputs_are_one_line_errors(prefkit_cli, persona_data):
    d = str(persona_data)
    cases = [
        (("tailor", "generate", "some-model", "-s", "SHP", "-i", "none", "--data-dir", d), "unknown split 'SHP'"),
        (("tailor", "generate", "some-model", "-s", "BeaverTails", "-i", "gold", "--data-dir", d),
         "unknown inference type 'gold'"),
        (("tailor", "generate", "some-model", "-s", "BeaverTails", "-i", "none", "-t", "both", "--data-dir", d),
         "unknown training type 'both'"),
        (("tailor", "generate", "some-model", "-s", "Mnemonic", "-i", "gold-chosen", "--data-dir", d),
         "Mnemonic's test split has no gold personas"),
        (("tailor", "fewshot", "some-model", "-s", "Mnemonic", "-i", "gold-rejected", "--data-dir", d),
         "Mnemonic's test split has no gold personas"),
        (("tailor", "sft", "some-model", "-s", "BeaverTails", "-t", "everything", "--data-dir", d),
         "unknown training type 'everything'"),
        (("tailor", "sft", "some-model", "-s", "Reddit", "--data-dir", d), "unknown"),
        (("tailor", "dpo", "some-model", "-s", "BeaverTails", "--format", "jinja", "--data-dir", d),
         "unknown format 'jinja'"),
        (("tailor", "generate", "some-model", "-s", "BeaverTails", "-i", "none", "--limit", "0", "--data-dir", d),
         "--limit must be at least 1"),
    ]
    for args, needle in cases:
        r = prefkit_cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.output
        assert len(r.stderr.strip().splitlines()) <= 3, r.stderr  # one message (rich may wrap it)


def test_generate_through_an_api_backend_on_a_hub_named_split(prefkit_cli, tmp_path):
    """Anthropic HHH (not in the shared mirror) works by name from a local mirror; multi-turn prompts stay raw."""
    import datasets

    from prefkit.testing import MockBackend

    cols = {"chosen_persona_gold": "The user is a hiker who prefers safety tips.",
            "rejected_persona_gold": "The user is a hiker who prefers brevity.",
            "chosen_persona_retr": "The user is a camper who prefers checklists.",
            "rejected_persona_retr": ""}
    prompts = ["Human: I'm going hiking.\n\nAssistant: Nice!\n\nHuman: What should I pack?",
               "Human: Is it safe to swim after eating?", "Human: How do I light a campfire?"]
    rows = [{"prompt": p, "chosen": "Good answer.", "rejected": "Bad answer.", **cols} for p in prompts]
    rows[0]["rejected_persona_retr"] = "The user is a hiker who prefers short lists."
    mirror = tmp_path / "mirror"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(mirror / "persona-tailoring-Anthropic HHH"))
    backend = MockBackend(responder=lambda req: " Water and a map.<|eot_id|>\nPrompt: next")
    with backend.installed():
        out = prefkit_cli("tailor", "generate", "some-api-model", "--backend", "mock", "-s", "anthropic-hhh",
                          "-i", "system", "--system-persona", "The user is a scout leader.", "--data-dir",
                          str(mirror), "-o", str(tmp_path / "g"), "--json")
        assert out.exit_code == 0, out.output
        assert out.json()["split"] == "Anthropic HHH" and out.json()["done"] == 3
        first = backend.requests[0]
        assert first.messages[0]["role"] == "user" and first.stop == ["\nPrompt:"] and first.temperature == 0.0
        recs = {json.loads(x)["row_id"]: json.loads(x) for x in (tmp_path / "g/results.jsonl").read_text().splitlines()}
        assert recs["0"]["input"] == f"Prompt: {prompts[0]}\nPersona: The user is a scout leader.\nResponse:"
        assert recs["0"]["response"] == "Water and a map." and recs["0"]["persona"] == "The user is a scout leader."
        # rows without a persona for the inference type: a clear error, or left out with --skip-empty
        r = prefkit_cli("tailor", "generate", "m", "--backend", "mock", "-s", "Anthropic HHH", "-i", "retr-rejected",
                        "--data-dir", str(mirror))
        assert r.exit_code == 2 and "2 of 3 test rows have no persona for --inference-type retr-rejected" in r.stderr
        r = prefkit_cli("tailor", "generate", "m", "--backend", "mock", "-s", "Anthropic HHH", "-i", "retr-rejected",
                        "--skip-empty", "--data-dir", str(mirror), "-o", str(tmp_path / "g3"), "--json")
        assert r.exit_code == 0 and r.json()["done"] == 1 and r.json()["skipped_empty_persona"] == 2
        r = prefkit_cli("tailor", "generate", "m", "--backend", "mock", "-s", "Anthropic HHH", "-i", "gold-chosen",
                        "--data-dir", str(mirror), "-o", str(tmp_path / "g2"), "--json")
        assert r.exit_code == 0 and r.json()["done"] == 3


def test_judge_through_an_openai_compatible_server(prefkit_cli, persona_data, fake_openai_server, tmp_path):
    """The judge calls go over HTTP to an OpenAI-compatible server; server errors are retried, nothing twice."""
    base = _import(prefkit_cli, persona_data, "none__infer-none")["run"]
    test = _import(prefkit_cli, persona_data, "none__infer-retr-chosen")["run"]
    fake_openai_server.responder = overlap_judge
    fake_openai_server.queue_faults("500", "429")
    r = prefkit_cli("tailor", "judge", base, test, "--backend", "openai", "--base-url", fake_openai_server.url,
                    "--model", "judge-model", "--limit", "5", "--max-retries", "3", "--bootstrap", "50", "--no-plot",
                    "-o", str(tmp_path / "j"), "--json", env={"OPENAI_API_KEY": "sk-test-not-a-real-key-123"})
    assert r.exit_code == 0, r.output
    rep = r.json()
    assert rep["persona_type"] == "retr-chosen"
    assert all(v["n_judged"] == 5 and v["failed"] == 0 for v in rep["rubrics"].values())
    stats = fake_openai_server.stats()
    assert stats["successes"] == 2 * 2 * 5 and stats["duplicates"] == 0
    assert "sk-test-not-a-real-key" not in (tmp_path / "j/manifest.json").read_text()
