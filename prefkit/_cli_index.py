"""The cached command index behind the lazy CLI (private: an implementation detail of ``prefkit.cli``).

``prefkit --help`` needs the names and one-line help of every command, not the commands: importing
every plugin's CLI module (and pluggy, and the entry-point scan of every installed distribution) on
each start-up made it grow with every command installed. The index is built once by registering
every plugin's commands the ordinary way (the ``register_commands(app)`` hook), and stored in
``PREFKIT_HOME/cli-index-<hash>.json`` with a stamp of what it was built from:

* prefkit's version, the Python executable, ``PREFKIT_LOAD_PLUGINS``;
* the names of every ``*.dist-info`` / ``*.egg-info`` on ``sys.path`` (installing, upgrading or
  removing any distribution changes them) and the ``entry_points.txt`` of the plugin distributions;
* the modification times of every source file of prefkit, of each plugin package, and of every
  other module imported while the index was built that lives outside the interpreter's prefixes.

Any difference is a miss: the index is rebuilt (and the commands of that run are the freshly built
ones). On a hit, a command's plugin is imported and its ``register_commands`` hook called only when
that command runs or its own ``--help`` is asked. ``PREFKIT_NO_CLI_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

FORMAT = 2


def index_path() -> Path:
    """``PREFKIT_HOME/cli-index-<hash>.json``: one file per prefkit checkout and interpreter."""
    from .paths import home

    where = hashlib.sha1(f"{sys.executable}\0{Path(__file__).resolve().parent}".encode()).hexdigest()[:12]
    return home() / f"cli-index-{where}.json"


def cache_enabled() -> bool:
    return os.environ.get("PREFKIT_NO_CLI_CACHE", "") in ("", "0")


def runtime_plugins_present() -> bool:
    """Plugins registered in this process by hand (tests): their commands are never cached."""
    mod = sys.modules.get("prefkit.plugins")
    return bool(mod is not None and any(m.get("source") == "runtime" for m in mod._plugin_meta.values()))


# ---------------------------------------------------------------------- the stamp
def _dist_names() -> str:
    h = hashlib.sha1()
    for entry in dict.fromkeys(os.path.abspath(e or ".") for e in sys.path):
        try:
            names = sorted(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
        if names:  # entries without distributions (the script's directory, the cwd) don't matter
            h.update(f"{entry}\0{'/'.join(names)}\n".encode())
    return h.hexdigest()


def _files_stamp(roots: list[str]) -> str:
    h = hashlib.sha1()
    for root in roots:
        try:
            if os.path.isfile(root):
                h.update(f"{root}\0{os.stat(root).st_mtime_ns}\n".encode())
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
                for fn in sorted(filenames):
                    if fn.endswith(".py"):
                        p = os.path.join(dirpath, fn)
                        h.update(f"{p}\0{os.stat(p).st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{root}\0missing\n".encode())
    return h.hexdigest()


def _env_stamp() -> dict[str, Any]:
    from . import __version__

    return {"format": FORMAT, "prefkit": __version__, "python": sys.executable,
            "allow": os.environ.get("PREFKIT_LOAD_PLUGINS"), "dists": _dist_names()}


def stamp(roots: list[str]) -> dict[str, Any]:
    return {**_env_stamp(), "files": _files_stamp(roots)}


def _package_root(module: str) -> str | None:
    """The directory (or file) of ``module``'s top-level package, found without importing it."""
    import importlib.machinery

    top = module.split(".", 1)[0]
    spec = importlib.machinery.PathFinder.find_spec(top)
    if spec is None:
        mod = sys.modules.get(top)  # e.g. a test's module registered by path
        origin = getattr(mod, "__file__", None)
    else:
        origin = spec.origin if spec.origin not in (None, "namespace") else None
        if origin is None and spec.submodule_search_locations:
            return list(spec.submodule_search_locations)[0]
    if not origin:
        return None
    return str(Path(origin).parent) if Path(origin).name == "__init__.py" else origin


def _loaded_source_files() -> list[str]:
    """Files of the modules imported so far that live outside the interpreter's prefixes: code being
    developed in place (editable plugins, modules beside a plugin), whose edits change no version."""
    prefixes = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and f.endswith(".py") and not os.path.realpath(f).startswith(prefixes):
            out.append(f)
    return sorted(out)


# ---------------------------------------------------------------------- read / write
def read() -> dict[str, Any] | None:
    """The stored index if it is still valid for this environment, else None."""
    if not cache_enabled() or runtime_plugins_present():
        return None
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return None
    if data.get("stamp") != stamp(data.get("roots") or []):
        return None
    return data


def write(data: dict[str, Any]) -> None:
    if not cache_enabled() or runtime_plugins_present():
        return
    try:
        path = index_path()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:  # a read-only home: work without the cache
        pass


# ---------------------------------------------------------------------- building
def _help_line(cmd) -> str:
    text = cmd.short_help or cmd.help or ""
    return text.strip().split("\n\n")[0].strip()


def build() -> tuple[dict[str, Any], dict[str, Any]]:
    """Register every plugin's commands; returns (index, {command name: click command})."""
    import typer
    import typer.main

    from . import plugins

    plugins.load_plugins()
    commands: dict[str, Any] = {}
    entries: dict[str, dict[str, Any]] = {}
    for plugin_name in plugins.plugins_with_hook("register_commands"):
        scratch = typer.Typer()
        if not plugins.call_one("register_commands", plugin_name, app=scratch):
            continue
        group = typer.main.get_group(scratch)
        for name, cmd in group.commands.items():
            commands[name] = cmd
            panel = getattr(cmd, "rich_help_panel", None)
            entries[name] = {"help": _help_line(cmd), "hidden": bool(cmd.hidden), "plugin": plugin_name,
                             "panel": panel if isinstance(panel, str) else None}
    loaders = {name: plugins.loader_spec(name) for name in {e["plugin"] for e in entries.values()}}
    roots = [r for r in dict.fromkeys([_package_root("prefkit"), *plugins.plugin_roots(), *_loaded_source_files()])
             if r]
    data = {"stamp": stamp(roots), "roots": roots, "commands": entries, "loaders": loaders,
            "warnings": plugins.load_warnings()}
    return data, commands


def load_commands(data: dict[str, Any], plugin_name: str) -> dict[str, Any]:
    """Import one plugin and call its ``register_commands``; returns its click commands by name."""
    import typer
    import typer.main

    from . import plugins

    plugins.load_one(plugin_name, data["loaders"].get(plugin_name))
    scratch = typer.Typer()
    plugins.call_one("register_commands", plugin_name, app=scratch)
    return dict(typer.main.get_group(scratch).commands)


def update(key: str, value: Any) -> None:
    """Store ``value`` under ``key`` in the current index (e.g. the ``prefkit plugins`` listing)."""
    data = read()
    if data is not None:
        data[key] = value
        write(data)
