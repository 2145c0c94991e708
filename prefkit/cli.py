"""The ``prefkit`` command line: the root Typer app and the core commands.

Commands of the core layers (generate, train, judge ...) and of plugins arrive
through the ``register_commands`` hook, so the core and third parties extend the
CLI the same way. The root group is lazy: start-up reads a cached index of command
names and one-line help (``prefkit._cli_index``), and a command's plugin, module and
options are imported only when that command runs or its own ``--help`` is asked.
Nothing heavy is imported here: ``prefkit --help`` stays fast however many plugins
are installed.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from ._startup import defer_rich_markdown, defer_typer_pydantic

defer_rich_markdown()  # before typer is imported: it imports rich.markdown at import time

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

defer_typer_pydantic()

from . import __version__
from .errors import PrefkitError

CONTEXT = {"help_option_names": ["-h", "--help"]}


class _LazyCommand(typer.core.TyperCommand):
    """A command known from the index only: its name and one-line help, for the root ``--help``."""

    def __init__(self, name: str, entry: dict):
        super().__init__(name=name, help=entry.get("help") or "", hidden=bool(entry.get("hidden")),
                         rich_help_panel=entry.get("panel"))
        self.plugin = entry["plugin"]


class LazyGroup(TyperGroup):
    """The root group: commands from the index are stand-ins until one is resolved (run or ``--help``)."""

    index: dict | None = None

    def resolve_command(self, ctx, args):
        if args:
            self.materialize(args[0])
        return super().resolve_command(ctx, args)

    def materialize(self, name: str):
        """The real command ``name`` (importing its plugin and calling its ``register_commands``)."""
        cmd = self.commands.get(name)
        if isinstance(cmd, _LazyCommand):
            from . import _cli_index

            for cname, real in _cli_index.load_commands(self.index, cmd.plugin).items():
                if isinstance(self.commands.get(cname), _LazyCommand) or cname not in self.commands:
                    self.commands[cname] = real
            if isinstance(self.commands.get(name), _LazyCommand):  # the plugin no longer registers it
                del self.commands[name]
        return self.commands.get(name)


app = typer.Typer(
    name="prefkit",
    cls=LazyGroup,
    help="Personalized preference alignment of LLMs: infer who prefers what, generate personalized "
    "preference data, train models that adapt, judge them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings=CONTEXT,
)
runs_app = typer.Typer(help="List and inspect run directories.", no_args_is_help=True, context_settings=CONTEXT)
app.add_typer(runs_app, name="runs")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prefkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", metavar="", callback=_version, is_eager=True,
                                 help="Show the version and exit."),  # a plain bool: typer skips its pydantic coercion
    debug: bool = typer.Option(False, "--debug", metavar="", help="Show full tracebacks on errors (or set PREFKIT_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["PREFKIT_DEBUG"] = "1"


@app.command("plugins")
def plugins_cmd(
    all: bool = typer.Option(False, "--all", metavar="", help="Include the core's default plugins."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """List installed plugins: name, version, hooks, what each registered."""
    from .console import print_json, print_table

    data = _plugins_listing()
    if not all:
        data = [p for p in data if p.get("source") != "default"]
    if json_:
        print_json(data)
        return
    rows = [{"name": p["name"], "version": p["version"] or "", "hooks": p["hooks"],
             "registered": p.get("error") or p["registered"]} for p in data]
    print_table(rows, ["name", "version", "hooks", "registered"], title="prefkit plugins")


def _list_registry(kind: str, json_: bool, describe, columns: list[str]) -> None:
    from .console import print_json, print_table
    from .plugins import registry

    import inspect

    entries = registry(kind).entries()
    takes_entry = len(inspect.signature(describe).parameters) > 1
    rows = [{"name": e.name, "plugin": e.plugin, "aliases": list(e.aliases),
             **(describe(e.obj, e) if takes_entry else describe(e.obj))} for e in entries]
    if json_:
        print_json(rows)
        return
    for r in rows:  # the core's own default plugins show as "core"
        if r["plugin"].startswith("prefkit.default_plugins"):
            r["plugin"] = "core"
    print_table(rows, columns, title=f"prefkit {kind.replace('_', ' ')}")


@app.command("datasets")
def datasets_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List dataset sources (registered names, hub, save_to_disk directories, files)."""

    def describe(src):
        d = src.describe() if hasattr(src, "describe") else {}
        d.pop("name", None)
        return d

    _list_registry("datasets", json_, describe, ["name", "plugin", "configs", "splits", "description"])


@app.command("backends")
def backends_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List LLM backends."""

    def describe(b):
        return {"description": (getattr(b, "description", "") or (b.__doc__ or "").strip().split("\n")[0]),
                "default_model": getattr(b, "default_model", None)}

    _list_registry("backends", json_, describe, ["name", "plugin", "aliases", "default_model", "description"])


@runs_app.command("list")
def runs_list(
    base_dir: str = typer.Option(None, "--dir", help="Runs directory (default: ./runs or PREFKIT_RUNS_DIR)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """List run directories with their status and counts."""
    from .console import print_json, print_table
    from .runs import list_runs

    rows = list_runs(base_dir)
    if json_:
        print_json(rows)
    elif not rows:
        typer.echo("no runs found")
    else:
        print_table(rows, ["path", "command", "status", "results", "failed", "started_at"], title="runs")


@runs_app.command("show")
def runs_show(
    run_dir: str = typer.Argument(..., help="A run directory."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Show a run's manifest, counts and metrics."""
    from .console import console, print_json
    from .runs import Run

    run = Run.load(run_dir)
    data = {"path": str(run.path), "manifest": run.manifest, "results": len(run.done_keys()),
            "failed": len(run.failures()), "metrics": run.metrics()}
    if json_:
        print_json(data)
        return
    m = run.manifest
    c = console()
    c.print(f"[bold]{run.path}[/bold]  {m.get('command')}  status: {m.get('status')}")
    c.print(f"command line: {m.get('command_line', '')}")
    c.print(f"started {m.get('started_at')}  ended {m.get('ended_at')}  prefkit {m.get('prefkit_version')}  git {m.get('git_commit') or '-'}")
    c.print(f"results: {data['results']}  failed (unresolved): {data['failed']}")
    if data["metrics"]:
        from .console import print_json as pj

        c.print("metrics:")
        pj(data["metrics"])


@app.command("judges")
def judges_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List judges (built-in and from plugins); each one with a command is `prefkit judge NAME`."""

    def describe(j, entry):
        return {"kind": entry.meta.get("kind") or getattr(j, "kind", None),
                "command": f"prefkit judge {entry.name}" if judge_command_of(entry) else None,
                "description": getattr(j, "description", "") or (type(j).__doc__ or "").strip().split("\n")[0]}

    _list_registry("judges", json_, describe, ["name", "plugin", "aliases", "kind", "command", "description"])


def judge_command_of(entry):
    """The CLI command a registered judge brings (None: the judge is for the Python API only).

    ``register(judge, command=fn)``, or a ``command`` attribute on the judge: a Typer command function,
    or ``"module:function"`` (imported only when ``prefkit judge`` is built).
    """
    cmd = entry.meta.get("command") or getattr(entry.obj, "command", None)
    if isinstance(cmd, str):
        import importlib

        module, _, attr = cmd.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
    return cmd


_index_data: dict | None = None  # the command index this process started from (None: built live)


def _plugins_listing() -> list[dict]:
    """``get_plugins(all=True)``, from the command index when it is current (rebuilt on a miss)."""
    from . import _cli_index

    if _index_data is not None and "plugins" in _index_data:
        return _index_data["plugins"]
    from .plugins import get_plugins

    data = get_plugins(all=True)
    if _index_data is not None or _cli_index.read() is not None:
        _cli_index.update("plugins", data)
    return data


def build_cli():
    """The root click group: the core's own commands plus every plugin's (lazily, from the index)."""
    global _index_data
    import typer.main

    from . import _cli_index

    group = typer.main.get_group(app)
    data = _cli_index.read()
    if data is None:
        data, commands = _cli_index.build()
        _cli_index.write(data)
        group.commands.update(commands)
        _index_data = data if _cli_index.read() is not None else None
    else:
        for name, entry in data["commands"].items():
            group.commands[name] = _LazyCommand(name, entry)
        for message in data.get("warnings") or []:
            print(f"prefkit: warning: {message}", file=sys.stderr)
        _index_data = data
    group.index = data
    return group


_commands_registered = False


def _register_plugin_commands() -> None:
    """Register every plugin's commands on ``app`` itself (the eager form; ``main`` uses :func:`build_cli`)."""
    global _commands_registered
    if _commands_registered:
        return
    _commands_registered = True
    from .plugins import register_commands

    register_commands(app)


def _sigterm_as_interrupt() -> dict:
    """``kill`` (SIGTERM) ends a run like Ctrl-C: results are flushed, the manifest says "interrupted".

    Returns the handlers it replaced (``main`` puts them back for in-process callers)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame):
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):  # pragma: no cover - not the main thread / unsupported
        return {}
    return old


def _restore_signals(old: dict) -> None:
    import signal

    for sig, h in old.items():
        try:
            signal.signal(sig, h if h is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover
            pass


_interrupted = False
INTERRUPTED_MESSAGE = "interrupted (results written so far are kept; re-run the same command to resume)"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one clear error line, traceback only with --debug."""
    try:  # typer >= 0.20 vendors click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    args = list(sys.argv[1:] if argv is None else argv)
    old_handlers = _sigterm_as_interrupt()
    if "--debug" in args:
        os.environ["PREFKIT_DEBUG"] = "1"
    debug = os.environ.get("PREFKIT_DEBUG", "") not in ("", "0")
    if "prefkit.runs" in sys.modules:  # in-process callers (tests) run several commands
        sys.modules["prefkit.runs"].unfinished_business(reset=True)
    try:
        rv = build_cli().main(args=args, prog_name="prefkit", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 0 and "prefkit.runs" in sys.modules:  # a run that ended incomplete: exit 1, say how to resume
            from .console import error_line

            for run in sys.modules["prefkit.runs"].unfinished_business(reset=True):
                error_line(run.failure_summary())
                code = max(code, sys.modules["prefkit.runs"].exit_code(run))
        if _interrupted:  # typer turns KeyboardInterrupt into a silent exit code 130
            from .console import error_line

            error_line(INTERRUPTED_MESSAGE)
            code = 130
    except (click_exc.Exit if hasattr(click_exc, 'Exit') else typer.Exit, typer.Exit) as exc:
        code = exc.exit_code
    except (typer.Abort, getattr(click_exc, 'Abort', typer.Abort)):
        from .console import error_line

        error_line("aborted")
        code = 130
    except click_exc.UsageError as exc:  # bad option value, unknown command: one line, with where to look
        from .console import error_line

        where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "prefkit"
        error_line(f"{exc.format_message()} (see '{where} --help')")
        code = exc.exit_code
    except click_exc.ClickException as exc:
        from .console import error_line

        error_line(exc.format_message())
        code = exc.exit_code
    except KeyboardInterrupt:
        from .console import error_line

        error_line(INTERRUPTED_MESSAGE)
        code = 130
    except PrefkitError as exc:
        if debug:
            raise
        from .console import error_line

        error_line(str(exc))
        code = exc.exit_code
    except Exception as exc:  # an unexpected failure: still one line
        if debug:
            raise
        from .console import error_line

        error_line(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        code = 1
    finally:
        _restore_signals(old_handlers)
    sys.exit(code)
