"""Built-in trainers (sft, dpo, reward on TRL) and the ``train`` / ``merge-adapter`` commands."""

from prefkit.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    from prefkit.training.core import BUILTIN_TRAINERS

    for cls in BUILTIN_TRAINERS.values():
        register(cls())


@hookimpl
def register_commands(app):
    from prefkit.commands.train import register

    register(app)
