"""The whole persona chain on real BeaverTails rows against a local OpenAI-compatible server:
infer-personas → accuracy → prefs → saliency → augment → retrieve."""

from __future__ import annotations

import json
import re

import pytest

BRIEF = "The user is busy and prefers brief, direct answers rather than long explanations."
DETAILED = "The user is thorough and prefers detailed, complete explanations over short replies."


def _section(text: str, name: str) -> str:
    m = re.search(r"\[" + re.escape(name) + r"\]\n(.*?)\n\[End of", text, re.S)
    assert m, f"no [{name}] section in the judge prompt"
    return m.group(1)


def responder(req):
    """Persona-like text for PI prompts, judge-like text for judge prompts (deterministic)."""
    text = req.prompt
    if text.rstrip().endswith("Persona:"):
        query = text.rsplit("Now write the persona", 1)[1]
        parts = query.split("\n---\n")
        chosen = parts[1].split("Chosen Response: ", 1)[1]
        rejected = parts[2].split("Rejected Response: ", 1)[1]
        return (BRIEF if len(chosen) < len(rejected) else DETAILED) + "\nAnd another user rambles on."
    if "Now answer for this user." in text:  # few-shot persona accuracy: answer with the response number
        query = text.rsplit("Now answer for this user.", 1)[1]
        persona = query.split("Persona: ", 1)[1].split("\nPrompt: ", 1)[0]
        r1 = query.split("\nResponse 1: ", 1)[1].split("\n---\nResponse 2: ", 1)[0]
        r2 = query.split("\nResponse 2: ", 1)[1].rsplit("\n---\nAnswer:", 1)[0]
        return "1" if (len(r1) < len(r2)) == ("brief" in persona) else "Response 2"
    if "\nPersona 1: " in text:  # persona preferences, the paper's protocol: only the two personas
        assert "Prompt:" not in text
        p1 = text.split("\nPersona 1: ", 1)[1].split("\n---\n", 1)[0]
        return "1" if "detailed" in p1 else "2"
    a, b = _section(text, "Response A"), _section(text, "Response B")
    if "[User persona]" in text:  # persona accuracy: pick the response that fits the persona
        persona = _section(text, "User persona")
        want_short = "brief" in persona
        pick = "A" if (len(a) < len(b)) == want_short else "B"
    else:  # persona prefs: the two "responses" are personas; the detailed-minded user is "more typical"
        pick = "A" if "detailed" in a else "B"
    return f"Response {pick} fits better.\n[RESULT] {pick}"


@pytest.fixture
def server(fake_openai_server):
    fake_openai_server.responder = responder
    return fake_openai_server


def _llm(server, model="fake-model"):
    return ["--backend", "openai", "--base-url", server.url, "--model", model, "--no-cache"]


def test_persona_chain(server, persona_data, prefkit_cli, tmp_path):
    from prefkit.data import load_records

    n = 6
    recs = load_records("persona-inference:BeaverTails", data_dir=persona_data, limit=n)
    short_chosen = {r.row_id for r in recs if len(r.chosen_text.strip()) < len(r.rejected_text.strip())}
    pi = tmp_path / "pi"

    # ---- persona inference: 2 personas per row, stop text removed, structured inputs stored
    r = prefkit_cli("infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", n,
                    "-o", pi, "--json", *_llm(server))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["personas"] == 2 * n and summary["by_side"] == {"chosen": n, "rejected": n}
    assert summary["flags"] == {} and summary["missing"] == 0
    rows = [json.loads(line) for line in (pi / "results.jsonl").read_text().splitlines()]
    assert sorted(r_["key"] for r_ in rows) == sorted(f"{i}:{s}" for i in range(n) for s in ("chosen", "rejected"))
    by_key = {r_["key"]: r_ for r_ in rows}
    for rec in recs:
        c, rj = by_key[f"{rec.row_id}:chosen"], by_key[f"{rec.row_id}:rejected"]
        assert c["prompt"] == rec.prompt_text and c["preferred"] == rec.chosen_text == rj["dispreferred"]
        assert c["persona"] == (BRIEF if rec.row_id in short_chosen else DETAILED)
        assert rj["persona"] == (DETAILED if rec.row_id in short_chosen else BRIEF)
        assert c["raw"].endswith("\nAnd another user rambles on.") and c["flags"] == []
    assert server.stats()["duplicates"] == 0
    # the requests carried the stop sequences and the default persona length
    assert all(b.get("max_tokens") == 200 or b.get("max_completion_tokens") == 200 for b in server.bodies)

    # resuming a finished run sends nothing
    before = server.request_count
    r = prefkit_cli("infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", n,
                    "-o", pi, "--json", *_llm(server))
    assert r.exit_code == 0 and server.request_count == before
    assert len((pi / "results.jsonl").read_text().splitlines()) == 2 * n

    # ---- accuracy: the judge always picks the response the persona was inferred for
    r = prefkit_cli("persona", "accuracy", pi, "-o", tmp_path / "acc", "--json", *_llm(server, "judge"))
    assert r.exit_code == 0, r.output
    acc = json.loads(r.stdout)["runs"][0]["accuracy"]
    for side in ("chosen", "rejected"):
        assert acc[side]["mean"]["accuracy"] == 1.0 and acc[side]["mean"]["n"] == n  # the headline
        assert acc[side]["both_orders"] == {"accuracy": 1.0, "se": 0.0, "n": n}
        assert acc[side]["order_ab"]["accuracy"] == acc[side]["order_ba"]["accuracy"] == 1.0
        assert acc[side]["unparsed"] == 0
    assert (tmp_path / "acc" / "accuracy.png").stat().st_size > 1000
    # both orders were really shown: every persona was judged twice
    assert server.stats()["duplicates"] == 0

    # ---- prefs: the "detailed" persona wins in both orders
    r = prefkit_cli("persona", "prefs", pi, "-o", tmp_path / "prefs", "--json", *_llm(server, "judge"))
    assert r.exit_code == 0, r.output
    prefs = json.loads(r.stdout)["runs"][0]["prefs"]
    assert prefs["counts"] == {"chosen": n - len(short_chosen), "tie": 0, "rejected": len(short_chosen)}
    assert (tmp_path / "prefs" / "prefs.png").exists()

    # ---- saliency: "brief" belongs to whichever side holds the brief personas
    r = prefkit_cli("persona", "saliency", pi, "--min-count", 1, "--top", 50, "--json")
    assert r.exit_code == 0, r.output
    sal = json.loads(r.stdout)
    brief_c = next(d for d in sal["chosen"] if d["word"] == "brief")
    assert brief_c["saliency"] == pytest.approx(len(short_chosen) / n)
    assert all(d["word"] not in ("long", "short") for d in sal["chosen"])  # cut at "rather than" / "over"
    assert (pi / "saliency.json").exists()

    # ---- augment: personas joined by row_id
    r = prefkit_cli("persona", "augment", pi, "-o", tmp_path / "aug", "--data-dir", persona_data, "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert stats["augmented"] == n and stats["missing"] == 300 - n
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "aug"))["train"]
    assert len(ds) == n
    for row in ds:
        assert row["chosen_persona_gold"] == by_key[f"{row['row_id']}:chosen"]["persona"]
        assert row["rejected_persona_gold"] == by_key[f"{row['row_id']}:rejected"]["persona"]
        assert row["prompt"] == by_key[f"{row['row_id']}:chosen"]["prompt"]

    # ---- retrieve over the augmented data: nearest OTHER row, both personas from it
    r = prefkit_cli("persona", "retrieve", "--split", "BeaverTails", "--dataset", tmp_path / "aug", "--pool", "train",
                    "--target", "train", "--embedder", "bm25", "-o", tmp_path / "retr", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["rows"] == n and res["pool"] == n
    got = [json.loads(line) for line in (tmp_path / "retr" / "results.jsonl").read_text().splitlines()]
    gold = {row["row_id"]: row for row in ds}
    for g in got:
        assert g["neighbour_row_id"] != g["row_id"]
        nb = gold[g["neighbour_row_id"]]
        assert (g["chosen_persona_retr"], g["rejected_persona_retr"]) == \
               (nb["chosen_persona_gold"], nb["rejected_persona_gold"])


def test_failures_are_retried_on_resume(server, persona_data, prefkit_cli, tmp_path):
    pi = tmp_path / "pi"
    server.queue_faults("500", "500")
    args = ["infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", 3, "-o", pi,
            "--max-retries", 0, *_llm(server)]
    r = prefkit_cli(*args)
    assert r.exit_code == 1 and "retried when you re-run" in " ".join(r.stderr.split()), r.output
    assert len((pi / "results.jsonl").read_text().splitlines()) == 4
    assert len((pi / "failures.jsonl").read_text().splitlines()) == 2
    r = prefkit_cli(*args)
    assert r.exit_code == 0, r.output
    keys = [json.loads(line)["key"] for line in (pi / "results.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(f"{i}:{s}" for i in range(3) for s in ("chosen", "rejected"))
    assert server.stats()["duplicates"] == 0


def test_other_settings_on_resume_are_refused(server, persona_data, prefkit_cli, tmp_path):
    pi = tmp_path / "pi"
    base = ["infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", 1, "-o", pi]
    assert prefkit_cli(*base, *_llm(server)).exit_code == 0
    r = prefkit_cli(*base, "--strategy", "zero-shot", *_llm(server))
    assert r.exit_code == 2 and "already holds results for other settings" in r.stderr


def test_full_concurrency_against_the_server(server, persona_data, prefkit_cli, tmp_path):
    server.latency = 0.2
    r = prefkit_cli("infer-personas", "--split", "Mnemonic", "--data-dir", persona_data, "--limit", 16,
                    "-o", tmp_path / "pi", "--concurrency", 32, "--json", *_llm(server))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["personas"] == 32
    assert server.stats()["max_in_flight"] >= 16


def test_empty_personas_give_clear_errors(server, persona_data, prefkit_cli, tmp_path):
    server.responder = lambda req: "Persona: ---"  # text, but no persona in it
    pi = tmp_path / "pi"
    r = prefkit_cli("infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", 2, "-o", pi,
                    "--json", *_llm(server))
    assert r.exit_code == 0 and json.loads(r.stdout)["flags"] == {"empty": 4}
    for cmd in (["persona", "accuracy", pi, *_llm(server)], ["persona", "prefs", pi, *_llm(server)],
                ["persona", "saliency", pi], ["persona", "augment", pi, "--data-dir", persona_data]):
        r = prefkit_cli(*cmd)
        assert r.exit_code == 2, (cmd, r.output)
        assert "all 4 personas in" in r.stderr and "are empty" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 or "Error:" in r.stderr.splitlines()[0]
    r = prefkit_cli("persona", "accuracy", tmp_path / "nope", *_llm(server))
    assert r.exit_code == 2 and "no such run directory" in r.stderr
