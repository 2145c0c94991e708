"""The one prompt builder: every context mode's exact string, both formats, the token-length policy."""

import pytest

import prefkit
from prefkit_compred.prompts import (CommunityLabeler, Context, LengthPolicy, PromptBuilder, chat_messages,
                                     parse_context, text_prompt)
from prefkit_compred.training import trainer_rows

SUBS = ["financialindependence", "investing", "personalfinance"]
PAIR = {"post_id": "fx0001", "subreddit": "investing", "post": "Index funds?\nShould I buy them.",
        "chosen": "Yes, low fees.", "rejected": "No.", "pair_id": "fx0001:a:b"}


def _builder(context, fmt="text", tokenizer=None, policy=None, seed=0):
    return PromptBuilder(fmt, CommunityLabeler(context, SUBS, seed=seed), tokenizer, policy)


def test_text_prompt_for_each_context_mode():
    assert _builder("subreddit").prompt("investing", "fx0001", PAIR["post"]) == (
        "<|domain|>\nr/investing\n<|user|>\nIndex funds?\nShould I buy them.\n<|assistant|>\n")
    assert _builder("none").prompt("investing", "fx0001", PAIR["post"]) == (
        "<|domain|>\nReddit\n<|user|>\nIndex funds?\nShould I buy them.\n<|assistant|>\n")
    shown = CommunityLabeler("random-subreddit", SUBS, seed=0).subreddit_for("investing", "fx0001")
    assert shown in ("financialindependence", "personalfinance")
    assert _builder("random-subreddit").prompt("investing", "fx0001", PAIR["post"]) == (
        f"<|domain|>\nr/{shown}\n<|user|>\nIndex funds?\nShould I buy them.\n<|assistant|>\n")


def test_chat_prompt_for_each_context_mode():
    post = PAIR["post"]
    assert _builder("subreddit", "chat").prompt("investing", "fx0001", post) == [
        {"role": "user", "content": "Community: r/investing\n\nIndex funds?\nShould I buy them."}]
    assert _builder("none", "chat").prompt("investing", "fx0001", post) == [
        {"role": "user", "content": "Community: Reddit\n\nIndex funds?\nShould I buy them."}]
    line = CommunityLabeler("random-subreddit", SUBS).line("investing", "fx0001")
    assert _builder("random-subreddit", "chat").prompt("investing", "fx0001", post) == chat_messages(line, post)
    assert line != "r/investing"


def test_random_subreddit_is_seeded_per_post_and_never_the_real_one():
    lab = CommunityLabeler(Context.random_subreddit, SUBS, seed=7)
    picks = [lab.subreddit_for(s, f"p{i}") for i in range(60) for s in SUBS]
    assert all(p != s for p, s in zip(picks, [s for _ in range(60) for s in SUBS]))
    assert picks == [CommunityLabeler("random-subreddit", SUBS, seed=7).subreddit_for(s, f"p{i}")
                     for i in range(60) for s in SUBS]
    assert len(set(picks)) == 3   # every subreddit is used as a substitute
    with pytest.raises(prefkit.UsageError, match="at least two subreddits"):
        CommunityLabeler("random-subreddit", ["investing"])


def test_context_is_a_real_enum():
    assert parse_context("random_subreddit") is Context.random_subreddit
    for bad in ("False", "true", ""):
        with pytest.raises(prefkit.UsageError, match="--context must be one of"):
            parse_context(bad)


def test_every_stage_builds_the_same_prompt():
    b = _builder("subreddit")
    sft = b.sft_rows([PAIR])[0]
    dpo = b.pair_rows([PAIR])[0]
    gen = b.generation_prompt({k: PAIR[k] for k in ("post_id", "subreddit", "post")})
    assert sft["prompt"] == dpo["prompt"] == gen["prompt"] == text_prompt("r/investing", PAIR["post"])
    assert (sft["completion"], dpo["chosen"], dpo["rejected"]) == ("Yes, low fees.", "Yes, low fees.", "No.")
    # what the core trainer gets concatenates to exactly the builder's text (no extra space, one eos added later)
    t = trainer_rows([dpo], "text", ("chosen", "rejected"))[0]
    assert t["prompt"] + t["chosen"] == dpo["prompt"] + "Yes, low fees."
    assert t["prompt"].endswith("<|assistant|>") and t["chosen"].startswith("\n")


def test_length_policy_cuts_the_post_keeps_the_response_and_counts_drops(tiny_tokenizer):
    long_post = "Title\n" + " ".join(["savings"] * 400)
    policy = LengthPolicy(max_prompt_tokens=60, max_length=80)
    b = _builder("subreddit", tokenizer=tiny_tokenizer, policy=policy)
    rows = b.pair_rows([{**PAIR, "post": long_post},
                        {**PAIR, "post_id": "fx0002", "chosen": " ".join(["word"] * 200)}])
    assert len(rows) == 1 and rows[0]["chosen"] == "Yes, low fees."
    n_prompt = len(tiny_tokenizer(rows[0]["prompt"], add_special_tokens=False)["input_ids"])
    n_resp = len(tiny_tokenizer("Yes, low fees.", add_special_tokens=False)["input_ids"]) + 1
    assert n_prompt <= 60 and n_prompt + n_resp <= 80
    assert rows[0]["prompt"].startswith("<|domain|>\nr/investing\n<|user|>\nTitle\nsavings")
    assert rows[0]["prompt"].endswith("\n<|assistant|>\n")
    assert policy.counts == {"examples": 2, "kept": 1, "post_truncated": 1, "dropped_response_too_long": 1}
    with pytest.raises(prefkit.UsageError):
        LengthPolicy(max_prompt_tokens=600, max_length=512)
