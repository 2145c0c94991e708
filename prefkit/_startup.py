"""Start-up helpers for the CLI (kept tiny: imported before everything else)."""

from __future__ import annotations

import sys


def defer_rich_markdown() -> None:
    """Don't pay for ``rich.markdown`` (markdown-it, ~15-25 ms) on every start-up.

    typer's help renderer imports ``Markdown`` by name but only builds one in "markdown" markup mode,
    which prefkit does not use. Until something really uses it, ``rich.markdown`` is a stand-in whose
    ``Markdown`` builds the real class and whose other attributes load the real module.
    """
    import importlib
    import types

    if "rich.markdown" in sys.modules:
        return

    def real():
        if getattr(sys.modules.get("rich.markdown"), "_prefkit_deferred", False):
            del sys.modules["rich.markdown"]
        return importlib.import_module("rich.markdown")

    class Markdown:
        def __new__(cls, *args, **kwargs):
            return real().Markdown(*args, **kwargs)

    shim = types.ModuleType("rich.markdown")
    shim._prefkit_deferred = True  # type: ignore[attr-defined]
    shim.Markdown = Markdown  # type: ignore[attr-defined]
    def module_getattr(name: str):
        if name.startswith("__"):  # the import system probes __path__, __spec__ ...: not a real use
            raise AttributeError(name)
        return getattr(real(), name)

    shim.__getattr__ = module_getattr  # type: ignore[method-assign]
    sys.modules["rich.markdown"] = shim
