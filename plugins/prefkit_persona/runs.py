"""Reading persona-inference runs back (evaluation, saliency and augmentation start here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefkit import UsageError

from .inference import SIDES


@dataclass
class PersonaRun:
    path: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]  # persona records (both sides), in results order

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def split(self) -> str | None:
        return (self.manifest.get("persona") or {}).get("split") or (self.rows[0].get("split") if self.rows else None)

    @property
    def label(self) -> str:
        model = next((r.get("model") for r in self.rows if r.get("model")), None)
        return f"{self.name}" if not model else f"{model.split('/')[-1]} ({self.name})"

    def usable(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if (r.get("persona") or "").strip()]

    def pairs(self) -> dict[str, dict[str, dict[str, Any]]]:
        """row_id → {"chosen": record, "rejected": record} (rows with a usable persona on a side)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for r in self.usable():
            out.setdefault(str(r["row_id"]), {})[r["side"]] = r
        return out


def load_persona_run(path: str | Path, *, need_personas: bool = True) -> PersonaRun:
    """A persona-inference run directory, with one clear error for anything unusable."""
    from prefkit import Run

    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such run directory: {p}")
    run = Run.load(p)
    if run.manifest.get("command") != "infer-personas":
        raise UsageError(f"{p} is a {run.manifest.get('command')!r} run, not a persona-inference "
                         "(infer-personas) run")
    rows = [r for r in run.results() if r.get("side") in SIDES and r.get("row_id") is not None]
    if need_personas:
        if not rows:
            raise UsageError(f"{p} holds no personas yet (run `prefkit infer-personas` first, or resume it)")
        if not any((r.get("persona") or "").strip() for r in rows):
            raise UsageError(f"all {len(rows)} personas in {p} are empty: the model wrote no usable persona "
                             "(look at the 'raw' field in results.jsonl; try another --model or --prompt-file)")
    return PersonaRun(p, run.manifest, rows)
