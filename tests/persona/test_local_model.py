"""Persona inference with the real local default model (SmolLM2-135M-Instruct) on a few rows."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_infer_personas_with_smollm2(smollm2_path, persona_data, prefkit_cli, tmp_path):
    from prefkit_persona.inference import clean_persona

    pi = tmp_path / "pi"
    r = prefkit_cli("infer-personas", "--split", "Mnemonic", "--data-dir", persona_data, "--limit", 2,
                    "--model", smollm2_path, "--max-tokens", 40, "-o", pi, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["personas"] == 4 and summary["missing"] == 0
    rows = [json.loads(line) for line in (pi / "results.jsonl").read_text().splitlines()]
    assert sorted(x["key"] for x in rows) == ["0:chosen", "0:rejected", "1:chosen", "1:rejected"]
    for x in rows:
        assert x["raw"].strip()  # the engine never passes off an empty completion
        # "truncated" comes from the engine, "same_persona" from comparing the row's two sides, "copied_demo"
        # from comparing with the demonstrations
        run_flags = ("truncated", "same_persona", "copied_demo")
        assert (x["persona"], [f for f in x["flags"] if f not in run_flags]) == clean_persona(x["raw"])
    assert {x["prompt"] for x in rows if x["row_id"] == "0"} == {"Ingenue"}
    # resuming the finished run generates nothing and keeps the text
    r2 = prefkit_cli("infer-personas", "--split", "Mnemonic", "--data-dir", persona_data, "--limit", 2,
                     "--model", smollm2_path, "--max-tokens", 40, "-o", pi, "--json")
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["engine"]["pending"] == 0
    again = [json.loads(line) for line in (pi / "results.jsonl").read_text().splitlines()]
    assert again == rows
