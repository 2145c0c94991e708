"""Saliency, augmentation and retrieval: pure parts on real rows, plus their error paths."""

from __future__ import annotations

import json

import pytest

from prefkit.errors import UsageError


# ------------------------------------------------------------------------------------------------ saliency
def test_tokens_first_sentence_and_comparison_cut():
    from prefkit_persona.saliency import cut_comparison, first_sentence, persona_tokens

    p = "The user is patient and prefers stories rather than lists. The user is also tall."
    assert first_sentence(p) == "The user is patient and prefers stories rather than lists."
    assert persona_tokens(p) == ["the", "user", "be", "patient", "and", "prefer", "story"]
    # whole words only: "overall" and "overview" do not cut, "over" does
    assert cut_comparison("an overall overview over details") == "an overall overview "
    for phrase in ("rather than", "over", "versus", "compared to", "instead of", "Rather  Than"):
        assert cut_comparison(f"likes jokes {phrase} facts").strip() == "likes jokes"
    assert persona_tokens("The user is detail-oriented, and prefers it.")[3] == "detail-oriented"


def test_saliency_numbers():
    from prefkit_persona.saliency import saliency

    personas = [("chosen", "The user is brief."), ("chosen", "The user is brief and kind."),
                ("rejected", "The user is kind rather than brief."), ("rejected", "The user is verbose.")]
    res = saliency(personas, min_count=2, top=10)
    chosen = {d["word"]: d for d in res["chosen"]}
    rejected = {d["word"]: d for d in res["rejected"]}
    assert chosen["brief"] == {"word": "brief", "saliency": 1.0, "count": 2, "total": 2}
    assert chosen["kind"]["saliency"] == rejected["kind"]["saliency"] == 0.5
    assert "verbose" not in chosen and "verbose" not in rejected  # count 1 < min_count
    assert res["personas"] == {"chosen": 2, "rejected": 2}
    assert res["chosen"][0]["word"] == "brief"


def test_saliency_on_real_gold_personas(persona_data):
    import datasets

    from prefkit_persona.saliency import saliency

    ds = datasets.load_from_disk(str(persona_data / "persona-tailoring-BeaverTails"))["sft_train"]
    pairs = [("chosen", p) for p in ds["chosen_persona_gold"]] + [("rejected", p) for p in ds["rejected_persona_gold"]]
    res = saliency(pairs, min_count=10, top=10)
    for side in ("chosen", "rejected"):
        assert len(res[side]) == 10
        assert all(d["total"] >= 10 and 0 < d["saliency"] <= 1 for d in res[side])
        assert [d["saliency"] for d in res[side]] == sorted((d["saliency"] for d in res[side]), reverse=True)
    # each word's two saliencies add up to one
    both = {d["word"]: d["saliency"] for d in res["chosen"]}
    for d in saliency(pairs, min_count=10, top=10_000)["rejected"]:
        if d["word"] in both:
            assert both[d["word"]] + d["saliency"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ augment
def _fake_pi_run(path, persona_data, personas, dataset="persona-inference:BeaverTails"):
    """A persona run written through the run store, records in scrambled order."""
    from prefkit.runs import Run

    run = Run.open("infer-personas", output_dir=path, identity={"test": 1})
    run.update_manifest(persona={"split": "BeaverTails", "dataset": dataset, "data_split": "train"})
    for (rid, side), text in personas.items():
        run.append({"row_id": rid, "side": side, "persona": text, "prompt": "p", "preferred": "a",
                    "dispreferred": "b", "flags": [], "dataset": dataset, "data_split": "train"},
                   key=f"{rid}:{side}")
    run.finish()
    return path


def test_augment_joins_by_row_id(tmp_path, persona_data, prefkit_cli):
    import datasets

    personas = {("7", "rejected"): "The user is R7.", ("2", "chosen"): "The user is C2.",
                ("7", "chosen"): "The user is C7.", ("2", "rejected"): "The user is R2.",
                ("4", "chosen"): "The user is C4."}  # row 4 has only one side
    run = _fake_pi_run(tmp_path / "pi", persona_data, personas)
    r = prefkit_cli("persona", "augment", run, "-o", tmp_path / "aug", "--data-dir", persona_data, "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert stats["augmented"] == 2 and stats["missing"] == 298
    ds = datasets.load_from_disk(str(tmp_path / "aug"))["train"]
    src = datasets.load_from_disk(str(persona_data / "persona-inference-BeaverTails"))["train"]
    assert ds["row_id"] == ["2", "7"]
    assert ds["chosen_persona_gold"] == ["The user is C2.", "The user is C7."]
    assert ds["rejected_persona_gold"] == ["The user is R2.", "The user is R7."]
    assert ds[1]["prompt"] == src[7]["prompt"] and ds[0]["chosen"] == src[2]["chosen"]
    # --keep-missing keeps every row, with empty strings where a persona is missing
    r = prefkit_cli("persona", "augment", run, "-o", tmp_path / "all", "--data-dir", persona_data, "--keep-missing",
                    "--json")
    ds = datasets.load_from_disk(str(tmp_path / "all"))["train"]
    assert len(ds) == 300 and ds[4]["chosen_persona_gold"] == "The user is C4." and ds[4]["rejected_persona_gold"] == ""


def test_augment_refuses_foreign_row_ids(tmp_path, persona_data, prefkit_cli):
    run = _fake_pi_run(tmp_path / "pi", persona_data, {("9999", "chosen"): "The user is x.",
                                                       ("9999", "rejected"): "The user is y."})
    r = prefkit_cli("persona", "augment", run, "--data-dir", persona_data)
    assert r.exit_code == 2 and "not in the dataset" in r.stderr and "9999" in r.stderr


def test_augment_needs_a_persona_run(tmp_path, prefkit_cli):
    from prefkit.runs import Run

    Run.open("generate", output_dir=tmp_path / "gen").finish()
    r = prefkit_cli("persona", "augment", tmp_path / "gen")
    assert r.exit_code == 2 and "not a persona-inference" in r.stderr
    r = prefkit_cli("persona", "saliency", tmp_path)
    assert r.exit_code == 2 and "not a prefkit run directory" in r.stderr


# ------------------------------------------------------------------------------------------------ retrieval
def test_nearest_skips_itself():
    import numpy as np

    from prefkit_persona.retrieval import nearest

    scores = np.array([[5.0, 4.0, 1.0], [2.0, 9.0, 3.0]])
    got = nearest(scores, [("train", "0"), ("test", "x")], [("train", "0"), ("train", "1"), ("train", "2")])
    assert got[0][0] == 1 and got[1][0] == 1  # row 0 may not retrieve itself; a test row may take the best


def test_retrieve_bm25_on_real_mnemonic(persona_data, prefkit_cli, tmp_path):
    r = prefkit_cli("persona", "retrieve", "--split", "mnemonic", "--pool", "sft_train,dpo_train", "--target",
                    "test", "--embedder", "bm25", "--limit", 25, "--data-dir", persona_data, "-o", tmp_path / "r",
                    "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["rows"] == 25 and res["pool"] == 126 + 132 and res["comparable"] > 0
    assert 0 <= res["agreement"] <= 1
    import datasets

    ds = datasets.load_from_disk(res["dataset_dir"])["test"]
    assert len(ds) == 25 and all(p.startswith("The user") for p in ds["chosen_persona_retr"])
    assert ds["prompt"][0] == "negligible"


def test_retrieve_within_a_split_never_returns_the_row_itself(persona_data, prefkit_cli, tmp_path):
    r = prefkit_cli("persona", "retrieve", "--split", "Mnemonic", "--pool", "sft_train", "--target", "sft_train",
                    "--embedder", "bm25", "--data-dir", persona_data, "-o", tmp_path / "r", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "r" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 126 and all(x["neighbour_row_id"] != x["row_id"] for x in rows)


@pytest.mark.slow
def test_retrieve_default_embedder_offline(persona_data, prefkit_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = prefkit_cli("persona", "retrieve", "--split", "Mnemonic", "--pool", "dpo_train", "--target", "dpo_val",
                    "--data-dir", persona_data, "-o", tmp_path / "r", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["embedder"] == "all-MiniLM-L6-v2" and res["rows"] == 35 and res["comparable"] == 35
    # the dataset's retrieved personas come from dpo_train too: its neighbour ranks high in ours
    assert res["dataset_neighbours_found"] == 35 and res["dataset_neighbour_in_top5"] >= 0.3


def test_retrieve_bad_inputs(persona_data, prefkit_cli, tmp_path):
    r = prefkit_cli("persona", "retrieve", "--split", "SHP", "--data-dir", persona_data)
    assert r.exit_code == 2 and "unknown split 'SHP' (known: BeaverTails, Anthropic HHH, Mnemonic)" in r.stderr
    r = prefkit_cli("persona", "retrieve", "--split", "Mnemonic", "--target", "tset", "--data-dir", persona_data)
    assert r.exit_code == 2 and "unknown split 'tset'" in r.stderr
    # Mnemonic's test rows have no gold personas: they cannot serve as a pool
    r = prefkit_cli("persona", "retrieve", "--split", "Mnemonic", "--pool", "test", "--target", "dpo_val",
                    "--embedder", "bm25", "--data-dir", persona_data)
    assert r.exit_code == 2 and "no row with both gold personas" in r.stderr


def test_saliency_refuses_non_positive_counts(prefkit_cli, tmp_path):
    for flag in ("--top", "--min-count"):
        res = prefkit_cli("persona", "saliency", str(tmp_path), flag, "0")
        assert res.exit_code == 2
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for '" + flag + "'")
