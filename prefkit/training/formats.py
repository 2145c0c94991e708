"""Training data formats: turn prefkit records or plain rows into TRL's dataset rows.

Input rows (dicts, :class:`prefkit.PreferenceRecord` s or a ``datasets.Dataset``):

* SFT: ``{"prompt", "completion"}`` — or ``{"prompt", "chosen"}`` (the chosen
  answer is the completion), ``{"messages"}`` (the last assistant turn is the
  completion) or ``{"text"}`` (plain language modelling, loss on everything);
* DPO: ``{"prompt", "chosen", "rejected"}``;
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
            last = max((j for j, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
            if last is None or last == 0:
                raise UsageError(f"{where}: 'messages' needs a prompt followed by an assistant turn")
            d = {**d, "prompt": msgs[:last], "completion": msgs[last:last + 1]}
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
    if len(shapes) > 1:
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
