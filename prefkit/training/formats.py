"""Training data formats: turn prefkit records or plain rows into TRL's dataset rows.

Input rows (dicts, :class:`prefkit.PreferenceRecord` s or a ``datasets.Dataset``):

* SFT: ``{"prompt", "completion"}`` — or ``{"prompt", "chosen"}`` (the chosen
  answer is the completion), ``{"messages"}`` (a conversation of any length: every
  assistant turn carries loss, or only the last) or ``{"text"}`` (plain language
  modelling, loss on everything);
* DPO: ``{"prompt", "chosen", "rejected"}`` (``prompt`` may be a multi-turn
  conversation; ``chosen``/``rejected`` are the next assistant message);
* reward: ``{"prompt", "chosen", "rejected"}`` (``prompt`` may be left out).

Values are strings or chat message lists. An optional ``system`` column becomes
a system message (chat format). Two output formats:

* ``chat``: TRL's conversational rows (message lists), rendered by the
  tokenizer's chat template. A tokenizer without one is refused with a clear
  message (use ``--format text`` or ``--chat-template``);
* ``text``: TRL's standard rows (strings): the prompt goes through a text
  template (default ``"Prompt: {prompt}\\nResponse:"``; ``{column}`` placeholders
  are filled from the row, so a plugin can write ``"Persona: {persona}\\n..."``,
  or pass a callable ``row -> prompt text``) and each completion gets a leading
  space. The EOS token is appended by TRL.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import UsageError

KINDS = ("sft", "dpo", "reward")

TextTemplate = str | Callable[[dict[str, Any]], str]


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value)


def _check_messages(value: Any, where: str) -> list[dict[str, str]]:
    if not _is_messages(value):
        raise UsageError(f"{where}: expected a string or a list of chat messages ({{'role', 'content'}}), "
                         f"got {type(value).__name__}")
    return [{"role": str(m["role"]), "content": "" if m.get("content") is None else str(m["content"])}
            for m in value]


def messages_to_text(msgs: list[dict[str, str]]) -> str:
    """Render a chat prompt as plain text (one user turn: its content; more: ``Human:/Assistant:`` turns)."""
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return msgs[0]["content"]
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in msgs)


def _completion_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    msgs = _check_messages(value, where)
    return "\n\n".join(m["content"] for m in msgs if m["role"] == "assistant") or "\n\n".join(
        m["content"] for m in msgs)


def _prompt_messages(value: Any, where: str, system: Any = None) -> list[dict[str, str]]:
    if isinstance(value, str):
        from ..data.records import parse_dialogue

        msgs = parse_dialogue(value)
    else:
        msgs = _check_messages(value, where)
    if system and not (msgs and msgs[0]["role"] == "system"):
        msgs = [{"role": "system", "content": str(system)}, *msgs]
    return msgs


def _completion_messages(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return _check_messages(value, where)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render_prompt(template: TextTemplate, prompt: Any, row: dict[str, Any], where: str) -> str:
    """The text-format prompt of a row."""
    prompt_text = prompt if isinstance(prompt, str) else messages_to_text(_check_messages(prompt, where))
    if callable(template):
        out = template({**row, "prompt": prompt_text})
        if not isinstance(out, str):
            raise UsageError(f"the text template returned {type(out).__name__}, not a string")
        return out
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    values = _Blank({k: ("" if v is None else v) for k, v in row.items() if k in fields})
    values["prompt"] = prompt_text
    return template.format_map(values)


def _spaced(text: str) -> str:
    return text if not text or text[0].isspace() else " " + text


def _as_dict(row: Any, fmt: str) -> dict[str, Any]:
    from ..data.records import PreferenceRecord

    if isinstance(row, PreferenceRecord):
        d = row.to_dict()
        if fmt == "text":
            d.update(prompt=row.prompt_text, chosen=row.chosen_text, rejected=row.rejected_text)
        else:
            d.update(prompt=row.prompt, chosen=row.chosen, rejected=row.rejected)
        return d
    if isinstance(row, dict):
        return row
    if hasattr(row, "to_dict"):
        return row.to_dict()
    raise UsageError(f"training rows must be dicts or PreferenceRecords, got {type(row).__name__}")


def _missing(kind: str, row: dict[str, Any], i: int, need: str) -> UsageError:
    have = ", ".join(sorted(map(str, row))) or "no columns"
    return UsageError(f"{kind} training data needs {need}; row {i} has: {have}")


def _present(row: dict[str, Any], key: str) -> bool:
    v = row.get(key)
    return v is not None and not (isinstance(v, (str, list)) and len(v) == 0)


def normalize_row(kind: str, row: Any, i: int, fmt: str, template: TextTemplate) -> dict[str, Any]:
    """One input row → one TRL row for ``kind`` in ``fmt``."""
    d = _as_dict(row, fmt)
    where = f"row {i}"
    system = d.get("system") if isinstance(d.get("system"), str) else None
    if kind == "sft":
        if _present(d, "text") and not _present(d, "prompt"):
            if not isinstance(d["text"], str):
                raise UsageError(f"{where}: 'text' must be a string")
            return {"text": d["text"]}
        if _present(d, "messages") and not _present(d, "prompt"):
            msgs = _check_messages(d["messages"], f"{where} 'messages'")
            if system and not (msgs and msgs[0]["role"] == "system"):
                msgs = [{"role": "system", "content": str(system)}, *msgs]
            first = next((j for j, m in enumerate(msgs) if m["role"] == "assistant"), None)
            if first is None or first == 0 or all(m["role"] == "system" for m in msgs[:first]):
                raise UsageError(f"{where}: 'messages' needs a prompt followed by an assistant turn")
            return {"messages": msgs}   # every assistant turn is trained (see tokenize_sft)
        completion_key = "completion" if _present(d, "completion") else "chosen" if _present(d, "chosen") else None
        if not _present(d, "prompt") or completion_key is None:
            raise _missing(kind, d, i, "columns 'prompt' and 'completion' (or 'chosen', 'messages' or 'text')")
        if fmt == "chat":
            return {"prompt": _prompt_messages(d["prompt"], f"{where} 'prompt'", system),
                    "completion": _completion_messages(d[completion_key], f"{where} '{completion_key}'")}
        return {"prompt": render_prompt(template, d["prompt"], d, f"{where} 'prompt'"),
                "completion": _spaced(_completion_text(d[completion_key], f"{where} '{completion_key}'"))}

    if kind not in ("dpo", "reward"):
        raise UsageError(f"unknown trainer kind {kind!r} (known: {', '.join(KINDS)})")
    need_prompt = kind == "dpo"
    if not (_present(d, "chosen") and _present(d, "rejected")) or (need_prompt and not _present(d, "prompt")):
        cols = "'prompt', 'chosen' and 'rejected'" if need_prompt else "'chosen' and 'rejected' (and usually 'prompt')"
        raise _missing(kind, d, i, f"columns {cols}")
    out: dict[str, Any] = {}
    if fmt == "chat":
        if _present(d, "prompt"):
            out["prompt"] = _prompt_messages(d["prompt"], f"{where} 'prompt'", system)
        out["chosen"] = _completion_messages(d["chosen"], f"{where} 'chosen'")
        out["rejected"] = _completion_messages(d["rejected"], f"{where} 'rejected'")
    else:
        if _present(d, "prompt"):
            out["prompt"] = render_prompt(template, d["prompt"], d, f"{where} 'prompt'")
        out["chosen"] = _spaced(_completion_text(d["chosen"], f"{where} 'chosen'"))
        out["rejected"] = _spaced(_completion_text(d["rejected"], f"{where} 'rejected'"))
    return out


def normalize_rows(kind: str, rows: Iterable[Any], fmt: str, template: TextTemplate) -> list[dict[str, Any]]:
    out = [normalize_row(kind, r, i, fmt, template) for i, r in enumerate(rows)]
    if not out:
        raise UsageError(f"no training rows for {kind}")
    shapes = {tuple(sorted(r)) for r in out}
    if len(shapes) > 1 and kind != "sft":  # SFT rows are tokenized by prefkit, so they may mix
        raise UsageError(f"{kind} rows mix different shapes ({'; '.join(', '.join(s) for s in sorted(shapes))}); "
                         "give every row the same columns")
    return out


def to_dataset(kind: str, data: Any, fmt: str, template: TextTemplate):
    """A ``datasets.Dataset`` of TRL rows (from a list, a Dataset or any iterable of rows)."""
    from datasets import Dataset

    if data is None:
        raise UsageError(f"no training data for {kind}")
    rows = data if not isinstance(data, Dataset) else data.to_list()
    return Dataset.from_list(normalize_rows(kind, rows, fmt, template))


def require_chat_template(tokenizer: Any, model_name: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(
            f"the tokenizer of {model_name} has no chat template, so chat-format training is not possible; "
            "pass --format text (a plain 'Prompt: ... Response:' template, as for base models) or "
            "--chat-template FILE.jinja")


def fingerprint(rows: list[dict[str, Any]]) -> str:
    """A short hash of normalized rows (run identity)."""
    import hashlib
    import json

    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- lengths, truncation, label masks
@dataclass
class FitStats:
    """What fitting the rows to the length limits did (reported in the summary and ``metrics.json``)."""

    rows: int = 0
    kept: int = 0
    truncated: int = 0        # prompt / history cut from its start
    response_truncated: int = 0   # response longer than the room left: its end cut (long_responses="truncate")
    dropped: int = 0          # could not fit: response too long (long_responses="drop")
    dropped_rows: list[int] = field(default_factory=list)

    def to_metrics(self, prefix: str = "") -> dict[str, int]:
        return {f"{prefix}rows": self.rows, f"{prefix}rows_kept": self.kept,
                f"{prefix}rows_truncated": self.truncated, f"{prefix}rows_response_truncated": self.response_truncated,
                f"{prefix}rows_dropped_too_long": self.dropped}

    def describe(self, what: str = "rows") -> str:
        parts = [f"{self.kept}/{self.rows} {what}"]
        if self.truncated:
            parts.append(f"{self.truncated} with their prompt/history cut from the start")
        if self.response_truncated:
            parts.append(f"{self.response_truncated} with their response cut at the end (too long for --max-length)")
        if self.dropped:
            parts.append(f"{self.dropped} dropped (response too long for --max-length)")
        return ", ".join(parts)


def _special_strings(tokenizer: Any) -> list[str]:
    out = set(getattr(tokenizer, "all_special_tokens", []) or [])
    try:
        out |= set(tokenizer.get_added_vocab())
    except Exception:
        pass
    return sorted((s for s in out if s), key=len, reverse=True)


def _render(tokenizer: Any, msgs: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)


def chat_segments(tokenizer: Any, msgs: list[dict[str, str]], trainable: list[bool]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans that carry loss.

    A trainable assistant turn spans its content plus the template's end-of-turn token right
    after it (so the model learns to stop); role headers, system and user turns and the
    template's whitespace carry none.
    """
    full = _render(tokenizer, msgs)
    specials = _special_strings(tokenizer)
    spans = []
    for j, m in enumerate(msgs):
        if not trainable[j]:
            continue
        pre = _render(tokenizer, msgs[:j], generation_prompt=True)
        post = _render(tokenizer, msgs[:j + 1])
        if not (post.startswith(pre) and full.startswith(post)):
            raise UsageError("the chat template renders a conversation differently from its prefixes, so the "
                             "assistant turns cannot be located; use --format text or another --chat-template")
        seg = post[len(pre):]
        at = seg.find(m["content"]) if m["content"] else -1
        if at < 0:
            spans.append((len(pre), len(post)))
            continue
        start, end = len(pre) + at, len(pre) + at + len(m["content"])
        rest = post[end:]
        stripped = rest.lstrip(" ")
        for sp in specials:
            if stripped.startswith(sp):
                end += (len(rest) - len(stripped)) + len(sp)
                break
        spans.append((start, end))
    return full, spans


def text_segments(row: dict[str, Any], eos: str) -> tuple[str, list[tuple[int, int]]]:
    """Text format: prompt + completion (+ EOS), or ``Human:/Assistant:`` turns of a ``messages`` row."""
    if "messages" in row:
        names = {"user": "Human", "assistant": "Assistant", "system": "System"}
        text, spans = "", []
        for j, m in enumerate(row["messages"]):
            head = ("\n\n" if j else "") + f"{names.get(m['role'], m['role'].title())}:"
            text += head
            if m["role"] == "assistant":
                body = _spaced(m["content"])
                spans.append((len(text), len(text) + len(body)))
                text += body
            else:
                text += _spaced(m["content"])
        if spans:
            spans[-1] = (spans[-1][0], spans[-1][1] + len(eos))
        return text + eos, spans
    prompt, completion = row["prompt"], row["completion"] + eos
    return prompt + completion, [(len(prompt), len(prompt) + len(completion))]


def _label_tokens(tokenizer: Any, text: str, spans: list[tuple[int, int]], add_special: bool) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = []
    for tid, (a, b) in zip(ids, enc["offset_mapping"]):
        hit = b > a and any(a < e and b > s for s, e in spans)
        labels.append(tid if hit else -100)
    return ids, labels


def tokenize_sft(rows: list[dict[str, Any]], tokenizer: Any, *, fmt: str, max_length: int,
                 max_prompt_length: int | None = None, train_turns: str = "all",
                 train_on_prompt: bool = False, long_responses: str = "truncate"
                 ) -> tuple[list[dict[str, list[int]]], FitStats]:
    """Normalized SFT rows → ``{"input_ids", "labels"}`` (-100 where no loss), fitted to the limits.

    Loss on assistant turns only (all of them, or the last with ``train_turns="last"``;
    everything with ``train_on_prompt``). Too long: the history before the last response is cut
    from its start (to ``max_prompt_length`` and to what ``max_length`` leaves, so the response
    stays whole). A last response that cannot fit whole (longer than ``max_length - 1``) is cut at
    its end after ``min(max_prompt_length or max_length // 2)`` tokens of history
    (``long_responses="truncate"``, as TRL does) or its row dropped (``"drop"``); both counted.
    """
    stats = FitStats(rows=len(rows))
    out = []
    eos = tokenizer.eos_token or ""
    for i, row in enumerate(rows):
        if "text" in row:
            ids = tokenizer(row["text"] + eos)["input_ids"][:max_length]
            if len(tokenizer(row["text"] + eos)["input_ids"]) > max_length:
                stats.truncated += 1
            out.append({"input_ids": ids, "labels": list(ids)})
            stats.kept += 1
            continue
        if fmt == "chat":
            msgs = row["messages"] if "messages" in row else [*row["prompt"], *row["completion"]]
            n_prompt = 0 if "messages" in row else len(row["prompt"])
            assistant = [j for j, m in enumerate(msgs) if m["role"] == "assistant" and j >= n_prompt]
            if train_turns == "last":
                assistant = assistant[-1:]
            text, spans = chat_segments(tokenizer, msgs, [j in assistant for j in range(len(msgs))])
            ids, labels = _label_tokens(tokenizer, text, spans, add_special=False)
        else:
            text, spans = text_segments(row, eos)
            if "messages" in row and train_turns == "last":
                spans = spans[-1:]
            ids, labels = _label_tokens(tokenizer, text, spans, add_special=True)
        if train_on_prompt:
            labels = list(ids)
        # the last response: from its first loss token to the end
        trained = [k for k, lab in enumerate(labels) if lab != -100]
        if not trained:
            raise UsageError(f"SFT row {i}: no token carries loss after tokenization (empty response?)")
        last_start = trained[-1]
        while last_start > 0 and labels[last_start - 1] != -100:
            last_start -= 1
        if train_on_prompt:
            last_start = len(ids) - 1
        response = len(ids) - last_start
        if response > max_length - 1:   # the response cannot fit whole beside any of its prompt
            if long_responses == "drop":
                stats.dropped += 1
                stats.dropped_rows.append(i)
                continue
            keep = min(last_start, max_prompt_length or max_length // 2)
            ids, labels = ids[last_start - keep:][:max_length], labels[last_start - keep:][:max_length]
            stats.response_truncated += 1
            if keep < last_start:
                stats.truncated += 1
            out.append({"input_ids": ids, "labels": labels})
            stats.kept += 1
            continue
        budget = max_length - response
        if max_prompt_length is not None:
            budget = min(budget, max_prompt_length)
        if last_start > budget:
            cut = last_start - budget
            ids, labels = ids[cut:], labels[cut:]
            stats.truncated += 1
        out.append({"input_ids": ids, "labels": labels})
        stats.kept += 1
    return out, stats


def _prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return tokenizer(_render(tokenizer, prompt, generation_prompt=True), add_special_tokens=False)["input_ids"]


def _joined_len(tokenizer: Any, prompt: Any, completion: Any) -> int:
    if isinstance(prompt, str) or prompt is None:
        return len(tokenizer((prompt or "") + completion + (tokenizer.eos_token or ""))["input_ids"])
    return len(tokenizer(_render(tokenizer, [*prompt, *completion]), add_special_tokens=False)["input_ids"])


def _cut_prompt(tokenizer: Any, prompt: Any, budget: int) -> Any:
    """The prompt shortened from its start to at most ``budget`` tokens (None if impossible)."""
    for _ in range(8):
        n = len(_prompt_ids(tokenizer, prompt))
        if n <= budget:
            return prompt
        over = n - budget
        if isinstance(prompt, str):
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if over >= len(ids):
                return None
            prompt = tokenizer.decode(ids[over:], skip_special_tokens=False)
            continue
        system = [m for m in prompt[:1] if m["role"] == "system"]
        rest = prompt[len(system):]
        if len(rest) > 1:
            # drop the oldest turn(s); the history then starts with a user turn again
            rest = rest[1:]
            while len(rest) > 1 and rest[0]["role"] == "assistant":
                rest = rest[1:]
            prompt = [*system, *rest]
            continue
        if not rest:
            return None
        ids = tokenizer(rest[0]["content"], add_special_tokens=False)["input_ids"]
        if over >= len(ids):
            return None
        prompt = [*system, {**rest[0], "content": tokenizer.decode(ids[over:], skip_special_tokens=False)}]
    return prompt if len(_prompt_ids(tokenizer, prompt)) <= budget else None


def fit_preference_rows(rows: list[dict[str, Any]], tokenizer: Any, *, max_length: int,
                        max_prompt_length: int | None = None,
                        long_responses: str = "truncate") -> tuple[list[dict[str, Any]], FitStats]:
    """Fit prompt/chosen/rejected rows: the prompt (history) is cut from its start so that it fits
    ``max_prompt_length`` and, with the longer response, ``max_length``. A response that cannot
    fit whole (longer than ``max_length - 1``): the prompt keeps ``max_prompt_length or
    max_length // 2`` tokens and TRL cuts the response's end (``long_responses="truncate"``,
    counted), or the row is dropped (``"drop"``, counted)."""
    stats = FitStats(rows=len(rows))
    out = []
    for i, row in enumerate(rows):
        prompt = row.get("prompt")
        p_len = len(_prompt_ids(tokenizer, prompt)) if prompt is not None else 0
        longest = max(_joined_len(tokenizer, prompt, row[k]) - p_len for k in ("chosen", "rejected"))
        budget = max_length - longest
        if max_prompt_length is not None:
            budget = min(budget, max_prompt_length)
        if budget < (1 if prompt is not None else 0):
            if long_responses == "drop":
                stats.dropped += 1
                stats.dropped_rows.append(i)
                continue
            budget = max_prompt_length or max_length // 2
            stats.response_truncated += 1
        if prompt is not None and p_len > budget:
            cut = _cut_prompt(tokenizer, prompt, budget)
            if cut is None:
                stats.dropped += 1
                stats.dropped_rows.append(i)
                continue
            row = {**row, "prompt": cut}
            stats.truncated += 1
        out.append(row)
        stats.kept += 1
    return out, stats
