"""SFT: chat and text formats, completion-only loss checked on the labels, outputs of a run."""

from __future__ import annotations

import json

import pytest

from prefkit.training import TrainConfig, prepare, train

from .conftest import SFT_ROWS, fast_config


def _labels(prepared):
    ds = prepared.trainer.train_dataset
    return [(row["input_ids"], row["labels"]) for row in ds]


def test_chat_format_masks_the_prompt(tiny_model, tiny_tokenizer, tmp_path):
    prepared = prepare("sft", tiny_model, SFT_ROWS, config=fast_config(), output_dir=tmp_path / "o")
    for (ids, labels), row in zip(_labels(prepared), SFT_ROWS):
        prompt_ids = tiny_tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}],
                                                        add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"]
        n = len(prompt_ids)
        assert ids[:n] == prompt_ids
        assert all(label == -100 for label in labels[:n])          # no loss on the prompt
        trained = [t for t in labels if t != -100]
        # loss on the completion and its end-of-turn token, not on the template's trailing newline
        assert tiny_tokenizer.decode(trained) == row["completion"] + "<|im_end|>"
        assert labels[n:n + len(trained)] == ids[n:n + len(trained)] and labels[-1] == -100
    # the batches the trainer feeds the model carry the same masking
    batch = next(iter(prepared.trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()


def test_text_format_masks_the_prompt(tiny_model, tiny_tokenizer, tmp_path):
    cfg = fast_config(format="text")
    prepared = prepare("sft", tiny_model, SFT_ROWS, config=cfg, output_dir=tmp_path / "o")
    for (ids, labels), row in zip(_labels(prepared), SFT_ROWS):
        prompt_ids = tiny_tokenizer(f"Prompt: {row['prompt']}\nResponse:")["input_ids"]
        n = len(prompt_ids)
        assert ids[:n] == prompt_ids
        assert all(label == -100 for label in labels[:n])
        trained = [t for t in labels if t != -100]
        assert tiny_tokenizer.decode(trained) == " " + row["completion"] + "<|im_end|>"


def test_train_on_prompt_keeps_every_label(tiny_model, tmp_path):
    prepared = prepare("sft", tiny_model, SFT_ROWS, config=fast_config(train_on_prompt=True),
                       output_dir=tmp_path / "o")
    for ids, labels in _labels(prepared):
        assert labels == ids


def test_custom_text_template_reaches_the_tokens(tiny_model, tiny_tokenizer, tmp_path):
    rows = [dict(r, persona="The user is a chef.") for r in SFT_ROWS]
    prepared = prepare("sft", tiny_model, rows, config=fast_config(format="text"), output_dir=tmp_path / "o",
                       text_template="Persona: {persona}\nQ: {prompt}\nA:")
    ids = prepared.trainer.train_dataset[0]["input_ids"]
    assert tiny_tokenizer.decode(ids).startswith("Persona: The user is a chef.\nQ: What is the capital")


@pytest.mark.slow
def test_sft_run_outputs(sft_result, tiny_model):
    r = sft_result
    assert r.kind == "sft" and r.metrics["global_step"] == 3 and r.metrics["train_loss"] > 0
    # adapter and merged model each carry the tokenizer and its chat template
    for d in (r.adapter_dir, r.merged_dir):
        assert (d / "tokenizer.json").exists()
        assert (d / "chat_template.jinja").exists() or "chat_template" in json.loads(
            (d / "tokenizer_config.json").read_text())
    assert (r.adapter_dir / "adapter_config.json").exists()
    assert json.loads((r.adapter_dir / "adapter_config.json").read_text())["target_modules"]
    assert sorted(json.loads((r.adapter_dir / "adapter_config.json").read_text())["target_modules"]) == \
        ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (r.merged_dir / "config.json").exists() and (r.merged_dir / "model.safetensors").exists()
    # checkpoints carry the tokenizer too
    ckpts = sorted((r.output_dir / "checkpoints").glob("checkpoint-*"))
    assert ckpts and (ckpts[-1] / "tokenizer.json").exists() and (ckpts[-1] / "optimizer.pt").exists()
    # a prefkit run: manifest, metrics, one result line per logged step, the loss curve
    manifest = json.loads((r.output_dir / "manifest.json").read_text())
    assert manifest["command"] == "train" and manifest["status"] == "done"
    assert manifest["identity"]["kind"] == "sft"
    metrics = json.loads((r.output_dir / "metrics.json").read_text())
    assert metrics["merged_dir"] == str(r.merged_dir)
    logs = [json.loads(line) for line in (r.output_dir / "results.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs if x["type"] == "train"] == [1, 2, 3]
    assert r.loss_plot is not None and r.loss_plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerun_returns_the_finished_run_and_eval_data(tiny_model, tmp_path):
    out = tmp_path / "o"
    cfg = fast_config(max_steps=2, merge=False)
    first = train("sft", tiny_model, SFT_ROWS, eval_data=SFT_ROWS[:2], config=cfg, output_dir=out)
    assert "eval_loss" in first.metrics and first.merged_dir is None and first.adapter_dir is not None
    again = train("sft", tiny_model, SFT_ROWS, eval_data=SFT_ROWS[:2], config=cfg, output_dir=out)
    assert again.adapter_dir == first.adapter_dir
    assert again.metrics["train_loss"] == first.metrics["train_loss"]
    assert len(list((out / "checkpoints").glob("checkpoint-*"))) == 1   # nothing was trained again


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello friend."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Spain?"},
    {"role": "assistant", "content": "Madrid."},
]


def _trained_text(tok, ids, labels):
    """The trained tokens, decoded run by run (a run is a maximal stretch of labels != -100)."""
    runs, cur = [], []
    for t, lab in zip(ids, labels):
        if lab != -100:
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_multi_turn_messages_train_every_assistant_turn(tiny_model, tiny_tokenizer, tmp_path):
    rows = [{"messages": CONVERSATION}] * 2
    prepared = prepare("sft", tiny_model, rows, config=fast_config(max_length=512), output_dir=tmp_path / "o")
    ids, labels = _labels(prepared)[0]
    assert ids == tiny_tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    # exactly the three assistant turns (each with its end-of-turn token) carry loss: no system, user,
    # role header or template newline token does
    assert _trained_text(tiny_tokenizer, ids, labels) == ["Hello friend.<|im_end|>", "Paris.<|im_end|>",
                                                          "Madrid.<|im_end|>"]
    for t, lab in zip(ids, labels):
        assert lab in (-100, t)
    untrained = tiny_tokenizer.decode([t for t, lab in zip(ids, labels) if lab == -100])
    for text in ("Be brief.", "Hi there", "Capital of France?", "And of Spain?", "<|im_start|>assistant"):
        assert text in untrained


def test_multi_turn_last_turn_only_and_text_format(tiny_model, tiny_tokenizer, tmp_path):
    rows = [{"messages": CONVERSATION}] * 2
    last = prepare("sft", tiny_model, rows, config=fast_config(max_length=512, train_turns="last"),
                   output_dir=tmp_path / "a")
    ids, labels = _labels(last)[0]
    assert _trained_text(tiny_tokenizer, ids, labels) == ["Madrid.<|im_end|>"]
    text = prepare("sft", tiny_model, rows, config=fast_config(max_length=512, format="text"),
                   output_dir=tmp_path / "b")
    ids, labels = _labels(text)[0]
    assert tiny_tokenizer.decode(ids).startswith("System: Be brief.\n\nHuman: Hi there\n\nAssistant: Hello friend.")
    runs = _trained_text(tiny_tokenizer, ids, labels)
    assert [r.strip() for r in runs] == ["Hello friend.", "Paris.", "Madrid.<|im_end|>"]


def test_long_history_is_cut_from_its_start_and_too_long_rows_are_counted(tiny_model, tiny_tokenizer, tmp_path):
    from prefkit.training.formats import tokenize_sft

    long_history = [{"role": "user", "content": "tell me a story " * 40},
                    {"role": "assistant", "content": "once upon a time " * 40}, *CONVERSATION[3:]]
    huge_answer = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 400}]
    rows = [{"messages": long_history}, {"messages": huge_answer}, {"messages": CONVERSATION}]
    out, stats = tokenize_sft(rows, tiny_tokenizer, fmt="chat", max_length=128,   # CONVERSATION: 91 tokens
                              long_responses="drop")
    assert (stats.rows, stats.kept, stats.truncated, stats.dropped) == (3, 2, 1, 1) and stats.dropped_rows == [1]
    ids, labels = out[0]["input_ids"], out[0]["labels"]
    assert len(ids) == 128
    full = tiny_tokenizer.apply_chat_template(long_history, tokenize=True, return_dict=True)["input_ids"]
    assert ids == full[-128:]                                       # the end of the conversation is kept
    assert _trained_text(tiny_tokenizer, ids, labels)[-1] == "Madrid.<|im_end|>"   # the response is whole
    # by default a response that cannot fit whole is cut at its end (after half the room of history), counted
    out2, st2 = tokenize_sft(rows, tiny_tokenizer, fmt="chat", max_length=128)
    assert (st2.kept, st2.response_truncated, st2.dropped) == (3, 1, 0)
    ids2, labels2 = out2[1]["input_ids"], out2[1]["labels"]
    n_prompt = len(tiny_tokenizer.apply_chat_template(huge_answer[:1], add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)["input_ids"])   # < 64: kept whole
    assert len(ids2) == 128 and labels2[:n_prompt].count(-100) == n_prompt
    assert all(lab != -100 for lab in labels2[n_prompt:])
    # --max-prompt-length caps the history before the last response
    out, stats = tokenize_sft([{"messages": CONVERSATION}], tiny_tokenizer, fmt="chat", max_length=512,
                              max_prompt_length=10)
    first_loss = next(i for i, lab in enumerate(out[0]["labels"]) if lab != -100)
    assert first_loss == 10 and stats.truncated == 1


@pytest.mark.slow
def test_too_long_rows_are_reported_in_metrics(tiny_model, tmp_path):
    rows = [{"messages": CONVERSATION}] * 3 + [{"prompt": "hi", "completion": "word " * 400}]
    r = train("sft", tiny_model, rows, config=fast_config(max_length=128, long_responses="drop"),
              output_dir=tmp_path / "o")
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["train_rows"] == 4 and m["train_rows_kept"] == 3 and m["train_rows_dropped_too_long"] == 1
    assert r.metrics["train_rows_dropped_too_long"] == 1
