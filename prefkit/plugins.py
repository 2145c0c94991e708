"""Plugin manager: discovery, allowlist, tracing, failure isolation, registries.

Plugins come from three places:

* the core's *default plugins* (``prefkit.default_plugins``: built-in backends,
  sources, trainers, judges, rubrics). They always load.
* the ``prefkit`` entry-point group: every installed plugin, the built-in method
  plugins included. ``PREFKIT_LOAD_PLUGINS`` is a comma-separated allowlist of
  entry-point or distribution names (empty string: load none).
* plugin objects registered at run time (``prefkit.testing.register_plugin``).

A plugin that fails to import, or raises inside a hook, costs one warning line
on stderr naming it; everything else keeps working.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError, UsageError

DEFAULT_PLUGINS = (
    "prefkit.default_plugins.sources",
    "prefkit.default_plugins.backends",
    "prefkit.default_plugins.trainers",
    "prefkit.default_plugins.judges",
)

# hook name -> registry kind
REGISTER_HOOKS = {
    "register_datasets": "datasets",
    "register_backends": "backends",
    "register_persona_strategies": "persona_strategies",
    "register_trainers": "trainers",
    "register_training_presets": "training_presets",
    "register_judges": "judges",
    "register_rubrics": "rubrics",
}

pm = pluggy.PluginManager("prefkit")
pm.add_hookspecs(hookspecs)

_lock = threading.RLock()
_loaded = False
_plugin_meta: dict[str, dict[str, Any]] = {}  # plugin name -> {version, dist, source, error}
_registries: dict[str, "Registry"] | None = None
_warned: set[str] = set()


def _warn(message: str) -> None:
    if message in _warned:
        return
    _warned.add(message)
    print(f"prefkit: warning: {message}", file=sys.stderr)


def _trace(message: str) -> None:
    if os.environ.get("PREFKIT_TRACE_PLUGINS", "") not in ("", "0"):
        print(f"prefkit: trace: {message}", file=sys.stderr)


def _allowlist() -> set[str] | None:
    value = os.environ.get("PREFKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def load_plugins() -> None:
    """Load default plugins and entry-point plugins (once per process)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        import importlib

        for modname in DEFAULT_PLUGINS:
            try:
                mod = importlib.import_module(modname)
            except Exception as exc:  # pragma: no cover - a broken core is a bug
                _warn(f"default plugin {modname} failed to load: {exc}")
                continue
            if not pm.is_registered(mod):
                pm.register(mod, name=modname)
                _plugin_meta[modname] = {"version": None, "dist": "prefkit", "source": "default"}

        allow = _allowlist()
        from importlib.metadata import entry_points

        eps = list(entry_points(group="prefkit"))
        if allow:
            known = {ep.name for ep in eps} | {ep.dist.name for ep in eps if ep.dist is not None}
            for name in sorted(allow - known):
                _warn(f"PREFKIT_LOAD_PLUGINS names {name!r}, but no installed plugin has that name "
                      f"(installed: {', '.join(sorted(ep.name for ep in eps)) or 'none'})")
        for ep in eps:
            dist_name = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if allow is not None and ep.name not in allow and (dist_name or "") not in allow:
                _trace(f"skipping plugin {ep.name} (not in PREFKIT_LOAD_PLUGINS)")
                continue
            if pm.has_plugin(ep.name):
                continue
            try:
                _trace(f"loading plugin {ep.name} from {ep.value}")
                mod = ep.load()
                pm.register(mod, name=ep.name)
                _plugin_meta[ep.name] = {"version": version, "dist": dist_name, "source": "entry-point"}
            except Exception as exc:
                _plugin_meta[ep.name] = {
                    "version": version,
                    "dist": dist_name,
                    "source": "entry-point",
                    "error": f"{type(exc).__name__}: {exc}",
                }
                _warn(f"plugin {ep.name!r} failed to load and was skipped: {type(exc).__name__}: {exc}")


def register_plugin(obj: Any, name: str, *, version: str | None = None) -> None:
    """Register a plugin object (module, class or instance) by hand."""
    load_plugins()
    with _lock:
        pm.register(obj, name=name)
        _plugin_meta[name] = {"version": version, "dist": None, "source": "runtime"}
        _reset_registries()


def unregister_plugin(name: str) -> None:
    with _lock:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
        _plugin_meta.pop(name, None)
        _reset_registries()


def _reset_registries() -> None:
    global _registries
    _registries = None


def _call_impl(hook_name: str, impl, *args) -> tuple[bool, Any]:
    """Call one plugin's implementation; a failure costs one warning, not the CLI."""
    name = impl.plugin_name
    _trace(f"calling {hook_name} on plugin {name}")
    try:
        return True, impl.function(*args)
    except PluginError:
        raise
    except Exception as exc:
        if os.environ.get("PREFKIT_DEBUG", "") not in ("", "0"):
            raise
        _warn(f"plugin {name!r} raised in {hook_name} and was skipped: {type(exc).__name__}: {exc}")
        return False, None


def call_each(hook_name: str, **kwargs) -> list[tuple[str, Any]]:
    """Call every implementation of a hook on its own, isolating failures.

    Returns ``(plugin_name, result)`` for the implementations that succeeded.
    """
    load_plugins()
    hook = getattr(pm.hook, hook_name)
    out = []
    for impl in reversed(hook.get_hookimpls()):  # registration order
        ok, result = _call_impl(hook_name, impl, *[kwargs[a] for a in impl.argnames])
        if ok:
            out.append((impl.plugin_name, result))
    return out


@dataclass
class Entry:
    name: str
    obj: Any
    plugin: str
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Named items of one kind, each remembering the plugin that registered it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.label = "persona strategy" if kind == "persona_strategies" else kind[:-1].replace("_", " ")
        self._items: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def add(self, obj: Any, plugin: str, name: str | None = None, aliases: Iterable[str] = (), **meta) -> Any:
        name = name or getattr(obj, "name", None)
        if not name or not isinstance(name, str):
            raise PluginError(f"plugin {plugin!r} registered a {self.label} without a name: {obj!r}")
        for key in (name, *aliases):
            owner = self._items.get(key) or self._items.get(self._aliases.get(key, ""))
            if owner is not None:
                raise PluginError(
                    f"{self.label} name clash: {key!r} is registered by both plugin "
                    f"{owner.plugin!r} and plugin {plugin!r}; uninstall one, or exclude it with PREFKIT_LOAD_PLUGINS"
                )
        self._items[name] = Entry(name, obj, plugin, tuple(aliases), meta)
        for a in aliases:
            self._aliases[a] = name
        return obj

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        key = self._aliases.get(name, name)
        if key not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise UsageError(f"unknown {self.label} {name!r} (known: {known})")
        return self._items[key]

    def __contains__(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._items

    def names(self) -> list[str]:
        return list(self._items)

    def entries(self) -> list[Entry]:
        return list(self._items.values())


def registries() -> dict[str, Registry]:
    """All registries, built on first use by calling the register hooks."""
    global _registries
    with _lock:
        if _registries is not None:
            return _registries
        regs = {kind: Registry(kind) for kind in REGISTER_HOOKS.values()}
        load_plugins()
        for hook_name, kind in REGISTER_HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):
                plugin = impl.plugin_name
                reg = regs[kind]

                def register(obj, name=None, aliases=(), _reg=reg, _plugin=plugin, **meta):
                    return _reg.add(obj, _plugin, name=name, aliases=aliases, **meta)

                _call_impl(hook_name, impl, register)
        _registries = regs
        return regs


def registry(kind: str) -> Registry:
    return registries()[kind]


def get_plugins(all: bool = False) -> list[dict[str, Any]]:
    """Describe loaded plugins: name, version, hooks, what each registered."""
    load_plugins()
    regs = registries()
    out = []
    for name, plugin in pm.list_name_plugin():
        meta = _plugin_meta.get(name, {})
        if meta.get("source") == "default" and not all:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        registered = {
            kind: sorted(e.name for e in reg.entries() if e.plugin == name) for kind, reg in regs.items()
        }
        out.append(
            {
                "name": name,
                "version": meta.get("version"),
                "distribution": meta.get("dist"),
                "source": meta.get("source", "runtime"),
                "hooks": hooks,
                "registered": {k: v for k, v in registered.items() if v},
            }
        )
    for name, meta in _plugin_meta.items():
        if "error" in meta:
            out.append({"name": name, "version": meta.get("version"), "distribution": meta.get("dist"),
                        "source": meta["source"], "hooks": [], "registered": {}, "error": meta["error"]})
    return out


def plugin_versions() -> dict[str, str | None]:
    load_plugins()
    return {n: m.get("version") for n, m in _plugin_meta.items() if m.get("source") != "default"}


def _reset_for_tests() -> None:
    """Forget everything (used by prefkit.testing)."""
    global _loaded
    with _lock:
        for name, plugin in list(pm.list_name_plugin()):
            pm.unregister(plugin)
        _plugin_meta.clear()
        _warned.clear()
        _loaded = False
        _reset_registries()


def register_commands(app) -> None:
    for name, _ in call_each("register_commands", app=app):
        pass

