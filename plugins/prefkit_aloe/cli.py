"""CLI of the ALOE plugin: ``prefkit aloe personas grow|build``, ``generate``, ``export``,
``train``, ``bench``, ``compare``.

Each command builds its config dataclass, calls a run function of the library and prints the
result; heavy imports happen inside the run functions. The data-side commands live in
``cli_data.py``, the training and benchmark commands in ``cli_eval.py``.
"""

from __future__ import annotations

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="ALOE (Wu et al.): align a model with a user's unspoken preferences through multi-turn interaction: "
         "persona pools, preference trees from a simulated user, SFT/DPO on them, and the ALOE benchmark.",
    no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode="rich")

personas_app = typer.Typer(help="Persona pools: grow them by self-generation, pair profiles with personalities.",
                           no_args_is_help=True, context_settings=CONTEXT)
app.add_typer(personas_app, name="personas")


def _add_commands() -> None:
    from . import cli_data, cli_eval

    cli_data.add_commands(app, personas_app)
    cli_eval.add_commands(app)


_add_commands()
