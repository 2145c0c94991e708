"""Hook implementations of the persona plugin (kept light: heavy work is imported lazily)."""

import prefkit


@prefkit.hookimpl
def register_commands(app):
    # persona inference / evaluation commands are added here (persona engineer A)
    try:
        from .tailoring.cli import app as tailor_app  # persona tailoring (engineer B)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prefkit_persona.tailoring"):
            raise
    else:
        app.add_typer(tailor_app, name="tailor")
