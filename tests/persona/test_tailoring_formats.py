"""Persona tailoring, pure parts: formats, types, row building, few-shot, post-processing — on real rows."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError
from prefkit_persona.tailoring import formats as F
from prefkit_persona.tailoring.data import load_tailoring_rows


@pytest.fixture(scope="module")
def bt(persona_data):
    return {s: load_tailoring_rows("BeaverTails", s, data_dir=persona_data, limit=40 if s != "fewshot" else None)
            for s in ("fewshot", "sft_train", "dpo_train", "test")}


@pytest.fixture(scope="module")
def mn(persona_data):
    return {s: load_tailoring_rows("Mnemonic", s, data_dir=persona_data, limit=20) for s in ("sft_train", "test")}


# --------------------------------------------------------------------------- the paper's inputs, exactly
def test_inputs_reproduce_every_published_prompt(persona_data):
    """Our text format, first-person rewrite and Mnemonic seed rebuild all 5,490 published model inputs."""
    files = sorted((persona_data / "paper-outputs").glob("*/*.json"))
    assert len(files) >= 12
    checked, tests = 0, {}
    for f in files:
        split = f.parent.name
        meta = F.parse_output_name(f.stem)
        if split not in tests:
            tests[split] = load_tailoring_rows(split, "test", data_dir=persona_data)
        test = tests[split]
        items = json.loads(f.read_text())
        assert len(items) == len(test)
        for row, item in zip(test, items):
            persona = F.inference_persona(row, meta["inference_type"], split)
            got = F.build_input(row["prompt"], persona, training_type=meta["training_type"], split=split)
            assert got == item["prompt"], (f.name, row["row_id"])
            checked += 1
    assert checked >= 5490


def test_text_format_pieces(bt):
    row = bt["test"][0]
    p = row["chosen_persona_gold"]
    text = F.build_input(row["prompt"], p, training_type="chosen", split="BeaverTails")
    assert text == f"Prompt: {row['prompt']}\nPersona: {p}\nResponse:"
    assert F.build_input(row["prompt"], None, training_type="chosen", split="BeaverTails") == \
        f"Prompt: {row['prompt']}\nResponse:"
    # a model trained without personas gets the persona in the first person, after the prompt
    none = F.build_input(row["prompt"], p, training_type="none", split="BeaverTails")
    assert "\nPersona:" not in none
    assert none == f"Prompt: {row['prompt']} I am{p[len('The user is'):]}\nResponse:"


def test_mnemonic_seed_and_chat_format(mn):
    row = mn["test"][0]
    assert row["prompt"] == "negligible"
    assert F.mnemonic_seed("negligible") == "Negligible sounds like"
    assert F.mnemonic_seed(" self-effacing ") == "Self-Effacing sounds like"
    text = F.build_input(row["prompt"], row["chosen_persona_retr"], training_type="chosen", split="Mnemonic")
    assert text.endswith("\nResponse: Negligible sounds like")
    chat = F.build_input(row["prompt"], row["chosen_persona_retr"], training_type="chosen", split="Mnemonic", fmt="chat")
    assert chat == [{"role": "user", "content": f"negligible\n\nPersona: {row['chosen_persona_retr']}"}]


def test_first_person():
    assert F.first_person("The user is a nurse who prefers detail.") == "I am a nurse who prefers detail."
    # as in the paper, only "The user is" is rewritten by default ...
    assert F.first_person("The user values honesty.") == "The user values honesty."
    # ... the full rewrite handles other openings
    assert F.first_person("The user values honesty.", full=True) == "I value honesty."
    assert F.first_person("The user prefers short answers", full=True) == "I prefer short answers"
    assert F.first_person("The user's goal is speed", full=True) == "My goal is speed"
    assert F.first_person("The user has two kids", full=True) == "I have two kids"
    assert F.first_person("Someone curious", full=True) == "Someone curious"


# --------------------------------------------------------------------------- names and types
@pytest.mark.parametrize("given,canonical", [("BeaverTails", "BeaverTails"), ("beavertails", "BeaverTails"),
                                             ("anthropic-hhh", "Anthropic HHH"), ("Anthropic HHH", "Anthropic HHH"),
                                             ("hhh", "Anthropic HHH"), ("MNEMONIC", "Mnemonic")])
def test_split_names(given, canonical):
    assert F.canonical_split(given) == canonical


def test_bad_names_are_one_line_errors():
    for fn, value, needle in [(F.canonical_split, "SHP", "unknown split 'SHP'"),
                              (F.check_training_type, "both", "unknown training type 'both'"),
                              (F.check_inference_type, "gold", "unknown inference type 'gold'"),
                              (F.check_data_split, "train", "unknown data split 'train'"),
                              (F.check_format, "jinja", "unknown format 'jinja'")]:
        with pytest.raises(UsageError) as e:
            fn(value)
        assert needle in str(e.value) and "\n" not in str(e.value)
    assert F.check_inference_type("retr_chosen") == "retr-chosen"


def test_inference_personas(bt, mn):
    row = bt["test"][3]
    assert F.inference_persona(row, "gold-chosen", "BeaverTails") == row["chosen_persona_gold"]
    assert F.inference_persona(row, "gold-rejected", "BeaverTails") == row["rejected_persona_gold"]
    assert F.inference_persona(row, "retr-chosen", "BeaverTails") == row["chosen_persona_retr"]
    assert F.inference_persona(row, "retr-rejected", "BeaverTails") == row["rejected_persona_retr"]
    assert F.inference_persona(row, "none", "BeaverTails") is None
    assert F.inference_persona(row, "system", "BeaverTails") == F.DEFAULT_SYSTEM_PERSONAS["BeaverTails"]
    assert F.inference_persona(row, "system", "BeaverTails", "The user is a pilot.") == "The user is a pilot."
    assert F.inference_persona(row, "system", "Mnemonic") != F.inference_persona(row, "system", "BeaverTails")
    # Mnemonic's test split: gold personas are empty in every row -> a clear message; retr works
    with pytest.raises(UsageError, match="Mnemonic's test split has no gold personas") as e:
        F.check_inference_personas(mn["test"], "gold-chosen", "Mnemonic")
    assert "retr-chosen" in str(e.value)
    assert F.check_inference_personas(mn["test"], "retr-rejected", "Mnemonic") == []
    # some rows empty: their ids come back
    rows = [dict(r) for r in bt["test"][:4]]
    rows[2]["chosen_persona_retr"] = "  "
    assert F.check_inference_personas(rows, "retr-chosen", "BeaverTails") == [rows[2]["row_id"]]
    # a missing column is named
    with pytest.raises(UsageError, match="no column 'rejected_persona_gold'"):
        F.check_inference_personas([{"row_id": "0", "prompt": "x"}], "gold-rejected", "BeaverTails")


# --------------------------------------------------------------------------- training rows
def test_sft_rows_per_training_type(bt):
    rows = bt["sft_train"][:10]
    chosen = F.sft_rows(rows, "chosen", "BeaverTails")
    rejected = F.sft_rows(rows, "rejected", "BeaverTails")
    both = F.sft_rows(rows, "all", "BeaverTails")
    none = F.sft_rows(rows, "none", "BeaverTails")
    assert len(chosen) == len(rejected) == len(none) == 10 and len(both) == 20
    r = rows[0]
    assert chosen[0] == {"prompt": f"Prompt: {r['prompt']}\nPersona: {r['chosen_persona_gold']}\nResponse:",
                         "completion": " " + r["chosen"].strip()}
    assert rejected[0] == {"prompt": f"Prompt: {r['prompt']}\nPersona: {r['rejected_persona_gold']}\nResponse:",
                           "completion": " " + r["rejected"].strip()}
    assert both[:10] == chosen and both[10:] == rejected
    assert none[0] == {"prompt": f"Prompt: {r['prompt']}\nResponse:", "completion": " " + r["chosen"].strip()}
    retr = F.sft_rows(rows, "chosen", "BeaverTails", persona_source="retr")
    assert r["chosen_persona_retr"] in retr[0]["prompt"]
    chat = F.sft_rows(rows, "chosen", "BeaverTails", fmt="chat")
    assert chat[0]["prompt"] == [{"role": "user", "content": f"{r['prompt']}\n\nPersona: {r['chosen_persona_gold']}"}]
    assert chat[0]["completion"] == [{"role": "assistant", "content": r["chosen"].strip()}]


def test_dpo_rows_per_training_type(bt):
    rows = bt["dpo_train"][:6]
    r = rows[1]
    chosen = F.dpo_rows(rows, "chosen", "BeaverTails")
    rejected = F.dpo_rows(rows, "rejected", "BeaverTails")
    both = F.dpo_rows(rows, "all", "BeaverTails")
    none = F.dpo_rows(rows, "none", "BeaverTails")
    assert len(both) == 12 and len(none) == 6
    assert chosen[1] == {"prompt": f"Prompt: {r['prompt']}\nPersona: {r['chosen_persona_gold']}\nResponse:",
                         "chosen": " " + r["chosen"].strip(), "rejected": " " + r["rejected"].strip()}
    # the rejected persona's user prefers the rejected response: the pair flips
    assert rejected[1] == {"prompt": f"Prompt: {r['prompt']}\nPersona: {r['rejected_persona_gold']}\nResponse:",
                           "chosen": " " + r["rejected"].strip(), "rejected": " " + r["chosen"].strip()}
    assert both == chosen + rejected
    assert none[1] == {"prompt": f"Prompt: {r['prompt']}\nResponse:", "chosen": " " + r["chosen"].strip(),
                       "rejected": " " + r["rejected"].strip()}


def test_mnemonic_training_keeps_the_seed_in_the_answer(mn):
    rows = mn["sft_train"][:3]
    out = F.sft_rows(rows, "chosen", "Mnemonic")
    assert out[0]["prompt"].endswith("\nResponse:")
    assert out[0]["completion"].startswith(" " + rows[0]["prompt"] + " sounds like")


def test_training_rows_refuse_empty_personas_and_responses(bt, mn):
    rows = [dict(r) for r in bt["sft_train"][:5]]
    rows[3]["rejected_persona_gold"] = ""
    F.sft_rows(rows, "chosen", "BeaverTails")  # the chosen side does not need it
    with pytest.raises(UsageError, match="1 of 5 rows have an empty 'rejected_persona_gold'"):
        F.sft_rows(rows, "all", "BeaverTails")
    with pytest.raises(UsageError, match="empty 'chosen'"):
        F.dpo_rows(mn["test"], "none", "Mnemonic", where="Mnemonic test")
    with pytest.raises(UsageError, match="no column 'chosen_persona_gold'"):
        F.sft_rows([{"row_id": "0", "prompt": "p", "chosen": "c", "rejected": "r"}], "chosen", "BeaverTails")
    with pytest.raises(UsageError, match="unknown persona source"):
        F.sft_rows(rows, "chosen", "BeaverTails", persona_source="silver")


# --------------------------------------------------------------------------- few-shot
def test_fewshot_prefix(bt):
    demos = bt["fewshot"]
    assert len(demos) == 5
    chosen = F.fewshot_prefix(demos, "chosen", "BeaverTails")
    blocks = chosen.rstrip("\n").split("\n\nPrompt: ")
    assert len(blocks) == 5 and chosen.endswith("\n\n")
    d = demos[0]
    assert chosen.startswith(f"Prompt: {d['prompt']}\nPersona: {d['chosen_persona_gold']}\nResponse: {d['chosen'].strip()}")
    assert chosen.count("\nPersona: ") == 5
    assert F.fewshot_prefix(demos, "all", "BeaverTails").count("\nPersona: ") == 10
    assert "\nPersona: " not in F.fewshot_prefix(demos, "none", "BeaverTails")
    row = bt["test"][0]
    full = F.build_input(row["prompt"], row["chosen_persona_retr"], training_type="chosen", split="BeaverTails",
                         demos=chosen)
    assert full.startswith(chosen) and full.endswith(f"Persona: {row['chosen_persona_retr']}\nResponse:")
    msgs = F.fewshot_messages(demos, "rejected")
    assert len(msgs) == 10 and msgs[1] == {"role": "assistant", "content": d["rejected"].strip()}


# --------------------------------------------------------------------------- post-processing
def test_clean_response():
    out = F.clean_response(" Paris is the capital.<|end_of_text|>")
    assert out == {"response": "Paris is the capital.", "stopped": False, "eos": True}
    out = F.clean_response(" Paris.\nPrompt: next question\nResponse: more")
    assert out == {"response": "Paris.", "stopped": True, "eos": False}
    out = F.clean_response(' "neglect-able": ignore it.<|end_of_text|>', seed="Negligible sounds like")
    assert out["response"] == 'Negligible sounds like "neglect-able": ignore it.'
    assert F.clean_response("x</s>junk<|eot_id|>")["response"] == "x"
    assert F.clean_response("", seed="")["response"] == ""


def test_parse_output_name():
    assert F.parse_output_name("dpo__train-none__infer-retr-rejected") == {
        "method": "dpo", "training_type": "none", "inference_type": "retr-rejected"}
    assert F.parse_output_name("my-outputs") is None
