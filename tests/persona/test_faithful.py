"""Issue 15 (persona items 2-10): the paper's defaults, metric definitions and judge protocols."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError


def _ok(r):
    assert r.exit_code == 0, r.output
    return r.json()


# ------------------------------------------------------------------------------------------------ 8. --stop
def test_user_stops_are_added_to_the_builtin_ones(prefkit_cli, persona_data, tmp_path):
    from prefkit.testing import MockBackend

    from prefkit_persona.inference import REQUEST_STOPS

    mock = MockBackend(responder=lambda req: "The user is brief and prefers short answers. END and more")
    with mock.installed():
        out = _ok(prefkit_cli("infer-personas", "--split", "Mnemonic", "--data-dir", persona_data, "--limit", 1,
                              "--backend", "mock", "--stop", "END", "--stop", "END", "-o", tmp_path / "pi",
                              "--json"))
    assert out["personas"] == 2 and mock.requests
    for req in mock.requests:
        assert req.stop == [*REQUEST_STOPS, "END"]  # the built-in ones kept, the user's added, no repeats
    rows = [json.loads(x) for x in (tmp_path / "pi/results.jsonl").read_text().splitlines()]
    # the user's stop also cuts the stored persona (a backend that ignores stops cannot leak past it)
    assert {r["persona"] for r in rows} == {"The user is brief and prefers short answers."}


def test_without_user_stops_the_builtin_ones_are_sent():
    from prefkit_persona.inference import REQUEST_STOPS, request_stops

    assert request_stops(None) == REQUEST_STOPS and request_stops([]) == REQUEST_STOPS
    assert request_stops(["\nUser:", "\n==="]) == [*REQUEST_STOPS, "\nUser:"]


# ------------------------------------------------------------------------------------------------ 6. system personas
def test_system_personas_are_the_papers():
    from prefkit_persona.tailoring.formats import inference_persona, system_persona_for

    assert system_persona_for("BeaverTails") == \
        "The user is meticulous and prefers responses that cover multiple, diverse angles."
    assert system_persona_for("Mnemonic") == \
        "The user prefers indirect, step-by-step mnemonics that capture the essence of the vocabulary term."
    assert system_persona_for("Anthropic HHH") == ("The user is solution-focused, results-oriented, and "
                                                   "fact-oriented, and prefers responses that cover varied angles.")
    assert inference_persona({"prompt": "x"}, "system", "Mnemonic") == system_persona_for("Mnemonic")
    assert system_persona_for("BeaverTails", "The user is a chef.") == "The user is a chef."


# ------------------------------------------------------------------------------------------------ 2. win rate, ΔPQ
def test_delta_pq_defaults_to_the_papers_ties_excluded():
    from prefkit_persona.metrics import delta_pq, delta_pq_both

    p = [{"key": str(i), "winner": w} for i, w in enumerate(["B", "B", "A", "tie"])]
    q = [{"key": str(i), "winner": w} for i, w in enumerate(["A", "B", "B", "B"])]
    d = delta_pq(p, q, bootstrap=500, seed=0)
    assert d["metric"] == "win_rate"
    assert d["delta_pq"] == pytest.approx(2 / 3 + 3 / 4 - 1)  # ties left out: B / (A + B)
    assert d["paired"] is True and d["delta_pq_ci"][0] <= d["delta_pq"] <= d["delta_pq_ci"][1]
    half = delta_pq(p, q, metric="win_rate_ties_half", bootstrap=0)
    assert half["delta_pq"] == pytest.approx(0.625 + 0.75 - 1)
    both = delta_pq_both(p, q, bootstrap=0)
    assert both["delta_pq"] == d["delta_pq"] and both["by_metric"]["win_rate_ties_half"]["delta_pq"] == half["delta_pq"]
    assert delta_pq(0.6, 0.55)["delta_pq"] == pytest.approx(0.15)
    assert delta_pq({"win_rate": 0.7}, {"win_rate": 0.2})["delta_pq"] == pytest.approx(-0.1)
    assert delta_pq(p, q[:3], bootstrap=200, seed=0)["paired"] is False
    with pytest.raises(UsageError, match="ties"):
        delta_pq(p, q, metric="ties_third")


def test_core_names_no_persona_metric_or_layout():
    import prefkit.judging as judging
    import prefkit.judging.inputs as inputs
    import prefkit.judging.metrics as metrics

    assert not hasattr(metrics, "delta_pq") and "delta_pq" not in dir(judging)
    assert not hasattr(inputs, "split_labelled_prompt")
    assert callable(judging.win_rate)  # the generic win rates stay


def test_text_input_parser_round_trips_and_reads_the_paper_outputs(persona_data):
    from prefkit.judging.inputs import build_pairwise_items, load_outputs, match_keys

    from prefkit_persona.tailoring.formats import format_text, judge_prompt_parser, parse_text_input

    text = format_text("negligible", "The user is concise.", "Negligible sounds like")
    assert parse_text_input(text) == {"prompt": "negligible", "persona": "The user is concise.",
                                      "seed": "Negligible sounds like"}
    assert parse_text_input(format_text("Is this true?")) == {"prompt": "Is this true?", "seed": ""}
    assert parse_text_input("What is 2+2?") is None and judge_prompt_parser("What is 2+2?") is None
    # the paper's published generations, through the core loader with the plugin's parser
    d = persona_data / "paper-outputs" / "BeaverTails"
    a = load_outputs(d / "dpo__train-none__infer-none.json", prompt_parser=judge_prompt_parser)
    b = load_outputs(d / "dpo__train-chosen__infer-gold-chosen.json", prompt_parser=judge_prompt_parser)
    keys = match_keys(a, b)
    assert len(keys) == 499
    items, stats = build_pairwise_items(a, b, keys, persona_field="persona")
    assert stats["instructions_differ"] == 0
    assert all(i["persona"].startswith("The user ") for i in items)
    assert not items[0]["instruction"].startswith("Prompt:")
    assert all("<|end_of_text|>" not in i["response_a"] + i["response_b"] for i in items)


def test_tailor_delta_pq_from_two_core_judge_runs(prefkit_cli, tmp_path):
    from prefkit.testing import MockBackend

    def judge(req):  # B wins when it is longer; equal lengths disagree between the orders (tie)
        text = req.messages[-1]["content"]
        a = text.split("[Response A]\n", 1)[1].split("\n[End of Response A]", 1)[0]
        b = text.split("[Response B]\n", 1)[1].split("\n[End of Response B]", 1)[0]
        return "[RESULT] " + ("A" if len(a) > len(b) else "B" if len(b) > len(a) else "A")

    rows_a = [{"row_id": f"r{i}", "prompt": f"q{i}", "response": "mid size", "persona": "The user likes detail."}
              for i in range(6)]
    lens = ["x", "a longer answer", "a longer answer", "same len", "a longer answer", "x"]
    rows_b = [{**r, "response": lens[i]} for i, r in enumerate(rows_a)]
    fa, fb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    fa.write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    fb.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    runs = []
    with MockBackend(responder=judge).installed():
        for rubric in ("tailoring-personalization", "quality"):
            r = prefkit_cli("judge", "pairwise", "--a", fa, "--b", fb, "--rubric", rubric, "--persona-field",
                            "persona", "--backend", "mock", "-o", tmp_path / rubric, "--no-plot", "--json")
            assert r.exit_code == 0, r.output
            runs.append(str(tmp_path / rubric))
    d = _ok(prefkit_cli("tailor", "delta-pq", *runs, "--bootstrap", "100", "--json"))
    # B wins 3, A wins 2, 1 tie ("same len" vs "mid size": same length): ties excluded 3/5, ties half 3.5/6
    assert d["metric"] == "win_rate" and d["delta_pq"] == pytest.approx(2 * 3 / 5 - 1)
    assert d["by_metric"]["win_rate_ties_half"]["delta_pq"] == pytest.approx(2 * 3.5 / 6 - 1)
    r = prefkit_cli("tailor", "delta-pq", *runs, "--bootstrap", "0")
    assert r.exit_code == 0 and "ties excluded (paper), headline" in r.stdout and "ties count half" in r.stdout


# ------------------------------------------------------------------------------------------------ 3. rubric, Mnemonic
def test_personalization_rubric_is_the_papers():
    from prefkit.judging import get_rubric

    rub = get_rubric("tailoring-personalization")
    assert rub.uses_persona and "answer the prompt" in rub.criteria and "persona" in rub.criteria
    for word in ("helpful", "correct", "safe"):
        assert word not in rub.criteria.lower()
    from prefkit_persona.tailoring.compare import DEFAULT_RUBRICS

    assert DEFAULT_RUBRICS == "quality,tailoring-personalization"


def test_mnemonic_judge_sees_the_task(prefkit_cli, persona_data, tmp_path):
    from prefkit.testing import MockBackend

    def imp(name):
        return _ok(prefkit_cli("tailor", "import-outputs", persona_data / f"paper-outputs/Mnemonic/{name}.json",
                               "--split", "Mnemonic", "--data-dir", persona_data, "--json"))["run"]

    base, test = imp("dpo__train-none__infer-none"), imp("dpo__train-chosen__infer-retr-chosen")
    mock = MockBackend(responder=lambda req: "Fine.\n[RESULT] B")
    with mock.installed():
        rep = _ok(prefkit_cli("tailor", "judge", base, test, "--backend", "mock", "--limit", 2, "--no-plot",
                              "--bootstrap", 0, "-o", tmp_path / "j", "--json"))
    pers = rep["rubrics"]["tailoring-personalization"]
    # "B" in both orders is position bias: every pair is a tie, so ties-excluded has nothing to count
    assert rep["split"] == "Mnemonic" and pers["ties"] == 2 and pers["win_rate"] is None
    assert pers["win_rate_ties_half"] == 0.5
    texts = [req.messages[-1]["content"] for req in mock.requests]
    assert len(texts) == 2 * 2 * 2
    assert all("Write a keyword mnemonic for the vocabulary term" in t for t in texts)
    assert sum('the vocabulary term "negligible"' in t for t in texts) == 4  # row 0, both rubrics, both orders


# ------------------------------------------------------------------------------------------------ 4, 5. judges
BRIEF = "The user is busy and prefers brief answers."
DETAILED = "The user is thorough and prefers detailed answers."


def _pi_responder(req):
    text = req.messages[-1]["content"]
    query = text.rsplit("Now write the persona", 1)[1]
    chosen = query.split("Chosen Response: ", 1)[1].split("\n---\n", 1)[0]
    rejected = query.split("Rejected Response: ", 1)[1].split("\n---\n", 1)[0]
    return BRIEF if len(chosen) < len(rejected) else DETAILED


@pytest.fixture
def pi_run(prefkit_cli, persona_data, tmp_path):
    from prefkit.testing import MockBackend

    with MockBackend(responder=_pi_responder).installed():
        _ok(prefkit_cli("infer-personas", "--split", "BeaverTails", "--data-dir", persona_data, "--limit", 4,
                        "--backend", "mock", "-o", tmp_path / "pi", "--json"))
    return tmp_path / "pi"


def _query(text, marker):
    return text.rsplit(marker, 1)[1]


def test_accuracy_fewshot_prompt_headline_and_extras(prefkit_cli, pi_run, tmp_path):
    from prefkit.testing import MockBackend

    from prefkit_persona import templates

    calls = []

    def judge(req):  # right in the "ab" order, wrong when the rejected response is shown first
        text = req.messages[-1]["content"]
        calls.append(text)
        q = _query(text, "Now answer for this user.")
        persona = q.split("Persona: ", 1)[1].split("\n", 1)[0]
        r1 = q.split("Response 1: ", 1)[1].split("\n---\n", 1)[0]
        r2 = q.split("Response 2: ", 1)[1].split("\n---\n", 1)[0]
        return "Answer: 1" if req.key.endswith("/ab") else ("2" if len(r1) < len(r2) and "brief" in persona else "1")

    with MockBackend(responder=judge).installed():
        res = _ok(prefkit_cli("persona", "accuracy", pi_run, "--backend", "mock", "-o", tmp_path / "acc",
                              "--no-plot", "--json"))
    assert res["protocol"] == "fewshot" and len(calls) == 2 * 8
    text = calls[0]
    assert templates.description("BeaverTails") in text
    head, query = text.rsplit("Now answer for this user.", 1)
    assert head.count("\nAnswer: ") == 5 and head.count("Answer: 1") == 3 and head.count("Answer: 2") == 2
    assert query.rstrip().endswith("Answer:") and "Response 1: " in query and "Response 2: " in query
    acc = res["runs"][0]["accuracy"]
    assert acc["headline"] == "mean"
    for side in ("chosen", "rejected"):
        a = acc[side]
        assert a["order_ab"]["accuracy"] == (1.0 if side == "chosen" else 0.0)  # "1" is the chosen response in ab
        m = a["mean"]
        assert m["n"] == 4 and 0 <= m["accuracy"] <= 1 and m["se"] == m["se"]  # a number, not NaN
        assert a["both_orders"]["accuracy"] <= m["accuracy"]
    # the headline is the mean of per-item means; "both orders agree" is stricter
    all_ = acc["all"]
    assert all_["mean"]["accuracy"] == pytest.approx(
        (acc["chosen"]["mean"]["accuracy"] + acc["rejected"]["mean"]["accuracy"]) / 2)
    # the human-readable table headlines the mean accuracy ± s.e.
    with MockBackend(responder=judge).installed():
        r = prefkit_cli("persona", "accuracy", pi_run, "--backend", "mock", "-o", tmp_path / "acc", "--no-plot")
    assert r.exit_code == 0 and "per-item mean over both orders" in " ".join(r.stdout.split())


def test_accuracy_metric_mean_and_se_by_hand():
    from prefkit_persona.evaluation import accuracy_metrics

    vs = [{"key": "0:chosen", "winner": "A", "verdict_ab": "A", "verdict_ba": "A"},   # 1.0
          {"key": "1:chosen", "winner": "tie", "verdict_ab": "A", "verdict_ba": "B"},  # 0.5
          {"key": "2:chosen", "winner": "B", "verdict_ab": "B", "verdict_ba": "B"},    # 0.0
          {"key": "3:chosen", "winner": "failed", "verdict_ab": None, "verdict_ba": "A"}]  # 0.5, unparsed
    m = accuracy_metrics(vs)["chosen"]
    assert m["mean"]["accuracy"] == pytest.approx(0.5) and m["mean"]["n"] == 4
    assert m["mean"]["se"] == pytest.approx((((0.25 + 0 + 0.25 + 0) / 3) ** 0.5) / 2)
    assert m["both_orders"]["accuracy"] == 0.25 and m["unparsed"] == 1
    assert m["order_ab"]["accuracy"] == 0.5 and m["order_ba"]["accuracy"] == 0.5


def test_accuracy_rubric_protocol_stays_available(prefkit_cli, pi_run, tmp_path):
    from prefkit.testing import MockBackend

    mock = MockBackend(responder=lambda req: "ok\n[RESULT] A")
    with mock.installed():
        res = _ok(prefkit_cli("persona", "accuracy", pi_run, "--protocol", "rubric", "--backend", "mock",
                              "-o", tmp_path / "acc", "--no-plot", "--json"))
    assert res["protocol"] == "rubric" and "[User persona]" in mock.requests[0].messages[-1]["content"]
    r = prefkit_cli("persona", "accuracy", pi_run, "--rubric", "persona-choice", "--backend", "mock")
    assert r.exit_code == 2 and "--protocol rubric" in r.stderr
    r = prefkit_cli("persona", "accuracy", pi_run, "--protocol", "vibes", "--backend", "mock")
    assert r.exit_code == 2 and "unknown accuracy protocol 'vibes'" in r.stderr


def test_accuracy_prompt_file_and_examples_file(prefkit_cli, pi_run, tmp_path):
    from prefkit.testing import MockBackend

    tpl = tmp_path / "acc.txt"
    tpl.write_text("{{examples}}\n\nWho? {{persona}} | {{prompt}} | 1) {{response_1}} | 2) {{response_2}}\nAnswer:")
    ex = tmp_path / "ex.txt"
    ex.write_text("Prompt: P\n---\nChosen Response: C\n---\nRejected Response: R\n---\nPersona: The user is X.")
    mock = MockBackend(responder=lambda req: "2")
    with mock.installed():
        _ok(prefkit_cli("persona", "accuracy", pi_run, "--prompt-file", tpl, "--examples-file", ex,
                        "--backend", "mock", "-o", tmp_path / "acc", "--no-plot", "--json"))
    text = mock.requests[0].messages[-1]["content"]
    assert text.startswith("Persona: The user is X.\nPrompt: P\n---\nResponse 1: C\n---\nResponse 2: R\n---\nAnswer: 1")
    assert "\n\nWho? The user is " in text
    tpl.write_text("no placeholders")
    r = prefkit_cli("persona", "accuracy", pi_run, "--prompt-file", tpl, "--backend", "mock")
    assert r.exit_code == 2 and "lacks the placeholder(s)" in r.stderr


@pytest.mark.parametrize("text,answer", [("1", 1), (" 2\n", 2), ("Response 2", 2), ("Answer: 1.", 1),
                                         ("**Answer:** 2", 2), ("The user would choose response 1.", 1),
                                         ("1 or 2", None), ("", None), ("3", None), ("2.5", None)])
def test_parse_choice(text, answer):
    from prefkit_persona.evaluation import parse_choice

    assert parse_choice(text) == answer


def test_prefs_paper_protocol_shows_only_the_personas(prefkit_cli, pi_run, tmp_path):
    from prefkit.testing import MockBackend

    def judge(req):
        text = req.messages[-1]["content"]
        p1 = text.split("\nPersona 1: ", 1)[1].split("\n", 1)[0]
        return "1" if "thorough" in p1 else "2"

    mock = MockBackend(responder=judge)
    with mock.installed():
        res = _ok(prefkit_cli("persona", "prefs", pi_run, "--backend", "mock", "-o", tmp_path / "p", "--no-plot",
                              "--json"))
    assert res["protocol"] == "better"
    rows = [json.loads(x) for x in (pi_run / "results.jsonl").read_text().splitlines()]
    for req in mock.requests:
        text = req.messages[-1]["content"]
        assert "Which of the two personas is better?" in text and "Prompt" not in text
        assert not any(r["prompt"][:40] in text for r in rows)
    prefs = res["runs"][0]["prefs"]
    n_detailed = sum(1 for r in rows if r["side"] == "chosen" and r["persona"] == DETAILED)
    assert prefs["counts"] == {"chosen": n_detailed, "tie": 0, "rejected": 4 - n_detailed}
    assert prefs["chosen_win_rate"]["ties_excluded"] == pytest.approx(n_detailed / 4)
    # the typicality variant shows the prompt, through the core judge
    mock = MockBackend(responder=lambda req: "ok\n[RESULT] A")
    with mock.installed():
        res = _ok(prefkit_cli("persona", "prefs", pi_run, "--protocol", "typicality", "--backend", "mock",
                              "-o", tmp_path / "p2", "--no-plot", "--json"))
    assert res["protocol"] == "typicality"
    assert "more typical user" in mock.requests[0].messages[-1]["content"]
    assert any(r["prompt"].strip()[:40] in mock.requests[0].messages[-1]["content"] for r in rows)


# ------------------------------------------------------------------------------------------------ 9. saliency
def _persona_run(tmp_path, name, rows):
    """A finished infer-personas run holding ``rows`` = [(row_id, side, persona)]."""
    import prefkit

    run = prefkit.Run.open("infer-personas", config={}, identity={"name": name}, output_dir=str(tmp_path / name))
    run.update_manifest(persona={"split": "BeaverTails", "dataset": "persona-inference:BeaverTails",
                                 "data_split": "train"})
    for rid, side, persona in rows:
        run.append({"row_id": rid, "side": side, "persona": persona, "prompt": "p", "flags": []},
                   key=f"{rid}:{side}")
    run.finish("completed")
    return tmp_path / name


def test_saliency_pools_runs_and_warns_on_unequal_sides(prefkit_cli, tmp_path):
    a = _persona_run(tmp_path, "a", [("0", "chosen", "The user is analytical."),
                                     ("0", "rejected", "The user is playful.")])
    b = _persona_run(tmp_path, "b", [("0", "chosen", "The user is analytical and playful."),
                                     ("1", "chosen", "The user is playful."), ("0", "rejected", "The user is calm.")])
    r = prefkit_cli("persona", "saliency", a, b, "--pool", "--min-count", 1, "--top", 10, "--json")
    assert r.exit_code == 0, r.output
    res = r.json()
    assert res["pooled"] and res["personas"] == {"chosen": 3, "rejected": 2}
    chosen = {d["word"]: d for d in res["chosen"]}
    # one pooled count; the lemmatiser is simplemma ("analytical" -> "analytic", unlike WordNet)
    assert chosen["analytic"]["count"] == 2 and chosen["analytic"]["saliency"] == 1.0
    assert chosen["playful"]["count"] == 2 and chosen["playful"]["total"] == 3
    assert res["lemmatiser"] == "simplemma"
    assert len(res["warnings"]) == 1 and "chosen 3, rejected 2" in res["warnings"][0]
    assert "different numbers of personas" in r.stderr
    assert (a / "saliency-pooled.json").exists()
    # without --pool: one result per run, and the balanced run has no warning
    r = prefkit_cli("persona", "saliency", a, b, "--min-count", 1, "--json")
    per_run = r.json()
    assert [x["pooled"] for x in per_run] == [False, False] and per_run[0]["warnings"] == []
    assert per_run[1]["personas"] == {"chosen": 2, "rejected": 1}


# ------------------------------------------------------------------------------------------------ 10. any data
def test_augment_writes_every_split_and_tailoring_runs_on_it(prefkit_cli, persona_data, tmp_path):
    import datasets
    from prefkit.testing import MockBackend

    runs = {}
    with MockBackend(responder=_pi_responder).installed():
        for part in ("dpo_train", "test"):
            runs[part] = tmp_path / f"pi-{part}"
            _ok(prefkit_cli("infer-personas", "--split", "BeaverTails", "--dataset", "persona-tailoring:BeaverTails",
                            "--data-split", part, "--data-dir", persona_data, "--limit", 3, "--backend", "mock",
                            "-o", runs[part], "--json"))
    aug = tmp_path / "aug"
    stats = _ok(prefkit_cli("persona", "augment", runs["dpo_train"], runs["test"], "-o", aug, "--data-dir",
                            persona_data, "--json"))
    assert set(stats["splits"]) == {"dpo_train", "test"} and stats["augmented"] == 6
    ds = datasets.load_from_disk(str(aug))
    assert set(ds) == {"dpo_train", "test"} and len(ds["test"]) == 3
    assert {row["chosen_persona_gold"] for row in ds["test"]} <= {BRIEF, DETAILED}  # ours, not the dataset's

    # generation on the augmented test split, with its (our) gold personas
    with MockBackend(responder=lambda req: "An answer.").installed():
        gen = _ok(prefkit_cli("tailor", "generate", "m", "--backend", "mock", "-s", "BeaverTails", "-i",
                              "gold-chosen", "--dataset", aug, "-o", tmp_path / "gen", "--json"))
    assert gen["done"] == 3 and gen["dataset"] == str(aug.resolve())
    rows = [json.loads(x) for x in (tmp_path / "gen/results.jsonl").read_text().splitlines()]
    by_id = {str(r["row_id"]): r for r in ds["test"]}
    for r in rows:
        assert f"\nPersona: {by_id[str(r['row_id'])]['chosen_persona_gold']}\n" in r["input"]
    # DPO rows come from the augmented dpo_train split
    from prefkit_persona.tailoring.data import load_tailoring_rows
    from prefkit_persona.tailoring.formats import dpo_rows

    pairs = dpo_rows(load_tailoring_rows("BeaverTails", "dpo_train", dataset=str(aug)), "chosen", "BeaverTails")
    assert len(pairs) == 3 and all(BRIEF in p["prompt"] or DETAILED in p["prompt"] for p in pairs)
    # any split name works with a user dataset; a missing data split or column is one clear error
    rows = load_tailoring_rows("my-data", "test", dataset=str(aug))
    assert len(rows) == 3
    bare = tmp_path / "bare"
    ds.remove_columns(["chosen_persona_retr", "rejected_persona_retr"]).save_to_disk(str(bare))
    r = prefkit_cli("tailor", "generate", "m", "--backend", "mock", "-s", "BeaverTails", "-i", "retr-chosen",
                    "--dataset", bare, "-o", tmp_path / "gen2")
    assert r.exit_code == 2 and "chosen_persona_retr" in r.stderr, r.output
    with pytest.raises(UsageError):
        load_tailoring_rows("BeaverTails", "sft_train", dataset=str(aug))
