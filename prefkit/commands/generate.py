"""``prefkit generate``: one completion per input row, into a resumable run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.backends.options import BackendOptions
from prefkit.options import RunOptions, with_options


def row_messages(value: Any, *, system: str | None = None, field: str = "prompt", row_id: str = "?") -> list[dict]:
    """Chat messages for a row's prompt field: a string (``Human:/Assistant:`` transcripts are split), a
    list of ``{role, content}`` messages, or a ``{"messages": [...]}`` dict."""
    from prefkit.data import parse_dialogue
    from prefkit.errors import UsageError

    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if isinstance(value, str):
        if not value.strip():
            raise UsageError(f"row {row_id}: the {field!r} field is empty")
        messages = parse_dialogue(value)
    elif isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        messages = [{"role": m["role"], "content": m["content"]} for m in value]
    else:
        raise UsageError(f"row {row_id}: the {field!r} field must be a string or a list of {{role, content}} "
                         f"messages (got {type(value).__name__})")
    if system and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def load_input_rows(input: str | None, dataset: str | None, split: str | None, data_dir: str | None) -> tuple[list[dict], str]:
    from prefkit.errors import UsageError

    if bool(input) == bool(dataset):
        raise UsageError("give exactly one of --input FILE or --dataset NAME")
    if input:
        from prefkit.data import read_table

        path = Path(input)
        if path.is_dir() and split:
            import datasets

            ds = datasets.load_from_disk(str(path))
            if split not in ds:
                raise UsageError(f"{path} has no split {split!r} (splits: {', '.join(ds)})")
            return ds[split].to_list(), str(path)
        return read_table(path), str(path)
    from prefkit.data import load_rows

    return load_rows(dataset, split=split, data_dir=data_dir), dataset


def row_id_of(row: dict, index: int) -> str:
    for k in ("row_id", "id"):
        if row.get(k) not in (None, ""):
            return str(row[k])
    return str(index)


@with_options(RunOptions, "out")
@with_options(BackendOptions, "llm")
def generate_command(
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Input file (.jsonl/.json/.csv/.parquet) or save_to_disk directory."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset spec: a registered name[:config], hf:ORG/NAME, or a path."),
    field: str = typer.Option("prompt", "--field", help="Column holding the prompt (a string or a list of chat messages)."),
    split: Optional[str] = typer.Option(None, "--split", help="Dataset split."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local dataset mirror (default: PREFKIT_DATA_DIR)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt added to every request."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N rows."),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    *, llm: BackendOptions, out: RunOptions,
) -> None:
    """Generate one completion per input row with any backend; results go to a resumable run.

    Each result line holds row_id, prompt, text, finish_reason, usage and model. Re-running the same command
    resumes: finished rows are skipped (a finished run makes zero requests) and failed rows are retried.
    """
    from prefkit.backends import ChatRequest, run_requests
    from prefkit.console import info, print_json
    from prefkit.errors import UsageError
    from prefkit.runs import Run, slug

    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    rows, source = load_input_rows(input, dataset, split, data_dir)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise UsageError(f"{source} has no rows")
    if field not in rows[0]:
        raise UsageError(f"{source} has no column {field!r} (columns: {', '.join(map(str, rows[0].keys()))}); pick one with --field")

    requests, prompts, seen = [], {}, set()
    for i, row in enumerate(rows):
        rid = row_id_of(row, i)
        if rid in seen:
            raise UsageError(f"{source}: row id {rid!r} appears twice; row ids must be unique")
        seen.add(rid)
        prompts[rid] = row.get(field)
        requests.append(ChatRequest(key=rid, messages=row_messages(row.get(field), system=system, field=field, row_id=rid)))

    identity = {"source": source, "split": split, "field": field, "system": system, **llm.identity()}
    config = {"input": input, "dataset": dataset, "field": field, "split": split, "system": system, "limit": limit,
              "llm": llm.to_dict()}
    hint = "-".join(str(x) for x in (Path(source).stem if input else source, split, llm.backend,
                                     Path(str(llm.model)).name if llm.model else None) if x)

    def on_result(c):
        return {"row_id": c.key, "prompt": prompts[c.key], "text": c.text, "finish_reason": c.finish_reason,
                "usage": c.usage, "model": c.model}

    if llm.dry_run:
        # look at the run directory (if any) without creating or changing it
        base = Path(out.output_dir) if out.output_dir else None
        run = None
        import os

        path = base or Path(os.environ.get("PREFKIT_RUNS_DIR", "runs")) / "generate" / slug(out.run_name or hint)
        if (path / "manifest.json").exists() and not out.fresh:
            run = Run.load(path)
        summary = run_requests(requests, llm, run=run, on_result=on_result, description="generate", quiet=json_)
        if json_:
            print_json(summary)
        return

    with Run.open("generate", config=config, identity=identity, output_dir=out.output_dir, run_name=out.run_name,
                  name_hint=hint, fresh=out.fresh) as run:
        if run.resumed:
            info(f"resuming {run.path}: {len(run.done_keys())} of {len(requests)} rows already done")
        summary = run_requests(requests, llm, run=run, on_result=on_result, description="generate", quiet=json_)
        summary["run_dir"] = str(run.path)
    if json_:
        print_json(summary)
    else:
        info(f"results: {run.results_path}")
