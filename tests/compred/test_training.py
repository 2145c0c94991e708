"""compred train (SFT -> DPO through the core chain) per context mode, and the reward model's accuracy."""

import json

import pytest

import prefkit
from prefkit_compred.training import RewardOptions, TrainOptions, accuracy_by_subreddit, paper_preset, reward, train

TINY = dict(limit=12, eval_limit=4, max_prompt_tokens=96, max_length=160, per_device_batch=2)


@pytest.mark.parametrize("context,fmt", [("subreddit", "text"), ("none", "chat"), ("random-subreddit", "text")])
def test_sft_then_dpo_chain_for_each_context(context, fmt, compred_fixture, tiny_model, tmp_path):
    opts = TrainOptions(subset="finance", model=str(tiny_model), context=context, format=fmt,
                        data_dir=str(compred_fixture["data_dir"]), sft_max_steps=1, dpo_max_steps=1, **TINY)
    res = train(opts, output_dir=str(tmp_path / "run"))
    chain = json.loads((tmp_path / "run" / "chain" / "manifest.json").read_text())
    stages = [s["trainer"] for s in chain["config"]["stages"]]
    assert stages == ["sft", "dpo"] and chain["config"]["preset"] == "compred-paper"
    sft_cfg, dpo_cfg = (s["config"] for s in chain["config"]["stages"])
    # the compred-paper preset, with the per-device batch changed and the effective batch kept
    assert (sft_cfg["lr"], sft_cfg["lr_scheduler"], sft_cfg["batch_size"] * sft_cfg["grad_accum"]) == (1e-5, "cosine", 256)
    assert (dpo_cfg["beta"], dpo_cfg["lr"], dpo_cfg["warmup"], dpo_cfg["batch_size"] * dpo_cfg["grad_accum"]) == (
        0.1, 2e-7, 1000, 64)
    assert (dpo_cfg["max_prompt_length"], dpo_cfg["max_length"]) == (96, 160)   # the prompt budget, as given
    model_cfg = chain["config"]["stages"][0]["model_config"]
    assert (model_cfg["lora_r"], model_cfg["lora_alpha"], model_cfg["lora_dropout"]) == (64, 16, 0.1)
    # the DPO reward margins are in the metrics, so a user can see whether DPO moved the model
    assert "eval_rewards/margins" in res["dpo"] and "rewards/margins" in res["dpo"]
    h = res["handoff"]
    assert sft_cfg["format"] == fmt and h["format"] == fmt
    assert h["context"] == context and (tmp_path / "run" / "chain" / "02-dpo" / "merged" / "config.json").exists()
    assert prefkit.read_jsonl(tmp_path / "run" / "chain" / "02-dpo" / "results.jsonl")  # the DPO step logs
    data = res["data"]
    assert data["subsample"]["total_after"] <= data["subsample"]["total_after_ratio"] <= data["subsample"]["total_before"]
    assert data["dpo_pairs"] == 12 and data["dpo_lengths"]["examples"] == 12


def test_preset_is_registered_with_the_papers_values():
    p = prefkit.get_preset("compred-paper")
    assert p.per_trainer["dpo"]["beta"] == 0.1 and p.settings["lora_r"] == 64
    assert paper_preset().per_trainer["sft"]["warmup"] == 0.03


def test_accuracy_per_subreddit_on_hand_made_pairs():
    scored = [{"subreddit": "a", "r_chosen": 1.0, "r_rejected": 0.0},
              {"subreddit": "a", "r_chosen": 2.0, "r_rejected": 0.5},
              {"subreddit": "a", "r_chosen": 0.0, "r_rejected": 1.0},
              {"subreddit": "b", "r_chosen": 0.0, "r_rejected": 3.0},
              {"subreddit": "b", "r_chosen": 1.0, "r_rejected": 1.0}]   # a tie is not a correct preference
    acc = accuracy_by_subreddit(scored, bootstrap=100)
    assert acc["per_subreddit"]["a"]["accuracy"] == pytest.approx(2 / 3)
    assert acc["per_subreddit"]["b"]["accuracy"] == 0.0
    assert acc["overall"]["accuracy"] == pytest.approx(2 / 5)      # not the error rate (3/5)
    assert acc["overall"]["macro_accuracy"] == pytest.approx(1 / 3)
    assert acc["overall"]["n"] == 5 and acc["overall"]["correct"] == 2


def test_reward_model_reports_test_accuracy_per_subreddit(compred_fixture, tiny_model, tmp_path):
    opts = RewardOptions(subset="history", model=str(tiny_model), data_dir=str(compred_fixture["data_dir"]),
                         max_steps=1, test_limit=10, **TINY)
    res = reward(opts, output_dir=str(tmp_path / "rm"))
    test = res["test"]
    assert set(test["per_subreddit"]) <= {"AskHistorians", "history"}
    assert test["overall"]["n"] == sum(v["n"] for v in test["per_subreddit"].values()) == 10
    rows = prefkit.Run.load(tmp_path / "rm").results()
    assert len(rows) == 10 and test["overall"]["correct"] == sum(r["correct"] for r in rows)
