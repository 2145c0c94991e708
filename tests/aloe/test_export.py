"""Export to TRL conversational datasets: SFT (one multi-turn example per conversation, loss on the
assistant turns) and DPO (one pair per turn, the realised history as the prompt); the dataset card."""

from __future__ import annotations

import json

import prefkit
from prefkit.testing import cli

from prefkit_aloe.export import ExportConfig, dpo_rows, export, sft_rows
from prefkit_aloe.generate import read_turns

from .conftest import run_generate, scripted_backend


def test_sft_is_one_multi_turn_example_per_conversation_with_the_preferred_replies(generated_run, tmp_path):
    res = export(str(generated_run), ExportConfig(format="sft"), output_dir=str(tmp_path / "x"))
    assert res["status"] == "done" and res["counts"]["sft_rows"] == 3
    rows = [json.loads(x) for x in (tmp_path / "x" / "sft.jsonl").read_text().splitlines()]
    turns = read_turns(generated_run)
    for row in rows:
        ts = turns[row["conversation_id"]]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * 3
        assert [m["content"] for m in row["messages"][0::2]] == [t["user"] for t in ts]  # each turn's own message
        assert [m["content"] for m in row["messages"][1::2]] == [t["preferred"] for t in ts]
        assert row["swapped_turns"] == sum(t["chosen_index"] != 0 for t in ts)
    assert sum(r["swapped_turns"] for r in rows) > 0  # some continuations were rejected ones
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "x" / "sft"))
    assert ds.num_rows == 3 and ds[0]["messages"] == rows[0]["messages"]


def test_sft_realised_path_keeps_the_conversation_as_it_happened(generated_run):
    turns = read_turns(generated_run)
    rows = sft_rows(turns, path="realised", system="Be kind.")
    for row in rows:
        ts = turns[row["conversation_id"]]
        assert row["messages"][0] == {"role": "system", "content": "Be kind."}
        assert [m["content"] for m in row["messages"][2::2]] == [t["assistant"] for t in ts]
        assert row["swapped_turns"] == 0


def test_dpo_is_one_pair_per_turn_with_the_realised_history_as_prompt(generated_run, tmp_path):
    res = export(str(generated_run), ExportConfig(format="dpo"), output_dir=str(tmp_path / "x"))
    assert res["counts"]["dpo_rows"] == 9
    rows = [json.loads(x) for x in (tmp_path / "x" / "dpo.jsonl").read_text().splitlines()]
    turns = read_turns(generated_run)
    for row in rows:
        ts = turns[row["conversation_id"]]
        t = ts[row["turn"]]
        history = []
        for prev in ts[:row["turn"]]:
            history += [{"role": "user", "content": prev["user"]}, {"role": "assistant", "content": prev["assistant"]}]
        assert row["prompt"] == [*history, {"role": "user", "content": t["user"]}]
        assert row["chosen"] == [{"role": "assistant", "content": t["preferred"]}]
        assert row["rejected"] == [{"role": "assistant", "content": t["rejected"][0]}]
        assert row["chosen_source"] == "aware" and row["rejected_source"] == "plain.0" and row["tie"] is False
    # the prompts hold rejected continuations too (the realised path, not the preferred one)
    assert any(m["content"].startswith("PLAIN") for r in rows for m in r["prompt"] if m["role"] == "assistant")


def test_tied_pairs_are_skipped_unless_kept(tmp_path, personas_file):
    run_generate(personas_file, tmp_path / "g", scripted_backend("first"), turns=2)
    turns = read_turns(tmp_path / "g")
    rows, skipped = dpo_rows(turns, ties="skip")
    assert rows == [] and skipped == {"tie_pairs_skipped": 6}
    rows, _ = dpo_rows(turns, ties="keep")
    assert len(rows) == 6 and all(r["tie"] for r in rows)
    r = cli("aloe", "export", str(tmp_path / "g"), "--format", "dpo", "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "--ties keep" in r.output


def test_several_rejected_replies_make_one_pair_each(tmp_path, personas_file):
    run_generate(personas_file, tmp_path / "g", scripted_backend("aware"), turns=2, n_responders=2)
    rows, _ = dpo_rows(read_turns(tmp_path / "g"))
    assert len(rows) == 3 * 2 * 2
    assert {r["rejected_source"] for r in rows} == {"plain.0", "plain.1"}


def test_label_masks_cover_the_assistant_turns_only(generated_run, tmp_path):
    from prefkit.testing import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    rows = sft_rows(read_turns(generated_run))
    trainer = prefkit.get_trainer("sft")
    cfg = prefkit.SFTTrainConfig(max_length=4096)
    norm = trainer.normalize_rows(rows, cfg, None)
    fitted, stats = trainer.fit_rows(norm, tok, cfg)
    assert stats.kept == 3 and stats.truncated == 0
    for row, enc in zip(rows, fitted):
        trained = tok.decode([t for t, lab in zip(enc["input_ids"], enc["labels"]) if lab != -100])
        for m in row["messages"]:
            if m["role"] == "assistant":
                assert m["content"] in trained
            else:
                assert m["content"] not in trained
    dpo, _ = dpo_rows(read_turns(generated_run))
    norm = prefkit.get_trainer("dpo").normalize_rows(dpo, prefkit.DPOTrainConfig(), None)
    assert len(norm) == 9 and norm[4]["prompt"] == dpo[4]["prompt"]


def test_the_cli_writes_both_formats_and_a_card_with_models_and_settings(generated_run, tmp_path):
    r = cli("aloe", "export", str(generated_run), "-o", str(tmp_path / "x"), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["formats"] == ["sft", "dpo"] and out["counts"]["sft_rows"] == 3 and out["counts"]["dpo_rows"] == 9
    card = (tmp_path / "x" / "README.md").read_text()
    assert "| judge | `mock:judge` |" in card and "| responder.0 | `mock:resp-0` |" in card
    assert '"tie_rule": "aware"' in card and '"turns": 3' in card and '"seed": 1' in card
    assert "config_name: sft" in card and "data_files: dpo.jsonl" in card
    for f in ("sft", "dpo"):
        assert (tmp_path / "x" / f / "dataset_info.json").exists() and (tmp_path / "x" / f"{f}.jsonl").exists()


def test_bad_sources_and_offline_push_are_one_clear_error(generated_run, tmp_path):
    r = cli("aloe", "export", str(tmp_path), "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "not a run directory" in r.output and "Traceback" not in r.output
    build = cli("aloe", "personas", "build", "-n", "3", "-o", str(tmp_path / "b"))
    assert build.exit_code == 0
    r = cli("aloe", "export", str(tmp_path / "b"), "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "not an 'aloe generate' run" in r.output
    r = cli("aloe", "export", str(generated_run), "-o", str(tmp_path / "y"), "--push-to-hub", "me/aloe")
    assert r.exit_code == 1 and "HF_HUB_OFFLINE" in r.output and "the local export is done" in r.output
    assert (tmp_path / "y" / "sft.jsonl").exists()


def test_partial_conversations_are_left_out_unless_asked(tmp_path, personas_file):
    from prefkit.testing import ScriptedBackend

    from .conftest import aloe_script

    script = aloe_script("aware", fail=lambda r: r.key.endswith("/1/judge0a"))
    run_generate(personas_file, tmp_path / "g", ScriptedBackend(script), turns=3)
    r = cli("aloe", "export", str(tmp_path / "g"), "-o", str(tmp_path / "x"))
    assert r.exit_code == 2 and "--no-complete-only" in r.output
    res = export(str(tmp_path / "g"), ExportConfig(complete_only=False), output_dir=str(tmp_path / "y"))
    assert res["counts"]["sft_rows"] == 3 and res["counts"]["dpo_rows"] == 3
