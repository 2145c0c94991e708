"""The bundled persona-inference splits (no mirror, no hub) and the same-persona flag of infer-personas."""

import gzip
import json

import pytest


def test_bundled_splits_load_without_mirror_or_hub(monkeypatch, capsys):
    from prefkit.data import load_records
    from prefkit.errors import PrefkitError

    monkeypatch.delenv("PREFKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for split in ("BeaverTails", "Mnemonic"):
        recs = load_records(f"persona-inference:{split}")
        assert len(recs) == 300 and [r.row_id for r in recs[:3]] == ["0", "1", "2"]
        assert all(r.prompt_text and r.chosen_text and r.rejected_text for r in recs)
    err = capsys.readouterr().err
    assert "using the bundled persona-inference BeaverTails (300 rows)" in err
    assert len([ln for ln in err.splitlines() if "bundled" in ln]) == 2  # one line per load
    with pytest.raises(PrefkitError, match="SHP"):  # not bundled: the usual error
        load_records("persona-inference:SHP")


def test_bundled_splits_equal_the_mirror(persona_data, monkeypatch):
    import datasets

    from prefkit_persona.sources import BUNDLED_DIR

    for split in ("BeaverTails", "Mnemonic"):
        mirror = datasets.load_from_disk(str(persona_data / f"persona-inference-{split}"))["train"].to_list()
        with gzip.open(BUNDLED_DIR / f"persona-inference-{split}.jsonl.gz", "rt", encoding="utf-8") as fh:
            bundled = [json.loads(line) for line in fh]
        assert bundled == mirror


def test_mirror_wins_over_the_bundled_copy(tmp_path, capsys):
    import datasets

    from prefkit.data import load_records

    rows = {"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(
        str(tmp_path / "persona-inference-Mnemonic"))
    recs = load_records("persona-inference:Mnemonic", data_dir=tmp_path)
    assert len(recs) == 1 and "bundled" not in capsys.readouterr().err


def test_same_persona():
    from prefkit_persona.inference import same_persona

    a = "The user is a careful learner and prefers short, concrete answers."
    assert same_persona(a, a)
    assert same_persona(a, "the user is a careful learner, and prefers short concrete answers")
    assert same_persona(a, "The user is a careful learner and prefers short, concrete answer.")
    assert not same_persona(a, "The user is impatient and prefers long, vivid stories with many characters.")


def test_rows_with_the_same_persona_on_both_sides_are_flagged_and_counted(tmp_path, monkeypatch):
    from prefkit.backends import BackendOptions
    from prefkit.runs import Run
    from prefkit.testing.backends import MockBackend
    from prefkit_persona.inference import InferConfig, infer_personas

    monkeypatch.delenv("PREFKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def responder(req):
        row = int(req.meta["row_id"])
        if row == 1:  # the same persona for both sides, up to case and punctuation
            return "The user is cautious and prefers safe advice." if req.meta["side"] == "chosen" \
                else "the user is cautious, and prefers safe advice"
        return f"The user number {row} prefers the {req.meta['side']} kind of answer."

    mock = MockBackend(responder=responder)
    out = tmp_path / "run"
    with mock.installed():
        summary = infer_personas(InferConfig(split="Mnemonic", limit=3), BackendOptions(backend="mock", cache=False),
                                 output_dir=str(out), progress=False)
    assert summary["personas"] == 6
    assert summary["flags"] == {"same_persona": 1}
    flagged = [(r["row_id"], r["side"]) for r in Run.load(out).results() if "same_persona" in r["flags"]]
    assert flagged == [("1", "rejected")]  # the row's second persona carries the flag
    # resuming a finished run re-counts the same rows (the flag is stored)
    with mock.installed():
        again = infer_personas(InferConfig(split="Mnemonic", limit=3), BackendOptions(backend="mock", cache=False),
                               output_dir=str(out), progress=False)
    assert again["flags"] == {"same_persona": 1}


def test_a_persona_copied_from_a_demonstration_is_flagged(tmp_path, monkeypatch):
    """Small models repeat a demonstration's persona (SmolLM2-135M did for 33 of 40 BeaverTails personas)."""
    from prefkit.backends import BackendOptions
    from prefkit.runs import Run
    from prefkit.testing.backends import MockBackend
    from prefkit_persona import templates
    from prefkit_persona.inference import InferConfig, demo_personas, infer_personas

    monkeypatch.delenv("PREFKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shown = demo_personas(templates.load_demos("BeaverTails"))
    assert len(shown) == 5 and all(p.startswith("The user ") for p in shown)

    def responder(req):
        row = int(req.meta["row_id"])
        if row == 0 and req.meta["side"] == "chosen":
            return shown[-1]  # the last demonstration's persona, word for word
        return f"The user number {row} prefers the {req.meta['side']} kind of answer."

    mock = MockBackend(responder=responder)
    with mock.installed():
        summary = infer_personas(InferConfig(split="BeaverTails", limit=2), BackendOptions(backend="mock", cache=False),
                                 output_dir=str(tmp_path / "run"), progress=False)
    assert summary["flags"] == {"copied_demo": 1}
    assert [(r["row_id"], r["side"]) for r in Run.load(tmp_path / "run").results()
            if "copied_demo" in r["flags"]] == [("0", "chosen")]
