"""Hook implementations of the NPPL plugin (kept light: heavy work is imported lazily)."""

import prefkit


@prefkit.hookimpl
def register_commands(app):
    pass
