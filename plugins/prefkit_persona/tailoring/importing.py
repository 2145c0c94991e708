"""``prefkit tailor import-outputs``: published generations → a generation run that ``judge`` accepts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .data import dataset_ref, load_tailoring_rows
from .formats import split_name, system_persona_for
from .outputs import match_outputs, read_output_file, types_from_name


def import_outputs(file: str, *, split: str, training_type: str | None = None, inference_type: str | None = None,
                   method: str | None = None, system_persona: str | None = None, data_dir: str | None = None,
                   dataset: str | None = None, output_dir: str | None = None, run_name: str | None = None, fresh: bool = False) -> dict[str, Any]:
    """Import a ``[{prompt, response}, ...]`` file in test-split order; row_ids come from the test split.

    Re-importing the same file into the same run writes nothing new (results are keyed by row_id).
    """
    import prefkit

    split = split_name(split, dataset)
    types = types_from_name(file, training_type, inference_type, method)
    items = read_output_file(file)
    rows = load_tailoring_rows(split, "test", data_dir=data_dir, dataset=dataset)
    sys_persona = system_persona_for(split, system_persona) if types["inference_type"] == "system" else None
    matched = match_outputs(items, rows, split=split, training_type=types["training_type"],
                            inference_type=types["inference_type"], system_persona=system_persona,
                            where=Path(file).name)
    digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
    config = {"split": split, **types, "format": "text", "model": f"imported:{Path(file).name}",
              "system_persona": sys_persona, "source_file": str(Path(file).resolve()),
              "data_dir": str(Path(data_dir).resolve()) if data_dir else None, "dataset": dataset_ref(dataset)}
    identity = {"split": split, **types, "file_sha256": digest, "system_persona": sys_persona}
    run = prefkit.Run.open("tailor import-outputs", config=config, identity=identity, output_dir=output_dir,
                           run_name=run_name, name_hint=f"{split}-{Path(file).stem}", fresh=fresh)
    run.fsync_every = 0  # one bulk write: every line is flushed, and close() fsyncs once at the end
    written = sum(1 for rec in matched["records"] if run.append(rec))
    counts = {"items": len(items), "imported": len(matched["records"]), "written": written,
              "input_mismatches": matched["input_mismatches"],
              "stopped_at_prompt": sum(1 for r in matched["records"] if r["stopped"]),
              "no_eos": sum(1 for r in matched["records"] if not r["eos"])}
    run.write_metrics({"counts": counts, "mismatched_rows": matched["mismatched_rows"]})
    run.finish("done", **counts)
    return {"run": str(run.path), **config, **counts}
