"""Output helpers shared by every command: tables, JSON, one-line errors, progress."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable, Sequence

_console = None
_err_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console()
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True)
    return _err_console


def debug_enabled() -> bool:
    return os.environ.get("PREFKIT_DEBUG", "") not in ("", "0")


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour codes), for scripts."""
    from .runs import _jsonable

    sys.stdout.write(json.dumps(_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    from rich.table import Table

    columns = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, show_lines=False)
    for i, c in enumerate(columns):  # names stay whole; the other columns wrap
        table.add_column(str(c), no_wrap=(i == 0), overflow="fold")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    console().print(table)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def info(message: str) -> None:
    """A status line on stderr (keeps stdout clean for --json)."""
    err_console().print(message, highlight=False)


def warn(message: str) -> None:
    err_console().print(f"[yellow]Warning:[/yellow] {message}", highlight=False)


def error_line(message: str) -> None:
    err_console().print(f"[bold red]Error:[/bold red] {message}", highlight=False, markup=True, soft_wrap=True)


def progress(total: int | None = None, description: str = "working", *, disable: bool | None = None, fields: Iterable[str] = ()):
    """A rich progress bar on stderr (disabled when stderr is not a terminal unless PREFKIT_PROGRESS=1).

    Use as a context manager: ``with progress(n, "inferring") as (bar, task): bar.advance(task)``.
    """
    from contextlib import contextmanager

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    if disable is None:
        forced = os.environ.get("PREFKIT_PROGRESS")
        disable = (forced == "0") or (forced is None and not sys.stderr.isatty())

    extra = [TextColumn(f"{{task.fields[{f}]}}") for f in fields]

    @contextmanager
    def cm():
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
                       TimeElapsedColumn(), TimeRemainingColumn(), console=err_console(), disable=disable,
                       transient=False)
        with bar:
            task = bar.add_task(description, total=total, **{f: "" for f in fields})
            yield bar, task

    return cm()
