"""Pure logic of persona tailoring: types, prompt formats, row building.

Nothing here does I/O or imports anything heavy, so all of it is tested on real
rows without a model or a backend.

A *row* is a plain dict with the persona-tailoring columns::

    {"row_id", "prompt", "chosen", "rejected",
     "chosen_persona_gold", "rejected_persona_gold", "chosen_persona_retr", "rejected_persona_retr"}

Text format (base models), as in the paper's published generations::

    Prompt: {prompt}
    Persona: {persona}          <- omitted when there is no persona
    Response: {response}

For Mnemonic the response is seeded with ``"{Term} sounds like"``. A model
trained without personas (``none``) that is asked to use one gets it appended to
the prompt in the first person (``The user is ...`` → ``I am ...``).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from prefkit import UsageError

TRAINING_TYPES = ("chosen", "rejected", "all", "none")
INFERENCE_TYPES = ("gold-chosen", "gold-rejected", "retr-chosen", "retr-rejected", "system", "none")
DATA_SPLITS = ("fewshot", "sft_train", "sft_val", "dpo_train", "dpo_val", "test")
KNOWN_SPLITS = ("BeaverTails", "Anthropic HHH", "Mnemonic")
FORMATS = ("text", "chat")
PERSONA_SOURCES = ("gold", "retr")

PERSONA_COLUMNS = ("chosen_persona_gold", "rejected_persona_gold", "chosen_persona_retr", "rejected_persona_retr")
INFERENCE_COLUMNS = {
    "gold-chosen": "chosen_persona_gold",
    "gold-rejected": "rejected_persona_gold",
    "retr-chosen": "chosen_persona_retr",
    "retr-rejected": "rejected_persona_retr",
}

#: generation stops where the model starts a new example
STOP = "\nPrompt:"
#: end-of-sequence markers that appear in decoded text (the paper's outputs end with <|end_of_text|>)
EOS_MARKERS = ("<|end_of_text|>", "<|eot_id|>", "<|endoftext|>", "<|im_end|>", "</s>", "<eos>", "<|end|>")

#: the paper's fixed persona per split for the ``system`` inference type (one persona for every test
#: prompt, as in the paper's experiments); override with ``--system-persona``.
DEFAULT_SYSTEM_PERSONAS = {
    "BeaverTails": "The user is meticulous and prefers responses that cover multiple, diverse angles.",
    "Anthropic HHH": ("The user is solution-focused, results-oriented, and fact-oriented, and prefers responses "
                      "that cover varied angles."),
    "Mnemonic": "The user prefers indirect, step-by-step mnemonics that capture the essence of the vocabulary term.",
}
#: prefkit's own fallback for a split the paper has no system persona for (a user dataset)
GENERIC_SYSTEM_PERSONA = "The user is an everyday person who prefers responses that are helpful, honest and harmless."

_SPLIT_ALIASES = {re.sub(r"[^a-z]", "", s.lower()): s for s in KNOWN_SPLITS}
_SPLIT_ALIASES.update({"hhh": "Anthropic HHH", "anthropichh": "Anthropic HHH", "beaver": "BeaverTails",
                       "mnemonics": "Mnemonic"})


# --------------------------------------------------------------------------- names
def canonical_split(name: str) -> str:
    """``beavertails`` / ``anthropic-hhh`` / ``HHH`` → the dataset's config name."""
    key = re.sub(r"[^a-z]", "", str(name or "").lower())
    if key in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[key]
    raise UsageError(f"unknown split {name!r} for persona tailoring (known: {', '.join(KNOWN_SPLITS)})")


def split_name(name: str, dataset: str | None = None, *, any_name: bool = False) -> str:
    """The split's canonical name; with a user ``dataset`` (or ``any_name``) any name is accepted (a known
    one is still canonicalised, so ``--split mnemonic`` keeps Mnemonic's seed and system persona)."""
    try:
        return canonical_split(name)
    except UsageError:
        if (dataset or any_name) and str(name or "").strip():
            return str(name).strip()
        raise


def check_data_split(name: str) -> str:
    if name not in DATA_SPLITS:
        raise UsageError(f"unknown data split {name!r} (persona-tailoring splits: {', '.join(DATA_SPLITS)})")
    return name


def check_training_type(name: str) -> str:
    value = str(name or "").strip().lower()
    if value not in TRAINING_TYPES:
        raise UsageError(f"unknown training type {name!r} (choose from: {', '.join(TRAINING_TYPES)})")
    return value


def check_inference_type(name: str) -> str:
    value = str(name or "").strip().lower().replace("_", "-")
    if value not in INFERENCE_TYPES:
        raise UsageError(f"unknown inference type {name!r} (choose from: {', '.join(INFERENCE_TYPES)})")
    return value


def check_format(name: str) -> str:
    value = str(name or "").strip().lower()
    if value not in FORMATS:
        raise UsageError(f"unknown format {name!r} (choose from: {', '.join(FORMATS)}: text for base models, "
                         "chat for instruct models with a chat template)")
    return value


def is_mnemonic(split: str) -> bool:
    return str(split).strip().lower() == "mnemonic"


def system_persona_for(split: str, override: str | None = None) -> str:
    if override and override.strip():
        return override.strip()
    return DEFAULT_SYSTEM_PERSONAS.get(split, GENERIC_SYSTEM_PERSONA)


#: what the judge is told the task was, for Mnemonic (whose prompts are bare vocabulary terms)
MNEMONIC_TASK = ('Write a keyword mnemonic for the vocabulary term "{term}": a word or phrase that sounds like '
                 "the term, linked to what the term means.")


def judge_instruction(prompt: str, split: str) -> str:
    """The instruction a judge sees: the prompt, or for Mnemonic the task of writing a mnemonic for the term."""
    return MNEMONIC_TASK.format(term=str(prompt).strip()) if is_mnemonic(split) else str(prompt)


# --------------------------------------------------------------------------- text pieces
def mnemonic_seed(term: str) -> str:
    """``negligible`` → ``Negligible sounds like`` (the paper seeds Mnemonic answers with this).

    Title case, as in the paper's generations (``self-effacing`` → ``Self-Effacing sounds like``).
    """
    return f"{str(term).strip().title()} sounds like"


_VERB_ES = re.compile(r"(?:ss|sh|ch|x|z|o)es$")


def first_person(persona: str, full: bool = False) -> str:
    """Rewrite a third-person persona in the first person.

    As in the paper (the default): a leading ``The user is`` becomes ``I am``; any other persona is
    kept as it is, and the rest of the sentence ("their ...") is left alone. With ``full=True``
    other openings are rewritten too: ``The user has``/``was``/``does`` → ``I have``/``I was``/``I do``,
    ``The user prefers X`` → ``I prefer X``, ``The user's`` → ``My``.
    """
    p = str(persona).strip()
    m = re.match(r"^the user is\b", p, re.I)
    if m:
        return "I am" + p[m.end():]
    if not full:
        return p
    m = re.match(r"^the user(?:'s|’s)\s+", p, re.I)
    if m:
        return "My " + p[m.end():]
    m = re.match(r"^the user\s+(\w+)\b", p, re.I)
    if not m:
        return p
    verb, rest = m.group(1), p[m.end():]
    irregular = {"is": "am", "was": "was", "has": "have", "does": "do", "isn't": "am not"}
    low = verb.lower()
    if low in irregular:
        new = irregular[low]
    elif low.endswith("ies") and len(low) > 4:
        new = verb[:-3] + "y"
    elif _VERB_ES.search(low):
        new = verb[:-2]
    elif low.endswith("s") and not low.endswith("ss"):
        new = verb[:-1]
    else:  # "The user likely prefers", "The user, who ..." → keep the verb
        new = verb
    return f"I {new}{rest}"


def format_text(prompt: str, persona: str | None = None, seed: str | None = None) -> str:
    """The text-format model input: ``Prompt: ...`` [``\\nPersona: ...``] ``\\nResponse:`` [`` seed``]."""
    out = f"Prompt: {prompt}"
    if persona:
        out += f"\nPersona: {persona}"
    out += "\nResponse:"
    if seed:
        out += " " + seed
    return out


_TEXT_INPUT = re.compile(r"^\s*Prompt:[ \t]*(?P<prompt>.*?)(?:\n+Persona:[ \t]*(?P<persona>.*?))?\n+Response:"
                         r"(?P<seed>[^\n]*)\s*$", re.S)


def parse_text_input(text: str) -> dict[str, str] | None:
    """The inverse of :func:`format_text`: ``Prompt: X\\nPersona: P\\nResponse: S`` →
    ``{"prompt", "persona" (when present), "seed"}``; None when ``text`` is not in that layout."""
    if not isinstance(text, str) or not text.lstrip().startswith("Prompt:"):
        return None
    m = _TEXT_INPUT.match(text)
    if not m:
        return None
    out = {"prompt": m.group("prompt").strip(), "seed": (m.group("seed") or "").strip()}
    if m.group("persona"):
        out["persona"] = m.group("persona").strip()
    return out


def judge_prompt_parser(text: str) -> dict[str, str] | None:
    """:func:`parse_text_input` in the shape the core's outputs loader takes as ``prompt_parser``
    (``{"instruction", "persona", "response_prefix"}``), for judging the paper's published outputs."""
    parts = parse_text_input(text)
    if parts is None:
        return None
    return {"instruction": parts["prompt"], "persona": parts.get("persona"), "response_prefix": parts["seed"]}


def format_chat(prompt: str, persona: str | None = None) -> list[dict[str, str]]:
    """The chat-format input (for instruct models): one user turn; the persona follows the prompt."""
    content = prompt if not persona else f"{prompt}\n\nPersona: {persona}"
    return [{"role": "user", "content": content}]


def prompt_with_persona(prompt: str, persona: str | None, training_type: str) -> tuple[str, str | None]:
    """(prompt, persona) as the model should see them.

    A model trained without personas (``none``) has no ``Persona:`` slot, so a persona
    asked for at inference is appended to the prompt in the first person.
    """
    if persona and training_type == "none":
        return f"{prompt} {first_person(persona)}", None
    return prompt, persona


def build_input(prompt: str, persona: str | None, *, training_type: str, split: str, fmt: str = "text",
                demos: str | list[dict[str, str]] | None = None) -> str | list[dict[str, str]]:
    """The model input for one test prompt (text: a string; chat: a message list).

    ``demos``: few-shot demonstrations put before the query (text: :func:`fewshot_prefix`,
    chat: :func:`fewshot_messages`). In the text format Mnemonic inputs end with the seed.
    """
    shown_prompt, shown_persona = prompt_with_persona(prompt, persona, training_type)
    if fmt == "chat":
        return list(demos or []) + format_chat(shown_prompt, shown_persona)
    seed = mnemonic_seed(prompt) if is_mnemonic(split) else None
    return (demos or "") + format_text(shown_prompt, shown_persona, seed)


def response_seed(prompt: str, split: str, fmt: str = "text") -> str:
    """The text generation starts from (it belongs to the answer): ``"Term sounds like"`` for Mnemonic."""
    return mnemonic_seed(prompt) if (is_mnemonic(split) and fmt == "text") else ""


def completion_text(response: str, fmt: str = "text") -> str:
    """The training target after ``Response:`` (a leading space in the text format)."""
    r = str(response).strip()
    return " " + r if fmt == "text" else r


# --------------------------------------------------------------------------- personas
def training_sides(training_type: str) -> tuple[str, ...]:
    """Which sides of each preference pair become training examples."""
    return {"chosen": ("chosen",), "rejected": ("rejected",), "all": ("chosen", "rejected"),
            "none": ("chosen",)}[check_training_type(training_type)]


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def inference_persona(row: dict[str, Any], inference_type: str, split: str,
                      system_persona: str | None = None) -> str | None:
    """The persona a test row is answered for (None for ``none``)."""
    if inference_type == "none":
        return None
    if inference_type == "system":
        return system_persona_for(split, system_persona)
    value = row.get(INFERENCE_COLUMNS[inference_type])
    return None if _empty(value) else str(value).strip()


def check_inference_personas(rows: Sequence[dict[str, Any]], inference_type: str, split: str,
                             where: str = "the test split") -> list[str]:
    """Row ids whose persona for ``inference_type`` is empty; raises when every row's is.

    Mnemonic's test split has empty gold personas (and empty chosen/rejected) in all rows:
    only retrieved-persona, system and no-persona inference apply there.
    """
    if inference_type in ("none", "system") or not rows:
        return []
    col = INFERENCE_COLUMNS[inference_type]
    if col not in rows[0]:
        raise UsageError(f"{where} has no column {col!r} needed for --inference-type {inference_type} "
                         f"(columns: {', '.join(sorted(rows[0]))})")
    empty = [str(r.get("row_id")) for r in rows if _empty(r.get(col))]
    if len(empty) == len(rows):
        if inference_type.startswith("gold") and is_mnemonic(split):
            raise UsageError(
                f"Mnemonic's test split has no gold personas (chosen, rejected and both gold persona columns are "
                f"empty in every row), so --inference-type {inference_type} cannot run there; use retr-chosen, "
                "retr-rejected, system or none")
        raise UsageError(f"{where} has an empty {col!r} in every row, so --inference-type {inference_type} cannot run; "
                         "use another inference type or fill the column (prefkit persona augment/retrieve)")
    return empty


def training_persona(row: dict[str, Any], side: str, persona_source: str = "gold") -> str:
    return str(row.get(f"{side}_persona_{persona_source}") or "").strip()


# --------------------------------------------------------------------------- training rows
def _validate_training(rows: Sequence[dict[str, Any]], training_type: str, persona_source: str,
                       where: str, need_pair: bool) -> None:
    if persona_source not in PERSONA_SOURCES:
        raise UsageError(f"unknown persona source {persona_source!r} (choose from: {', '.join(PERSONA_SOURCES)})")
    if not rows:
        raise UsageError(f"{where} has no rows to train on")
    needed = ["chosen", "rejected"] if need_pair else list(training_sides(training_type))
    if training_type != "none":
        needed += [f"{side}_persona_{persona_source}" for side in training_sides(training_type)]
    for col in needed:
        if col not in rows[0]:
            raise UsageError(f"{where} has no column {col!r} needed for training type {training_type!r} "
                             f"(columns: {', '.join(sorted(rows[0]))})")
        empty = [str(r.get("row_id")) for r in rows if _empty(r.get(col))]
        if empty:
            shown = ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else "")
            raise UsageError(f"{where}: {len(empty)} of {len(rows)} rows have an empty {col!r} (rows {shown}); "
                             "personas and responses are needed to train")


def sft_rows(rows: Sequence[dict[str, Any]], training_type: str, split: str, *, fmt: str = "text",
             persona_source: str = "gold", where: str = "sft data") -> list[dict[str, Any]]:
    """SFT examples ``{"prompt", "completion"}`` (text: strings; chat: message lists).

    ``chosen``: prompt + chosen persona → chosen response; ``rejected``: prompt + rejected persona →
    rejected response; ``all``: both (2N rows); ``none``: prompt → chosen response, no persona.
    For Mnemonic the seed ("X sounds like") stays in the completion: it is part of every answer.
    """
    training_type = check_training_type(training_type)
    _validate_training(rows, training_type, persona_source, where, need_pair=False)
    out = []
    for side in training_sides(training_type):
        for r in rows:
            persona = None if training_type == "none" else training_persona(r, side, persona_source)
            shown = prompt_with_persona(r["prompt"], persona, training_type)
            if fmt == "chat":
                out.append({"prompt": format_chat(*shown),
                            "completion": [{"role": "assistant", "content": completion_text(r[side], fmt)}]})
            else:
                out.append({"prompt": format_text(*shown), "completion": completion_text(r[side])})
    return out


def dpo_rows(rows: Sequence[dict[str, Any]], training_type: str, split: str, *, fmt: str = "text",
             persona_source: str = "gold", where: str = "dpo data") -> list[dict[str, Any]]:
    """DPO pairs ``{"prompt", "chosen", "rejected"}``.

    ``chosen``: prompt + chosen persona, chosen ≻ rejected; ``rejected``: prompt + rejected persona,
    rejected ≻ chosen; ``all``: both (2N pairs); ``none``: plain DPO without personas.
    """
    training_type = check_training_type(training_type)
    _validate_training(rows, training_type, persona_source, where, need_pair=True)
    out = []
    for side in training_sides(training_type):
        other = "rejected" if side == "chosen" else "chosen"
        for r in rows:
            persona = None if training_type == "none" else training_persona(r, side, persona_source)
            if fmt == "chat":
                prompt: Any = format_chat(*prompt_with_persona(r["prompt"], persona, training_type))
                good = [{"role": "assistant", "content": completion_text(r[side], fmt)}]
                bad = [{"role": "assistant", "content": completion_text(r[other], fmt)}]
            else:
                prompt = format_text(*prompt_with_persona(r["prompt"], persona, training_type))
                good, bad = completion_text(r[side]), completion_text(r[other])
            out.append({"prompt": prompt, "chosen": good, "rejected": bad})
    return out


# --------------------------------------------------------------------------- few-shot
def fewshot_prefix(demos: Iterable[dict[str, Any]], training_type: str, split: str, *,
                   persona_source: str = "gold") -> str:
    """Demonstrations in the text format, one blank line apart, ending with a blank line.

    The training type decides what the demonstrations show: ``chosen`` (chosen persona and
    response), ``rejected``, ``all`` (both per demonstration row) or ``none`` (no persona,
    chosen response).
    """
    demos = list(demos)
    training_type = check_training_type(training_type)
    _validate_training(demos, training_type, persona_source, "the fewshot split", need_pair=False)
    blocks = []
    for r in demos:
        for side in training_sides(training_type):
            persona = None if training_type == "none" else training_persona(r, side, persona_source)
            blocks.append(format_text(r["prompt"], persona) + completion_text(r[side]))
    return "\n\n".join(blocks) + "\n\n"


def fewshot_messages(demos: Iterable[dict[str, Any]], training_type: str, *, persona_source: str = "gold"
                     ) -> list[dict[str, str]]:
    """Demonstrations as alternating user/assistant turns (chat format)."""
    msgs: list[dict[str, str]] = []
    for r in demos:
        for side in training_sides(training_type):
            persona = None if training_type == "none" else training_persona(r, side, persona_source)
            msgs.extend(format_chat(r["prompt"], persona))
            msgs.append({"role": "assistant", "content": str(r[side]).strip()})
    return msgs


# --------------------------------------------------------------------------- outputs
def clean_response(text: str, *, seed: str = "", stop: str = STOP,
                   eos_markers: Sequence[str] = EOS_MARKERS) -> dict[str, Any]:
    """Post-process a generation: seed prepended, cut at the stop text and EOS markers, trimmed.

    Returns ``{"response", "stopped", "eos"}``: ``stopped`` is True when the stop text was found
    (the model began a new example), ``eos`` when an end-of-sequence marker was.
    """
    raw = str(text or "")
    stopped = eos = False
    if stop and stop in raw:
        raw = raw[: raw.index(stop)]
        stopped = True
    cut = min((raw.index(m) for m in eos_markers if m in raw), default=None)
    if cut is not None:
        raw = raw[:cut]
        eos = True
    body = raw if not seed else (seed + (raw if raw[:1].isspace() or not raw else " " + raw))
    return {"response": body.strip(), "stopped": stopped, "eos": eos}


_PAPER_NAME = re.compile(r"^(?P<method>[a-z]+)__train-(?P<train>[a-z]+)__infer-(?P<infer>[a-z-]+)$")


def parse_output_name(stem: str) -> dict[str, str] | None:
    """``dpo__train-chosen__infer-retr-rejected`` → method, training and inference type."""
    m = _PAPER_NAME.match(stem)
    if not m:
        return None
    return {"method": m.group("method"), "training_type": m.group("train"), "inference_type": m.group("infer")}
