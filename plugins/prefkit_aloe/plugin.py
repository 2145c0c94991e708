"""Hook implementations of the ALOE plugin (kept light: heavy work is imported lazily).

Registers the training preset ``aloe-paper`` and the ``prefkit aloe`` command group
(``personas grow|build``, ``generate``, ``export``, ``train``, ``bench``, ``compare``).
"""

from __future__ import annotations

import prefkit


@prefkit.hookimpl
def register_commands(app):
    from .cli import app as aloe_app

    app.add_typer(aloe_app, name="aloe")


@prefkit.hookimpl
def register_training_presets(register):
    from .training import paper_preset

    register(paper_preset())
