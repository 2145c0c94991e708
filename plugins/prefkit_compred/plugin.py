"""Hook implementations of the ComPreD plugin (kept light: heavy work is imported lazily).

Registers the dataset sources ``compred`` and ``shp``, the judging rubric ``compred-upvotes``,
the training preset ``compred-paper`` and the ``prefkit compred`` command group.
"""

from __future__ import annotations

import prefkit


@prefkit.hookimpl
def register_datasets(register):
    from .data import compred_source, shp_source

    register(compred_source())
    register(shp_source())


@prefkit.hookimpl
def register_rubrics(register):
    from .evaluate import upvotes_rubric

    register(upvotes_rubric())


@prefkit.hookimpl
def register_commands(app):
    from .cli import app as compred_app

    app.add_typer(compred_app, name="compred")


@prefkit.hookimpl
def register_training_presets(register):
    from .training import paper_preset

    register(paper_preset())
