"""ALOE end to end on the command line, offline: generate (scripted fake roles) → export → SFT → DPO (the
aloe-paper preset, one step each, on the tiny model) → bench (the trained tiny model against the scripted
user and judge) → compare with the untrained model."""

from __future__ import annotations

import json
import re

import pytest

from prefkit.testing import ScriptedBackend
from prefkit_aloe import bench, pools

pytestmark = pytest.mark.slow


def turn_of(messages) -> int:
    return (len(messages) - 2) // 2 + 1


def judge_pairwise(req):
    """Prefers the persona-aware reply in either order (consistent verdicts: no ties)."""
    text = req.messages[-1]["content"]
    first = text.split("First reply:\n", 1)[1].split("\n\nSecond reply:", 1)[0]
    return "first" if first.startswith("aware") else "second"


def responder(req):
    last = req.messages[-1]["content"]
    return ("aware reply: tell me more about your dog!" if "[Private note" in last
            else "plain reply: that is nice.")


def bench_judge(req):
    k = int(re.search(r"turn (\d+):", req.messages[1]["content"]).group(1))
    return f"Score: {min(5, k + 1)}"


@pytest.fixture
def scripted():
    backend = ScriptedBackend({
        "user": lambda r: f"turn {turn_of(r.messages)}: my dog Biscuit chewed my anthropology notes.",
        "extractor": "Profile: He is a student with a dog.\nPersonality: None",
        "responder": responder,
        "judge": lambda r: bench_judge(r) if r.messages[0]["content"] == bench.JUDGE_SYSTEM else judge_pairwise(r),
    })
    with backend.installed():
        yield backend


def test_generate_export_sft_dpo_bench(prefkit_cli, scripted, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    personas = tmp_path / "personas.jsonl"
    pools.write_personas(personas, pools.eval_personas()[:2])
    roles = ["--user-model", "mock:sim", "--extractor-model", "mock:extract", "--responder-model", "mock:resp",
             "--judge-model", "mock:judge", "--no-cache"]
    r = prefkit_cli("aloe", "generate", "--personas", str(personas), "--turns", "2", *roles, "-o", str(tmp_path / "gen"),
                    "--json")
    assert r.exit_code == 0, r.output
    assert scripted.calls_by_role["judge"] == 2 * 2 * 2  # both orders, every turn

    r = prefkit_cli("aloe", "export", str(tmp_path / "gen"), "-o", str(tmp_path / "data"), "--json")
    assert r.exit_code == 0, r.output
    counts = r.json()["counts"]
    assert counts["sft_rows"] == 2 and counts["dpo_rows"] == 4

    fast = ["--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--save-steps", "100"]
    r = prefkit_cli("aloe", "train", "chain", "--model", str(tiny_model), "--sft-dataset", str(tmp_path / "data"),
                    "--dpo-dataset", str(tmp_path / "data"), *fast, "-o", str(tmp_path / "chain"), "--json")
    assert r.exit_code == 0, r.output
    chain = r.json()
    sft, dpo = chain["stages"]
    assert dpo["model_in"] == sft["model_out"]
    dpo_cfg = json.loads((tmp_path / "chain" / dpo["name"] / "manifest.json").read_text())["config"]
    assert dpo_cfg["beta"] == 0.9 and dpo_cfg["setting_sources"]["beta"] == "preset aloe-paper"
    assert dpo_cfg["lora"] is False and dpo_cfg["setting_sources"]["max_steps"] == "flag"
    sft_metrics = json.loads((tmp_path / "chain" / sft["name"] / "metrics.json").read_text())
    assert sft_metrics["train_rows"] == 2 and sft_metrics["train_rows_dropped_too_long"] == 0

    trained = chain["model_dir"]
    bench = ["--user-model", "mock:sim", "--judge-model", "mock:judge", "--personas", "2", "--turns", "3",
             "--max-new-tokens", "6", "--no-cache", "--no-plot", "--json"]
    r = prefkit_cli("aloe", "bench", "--model", f"hf:{trained}", *bench, "-o", str(tmp_path / "bench-dpo"))
    assert r.exit_code == 0, r.output
    res = r.json()
    (label, s), = res["models"].items()
    assert s["n"] == 2 and s["al"] == [2.0, 3.0, 4.0] and s["ir"] == pytest.approx(1.0)
    assert res["rows"][0]["N-R²"] == "1.000"

    r = prefkit_cli("aloe", "bench", "--model", f"hf:{tiny_model}", *bench, "--no-interaction",
                    "-o", str(tmp_path / "bench-base"))
    assert r.exit_code == 0, r.output
    r = prefkit_cli("aloe", "compare", str(tmp_path / "bench-base"), str(tmp_path / "bench-dpo"),
                    "--plot-to", str(tmp_path / "cmp.png"), "--json")
    assert r.exit_code == 0, r.output
    cmp = r.json()
    assert cmp["differences"]["bench-dpo"]["al_diff"] == [0.0, 0.0, 0.0]  # the scripted judge scores by turn only
    assert (tmp_path / "cmp.png").exists()

    # re-running the finished benchmark sends nothing
    before = scripted.call_count
    r = prefkit_cli("aloe", "bench", "--model", f"hf:{trained}", *bench, "-o", str(tmp_path / "bench-dpo"))
    assert r.exit_code == 0 and scripted.call_count == before
