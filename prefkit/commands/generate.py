"""``prefkit generate``: one completion per input row, into a resumable run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.backends.options import BackendOptions
from prefkit.options import RunOptions, check_limit, opt, with_options


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


@dataclass
class GenerateConfig:
    """What ``prefkit generate`` reads and how it builds each request (the command's own flags)."""

    input: Optional[str] = opt(None, help="Input file (.jsonl/.json/.csv/.parquet) or save_to_disk directory.")
    dataset: Optional[str] = opt(None, short="-d", help="Dataset spec: a registered name[:config], hf:ORG/NAME, or a path.")
    field: str = opt("prompt", help="Column holding the prompt (a string or a list of chat messages).")
    split: Optional[str] = opt(None, help="Dataset split.")
    data_dir: Optional[str] = opt(None, help="Local dataset mirror (default: PREFKIT_DATA_DIR).")
    system: Optional[str] = opt(None, help="System prompt added to every request.")
    limit: Optional[int] = opt(None, short="-n", help="Only the first N rows.")


@dataclass
class GenerateResult:
    """What a ``generate`` run did: the engine's summary (``requests``, ``completed``, ``failed``, ``sent``,
    ``cost_usd`` ...), where the results are, and the run's status (``None`` for a dry run of a new run)."""

    summary: dict[str, Any]
    run_dir: Optional[str]
    status: str
    results_path: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "run_dir": self.run_dir, "status": self.status}


def generate(cfg: GenerateConfig, llm: BackendOptions | None = None, out: RunOptions | None = None, *,
             quiet: bool = False) -> GenerateResult:
    """Generate one completion per input row into a resumable run (the library form of ``prefkit generate``)."""
    from prefkit.backends import ChatRequest, run_requests
    from prefkit.console import info
    from prefkit.errors import UsageError
    from prefkit.runs import DRY_RUN, Run

    llm = llm or BackendOptions()
    out = out or RunOptions()
    check_limit(cfg.limit)
    rows, source = load_input_rows(cfg.input, cfg.dataset, cfg.split, cfg.data_dir)
    if cfg.limit is not None:
        rows = rows[:cfg.limit]
    if not rows:
        raise UsageError(f"{source} has no rows")
    if cfg.field not in rows[0]:
        raise UsageError(f"{source} has no column {cfg.field!r} (columns: {', '.join(map(str, rows[0].keys()))}); "
                         "pick one with --field")

    requests, prompts, seen = [], {}, set()
    for i, row in enumerate(rows):
        rid = row_id_of(row, i)
        if rid in seen:
            raise UsageError(f"{source}: row id {rid!r} appears twice; row ids must be unique")
        seen.add(rid)
        prompts[rid] = row.get(cfg.field)
        requests.append(ChatRequest(key=rid, messages=row_messages(row.get(cfg.field), system=cfg.system,
                                                                   field=cfg.field, row_id=rid)))

    identity = {"source": source, "split": cfg.split, "field": cfg.field, "system": cfg.system, **llm.identity()}
    config = {**asdict(cfg), "llm": llm.to_dict()}
    hint = "-".join(str(x) for x in (Path(source).stem if cfg.input else source, cfg.split, llm.backend,
                                     Path(str(llm.model)).name if llm.model else None) if x)
    where = dict(output_dir=out.output_dir, run_name=out.run_name, name_hint=hint, fresh=out.fresh)

    def on_result(c):
        return {"row_id": c.key, "prompt": prompts[c.key], "text": c.text, "finish_reason": c.finish_reason,
                "usage": c.usage, "model": c.model}

    if llm.dry_run:  # look at the run directory (if any) without creating or changing it
        run = Run.existing("generate", **where)
        summary = run_requests(requests, llm, run=run, on_result=on_result, description="generate", quiet=quiet)
        return GenerateResult(summary, str(run.path) if run else None, DRY_RUN)

    with Run.open("generate", config=config, identity=identity, **where) as run:
        run.expect(prompts)
        if run.resumed:
            info(f"resuming {run.path}: {len(run.done_keys())} of {len(requests)} rows already done")
        summary = run_requests(requests, llm, run=run, on_result=on_result, description="generate", quiet=quiet)
    return GenerateResult(summary, str(run.path), run.status, str(run.results_path))


def print_generate(result: GenerateResult, json_: bool = False) -> None:
    from prefkit.console import info, print_json

    if json_:
        print_json(result.to_dict())
    elif result.results_path:
        info(f"results: {result.results_path}")


@with_options(RunOptions, "out")
@with_options(BackendOptions, "llm")
@with_options(GenerateConfig, "cfg")
def generate_command(
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the summary as JSON on stdout."),
    *, cfg: GenerateConfig, llm: BackendOptions, out: RunOptions,
) -> None:
    """Generate one completion per input row with any backend; results go to a resumable run.

    Each result line holds row_id, prompt, text, finish_reason, usage and model. Re-running the same command
    resumes: finished rows are skipped (a finished run makes zero requests) and failed rows are retried.
    Exit code 0 when every row is done, 1 when some rows failed after retries (re-run to retry them).
    """
    from prefkit.runs import command_exit

    result = generate(cfg, llm, out, quiet=json_)
    print_generate(result, json_)
    command_exit(result.status if result.run_dir is None else result.run_dir)
