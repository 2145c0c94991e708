"""Persona tailoring end to end on a tiny model: sft → merge → dpo → generate → judge (and few-shot)."""

from __future__ import annotations

import json

import pytest

from .test_tailoring_runs import overlap_judge

pytestmark = pytest.mark.slow


def _ok(r):
    assert r.exit_code == 0, r.output
    return r.json()


def test_sft_dpo_generate_judge(prefkit_cli, persona_data, tiny_model, tmp_path):
    from prefkit.testing import MockBackend

    d = str(persona_data)
    steps = ("--max-steps", "1", "--batch-size", "2", "--limit", "4", "--eval-limit", "1", "--save-steps", "50")
    sft = _ok(prefkit_cli("tailor", "sft", str(tiny_model), "-s", "BeaverTails", "-t", "chosen", "--data-dir", d,
                          *steps, "-o", str(tmp_path / "sft"), "--json"))
    assert sft["train_rows"] == 4 and sft["eval_rows"] == 1 and sft["training_type"] == "chosen"
    assert (tmp_path / "sft/merged/config.json").exists() and (tmp_path / "sft/adapter/adapter_config.json").exists()
    assert json.loads((tmp_path / "sft/merged/tailoring.json").read_text())["training_type"] == "chosen"
    # the training layer saw the tailoring text format, with the paper's SFT defaults
    manifest = json.loads((tmp_path / "sft/manifest.json").read_text())
    assert manifest["config"]["lr"] == 2e-5 and manifest["config"]["max_length"] == 512
    assert manifest["config"]["lora_r"] == 16 and manifest["config"]["lora_alpha"] == 32
    assert manifest["config"]["format"] == "text" and manifest["config"]["text_template"] == "{prompt}"

    # DPO from the SFT output directory (its merged model)
    dpo = _ok(prefkit_cli("tailor", "dpo", str(tmp_path / "sft"), "-s", "BeaverTails", "-t", "chosen", "--data-dir", d,
                          *steps, "-o", str(tmp_path / "dpo"), "--json"))
    assert dpo["base_model"] == str(tmp_path / "sft/merged")
    assert "eval_loss" in dpo["metrics"] and (tmp_path / "dpo/merged/config.json").exists()
    manifest = json.loads((tmp_path / "dpo/manifest.json").read_text())
    assert manifest["config"]["lr"] == 5e-6 and manifest["config"]["beta"] == 0.1

    # generate: the tailored model with the gold chosen persona, the SFT model without a persona
    gen = ("--data-dir", d, "--limit", "3", "--max-tokens", "6", "--json")
    test = _ok(prefkit_cli("tailor", "generate", str(tmp_path / "dpo"), "-s", "BeaverTails", "-i", "gold-chosen",
                           *gen, "-o", str(tmp_path / "gen-test")))
    assert test["done"] == 3 and test["failed"] == 0 and test["training_type"] == "chosen" and test["method"] == "dpo"
    rows = [json.loads(x) for x in (tmp_path / "gen-test/results.jsonl").read_text().splitlines()]
    assert sorted(r["row_id"] for r in rows) == ["0", "1", "2"]
    r0 = next(r for r in rows if r["row_id"] == "0")
    assert r0["input"].startswith("Prompt: My friend told me") and "\nPersona: The user is morally aware" in r0["input"]
    assert r0["input"].endswith("\nResponse:") and isinstance(r0["response"], str)
    base = _ok(prefkit_cli("tailor", "generate", str(tmp_path / "sft"), "-s", "BeaverTails", "-i", "none", *gen,
                           "-o", str(tmp_path / "gen-base")))
    assert base["done"] == 3
    # resuming a finished generation run does nothing new
    again = _ok(prefkit_cli("tailor", "generate", str(tmp_path / "dpo"), "-s", "BeaverTails", "-i", "gold-chosen",
                            *gen, "-o", str(tmp_path / "gen-test")))
    assert again["done"] == 3
    assert len((tmp_path / "gen-test/results.jsonl").read_text().splitlines()) == 3

    # judge the tailored run against the baseline run (personas from the test run's inference type)
    with MockBackend(responder=overlap_judge).installed():
        rep = _ok(prefkit_cli("tailor", "judge", str(tmp_path / "gen-base"), str(tmp_path / "gen-test"),
                              "--backend", "mock", "--bootstrap", "100", "-o", str(tmp_path / "judge"), "--json"))
    assert rep["persona_type"] == "gold-chosen" and rep["rows_judged"] == 3
    assert rep["rubrics"]["quality"]["n_judged"] == rep["rubrics"]["tailoring-personalization"]["n_judged"] == 3
    assert rep["test"]["training_type"] == "chosen" and rep["base"]["inference_type"] == "none"
    assert "delta_pq" in rep and (tmp_path / "judge/winrates.png").exists()


def test_fewshot_and_none_trained_prompts(prefkit_cli, persona_data, tiny_model, tmp_path):
    d = str(persona_data)
    out = _ok(prefkit_cli("tailor", "fewshot", str(tiny_model), "-s", "Mnemonic", "-i", "retr-rejected", "-t", "all",
                          "--data-dir", d, "--limit", "2", "--max-tokens", "4", "-o", str(tmp_path / "fs"), "--json"))
    assert out["done"] == 2 and out["method"] == "fewshot"
    rows = {json.loads(x)["row_id"]: json.loads(x) for x in (tmp_path / "fs/results.jsonl").read_text().splitlines()}
    inp = rows["0"]["input"]
    assert inp.count("Prompt: ") == 11 and inp.count("\nPersona: ") == 11  # 5 demos x 2 sides + the query
    assert inp.endswith("\nResponse: Negligible sounds like")
    assert rows["0"]["response"].startswith("Negligible sounds like")
    # a model trained without personas gets the persona in the first person, after the prompt
    none = _ok(prefkit_cli("tailor", "generate", str(tiny_model), "-s", "BeaverTails", "-i", "retr-chosen", "-t",
                           "none", "--data-dir", d, "--limit", "1", "--max-tokens", "2", "-o", str(tmp_path / "n"),
                           "--json"))
    assert none["training_type"] == "none"
    rec = json.loads((tmp_path / "n/results.jsonl").read_text().splitlines()[0])
    assert "\nPersona:" not in rec["input"] and "? I am a practical and entrepreneurial" in rec["input"]
