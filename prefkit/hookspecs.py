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
def register_persona_strategies(register):
    """Register persona-inference strategies (objects with a ``name``)."""


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
