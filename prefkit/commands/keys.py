"""``prefkit keys``: store API keys in PREFKIT_HOME/keys.json (mode 600)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

keys_app = typer.Typer(help="Manage API keys (environment, .env, or PREFKIT_HOME/keys.json).", no_args_is_help=True,
                       context_settings={"help_option_names": ["-h", "--help"]})


@keys_app.command("set")
def keys_set(
    name: str = typer.Argument(..., help="Variable name, e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY, CO_API_KEY."),
    value: Optional[str] = typer.Option(None, "--value", help="The key (default: prompt without echo, or read stdin)."),
) -> None:
    """Save a key (prompted without echo, or read from stdin) to PREFKIT_HOME/keys.json."""
    from prefkit.backends.keys import set_key
    from prefkit.console import info

    if value is None:
        if sys.stdin is not None and not sys.stdin.isatty():
            value = sys.stdin.readline().strip()
        else:
            value = typer.prompt(f"{name}", hide_input=True)
    path = set_key(name, value)
    info(f"saved {name} to {path} (mode 600)")


@keys_app.command("unset")
def keys_unset(name: str = typer.Argument(..., help="Variable name.")) -> None:
    """Remove a key from PREFKIT_HOME/keys.json."""
    from prefkit.backends.keys import unset_key
    from prefkit.console import info
    from prefkit.errors import UsageError

    if not unset_key(name):
        raise UsageError(f"{name} is not in the prefkit key store")
    info(f"removed {name}")


@keys_app.command("list")
def keys_list(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """Show which keys are set and where they come from (values masked)."""
    from prefkit.backends.keys import list_keys
    from prefkit.console import print_json, print_table

    rows = list_keys()
    if json_:
        print_json(rows)
    else:
        print_table(rows, ["name", "source", "value"], title="API keys")


@keys_app.command("path")
def keys_path_cmd() -> None:
    """Print where `prefkit keys set` stores keys."""
    from prefkit.backends.keys import keys_path

    typer.echo(str(keys_path()))
