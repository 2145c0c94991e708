"""Judging rubrics: what a judge looks at, and what each score means.

A rubric is a name, a criteria question, and (for absolute 1–N scoring)
optional descriptions of each score. Built-in rubrics live as YAML files next
to this module (``rubrics/quality.yaml``, ``rubrics/personalization.yaml``) and
are registered through the ``register_rubrics`` hook, the way a plugin adds
its own. Users pass a file: ``--rubric my_rubric.yaml``.

File formats:

* YAML or JSON: ``{name, criteria, score_descriptions: {1: ..., 5: ...},
  description, uses_persona}`` (only ``criteria`` is required);
* plain text: the criteria; lines of the form ``Score 3: ...`` become score
  descriptions. The name is the file name without its suffix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

RUBRICS_DIR = Path(__file__).parent / "rubrics"
_SCORE_LINE = re.compile(r"^\s*(?:[-*]\s*)?score\s*(\d+)\s*[:.)-]\s*(.+?)\s*$", re.I)


@dataclass
class Rubric:
    """A judging criterion (``criteria``) and, optionally, what each score means."""

    name: str
    criteria: str
    score_descriptions: dict[int, str] | None = None
    description: str = ""
    uses_persona: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not str(self.criteria or "").strip():
            raise UsageError(f"rubric {self.name!r} has no criteria")
        self.criteria = " ".join(str(self.criteria).split())
        if self.score_descriptions:
            sd = self.score_descriptions
            if isinstance(sd, (list, tuple)):
                sd = {i + 1: v for i, v in enumerate(sd)}
            try:
                self.score_descriptions = {int(k): " ".join(str(v).split()) for k, v in dict(sd).items()}
            except (TypeError, ValueError):
                raise UsageError(f"rubric {self.name!r}: score_descriptions must map scores (1, 2, ...) to text") from None
        else:
            self.score_descriptions = None

    @property
    def scale(self) -> tuple[int, int] | None:
        """(lowest, highest) score described by the rubric, if it describes scores."""
        if not self.score_descriptions:
            return None
        return min(self.score_descriptions), max(self.score_descriptions)

    def descriptions_for(self, low: int, high: int) -> dict[int, str] | None:
        """Score descriptions, when they cover exactly the scale ``low..high``."""
        if self.score_descriptions and sorted(self.score_descriptions) == list(range(low, high + 1)):
            return self.score_descriptions
        return None

    def fingerprint(self) -> dict[str, Any]:
        """What decides the judgments (stored as part of a run's identity)."""
        return {"name": self.name, "criteria": self.criteria, "score_descriptions": self.score_descriptions,
                "uses_persona": self.uses_persona}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "criteria": self.criteria,
                "score_descriptions": self.score_descriptions, "uses_persona": self.uses_persona}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, default_name: str = "custom") -> "Rubric":
        if not isinstance(data, dict):
            raise UsageError("a rubric file must hold a mapping with at least 'criteria'")
        unknown = set(data) - {"name", "criteria", "score_descriptions", "description", "uses_persona", "meta",
                               "scores"}
        if unknown:
            raise UsageError(f"rubric {data.get('name', default_name)!r}: unknown field(s) {', '.join(sorted(unknown))} "
                             "(known: name, criteria, score_descriptions, description, uses_persona)")
        if "criteria" not in data:
            raise UsageError(f"rubric {data.get('name', default_name)!r} has no 'criteria'")
        return cls(name=str(data.get("name") or default_name), criteria=data["criteria"],
                   score_descriptions=data.get("score_descriptions") or data.get("scores"),
                   description=str(data.get("description") or ""), uses_persona=bool(data.get("uses_persona", False)),
                   meta=dict(data.get("meta") or {}))

    @classmethod
    def from_text(cls, text: str, *, name: str = "custom") -> "Rubric":
        criteria_lines, scores = [], {}
        for line in text.splitlines():
            m = _SCORE_LINE.match(line)
            if m:
                scores[int(m.group(1))] = m.group(2)
            elif line.strip() and not line.lstrip().startswith("#"):
                criteria_lines.append(line.strip())
        uses_persona = bool(re.search(r"\bpersona\b", " ".join(criteria_lines), re.I))
        return cls(name=name, criteria=" ".join(criteria_lines), score_descriptions=scores or None,
                   uses_persona=uses_persona)

    @classmethod
    def from_file(cls, path: str | Path) -> "Rubric":
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"no such rubric file: {path}")
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix.lower()
        try:
            if suffix in (".yaml", ".yml"):
                import yaml

                return cls.from_dict(yaml.safe_load(text) or {}, default_name=path.stem)
            if suffix == ".json":
                return cls.from_dict(json.loads(text), default_name=path.stem)
        except (ValueError, ImportError) as exc:  # yaml.YAMLError and JSONDecodeError are ValueErrors or close
            raise UsageError(f"cannot read rubric {path}: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("yaml"):
                raise UsageError(f"cannot read rubric {path}: {exc}") from None
            raise
        return cls.from_text(text, name=path.stem)


def builtin_rubrics() -> list[Rubric]:
    """The rubrics shipped with prefkit (``quality``, ``personalization``)."""
    return [Rubric.from_file(p) for p in sorted(RUBRICS_DIR.glob("*.yaml"))]


def get_rubric(name_or_path: "str | Path | Rubric") -> Rubric:
    """A rubric by registered name (``quality``, ``personalization``, plugin rubrics) or from a file."""
    if isinstance(name_or_path, Rubric):
        return name_or_path
    spec = str(name_or_path)
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json", ".txt", ".md") or path.is_file():
        return Rubric.from_file(path)
    from ..plugins import registry

    reg = registry("rubrics")
    if spec in reg:
        return reg.get(spec)
    known = ", ".join(sorted(reg.names())) or "none"
    raise UsageError(f"unknown rubric {spec!r} (known: {known}; or pass a .yaml/.json/.txt rubric file)")


__all__ = ["Rubric", "get_rubric", "builtin_rubrics", "RUBRICS_DIR"]
