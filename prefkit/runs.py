"""The run store: one directory per command run.

Layout::

    runs/<command>/<run-name>/
        manifest.json     command line, resolved config, versions, git commit, times, status
        results.jsonl     append-only, one JSON object per line, flushed per record
        metrics.json      what the command computed (optional)
        failures.jsonl    every failed attempt (error, attempt time); retried on resume

Guarantees:

* each result line carries ``key`` (defaults to ``row_id``); a key that already has
  a successful line is never written again, so resuming never duplicates;
* lines are written whole with one ``write`` + ``flush`` (+ ``fsync`` every
  ``fsync_every`` lines); a torn last line after a crash is detected and cut off
  when the run is opened again;
* failed items go to ``failures.jsonl`` and are not "done": re-running retries them;
* secrets (keys, tokens) are redacted from the manifest.

Lifecycle (the one copy every command uses)::

    with prefkit.Run.open("my-command", identity=..., config=..., output_dir=..., run_name=..., fresh=...) as run:
        run.expect(keys)                      # optional: what "all done" means
        ...                                   # run.append(...), run.record_failure(...)
    # on leaving the block the manifest's status is one of STATUSES:
    #   done         no exception, nothing failed or missing
    #   incomplete   no exception, but some items failed after retries (or expected keys are missing)
    #   failed       an exception left the block (recorded with its message, re-raised)
    #   interrupted  Ctrl-C (SIGINT) or SIGTERM (inside the block SIGTERM raises KeyboardInterrupt)
    #   dry-run      finished with run.finish(DRY_RUN): nothing was sent
    code = prefkit.exit_code(run)             # 0 done/dry-run, 1 incomplete/failed, 2 bad input, 130 interrupted

A CLI body ends with ``prefkit.command_exit(run)``: it returns for a clean run,
and otherwise prints which items failed and how to resume, then exits with
:func:`exit_code`'s code.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import PrefkitError, UsageError
from .secrets import REDACTED, scrub

# ---------------------------------------------------------------------- status names and exit codes
RUNNING = "running"
DONE = "done"
INCOMPLETE = "incomplete"
FAILED = "failed"
INTERRUPTED = "interrupted"
DRY_RUN = "dry-run"


class RunStatus:
    """The status names, as one namespace: ``prefkit.RunStatus.DONE`` ..."""

    RUNNING = RUNNING
    DONE = DONE
    INCOMPLETE = INCOMPLETE
    FAILED = FAILED
    INTERRUPTED = INTERRUPTED
    DRY_RUN = DRY_RUN


#: every status a manifest can hold (``running`` until the run is finished)
STATUSES = (RUNNING, DONE, INCOMPLETE, FAILED, INTERRUPTED, DRY_RUN)
# names older code (and older run directories) use for the same states
_STATUS_ALIASES = {"completed": DONE, "partial": INCOMPLETE}


class ExitCode(IntEnum):
    """The exit codes of every prefkit command (documented in docs/cli.md)."""

    OK = 0  #: every item done (or a dry run)
    ITEMS_FAILED = 1  #: some items failed after retries (or the command failed); re-run to resume
    BAD_INPUT = 2  #: bad input: a bad flag value, an unknown name, a missing file (``prefkit.UsageError``)
    INTERRUPTED = 130  #: Ctrl-C or SIGTERM; results so far are kept, re-run to resume


_EXIT_FOR_STATUS = {DONE: ExitCode.OK, DRY_RUN: ExitCode.OK, RUNNING: ExitCode.OK, INCOMPLETE: ExitCode.ITEMS_FAILED,
                    FAILED: ExitCode.ITEMS_FAILED, INTERRUPTED: ExitCode.INTERRUPTED}


def normalize_status(status: str) -> str:
    """A status name from :data:`STATUSES` (old names such as ``completed`` map onto theirs)."""
    status = _STATUS_ALIASES.get(status, status)
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r} (one of: {', '.join(STATUSES)})")
    return status


def exit_code(outcome: "Run | str | Path | dict[str, Any]") -> int:
    """The exit code for a finished run: a :class:`Run`, a run directory, a status name, or a result dict
    with a ``status`` (or a ``run``/``run_dir`` path)."""
    return int(_EXIT_FOR_STATUS[_status_of(outcome)])


def _as_run(outcome: Any) -> "Run | None":
    if isinstance(outcome, Run):
        return outcome
    if isinstance(outcome, dict):
        path = outcome.get("run_dir") or outcome.get("run")
        return Run.load(path) if path and (Path(path) / "manifest.json").exists() else None
    if isinstance(outcome, Path) or (isinstance(outcome, str) and outcome not in STATUSES
                                     and outcome not in _STATUS_ALIASES):
        return Run.load(outcome)
    return None


def _status_of(outcome: Any) -> str:
    if isinstance(outcome, dict) and outcome.get("status"):
        return normalize_status(outcome["status"])
    if isinstance(outcome, str) and (outcome in STATUSES or outcome in _STATUS_ALIASES):
        return normalize_status(outcome)
    run = _as_run(outcome)
    if run is None:
        raise ValueError(f"cannot tell the status of {outcome!r}")
    return normalize_status(run.manifest.get("status") or RUNNING)


_finished_runs: dict[str, "Run"] = {}  # runs finished in this process since the CLI started the command


def unfinished_business(reset: bool = False) -> list["Run"]:
    """Runs finished since the last reset whose status calls for a non-zero exit (the CLI's exit code for
    commands that do not call :func:`command_exit` themselves)."""
    out = [r for r in _finished_runs.values() if exit_code(r) != ExitCode.OK]
    if reset:
        _finished_runs.clear()
    return out


def command_exit(outcome: "Run | str | Path | dict[str, Any]") -> None:
    """End a CLI command the same way everywhere.

    A run that is done (or a dry run) returns normally (exit code 0). Otherwise one ``Error:`` line says
    what failed (the first failed keys, where the failures are recorded, how to resume) and the command
    exits with :func:`exit_code`'s code (1 for failed items, 130 for an interrupted run).
    """
    code = exit_code(outcome)
    if code == ExitCode.OK:
        return
    from .console import error_line

    run = _as_run(outcome)
    error_line(run.failure_summary() if run is not None else f"the command ended as {_status_of(outcome)!r}")
    import typer

    raise typer.Exit(code)


# "token" names a secret (hf_token, --access-token) but not a count or a tokenizer: max_tokens,
# --max-new-tokens, prompt_tokens and tokenizer are settings that must stay in the manifest (and in a
# run's identity, so that a resume with other limits is told apart)
SECRET_PATTERN = re.compile(r"(api[_-]?key|token(?!s|izer)|secret|password|authorization|bearer)", re.I)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def runs_dir(base_dir: str | Path | None = None) -> Path:
    """Where run directories go: ``base_dir``, else ``$PREFKIT_RUNS_DIR``, else ``./runs``."""
    return Path(base_dir or os.environ.get("PREFKIT_RUNS_DIR") or "runs")


def run_path(command: str, *, output_dir: str | Path | None = None, run_name: str | None = None,
             name_hint: str | None = None, base_dir: str | Path | None = None) -> Path:
    """The directory :meth:`Run.open` uses for these settings (without creating anything)."""
    if output_dir is not None:
        return Path(output_dir)
    return runs_dir(base_dir) / slug(command.replace(" ", "-")) / slug(run_name or name_hint or "default")


def slug(text: str, max_len: int = 80) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``.``, ``_``, ``-``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-._")
    return s[:max_len] or "run"


def redact(value: Any, key: str = "") -> Any:
    """Drop secret-looking values from a config/argv structure."""
    if (key and SECRET_PATTERN.search(key) and value not in (None, "", False)
            and not isinstance(value, (int, float))):  # a number is a setting, never a key
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    out, hide_next = [], False
    for a in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if a.startswith("--") and SECRET_PATTERN.search(a):
            if "=" in a:
                out.append(a.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(a)
                hide_next = True
            continue
        out.append(scrub(a))
    return out


def git_commit(path: str | Path = ".") -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=2)
    except Exception:
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    import dataclasses

    if type(value) in _PLAIN:  # the common case, first (every result line walks through here)
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _key_of(row: dict[str, Any]) -> str:
    """A result line's key (``row_id`` when the line has no explicit key)."""
    return str(row.get("key", row.get("row_id")))


def read_jsonl(path: str | Path, *, drop_torn: bool = True) -> list[dict]:
    """Read a JSONL file; a torn (unterminated or unparseable) last line is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        last = i == len(lines) - 1
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if last and drop_torn:
                break
            raise PrefkitError(f"{path}: line {i + 1} is not valid JSON ({exc.msg})") from None
    return rows


def _repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline, or not JSON). Returns bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as fh:
        data = fh.read()
        keep = len(data)
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
        else:
            # a complete-looking last line that is not JSON (partial write of a multi-byte line)
            start = data.rfind(b"\n", 0, len(data) - 1) + 1
            try:
                json.loads(data[start:])
            except json.JSONDecodeError:
                keep = start
        if keep != len(data):
            fh.truncate(keep)
            return len(data) - keep
    return 0


class Run:
    """A run directory. Use :meth:`Run.open`; it resumes by default."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        self._lock = threading.Lock()
        self._done: set[str] = set()
        self._results_fh = None
        self._failures_fh = None
        self.fsync_every = 1
        self._since_sync = 0
        self.repaired_bytes = 0
        self.resumed = False
        self._expected: set[str] | None = None
        self._finished = False
        self._old_sigterm: Any = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        command: str,
        *,
        config: dict[str, Any] | Any | None = None,
        identity: dict[str, Any] | None = None,
        output_dir: str | Path | None = None,
        run_name: str | None = None,
        name_hint: str | None = None,
        fresh: bool = False,
        argv: list[str] | None = None,
        base_dir: str | Path | None = None,
    ) -> "Run":
        """Create a run directory, or resume the one that is there.

        ``identity`` holds the settings that decide the results (dataset, model,
        prompt ...). Resuming a directory whose identity differs is an error, so
        results of two set-ups never mix; ``fresh=True`` starts over instead.
        """
        path = run_path(command, output_dir=output_dir, run_name=run_name, name_hint=name_hint, base_dir=base_dir)
        identity_j = _jsonable(redact(identity or {}))
        manifest_path = path / "manifest.json"
        if fresh and path.exists():
            for name in ("results.jsonl", "failures.jsonl", "metrics.json", "manifest.json"):
                (path / name).unlink(missing_ok=True)
        resumed = False
        if manifest_path.exists():
            try:
                old = json.loads(manifest_path.read_text())
            except json.JSONDecodeError:
                raise PrefkitError(f"{manifest_path} is not valid JSON; use --fresh or another --output-dir") from None
            if old.get("command") != command:
                raise UsageError(
                    f"{path} holds a {old.get('command')!r} run, not {command!r}; choose another --output-dir")
            if old.get("identity", {}) != identity_j:
                diff = sorted(k for k in set(old.get("identity", {})) | set(identity_j)
                              if old.get("identity", {}).get(k) != identity_j.get(k))
                raise UsageError(
                    f"{path} already holds results for other settings ({', '.join(diff)} differ); "
                    "use --fresh to start over or --run-name/--output-dir for a new run")
            manifest = old
            manifest.setdefault("resumes", []).append(_now())
            resumed = True
        else:
            from . import __version__
            from .plugins import plugin_versions

            manifest = {
                "command": command,
                "argv": redact_argv(list(argv if argv is not None else sys.argv)),
                "identity": identity_j,
                "prefkit_version": __version__,
                "plugin_versions": plugin_versions(),
                "python": sys.version.split()[0],
                "git_commit": git_commit(),
                "started_at": _now(),
            }
        manifest["config"] = _jsonable(redact(config if config is not None else {}))
        manifest["status"] = "running"
        manifest["ended_at"] = None
        manifest["command_line"] = " ".join(shlex.quote(a) for a in redact_argv(list(argv if argv is not None else sys.argv)))
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, manifest)
        run.resumed = resumed
        run.repaired_bytes = _repair_tail(run.results_path)
        _repair_tail(run.failures_path)
        for row in read_jsonl(run.results_path):
            run._done.add(_key_of(row))
        run.save_manifest()
        return run

    @classmethod
    def existing(cls, command: str, *, output_dir: str | Path | None = None, run_name: str | None = None,
                 name_hint: str | None = None, fresh: bool = False,
                 base_dir: str | Path | None = None) -> "Run | None":
        """The run :meth:`open` would resume, read-only, or None (for ``--dry-run``: creates nothing)."""
        path = run_path(command, output_dir=output_dir, run_name=run_name, name_hint=name_hint, base_dir=base_dir)
        if fresh or not (path / "manifest.json").exists():
            return None
        return cls.load(path)

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Open an existing run directory read-only (for reports)."""
        path = Path(path)
        mp = path / "manifest.json"
        if not mp.exists():
            raise UsageError(f"{path} is not a prefkit run directory (no manifest.json)")
        try:
            manifest = json.loads(mp.read_text())
        except json.JSONDecodeError:
            raise PrefkitError(f"{mp} is not valid JSON") from None
        run = cls(path, manifest)
        for row in read_jsonl(run.results_path):
            run._done.add(_key_of(row))
        return run

    # ------------------------------------------------------------------ paths
    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def failures_path(self) -> Path:
        return self.path / "failures.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    # ------------------------------------------------------------------ results
    def is_done(self, key: str) -> bool:
        return str(key) in self._done

    def done_keys(self) -> set[str]:
        return set(self._done)

    def pending(self, items: Iterable[Any], key=lambda item: item) -> list[Any]:
        """The items whose key has no successful result yet."""
        return [it for it in items if str(key(it)) not in self._done]

    def append(self, record: dict[str, Any], key: str | None = None) -> bool:
        """Append one successful result. Returns False (writes nothing) if its key is done."""
        k = str(key if key is not None else record.get("key", record.get("row_id")))
        if k == "None":
            raise ValueError("a result needs a row_id or key")
        with self._lock:
            if k in self._done:
                return False
            rec = dict(record)
            rec.setdefault("row_id", k)
            rec["key"] = k
            line = json.dumps(_jsonable(rec), ensure_ascii=False) + "\n"
            if self._results_fh is None:
                self._results_fh = open(self.results_path, "a", encoding="utf-8")
            self._results_fh.write(line)
            self._results_fh.flush()
            self._since_sync += 1
            if self.fsync_every and self._since_sync >= self.fsync_every:
                os.fsync(self._results_fh.fileno())
                self._since_sync = 0
            self._done.add(k)
            return True

    def record_failure(self, key: str, error: str, **extra: Any) -> None:
        """Record a failed attempt. The item stays pending and is retried on resume."""
        with self._lock:
            if self._failures_fh is None:
                self._failures_fh = open(self.failures_path, "a", encoding="utf-8")
            rec = {"key": str(key), "error": scrub(str(error)), "time": _now(), **_jsonable(extra)}
            self._failures_fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._failures_fh.flush()

    def results(self) -> list[dict[str, Any]]:
        """Successful results, one per key, in the order they were written."""
        seen, out = set(), []
        for row in read_jsonl(self.results_path):
            k = _key_of(row)
            if k in seen:
                continue
            seen.add(k)
            out.append(row)
        return out

    def iter_results(self) -> Iterator[dict[str, Any]]:
        yield from self.results()

    def failures(self, unresolved: bool = True) -> list[dict[str, Any]]:
        """Failed attempts; by default only those whose key never succeeded."""
        rows = read_jsonl(self.failures_path)
        if unresolved:
            latest = {}
            for r in rows:  # self._done mirrors results.jsonl (read at open, kept by append)
                if r["key"] not in self._done:
                    latest[r["key"]] = r
            return list(latest.values())
        return rows

    # ------------------------------------------------------------------ metrics / manifest
    def write_metrics(self, metrics: dict[str, Any], merge: bool = True) -> None:
        current = self.metrics() if merge else {}
        current.update(_jsonable(metrics))
        tmp = self.metrics_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(current, indent=2, ensure_ascii=False))
        os.replace(tmp, self.metrics_path)

    def metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text())

    def save_manifest(self) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_jsonable(self.manifest), indent=2, ensure_ascii=False))
        os.replace(tmp, self.manifest_path)

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(_jsonable(redact(fields)))
        self.save_manifest()

    def expect(self, keys: Iterable[Any]) -> None:
        """Declare the keys this run should end with: any missing at the end makes it ``incomplete``."""
        self._expected = {str(k) for k in keys}

    def missing(self) -> list[str]:
        """Expected keys (see :meth:`expect`) without a successful result."""
        return sorted(self._expected - self._done) if self._expected is not None else []

    @property
    def status(self) -> str:
        return str(self.manifest.get("status") or RUNNING)

    @property
    def finished(self) -> bool:
        return self._finished

    def outcome(self) -> str:
        """What a clean finish would record now: ``done`` or ``incomplete``."""
        return INCOMPLETE if self.failures() or self.missing() else DONE

    def finish(self, status: str | None = None, **summary: Any) -> None:
        """Close the files and record the final status (default: :meth:`outcome`) and counts.

        Inside ``with Run.open(...) as run`` this happens on its own; call it to record a summary or a
        status of your own (``DRY_RUN``). Finishing twice keeps the last status.
        """
        self.close()
        status = normalize_status(status) if status is not None else self.outcome()
        self.manifest["status"] = status
        self.manifest["ended_at"] = _now()
        self.manifest["counts"] = {"results": len(self._done), "failed": len(self.failures())}
        if self._expected is not None:
            self.manifest["counts"]["missing"] = len(self.missing())
        if summary:
            self.manifest.setdefault("summary", {}).update(_jsonable(summary))
        self.save_manifest()
        self._finished = True
        _finished_runs[str(self.path)] = self

    def failure_summary(self, limit: int = 5) -> str:
        """One line: which items failed (first ``limit`` keys), where they are recorded, how to resume."""
        status = self.status
        if status == INTERRUPTED:
            return f"interrupted: {self.path} keeps the results written so far; re-run the same command to resume"
        failed = [f["key"] for f in self.failures()]
        missing = [k for k in self.missing() if k not in set(failed)]
        parts = []
        if failed:
            shown = ", ".join(failed[:limit]) + (f" and {len(failed) - limit} more" if len(failed) > limit else "")
            parts.append(f"{len(failed)} items failed after retries ({shown}; errors in {self.failures_path})")
        if missing:
            parts.append(f"{len(missing)} items have no result")
        if status == FAILED and not parts:
            err = (self.manifest.get("summary") or {}).get("error")
            parts.append("the run failed" + (f" ({err})" if err else ""))
        what = "; ".join(parts) or f"the run ended as {status!r}"
        return f"{what}; re-run the same command to retry them (finished items are kept: {self.path})"

    def close(self) -> None:
        with self._lock:
            for fh in (self._results_fh, self._failures_fh):
                if fh is not None:
                    fh.flush()
                    os.fsync(fh.fileno())
                    fh.close()
            self._results_fh = self._failures_fh = None

    def __enter__(self) -> "Run":
        self._install_sigterm()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._restore_sigterm()
        if exc_type is None:
            if not self._finished:
                self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish(INTERRUPTED)
        else:
            self.finish(FAILED, error=f"{exc_type.__name__}: {exc}")

    def _install_sigterm(self) -> None:
        """Inside the ``with`` block SIGTERM ends the run like Ctrl-C (status ``interrupted``, files flushed)."""
        import signal

        if threading.current_thread() is not threading.main_thread():
            return
        try:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                self._old_sigterm = current
                signal.signal(signal.SIGTERM, _raise_interrupt)
        except (ValueError, OSError):  # pragma: no cover - unsupported platform
            pass

    def _restore_sigterm(self) -> None:
        import signal

        if self._old_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._old_sigterm)
            except (ValueError, OSError):  # pragma: no cover
                pass
            self._old_sigterm = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, done={len(self._done)})"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def list_runs(base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every run under the runs directory (manifest summaries)."""
    base = runs_dir(base_dir)
    out = []
    if not base.exists():
        return out
    for mp in sorted(base.glob("**/manifest.json")):
        try:
            m = json.loads(mp.read_text())
        except Exception:
            continue
        out.append({
            "path": str(mp.parent),
            "command": m.get("command"),
            "status": m.get("status"),
            "started_at": m.get("started_at"),
            "ended_at": m.get("ended_at"),
            "results": (m.get("counts") or {}).get("results"),
            "failed": (m.get("counts") or {}).get("failed"),
        })
    return out
