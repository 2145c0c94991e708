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


def defer_typer_pydantic() -> None:
    """Don't import pydantic (typer's value coercion, 50-150 ms) for parameters that never get a value.

    typer builds a pydantic ``TypeAdapter`` for a parameter as soon as the parameter is processed, even
    when its value is None (``--help`` not given, an optional flag left out), so ``prefkit plugins`` paid
    for pydantic to learn that ``--help`` was not asked. Here the adapter is built on the first value
    that really needs coercing, by typer's own code: the results are the same, only later.
    """
    import dataclasses

    import typer.core as core
    from typer import _coercion

    if getattr(core.build_runtime_param, "_prefkit_deferred", False):
        return
    real_build = _coercion.build_runtime_param

    @dataclasses.dataclass(frozen=True)
    class DeferredRuntimeParam(_coercion.RuntimeParam):
        descriptor: object = None

        def _coerce_value(self, value, param, ctx):
            real = self.__dict__.get("_real")
            if real is None:
                real = real_build(self.descriptor)
                object.__setattr__(self, "_real", real)
            return real._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor):
        if descriptor.file_annotation is not None:
            return real_build(descriptor)
        return DeferredRuntimeParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation,
                                    descriptor=descriptor)

    build_runtime_param._prefkit_deferred = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
