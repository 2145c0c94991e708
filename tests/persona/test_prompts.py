"""Persona inference without a backend: sources, prompt building, post-processing (real rows)."""

from __future__ import annotations

import pytest

from prefkit.errors import UsageError


# ------------------------------------------------------------------------------------------------ sources
def test_sources_are_registered(prefkit_cli):
    data = {d["name"]: d for d in prefkit_cli("datasets", "--json").json()}
    assert data["persona-inference"]["configs"] == ["BeaverTails", "Anthropic HHH", "Mnemonic", "SHP"]
    assert data["persona-inference"]["splits"] == ["train"]
    assert data["persona-tailoring"]["configs"] == ["BeaverTails", "Anthropic HHH", "Mnemonic"]
    assert data["persona-tailoring"]["splits"] == ["fewshot", "sft_train", "sft_val", "dpo_train", "dpo_val", "test"]
    assert "chosen_persona_retr" in data["persona-tailoring"]["columns"]


def test_load_real_rows_from_mirror(persona_data):
    from prefkit.data import load_records

    recs = load_records("persona-inference:beavertails", data_dir=persona_data, limit=5)
    assert len(recs) == 5 and [r.row_id for r in recs] == ["0", "1", "2", "3", "4"]
    assert recs[0].prompt_text.startswith("What are the best practices for team collaboration")
    recs = load_records("persona-tailoring:Mnemonic", split="fewshot", data_dir=persona_data)
    assert len(recs) == 5 and recs[0].extra["chosen_persona_gold"].startswith("The user is")


def test_split_name_with_space_finds_mirror_folder(tmp_path):
    import datasets

    from prefkit.data import load_records

    rows = [{"prompt": "Human: hi\n\nAssistant: hello\n\nHuman: how are you?", "chosen": "Fine, thanks!",
             "rejected": "I am a language model."}]
    for folder in ("persona-inference-Anthropic HHH", "persona-inference-Anthropic_HHH"):
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / folder))
    for name in ("Anthropic HHH", "anthropic-hhh", "anthropic_hhh"):
        recs = load_records(f"persona-inference:{name}", data_dir=tmp_path)
        assert recs[0].prompt_text.startswith("Human: hi") and [m["role"] for m in recs[0].prompt] == \
            ["user", "assistant", "user"]


def test_unknown_split_is_one_clear_line(prefkit_cli, persona_data):
    r = prefkit_cli("infer-personas", "--split", "BeaverTail", "--data-dir", persona_data, "--backend", "mock")
    assert r.exit_code == 2
    assert "unknown split 'BeaverTail' (known: BeaverTails, Anthropic HHH, Mnemonic, SHP)" in r.stderr
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


def test_mnemonic_test_gold_is_explained(persona_data):
    from prefkit.data import load_records

    with pytest.raises(UsageError, match="only the retr-chosen, retr-rejected, system and none settings apply"):
        load_records("persona-tailoring:Mnemonic", split="test", data_dir=persona_data)
    with pytest.raises(UsageError, match="chosen_persona_gold.*empty in every row.*Mnemonic"):
        load_records("persona-tailoring:Mnemonic", split="test", data_dir=persona_data,
                     required=("prompt", "chosen_persona_gold"))
    # the settings that do apply load fine
    recs = load_records("persona-tailoring:Mnemonic", split="test", data_dir=persona_data,
                        required=("prompt", "chosen_persona_retr"), limit=3)
    assert recs[0].prompt_text == "negligible" and recs[0].extra["chosen_persona_retr"].startswith("The user")


def test_missing_column_is_named(tmp_path, prefkit_cli):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "p", "chosen": "c"}])}).save_to_disk(
        str(tmp_path / "persona-inference-SHP"))
    r = prefkit_cli("infer-personas", "--split", "SHP", "--data-dir", tmp_path, "--backend", "mock")
    assert r.exit_code == 2 and "has no column 'rejected'" in r.stderr, r.output


def test_no_mirror_and_no_hub_says_where_it_looked(tmp_path, prefkit_cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    r = prefkit_cli("infer-personas", "--split", "SHP", "--data-dir", tmp_path, "--backend", "mock")
    assert r.exit_code != 0
    assert "persona-inference-SHP" in r.stderr and "PREFKIT_DATA_DIR" in r.stderr


# ------------------------------------------------------------------------------------------------ templates
@pytest.mark.parametrize("split", ["BeaverTails", "Anthropic HHH", "Mnemonic", "SHP"])
def test_builtin_demos_and_descriptions(split):
    from prefkit_persona import templates

    demos = templates.load_demos(split)
    assert len(demos) == 5  # as many as the paper's prompts have
    for d in demos:
        assert d.startswith("Prompt: ") and "\n---\nChosen Response: " in d and "\n---\nPersona: The user " in d
    assert len(set(demos)) == 5
    assert len(templates.description(split)) > 60


def test_mnemonic_demos_are_keyword_mnemonics():
    """Mnemonic's description says every response is a keyword mnemonic: so are all its demonstrations."""
    from prefkit_persona import templates
    from prefkit_persona.evaluation import demo_fields

    assert "keyword mnemonic" in templates.description("Mnemonic")
    for block in templates.load_demos("Mnemonic"):
        d = demo_fields(block)
        for side in ("chosen", "rejected"):
            assert d[side].startswith(f"{d['prompt']} sounds like \""), d[side]


def test_beavertails_description_does_not_prime_safety():
    from prefkit_persona import templates

    text = templates.description("BeaverTails").lower()
    for word in ("risky", "unethical", "sensitive", "harm", "safe"):
        assert word not in text
    personas = " ".join(b.rsplit("Persona:", 1)[1] for b in templates.load_demos("BeaverTails")).lower()
    for word in ("law-abiding", "ethical", "safe", "harm"):
        assert word not in personas


def test_render_is_single_pass():
    from prefkit_persona.templates import render

    out = render("A {{x}} B {{y}}", x="{{y}} and {braces}", y="Y")
    assert out == "A {{y}} and {braces} B Y"
    with pytest.raises(UsageError, match=r"\{\{z\}\}"):
        render("{{z}}", x="1")


def _ctx(split, strategy="abductive", **kw):
    from prefkit_persona.inference import get_strategy

    s = get_strategy(strategy)
    return s, s.context(split, **kw)


def test_prompt_on_real_beavertails_row_both_sides(persona_data):
    from prefkit.data import load_records
    from prefkit_persona.inference import pi_inputs

    rec = load_records("persona-inference:BeaverTails", data_dir=persona_data, limit=2)[1]
    items = pi_inputs([rec])
    assert [(i.key, i.side) for i in items] == [("1:chosen", "chosen"), ("1:rejected", "rejected")]
    strat, ctx = _ctx("BeaverTails")
    msgs = [strat.build_messages(i, ctx) for i in items]
    for m in msgs:
        assert len(m) == 1 and m[0]["role"] == "user"
        text = m[0]["content"]
        assert text.endswith("---\nPersona:")
        assert "request or question that a user sent to an AI assistant" in text
        assert text.count("Chosen Response:") == 6 and text.count("\n===") == 0  # 5 demos + the query
    query_c = msgs[0][0]["content"].rsplit("Now write the persona", 1)[1]
    query_r = msgs[1][0]["content"].rsplit("Now write the persona", 1)[1]
    chosen, rejected = rec.chosen_text.strip(), rec.rejected_text.strip()
    assert f"Chosen Response: {chosen}\n---\nRejected Response: {rejected}\n---" in query_c
    assert f"Chosen Response: {rejected}\n---\nRejected Response: {chosen}\n---" in query_r
    assert f"Prompt: {rec.prompt_text.strip()}\n---" in query_c


def test_prompt_on_real_mnemonic_row_zero_shot(persona_data):
    from prefkit.data import load_records
    from prefkit_persona.inference import pi_inputs

    rec = load_records("persona-inference:Mnemonic", data_dir=persona_data, limit=1)[0]
    strat, ctx = _ctx("Mnemonic", "zero-shot")
    text = strat.build_messages(pi_inputs([rec], ["rejected"])[0], ctx)[0]["content"]
    assert "keyword mnemonic" in text and text.count("Chosen Response:") == 1
    assert "Prompt: Ingenue\n---\nChosen Response: Ingenue sounds like \"innocent girl\"" in text


def test_prompt_file_override(tmp_path, persona_data, prefkit_cli):
    good = tmp_path / "mine.txt"
    good.write_text("Explain: {{prompt}} | {{chosen}} | {{rejected}}\nPersona:")
    r = prefkit_cli("persona", "prompt", "--split", "Mnemonic", "--data-dir", persona_data, "--prompt-file", good)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("[user]\nExplain: Ingenue | Ingenue sounds like \"ingenious newbie,\"")
    bad = tmp_path / "bad.txt"
    bad.write_text("Explain {{prompt}} and {{chosen}}")
    r = prefkit_cli("persona", "prompt", "--split", "Mnemonic", "--data-dir", persona_data, "--prompt-file", bad)
    assert r.exit_code == 2 and "lacks the placeholder(s) {{rejected}}" in r.stderr
    r = prefkit_cli("persona", "prompt", "--split", "Mnemonic", "--data-dir", persona_data, "--prompt-file",
                    tmp_path / "nope.txt")
    assert r.exit_code == 2 and "prompt file not found" in r.stderr


def test_strategies_listed(prefkit_cli):
    names = {d["name"] for d in prefkit_cli("persona", "strategies", "--json").json()}
    assert {"abductive", "zero-shot"} <= names
    r = prefkit_cli("infer-personas", "--split", "SHP", "--strategy", "telepathy", "--backend", "mock")
    assert r.exit_code == 2 and "unknown persona strategy 'telepathy'" in r.stderr


# ------------------------------------------------------------------------------------------------ post-processing
@pytest.mark.parametrize("raw,persona,flags", [
    (" The user is patient and prefers detail.\n\nPrompt: next", "The user is patient and prefers detail.", []),
    ("Persona: The user is curious and prefers  stories.", "The user is curious and prefers stories.", []),
    ("**Persona:** The user is direct and prefers short answers.\n---\nPrompt:", "The user is direct and prefers short answers.", []),
    ("\n\n\"The user is careful and prefers warnings.\"", "The user is careful and prefers warnings.", []),
    ("The user is frugal and prefers cheap options.---Chosen Response: x", "The user is frugal and prefers cheap options.", []),
    ("The user is terse.<|im_end|>junk", "The user is terse.", []),
    ("", "", ["empty"]),
    ("   \n---\nPrompt: more", "", ["empty"]),
    (None, "", ["empty"]),
    ("Sure! Here is a persona for you.", "Sure! Here is a persona for you.", ["malformed"]),
])
def test_clean_persona(raw, persona, flags):
    from prefkit_persona.inference import clean_persona

    assert clean_persona(raw) == (persona, flags)


def test_clean_persona_is_deterministic_and_idempotent():
    from prefkit_persona.inference import clean_persona

    raw = "Persona:   The user is a visual learner and prefers   vivid images.\nThe user is other."
    once, _ = clean_persona(raw)
    assert clean_persona(raw)[0] == once and clean_persona(once)[0] == once
