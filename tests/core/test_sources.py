"""Dataset sources: files, save_to_disk directories, named sources with a mirror, the hub, validation."""

from __future__ import annotations

import json

import pytest

import prefkit
from prefkit.data import PreferenceRecord, parse_dialogue
from prefkit.data.sources import NamedSource, to_records
from prefkit.errors import PrefkitError, UsageError

ROWS = [
    {"prompt": "How do I boil an egg?", "chosen": "Boil it 9 minutes.", "rejected": "Eggs are nice."},
    {"prompt": "Name a color.", "chosen": "Blue.", "rejected": "Potato."},
]


def write_all(tmp_path, rows=ROWS):
    import csv

    import datasets

    paths = {}
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths["jsonl"] = p
    p = tmp_path / "d.json"
    p.write_text(json.dumps(rows))
    paths["json"] = p
    p = tmp_path / "d.csv"
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    paths["csv"] = p
    p = tmp_path / "d.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(p))
    paths["parquet"] = p
    p = tmp_path / "disk"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(p))
    paths["disk"] = p
    return paths


def test_every_file_kind_gives_the_same_records(tmp_path):
    paths = write_all(tmp_path)
    seen = {}
    for kind, path in paths.items():
        recs = prefkit.load_records(str(path), split="train" if kind == "disk" else None)
        seen[kind] = [r.to_trl() for r in recs]
        assert [r.row_id for r in recs] == ["0", "1"]
    first = seen["jsonl"]
    assert all(v == first for v in seen.values())
    assert first[0] == {
        "prompt": [{"role": "user", "content": "How do I boil an egg?"}],
        "chosen": [{"role": "assistant", "content": "Boil it 9 minutes."}],
        "rejected": [{"role": "assistant", "content": "Eggs are nice."}],
    }


def test_row_id_column_is_kept(tmp_path):
    p = tmp_path / "ids.jsonl"
    p.write_text("".join(json.dumps({**r, "id": f"x{i}"}) + "\n" for i, r in enumerate(ROWS)))
    assert [r.row_id for r in prefkit.load_records(str(p))] == ["x0", "x1"]


def test_column_map(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"question": "q", "good": "g", "bad": "b", "who": "The user is a cat."}) + "\n")
    recs = prefkit.load_records(str(p), column_map="prompt=question,chosen=good,rejected=bad,persona=who")
    assert recs[0].prompt_text == "q" and recs[0].chosen_text == "g" and recs[0].persona == "The user is a cat."


def test_missing_column_error_lists_columns(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"prompt": "q", "good": "g"}) + "\n")
    with pytest.raises(UsageError, match=r"missing column 'chosen'.*columns are: good, prompt"):
        prefkit.load_records(str(p))


def test_empty_value_names_the_row_and_skip_invalid_counts(tmp_path):
    rows = [ROWS[0], {"prompt": "p", "chosen": "", "rejected": "r"}, ROWS[1]]
    p = tmp_path / "e.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UsageError, match=r"row 1 has empty 'chosen'.*--skip-invalid"):
        prefkit.load_records(str(p))
    stats = {}
    recs = prefkit.load_records(str(p), skip_invalid=True, stats=stats)
    assert [r.row_id for r in recs] == ["0", "2"]  # ids stay the source's row numbers
    assert stats == {"skipped": 1, "loaded": 2}


def test_wrong_type_is_reported(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"prompt": "p", "chosen": 3, "rejected": "r"}) + "\n")
    with pytest.raises(UsageError, match="row 0 has 'chosen' is a int"):
        prefkit.load_records(str(p))


def test_prompt_only_records(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "just a prompt"}) + "\n")
    recs = prefkit.load_records(str(p), required=("prompt",))
    assert recs[0].prompt_text == "just a prompt" and recs[0].chosen == []


def test_unreadable_and_unknown_inputs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "chosen": "a", "rejected": "b"}\n{not json\n')
    with pytest.raises(UsageError, match="line 2 is not valid JSON"):
        prefkit.load_records(str(bad))
    with pytest.raises(UsageError, match="no such file"):
        prefkit.load_records(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UsageError, match="unknown dataset 'nope'"):
        prefkit.load_records("nope")
    txt = tmp_path / "x.txt"
    txt.write_text("hi")
    with pytest.raises(UsageError, match="unsupported file type"):
        prefkit.load_records(str(txt))


def test_disk_dict_needs_split(tmp_path):
    paths = write_all(tmp_path)
    with pytest.raises(UsageError, match="has no split 'nope'"):
        prefkit.load_records(str(paths["disk"]), split="nope")


def test_named_source_prefers_mirror_then_says_where_it_looked(tmp_path, monkeypatch):
    import datasets

    src = NamedSource(name="toy", hub_id="nobody/does-not-exist-prefkit", configs=["A", "B C"], splits=["train"],
                      default_split="train")
    mirror = tmp_path / "mirror"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(mirror / "toy-A"))
    recs = src.load("A", data_dir=mirror)
    assert len(recs) == 2 and recs[0].source == "toy:A [train]"
    monkeypatch.setenv("PREFKIT_DATA_DIR", str(mirror))
    assert len(src.load("A")) == 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(PrefkitError) as err:
        src.load("B C")
    msg = str(err.value)
    assert str(mirror / "toy-B C") in msg and "nobody/does-not-exist-prefkit" in msg and "PREFKIT_DATA_DIR" in msg
    with pytest.raises(UsageError, match="no config 'Z'"):
        src.load("Z")
    with pytest.raises(UsageError, match="no split 'test'"):
        src.load("A", split="test")


def test_real_persona_mirror_through_disk_source(persona_data):
    recs = prefkit.load_records(str(persona_data / "persona-tailoring-BeaverTails"), split="fewshot")
    assert len(recs) == 5
    assert recs[0].extra["chosen_persona_gold"].startswith("The user is")
    recs = prefkit.load_records(str(persona_data / "persona-inference-Mnemonic"), limit=7)
    assert len(recs) == 7 and all(r.chosen_text for r in recs)


def test_dialogue_parsing():
    msgs = parse_dialogue("\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant:")
    assert msgs == [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "How are you?"}]
    assert parse_dialogue("A: not a dialogue") == [{"role": "user", "content": "A: not a dialogue"}]
    rec = PreferenceRecord.from_dict({"row_id": 1, "prompt": "Human: x\n\nAssistant:", "chosen": "y", "rejected": "z"})
    assert rec.prompt_text == "Human: x\n\nAssistant:"  # the source's text is kept verbatim


def test_to_records_messages_passthrough():
    rows = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}], "community": "r/cats", "user_id": 7}]
    rec = to_records(rows, source="t")[0]
    assert rec.community == "r/cats" and rec.user_id == "7" and rec.to_dict()["community"] == "r/cats"


def test_datasets_command_lists_sources(prefkit_cli):
    res = prefkit_cli("datasets", "--json")
    assert res.exit_code == 0
    assert {"hf", "disk", "file"} <= {d["name"] for d in res.json()}


def test_split_on_a_single_file_is_an_error(tmp_path):
    paths = write_all(tmp_path)
    assert len(prefkit.load_records(str(paths["jsonl"]), split="train")) == 2  # the conventional name is fine
    with pytest.raises(UsageError, match="single table without splits; --split 'test' does not apply"):
        prefkit.load_records(str(paths["jsonl"]), split="test")
    import datasets

    single = tmp_path / "single"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(single))
    assert len(prefkit.load_records(str(single))) == 2
    with pytest.raises(UsageError, match="--split 'nope' does not apply"):
        prefkit.load_records(str(single), split="nope")


def test_limit_below_one_is_refused(tmp_path):
    paths = write_all(tmp_path)
    for bad in (0, -1):
        with pytest.raises(UsageError, match=f"--limit must be at least 1 \\(got {bad}\\)"):
            prefkit.load_records(str(paths["jsonl"]), limit=bad)
