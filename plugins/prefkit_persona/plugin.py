"""Hook implementations of the persona plugin (kept light: heavy work is imported lazily)."""

import prefkit


@prefkit.hookimpl
def register_commands(app):
    pass
