"""Reading model outputs for judging, and matching two output files row by row.

An outputs file is a prefkit run directory (its ``results.jsonl``), a
``results.jsonl``, any JSON/JSONL/CSV/Parquet file or ``save_to_disk``
directory with a prompt and a response field, or a registered dataset name.
Rows are identified by a key: the ``--key`` field (default ``row_id``; for the
default the ``key`` and ``id`` fields are tried too) or, when no row has such a
field (e.g. the persona-tailoring paper's JSON arrays), the row's index. Two
files are matched by key, never by line position; keys missing on either side
are an error that says how many.

Responses are cleaned: a model's end-of-text token (``<|end_of_text|>``,
``<|eot_id|>``, ``<|im_end|>``, ``</s>`` ...) and anything after it is cut.
A caller that knows a method's prompt layout can pass ``prompt_parser``: a
function that turns a prompt into ``{"instruction", "persona" (optional),
"response_prefix" (optional)}`` or None; the prefix is put back in front of the
response. The core knows no method's layout (a plugin supplies it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UsageError

PROMPT_FIELDS = ("prompt", "instruction", "input", "question", "query", "messages")
RESPONSE_FIELDS = ("response", "output", "completion", "generation", "text", "answer", "prediction")
KEY_FALLBACKS = ("key", "row_id", "id")
_END_TOKEN = re.compile(r"<\|(?:end_of_text|eot_id|endoftext|im_end|end|eos)\|>|</s>|<eos>|<end_of_turn>|<\|im_end\|>")


def strip_end_tokens(text: str | None) -> str:
    """Cut a model's end-of-text token and everything after it; trim whitespace."""
    if text is None:
        return ""
    m = _END_TOKEN.search(text)
    if m:
        text = text[:m.start()]
    return text.strip()


def _render_prompt(value: Any) -> tuple[str, str | None]:
    """A prompt (string or chat messages) → (instruction, earlier conversation as context)."""
    if value is None:
        return "", None
    if isinstance(value, list):
        msgs = [m for m in value if isinstance(m, Mapping)]
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        if not users:
            return "\n\n".join(str(m.get("content") or "") for m in msgs), None
        last = users[-1]
        earlier = msgs[:last]
        system = [m for m in earlier if m.get("role") == "system"]
        convo = [m for m in earlier if m.get("role") != "system"]
        context = "\n".join(f"{str(m.get('role', '')).capitalize()}: {m.get('content') or ''}" for m in convo) or None
        instruction = str(msgs[last].get("content") or "")
        if system and not context:
            context = None
        return instruction, context
    return str(value), None


def _response_text(value: Any) -> str:
    if isinstance(value, list):
        parts = [str(m.get("content") or "") for m in value if isinstance(m, Mapping) and m.get("role") != "user"]
        return "\n\n".join(parts)
    return "" if value is None else str(value)


@dataclass
class Outputs:
    """The rows of one outputs file, by key."""

    path: str
    label: str
    rows: dict[str, dict[str, Any]]
    order: list[str]
    keyed_by: str  # the key field, or "index"
    prompt_field: str | None = None
    response_field: str | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.order)


def _label_for(path: Path) -> str:
    if path.name == "results.jsonl":
        path = path.parent
    return path.stem if path.suffix else path.name


def read_output_rows(spec: str | Path, *, split: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Raw rows of an outputs file/run directory/dataset, and a short label for it."""
    from ..runs import Run, read_jsonl

    path = Path(spec)
    if path.is_dir() and (path / "manifest.json").exists():
        rows = Run.load(path).results()  # one successful result per key, as the run store defines it
        if not rows and not (path / "results.jsonl").exists():
            raise UsageError(f"{path} is a run directory without results.jsonl")
        return rows, _label_for(path)
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return read_jsonl(path), _label_for(path)
    if path.exists():
        if path.is_dir() or split is not None:
            from ..data import load_rows

            return load_rows(str(path), split=split), _label_for(path)
        from ..data import read_table

        return read_table(path), _label_for(path)
    if path.suffix.lower() in (".json", ".jsonl", ".csv", ".parquet") or "/" in str(spec):
        raise UsageError(f"no such file or directory: {spec}")
    from ..data import load_rows

    return load_rows(str(spec), split=split), str(spec).replace(":", "-")


def _pick(row: Mapping[str, Any], wanted: str | None, candidates: tuple[str, ...], what: str, where: str) -> str:
    if wanted:
        if wanted not in row:
            raise UsageError(f"{where}: rows have no {wanted!r} field (fields: {', '.join(map(str, row))})")
        return wanted
    for c in candidates:
        if c in row:
            return c
    raise UsageError(f"{where}: cannot find the {what} field (tried {', '.join(candidates)}; fields: "
                     f"{', '.join(map(str, row))}); name it with --{what}-field")


def keyed_rows(rows: list[dict[str, Any]], *, key: str = "row_id", where: str = "input",
               default_key: bool = True) -> tuple[dict[str, dict[str, Any]], list[str], str]:
    """Index rows by ``key`` (or by position when no row has a key field). Returns (by key, order, keyed_by)."""
    fields = (key,) + (tuple(k for k in KEY_FALLBACKS if k != key) if default_key else ())
    chosen = next((f for f in fields if rows and all(isinstance(r, Mapping) and f in r for r in rows)), None)
    if chosen is None:
        partial = next((f for f in fields if any(isinstance(r, Mapping) and f in r for r in rows)), None)
        if partial is not None:
            n = sum(1 for r in rows if isinstance(r, Mapping) and partial in r)
            raise UsageError(f"{where}: only {n} of {len(rows)} rows have a {partial!r} field, so rows cannot be "
                             "matched by key; fix the file or choose another --key")
        if not default_key:
            raise UsageError(f"{where}: rows have no {key!r} field")
    by_key: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise UsageError(f"{where}: row {i} is not an object")
        k = str(r[chosen]) if chosen is not None else str(i)
        if k in by_key:
            raise UsageError(f"{where}: the key {k!r} appears more than once ({chosen or 'index'}); "
                             "rows must have unique keys")
        by_key[k] = dict(r)
        order.append(k)
    return by_key, order, chosen or "index"


def load_outputs(spec: str | Path, *, key: str = "row_id", prompt_field: str | None = None,
                 response_field: str | None = None, prompt_format: str = "auto", split: str | None = None,
                 strip_tokens: bool = True, label: str | None = None,
                 prompt_parser: Callable[[str], Mapping[str, Any] | None] | None = None) -> Outputs:
    """Load one outputs file into :class:`Outputs` with normalised ``instruction``/``response``/``persona``.

    ``prompt_parser`` (with ``prompt_format="auto"``): splits a structured prompt into its parts
    (see the module docs); ``raw`` keeps every prompt as it is.
    """
    if prompt_format not in ("auto", "raw"):
        raise UsageError(f"unknown --prompt-format {prompt_format!r} (auto or raw)")
    rows, default_label = read_output_rows(spec, split=split)
    where = str(spec)
    if not rows:
        raise UsageError(f"{where} holds no rows")
    by_key, order, keyed_by = keyed_rows(rows, key=key, where=where, default_key=(key == "row_id"))
    first = rows[0]
    rf = _pick(first, response_field, RESPONSE_FIELDS, "response", where)
    pf = None
    try:
        pf = _pick(first, prompt_field, PROMPT_FIELDS, "prompt", where)
    except UsageError:
        if prompt_field:
            raise
    labelled = 0
    for k in order:
        r = by_key[k]
        if rf not in r:
            raise UsageError(f"{where}: row {k!r} has no {rf!r} field")
        response = _response_text(r.get(rf))
        instruction, context = _render_prompt(r.get(pf)) if pf else ("", None)
        persona = None
        if prompt_format == "auto" and prompt_parser is not None:
            parts = prompt_parser(instruction)
            if parts is not None:
                labelled += 1
                instruction = str(parts.get("instruction") or "")
                persona = parts.get("persona")
                prefix = str(parts.get("response_prefix") or "")
                if prefix:
                    response = prefix + (response if response[:1].isspace() else " " + response)
        norm = {
            "instruction": instruction,
            "response": strip_end_tokens(response) if strip_tokens else response.strip(),
            "context": context,
            "labelled_persona": persona,
            "raw": r,
        }
        by_key[k] = norm
    notes = []
    if labelled:
        notes.append(f"{labelled} structured prompts split into instruction and persona")
    return Outputs(path=str(spec), label=label or default_label, rows=by_key, order=order, keyed_by=keyed_by,
                   prompt_field=pf, response_field=rf, notes=notes)


def match_keys(a: Outputs, b: Outputs, *, allow_missing: bool = False) -> list[str]:
    """Keys present in both, in A's order; missing keys are an error unless ``allow_missing``."""
    b_keys = set(b.order)
    a_keys = set(a.order)
    only_a = [k for k in a.order if k not in b_keys]
    only_b = [k for k in b.order if k not in a_keys]
    shared = [k for k in a.order if k in b_keys]
    if (only_a or only_b) and not allow_missing:
        def eg(keys: list[str]) -> str:
            return f" (e.g. {', '.join(keys[:3])})" if keys else ""

        raise UsageError(
            f"the rows of A and B do not match by key ({a.keyed_by} / {b.keyed_by}): {len(only_a)} of {len(a)} rows "
            f"of A are missing from B{eg(only_a)} and {len(only_b)} of {len(b)} rows of B are missing from A"
            f"{eg(only_b)}; match on another field with --key, or pass --allow-missing to judge only the "
            f"{len(shared)} shared rows")
    if not shared:
        raise UsageError(f"A ({a.path}) and B ({b.path}) have no keys in common")
    return shared


def _lookup(field_name: str, *rows: Mapping[str, Any] | None) -> Any:
    for r in rows:
        if r is None:
            continue
        if field_name == "persona" and r.get("labelled_persona"):
            return r["labelled_persona"]
        raw = r.get("raw", r)
        if isinstance(raw, Mapping) and raw.get(field_name) not in (None, ""):
            return raw[field_name]
    return None


def build_pairwise_items(
    a: Outputs,
    b: Outputs,
    keys: list[str],
    *,
    instruction_from: str = "a",
    persona_field: str | None = None,
    reference_field: str | None = None,
    context: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge items for the shared ``keys`` and a few counts worth reporting.

    The instruction comes from A (``instruction_from="b"``: from B). The
    persona/reference come from the ``context`` rows first (a dataset matched
    by the same keys), then A, then B. A ``persona_field`` of ``persona`` also
    finds personas a ``prompt_parser`` took out of the prompts.
    """
    if instruction_from not in ("a", "b"):
        raise UsageError("--instruction-from must be a or b")
    items, differ, persona_differ = [], 0, 0
    for k in keys:
        ra, rb = a.rows[k], b.rows[k]
        ctx = (context or {}).get(k)
        src, other = (ra, rb) if instruction_from == "a" else (rb, ra)
        instruction = src["instruction"] or other["instruction"]
        if ra["instruction"] and rb["instruction"] and ra["instruction"].strip() != rb["instruction"].strip():
            differ += 1
        item = {"key": k, "instruction": instruction, "response_a": ra["response"], "response_b": rb["response"],
                "context": src.get("context")}
        if persona_field:
            ctx_row = {"raw": ctx} if ctx is not None else None
            persona = _lookup(persona_field, ctx_row, ra, rb)
            pa, pb = _lookup(persona_field, ra), _lookup(persona_field, rb)
            if ctx is None and pa and pb and str(pa).strip() != str(pb).strip():
                persona_differ += 1
            if persona is not None:
                item["persona"] = str(persona)
        if reference_field:
            ref = _lookup(reference_field, {"raw": ctx} if ctx is not None else None, ra, rb)
            if ref is not None:
                item["reference"] = ref if isinstance(ref, str) else _response_text(ref)
        items.append(item)
    stats = {"instructions_differ": differ, "personas_differ": persona_differ}
    return items, stats


def build_score_items(outputs: Outputs, keys: list[str], *, persona_field: str | None = None,
                      reference_field: str | None = None,
                      context: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    items = []
    for k in keys:
        r = outputs.rows[k]
        ctx = (context or {}).get(k)
        ctx_row = {"raw": ctx} if ctx is not None else None
        item = {"key": k, "instruction": r["instruction"], "response": r["response"], "context": r.get("context")}
        if persona_field:
            p = _lookup(persona_field, ctx_row, r)
            if p is not None:
                item["persona"] = str(p)
        if reference_field:
            ref = _lookup(reference_field, ctx_row, r)
            if ref is not None:
                item["reference"] = ref if isinstance(ref, str) else _response_text(ref)
        items.append(item)
    return items


def load_context(spec: str, keys: list[str], *, key: str = "row_id", split: str | None = None) -> dict[str, dict[str, Any]]:
    """Extra per-row fields (persona, reference ...) from a dataset matched by the same keys."""
    rows, _ = read_output_rows(spec, split=split)
    by_key, _, _ = keyed_rows(rows, key=key, where=str(spec), default_key=(key == "row_id"))
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise UsageError(f"--context {spec}: {len(missing)} of {len(keys)} keys have no row there "
                         f"(e.g. {', '.join(missing[:3])})")
    return by_key


__all__ = ["Outputs", "load_outputs", "match_keys", "build_pairwise_items", "build_score_items", "load_context",
           "strip_end_tokens", "keyed_rows", "read_output_rows"]
