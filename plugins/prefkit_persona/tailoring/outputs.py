"""Generation runs: what a result record holds, and importing the paper's published outputs.

A generation run (``prefkit tailor generate`` / ``fewshot`` / ``import-outputs``) is a run
directory whose ``results.jsonl`` has one record per test row, keyed by ``row_id``::

    {"row_id", "index", "prompt",            # the test row's prompt (question / term)
     "persona",                              # the persona the answer was asked for (None: none)
     "input",                                # the exact model input (text, or chat messages)
     "response",                             # the cleaned answer (Mnemonic: seed included)
     "raw",                                  # the model's text as it came back
     "stopped", "eos", "finish_reason"}

and whose manifest ``config`` holds ``split``, ``training_type``, ``inference_type``,
``method`` and ``model``, so ``prefkit tailor judge`` needs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from prefkit import UsageError

from .formats import (build_input, split_name, check_inference_personas, check_inference_type,
                      check_training_type, clean_response, inference_persona, parse_output_name, parse_text_input,
                      response_seed)

GENERATION_COMMANDS = ("tailor generate", "tailor fewshot", "tailor import-outputs")


def result_record(row: dict[str, Any], *, persona: str | None, model_input: Any, raw: str, seed: str = "",
                  finish_reason: str | None = None) -> dict[str, Any]:
    """The run-store record of one generation (seed prepended, cut at the stop text, EOS removed)."""
    cleaned = clean_response(raw, seed=seed)
    return {"row_id": str(row["row_id"]), "index": row.get("index"), "prompt": row["prompt"], "persona": persona,
            "input": model_input, "response": cleaned["response"], "raw": raw, "stopped": cleaned["stopped"],
            "eos": cleaned["eos"], "finish_reason": finish_reason}


def read_output_file(path: str | Path) -> list[dict[str, Any]]:
    """A paper-outputs file: a JSON array of ``{"prompt", "response"}`` objects."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise UsageError(f"{p}: expected a JSON array of {{prompt, response}} objects")
    for i, x in enumerate(data):
        if not isinstance(x.get("response"), str) or not isinstance(x.get("prompt"), str):
            raise UsageError(f"{p}: item {i} needs string fields 'prompt' and 'response' (has: {', '.join(sorted(x))})")
    return data


def types_from_name(path: str | Path, training_type: str | None, inference_type: str | None,
                    method: str | None) -> dict[str, str]:
    """Training/inference type and method: the flags, else the file name (``dpo__train-T__infer-I.json``)."""
    parsed = parse_output_name(Path(path).stem) or {}
    t = training_type or parsed.get("training_type")
    i = inference_type or parsed.get("inference_type")
    if not t or not i:
        raise UsageError(f"cannot tell the training and inference type from the file name {Path(path).name!r} "
                         "(expected METHOD__train-T__infer-I.json): pass --training-type and --inference-type")
    return {"training_type": check_training_type(t), "inference_type": check_inference_type(i),
            "method": method or parsed.get("method") or "imported"}


def _question_of(model_input: str) -> str:
    """The prompt inside a text-format input (its last ``Prompt: ...`` block; demonstrations come before)."""
    text = model_input
    start = text.rfind("Prompt: ")
    parsed = parse_text_input(text[start:]) if start >= 0 else None
    if parsed is not None:
        return parsed["prompt"]
    if start >= 0:
        text = text[start + len("Prompt: "):]
    for sep in ("\nPersona: ", "\nResponse:"):
        if sep in text:
            text = text[: text.index(sep)]
    return text


def match_outputs(items: Sequence[dict[str, Any]], test_rows: Sequence[dict[str, Any]], *, split: str,
                  training_type: str, inference_type: str, system_persona: str | None = None,
                  where: str = "the file") -> dict[str, Any]:
    """Attach ``row_id`` s to generations stored in test-split order, checking that they line up.

    Every item's prompt must hold its test row's prompt (else the file is not in test-split order,
    or belongs to another split: an error naming the first mismatch). The whole model input is
    rebuilt from the test row and compared too; ``input_mismatches`` counts items where it differs
    (e.g. another persona), which is reported rather than fatal.
    """
    split = split_name(split, any_name=True)  # the rows are given: a user dataset's split name is fine
    if len(items) != len(test_rows):
        raise UsageError(f"{where} has {len(items)} items but the {split} test split has {len(test_rows)} rows; "
                         "outputs must follow the test split's order one to one")
    if inference_type not in ("none", "system"):
        check_inference_personas(test_rows, inference_type, split, where=f"the {split} test split")
    records, mismatched = [], []
    for i, (item, row) in enumerate(zip(items, test_rows)):
        question = _question_of(item["prompt"])
        own = str(row["prompt"])
        if training_type == "none" and inference_type != "none":
            ok = question.startswith(own)  # the persona was appended to the prompt
        else:
            ok = question == own or question.strip() == own.strip()
        if not ok:
            raise UsageError(f"{where}: item {i} does not match row {row['row_id']} of the {split} test split "
                             f"(file prompt {question[:60]!r}, test prompt {own[:60]!r}); is it in test-split order "
                             "and from this split?")
        persona = inference_persona(row, inference_type, split, system_persona)
        expected = build_input(own, persona, training_type=training_type, split=split)
        if expected != item["prompt"]:
            mismatched.append(str(row["row_id"]))
        seed = response_seed(own, split)  # Mnemonic: the answer continues "Term sounds like" in the input
        if seed and not item["prompt"].endswith(seed):
            seed = ""
        records.append(result_record(row, persona=persona, model_input=item["prompt"], raw=item["response"],
                                     seed=seed))
    return {"records": records, "input_mismatches": len(mismatched), "mismatched_rows": mismatched[:20]}
