"""Hook implementations of the persona plugin (kept light: heavy work is imported lazily)."""

import prefkit


class PersonaHookspecs:
    """Hooks the persona plugin adds for other plugins (``add_hookspecs``)."""

    @staticmethod
    @prefkit.hookspec
    def register_persona_strategies(register):
        """Register persona-inference strategies (objects with a ``name``; see docs/persona.md)."""


@prefkit.hookimpl
def add_hookspecs(register):
    register(PersonaHookspecs, registries={"register_persona_strategies": "persona_strategies"})


@prefkit.hookimpl
def register_datasets(register):
    from .sources import inference_source, tailoring_source

    register(inference_source())
    register(tailoring_source())


@prefkit.hookimpl
def register_persona_strategies(register):
    from .inference import AbductiveStrategy, ZeroShotStrategy

    register(AbductiveStrategy())
    register(ZeroShotStrategy())


@prefkit.hookimpl
def register_rubrics(register):
    from .evaluation import plugin_rubrics

    for rubric in plugin_rubrics():
        register(rubric)


@prefkit.hookimpl
def register_commands(app):
    # persona inference / evaluation commands (persona engineer A)
    from .cli import infer_personas_cmd, persona_app

    app.command("infer-personas")(infer_personas_cmd)
    app.add_typer(persona_app, name="persona")
    try:
        from .tailoring.cli import app as tailor_app  # persona tailoring (engineer B)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prefkit_persona.tailoring"):
            raise
    else:
        app.add_typer(tailor_app, name="tailor")


@prefkit.hookimpl
def register_training_presets(register):
    from .tailoring.presets import presets

    for preset in presets():
        register(preset)
