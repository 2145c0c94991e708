"""The hooks a prefkit plugin can implement.

Every ``register_*`` hook receives a ``register`` callback so one plugin can
register many items (the simonw/llm pattern)::

    import prefkit

    @prefkit.hookimpl
    def register_backends(register):
        register(MyBackend)          # anything with a ``name`` attribute
        register(OtherBackend, name="other", aliases=("o",))

The callback records which plugin registered what; two plugins registering the
same name is an error that names both.

A plugin can add hooks of its own (``add_hookspecs``, like pytest's
``pytest_addhooks``): the persona plugin adds ``register_persona_strategies``
that way, so the core names no method's hooks.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("prefkit")
hookimpl = HookimplMarker("prefkit")


@hookspec
def register_datasets(register):
    """Register dataset sources (:class:`prefkit.DatasetSource` instances)."""


@hookspec
def register_backends(register):
    """Register LLM backends (classes or factories with a ``name``)."""


@hookspec
def register_trainers(register):
    """Register trainers (objects with a ``name`` and a ``train`` method)."""


# ---- training presets (training layer, issue 11)
@hookspec
def register_training_presets(register):
    """Register training presets (:class:`prefkit.TrainingPreset`: named defaults, e.g. a paper's settings)."""


@hookspec
def register_judges(register):
    """Register judges and judging rubrics (objects with a ``name``)."""


@hookspec
def register_commands(app):
    """Add commands or sub-apps to the root Typer ``app``."""


@hookspec
def register_rubrics(register):
    """Register judging rubrics (:class:`prefkit.Rubric` instances)."""


@hookspec
def add_hookspecs(register):
    """Add hook specs of your own, for other plugins to implement (like pytest's ``pytest_addhooks``).

    ``register(namespace, registries={"register_things": "things"})``: ``namespace`` is a module or
    class whose functions are marked with ``@prefkit.hookspec``; ``registries`` names the hooks among
    them that take a ``register`` callback and fill a registry (``prefkit.registry("things")``, listed
    by ``prefkit plugins``). Runs once per plugin, before any registry is built.
    """
