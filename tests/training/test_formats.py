"""Row normalisation: chat and text formats, templates, clear errors (no model needed)."""

from __future__ import annotations

import pytest

from prefkit.errors import UsageError
from prefkit.training.formats import messages_to_text, normalize_row, normalize_rows, render_prompt

TPL = "Prompt: {prompt}\nResponse:"


def test_sft_strings_to_chat_messages():
    row = normalize_row("sft", {"prompt": "Hi?", "completion": "Hello."}, 0, "chat", TPL)
    assert row == {"prompt": [{"role": "user", "content": "Hi?"}],
                   "completion": [{"role": "assistant", "content": "Hello."}]}


def test_sft_system_column_becomes_system_message():
    row = normalize_row("sft", {"prompt": "Hi?", "completion": "Yo.", "system": "Be brief."}, 0, "chat", TPL)
    assert row["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_sft_hh_transcript_prompt_is_split_into_turns():
    row = normalize_row("sft", {"prompt": "Human: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:", "completion": "d"},
                        0, "chat", TPL)
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user"]


def test_sft_text_format_uses_template_and_spaces_completion():
    row = normalize_row("sft", {"prompt": "Hi?", "completion": "Hello."}, 0, "text", TPL)
    assert row == {"prompt": "Prompt: Hi?\nResponse:", "completion": " Hello."}


def test_text_template_fills_other_columns_and_callables():
    row = {"prompt": "Hi?", "completion": "x", "persona": "The user is a chef."}
    out = normalize_row("sft", row, 0, "text", "Persona: {persona}\nPrompt: {prompt}\nResponse:")
    assert out["prompt"] == "Persona: The user is a chef.\nPrompt: Hi?\nResponse:"
    # a missing placeholder column renders empty instead of failing
    assert render_prompt("{missing}{prompt}", "p", {}, "row 0") == "p"
    out = normalize_row("sft", row, 0, "text", lambda r: f"<{r['persona']}|{r['prompt']}>")
    assert out["prompt"] == "<The user is a chef.|Hi?>"


def test_sft_from_preference_and_messages_rows():
    out = normalize_row("sft", {"prompt": "Q", "chosen": "good", "rejected": "bad"}, 0, "text", TPL)
    assert out["completion"] == " good"
    msgs = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]
    out = normalize_row("sft", {"messages": msgs}, 0, "chat", TPL)
    assert out == {"messages": msgs}    # the whole conversation: every assistant turn is trained
    assert normalize_row("sft", {"text": "plain"}, 0, "text", TPL) == {"text": "plain"}


def test_preference_rows_chat_and_text():
    row = {"prompt": "Q", "chosen": "good", "rejected": "bad", "extra": 1}
    chat = normalize_row("dpo", row, 0, "chat", TPL)
    assert chat["chosen"] == [{"role": "assistant", "content": "good"}] and "extra" not in chat
    text = normalize_row("dpo", row, 0, "text", TPL)
    assert text == {"prompt": "Prompt: Q\nResponse:", "chosen": " good", "rejected": " bad"}
    # reward models may train without a prompt column (implicit prompt)
    assert normalize_row("reward", {"chosen": "a", "rejected": "b"}, 0, "text", TPL) == {"chosen": " a",
                                                                                          "rejected": " b"}


def test_preference_record_input():
    from prefkit.data import PreferenceRecord

    rec = PreferenceRecord.from_dict({"row_id": "7", "prompt": "Human: hi\n\nAssistant:", "chosen": "hello",
                                      "rejected": "go away", "persona": "The user is kind."})
    chat = normalize_row("dpo", rec, 0, "chat", TPL)
    assert chat["prompt"] == [{"role": "user", "content": "hi"}]
    text = normalize_row("dpo", rec, 0, "text", "{persona} {prompt}")
    assert text["prompt"] == "The user is kind. Human: hi\n\nAssistant:"
    assert normalize_row("sft", rec, 0, "chat", TPL)["completion"] == [{"role": "assistant", "content": "hello"}]


def test_messages_to_text():
    assert messages_to_text([{"role": "user", "content": "x"}]) == "x"
    assert messages_to_text([{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]) == \
        "System: s\n\nHuman: x"


@pytest.mark.parametrize("kind,row,needle", [
    ("sft", {"question": "Q", "answer": "A"}, "row 3 has: answer, question"),
    ("dpo", {"prompt": "Q", "chosen": "A"}, "'prompt', 'chosen' and 'rejected'"),
    ("dpo", {"prompt": "Q", "chosen": "A", "rejected": ""}, "'rejected'"),
    ("reward", {"prompt": "Q"}, "'chosen' and 'rejected'"),
])
def test_missing_columns_are_clear_errors(kind, row, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        normalize_row(kind, row, 3, "chat", TPL)


def test_bad_values_and_mixed_shapes():
    with pytest.raises(UsageError, match="list of chat messages"):
        normalize_row("sft", {"prompt": 5, "completion": "x"}, 0, "chat", TPL)
    with pytest.raises(UsageError, match="mix different shapes"):
        normalize_rows("reward", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"chosen": "b", "rejected": "c"}],
                       "chat", TPL)
    # SFT rows are tokenized by prefkit itself, so prompt/completion, messages and text rows may mix
    mixed = normalize_rows("sft", [{"prompt": "a", "completion": "b"}, {"text": "c"},
                                   {"messages": [{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "r"}]}], "chat", TPL)
    assert [sorted(r) for r in mixed] == [["completion", "prompt"], ["text"], ["messages"]]
    with pytest.raises(UsageError, match="no training rows"):
        normalize_rows("dpo", [], "chat", TPL)
    with pytest.raises(UsageError, match="unknown trainer kind"):
        normalize_row("ppo", {"prompt": "a"}, 0, "chat", TPL)
