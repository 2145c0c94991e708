"""Core test helpers: an isolated PREFKIT_HOME, a CLI runner, per-test plugins."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def isolated_home(path: str | Path) -> Iterator[Path]:
    """Point PREFKIT_HOME and PREFKIT_RUNS_DIR at ``path`` for the duration."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    old = {k: os.environ.get(k) for k in ("PREFKIT_HOME", "PREFKIT_RUNS_DIR")}
    os.environ["PREFKIT_HOME"] = str(path / "home")
    os.environ["PREFKIT_RUNS_DIR"] = str(path / "runs")
    try:
        yield path
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliResult:
    """Run ``prefkit ARGS`` in-process (through the real ``main``) and capture its output.

    Errors surface as in a shell: exit code and the one-line message on stderr.
    """
    from prefkit import cli as cli_mod

    old_env = {"PREFKIT_DEBUG": os.environ.get("PREFKIT_DEBUG")}  # --debug sets it; don't leak it
    for k, v in (env or {}).items():
        old_env.setdefault(k, os.environ.get(k))
        os.environ[k] = v
    out, err = io.StringIO(), io.StringIO()
    old_out, old_err, old_in = sys.stdout, sys.stderr, sys.stdin
    from prefkit import console as console_mod

    console_mod._console = console_mod._err_console = None
    sys.stdout, sys.stderr = out, err
    if input is not None:
        sys.stdin = io.StringIO(input)
    code = 0
    try:
        cli_mod.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout, sys.stderr, sys.stdin = old_out, old_err, old_in
        console_mod._console = console_mod._err_console = None
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def registered_plugin(obj: Any, name: str = "test-plugin") -> Iterator[Any]:
    """Register a plugin object (module, class or instance with @hookimpl methods) for one test."""
    from prefkit import cli as cli_mod
    from prefkit import plugins

    plugins.register_plugin(obj, name=name)
    _rebuild_cli(cli_mod)
    try:
        yield obj
    finally:
        plugins.unregister_plugin(name)
        _rebuild_cli(cli_mod)


def _rebuild_cli(cli_mod) -> None:
    """Drop commands added by plugins so the next ``cli()`` call re-registers them."""
    import importlib

    importlib.reload(cli_mod)


def shared_data_dir() -> Path | None:
    """The read-only real data beside the project (``../shared/data``), if present.

    ``PREFKIT_SHARED_DATA`` overrides the location.
    """
    env = os.environ.get("PREFKIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        candidates.append(parent / "shared" / "data")
        candidates.append(parent.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None
