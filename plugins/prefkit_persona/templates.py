"""Prompt templates as editable files in ``prefkit_persona/prompts/``.

Templates use ``{{name}}`` placeholders, filled in one pass (text inserted for a
placeholder is never scanned again, so braces in prompts or responses are safe).
Few-shot demonstrations live in ``prompts/demos/<split>.txt``: blocks in the same
``Prompt / --- / Chosen Response / --- / Rejected Response / --- / Persona:``
layout as the query, separated by lines holding only ``===``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from prefkit import UsageError

from .splits import split_slug

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DEMO_SEPARATOR = re.compile(r"^\s*===\s*$", re.M)
DEMO_LABELS = ("Prompt:", "Chosen Response:", "Rejected Response:", "Persona:")


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def render(template: str, **values: str) -> str:
    """Fill ``{{name}}`` placeholders; a placeholder without a value is an error."""
    missing = placeholders(template) - set(values)
    if missing:
        raise UsageError(f"the prompt template uses {', '.join('{{' + m + '}}' for m in sorted(missing))}, "
                         f"which this command does not provide (it provides: "
                         f"{', '.join('{{' + v + '}}' for v in sorted(values))})")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def read_text(path: str | Path, what: str = "prompt file") -> str:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} not found: {p}")
    text = p.read_text(encoding="utf-8")
    if not text.strip():
        raise UsageError(f"{what} {p} is empty")
    return text


def builtin_template(name: str) -> str:
    """A template shipped with the plugin (``prompts/<name>.txt``)."""
    path = PROMPTS_DIR / (name if name.endswith(".txt") else name + ".txt")
    if not path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        raise UsageError(f"no built-in prompt template {name!r} (known: {', '.join(known)})")
    return path.read_text(encoding="utf-8")


def check_template(template: str, required: tuple[str, ...], where: str) -> None:
    have = placeholders(template)
    missing = [r for r in required if r not in have]
    if missing:
        raise UsageError(f"{where} lacks the placeholder(s) {', '.join('{{' + m + '}}' for m in missing)}")


@functools.lru_cache(maxsize=None)
def descriptions() -> dict[str, str]:
    import yaml

    data = yaml.safe_load((PROMPTS_DIR / "descriptions.yaml").read_text(encoding="utf-8")) or {}
    return {str(k): " ".join(str(v).split()) for k, v in data.items()}


def description(split: str) -> str:
    return descriptions().get(split, "")


def parse_demos(text: str, where: str = "examples file") -> list[str]:
    """Split a demonstrations file into blocks and check each one's layout."""
    blocks = [b.strip() for b in _DEMO_SEPARATOR.split(text) if b.strip()]
    if not blocks:
        raise UsageError(f"{where} holds no demonstrations")
    for i, block in enumerate(blocks, 1):
        pos = -1
        for label in DEMO_LABELS:
            nxt = block.find(label, pos + 1)
            if nxt < 0:
                raise UsageError(f"{where}: demonstration {i} lacks {label!r} (layout: Prompt: / --- / "
                                 "Chosen Response: / --- / Rejected Response: / --- / Persona:)")
            pos = nxt
    return blocks


def demos_path(split: str) -> Path:
    return PROMPTS_DIR / "demos" / f"{split_slug(split)}.txt"


def load_demos(split: str, examples_file: str | Path | None = None) -> list[str]:
    if examples_file is not None:
        return parse_demos(read_text(examples_file, "examples file"), str(examples_file))
    path = demos_path(split)
    if not path.is_file():
        raise UsageError(f"no built-in demonstrations for split {split!r}; pass --examples-file")
    return parse_demos(path.read_text(encoding="utf-8"), str(path))


def fingerprint(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]
