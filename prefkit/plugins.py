"""Plugin manager: discovery, allowlist, tracing, failure isolation, registries.

Plugins come from three places:

* the core's *default plugins* (``prefkit.default_plugins``: built-in backends,
  sources, trainers, judges, rubrics). They always load.
* the ``prefkit`` entry-point group: every installed plugin, the built-in method
  plugins included. ``PREFKIT_LOAD_PLUGINS`` is a comma-separated allowlist of
  entry-point or distribution names (empty string: load none).
* plugin objects registered at run time (``prefkit.testing.register_plugin``).

A plugin may add hook specs of its own (``add_hookspecs``, like pytest's
``pytest_addhooks``), including ``register_*`` hooks that fill a registry of a
new kind; the core names no method's hooks.

A plugin that fails to import, or raises inside a hook, costs one warning line
on stderr naming it; everything else keeps working.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
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

# hook name -> registry kind (the core's own; plugins add theirs through ``add_hookspecs``)
REGISTER_HOOKS = {
    "register_datasets": "datasets",
    "register_backends": "backends",
    "register_trainers": "trainers",
    "register_training_presets": "training_presets",
    "register_judges": "judges",
    "register_rubrics": "rubrics",
}
_plugin_register_hooks: dict[str, str] = {}  # added by plugins: hook name -> kind
_hookspecs_added: set[str] = set()  # plugins whose add_hookspecs already ran

pm = pluggy.PluginManager("prefkit")
pm.add_hookspecs(hookspecs)

_lock = threading.RLock()
_loaded = False
_plugin_meta: dict[str, dict[str, Any]] = {}  # plugin name -> {version, dist, source, error}
_registries: dict[str, "Registry"] | None = None
_warned: set[str] = set()


_load_warnings: list[str] = []  # plugins that failed to import (the CLI's cached index repeats them)


def _warn(message: str) -> None:
    if message in _warned:
        return
    _warned.add(message)
    print(f"prefkit: warning: {message}", file=sys.stderr)


def load_warnings() -> list[str]:
    return list(_load_warnings)


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
                _plugin_meta[modname] = {"version": None, "dist": "prefkit", "source": "default", "module": modname}

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
            _load_entry_point(ep.name, ep.value, version, dist_name, _ep_file(ep))
        _add_plugin_hookspecs()


def _ep_file(ep) -> str | None:
    path = getattr(ep.dist, "_path", None) if ep.dist is not None else None
    return str(Path(path) / "entry_points.txt") if path is not None else None


def _load_entry_point(name: str, value: str, version: str | None, dist_name: str | None,
                      ep_file: str | None) -> None:
    from importlib.metadata import EntryPoint

    meta = {"version": version, "dist": dist_name, "source": "entry-point", "value": value, "ep_file": ep_file}
    try:
        _trace(f"loading plugin {name} from {value}")
        mod = EntryPoint(name=name, value=value, group="prefkit").load()
        pm.register(mod, name=name)
        _plugin_meta[name] = meta
    except Exception as exc:
        _plugin_meta[name] = {**meta, "error": f"{type(exc).__name__}: {exc}"}
        message = f"plugin {name!r} failed to load and was skipped: {type(exc).__name__}: {exc}"
        _load_warnings.append(message)
        _warn(message)


def _add_plugin_hookspecs() -> None:
    """Run every plugin's ``add_hookspecs`` once (plugins registered later get theirs run when they are)."""
    hook = pm.hook.add_hookspecs
    for impl in reversed(hook.get_hookimpls()):
        if impl.plugin_name in _hookspecs_added:
            continue
        _hookspecs_added.add(impl.plugin_name)

        def register(namespace: Any, registries: dict[str, str] | None = None, _plugin=impl.plugin_name) -> None:
            pm.add_hookspecs(namespace)
            for hook_name, kind in (registries or {}).items():
                taken = REGISTER_HOOKS.get(hook_name) or _plugin_register_hooks.get(hook_name)
                if taken not in (None, kind) or hook_name in REGISTER_HOOKS:
                    raise PluginError(f"plugin {_plugin!r} adds the hook {hook_name!r}, which already fills "
                                      f"the {taken!r} registry")
                _plugin_register_hooks[hook_name] = kind
            _reset_registries()

        _call_impl("add_hookspecs", impl, register)


def register_hooks() -> dict[str, str]:
    """Every ``register_*`` hook (the core's and those plugins added) -> the registry kind it fills."""
    load_plugins()
    return {**REGISTER_HOOKS, **_plugin_register_hooks}


# ---------------------------------------------------------------------- one plugin at a time (the lazy CLI)
def plugins_with_hook(hook_name: str) -> list[str]:
    """Names of the loaded plugins implementing ``hook_name``, in registration order."""
    load_plugins()
    return [impl.plugin_name for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls())]


def call_one(hook_name: str, plugin_name: str, **kwargs) -> bool:
    """Call one plugin's implementation of a hook (failures isolated as in :func:`call_each`)."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin_name == plugin_name:
            return _call_impl(hook_name, impl, *[kwargs[a] for a in impl.argnames])[0]
    return False


def loader_spec(name: str) -> dict[str, Any] | None:
    """How to load plugin ``name`` again in another process without loading the others (None: cannot)."""
    meta = _plugin_meta.get(name) or {}
    if meta.get("source") == "default":
        return {"source": "default", "module": meta["module"]}
    if meta.get("source") == "entry-point" and "error" not in meta:
        return {k: meta.get(k) for k in ("source", "value", "version", "dist", "ep_file")}
    return None


def load_one(name: str, spec: dict[str, Any] | None) -> None:
    """Load just plugin ``name`` (from :func:`loader_spec`); without a spec, load them all."""
    with _lock:
        if pm.has_plugin(name):
            return
        if spec is None or (spec["source"] == "entry-point" and not _allowed(name, spec.get("dist"))):
            load_plugins()
            return
        if spec["source"] == "default":
            import importlib

            mod = importlib.import_module(spec["module"])
            if not pm.is_registered(mod):
                pm.register(mod, name=name)
                _plugin_meta[name] = {"version": None, "dist": "prefkit", "source": "default", "module": name}
        else:
            _load_entry_point(name, spec["value"], spec.get("version"), spec.get("dist"), spec.get("ep_file"))
        _add_plugin_hookspecs()


def _allowed(name: str, dist: str | None) -> bool:
    allow = _allowlist()
    return allow is None or name in allow or (dist or "") in allow


def plugin_roots() -> list[str]:
    """Source locations of the loaded entry-point plugins (package dirs, entry_points.txt files)."""
    from ._cli_index import _package_root

    out = []
    for meta in _plugin_meta.values():
        if meta.get("source") != "entry-point":
            continue
        root = _package_root(meta["value"].split(":", 1)[0])
        out += [p for p in (root, meta.get("ep_file")) if p]
    return out


def register_plugin(obj: Any, name: str, *, version: str | None = None) -> None:
    """Register a plugin object (module, class or instance) by hand."""
    load_plugins()
    with _lock:
        pm.register(obj, name=name)
        _plugin_meta[name] = {"version": version, "dist": None, "source": "runtime"}
        _add_plugin_hookspecs()
        _reset_registries()


def unregister_plugin(name: str) -> None:
    with _lock:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
        _plugin_meta.pop(name, None)
        _hookspecs_added.discard(name)
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
        label = kind.replace("_", " ")
        self.label = label[:-3] + "y" if label.endswith("ies") else label[:-1] if label.endswith("s") else label
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
        hooks = register_hooks()
        regs = {kind: Registry(kind) for kind in hooks.values()}
        for hook_name, kind in hooks.items():
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
    regs = registries()
    if kind not in regs:
        raise PluginError(f"no {kind!r} registry: no loaded plugin adds a hook that fills it "
                          f"(registries: {', '.join(sorted(regs))})")
    return regs[kind]


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
        _load_warnings.clear()
        _hookspecs_added.clear()
        _plugin_register_hooks.clear()
        _loaded = False
        _reset_registries()


def register_commands(app) -> None:
    for name, _ in call_each("register_commands", app=app):
        pass

