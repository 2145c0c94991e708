"""The data-side commands of ``prefkit aloe``: ``personas grow``, ``personas build``, ``generate``, ``export``.

Each command builds its config dataclass, calls the library function and prints the result
(``--json``: the result as JSON); the work is imported inside the command bodies.
"""

from __future__ import annotations

from typing import Optional

import typer

import prefkit

from .export import ExportConfig
from .generate import ROLES, GenerateConfig
from .pools import BuildConfig, GrowConfig

JSON = typer.Option(False, "--json", metavar="", help="Print the result as JSON.")


def add_commands(app: typer.Typer, personas_app: typer.Typer) -> None:
    """Register the data-side commands on the ``aloe`` app and its ``personas`` sub-app."""

    @personas_app.command("grow")
    @prefkit.with_options(GrowConfig, "cfg")
    @prefkit.with_options(prefkit.BackendOptions, "llm")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    def grow_cmd(json_: bool = JSON,
                 plot: bool = typer.Option(True, "--plot/--no-plot", metavar="", help="Draw the growth plot (pool size and "
                                                                           "accepted share per round)."),
                 plot_to: Optional[str] = typer.Option(None, "--plot-to", help="Plot path (default: "
                                                                              "<run>/growth.png and .pdf)."),
                 cfg: GrowConfig = None, llm: prefkit.BackendOptions = None,
                 run_opts: prefkit.RunOptions = None) -> None:
        """Grow a profile or personality pool by self-generation, keeping only items unlike the pool (cosine <= 0.6).

        --seed seeds the example sampling (and the LLM's sampling); the reference generated at
        --temperature 0.8.
        """
        import dataclasses

        from .pools import grow_pool, print_grow

        cfg = dataclasses.replace(cfg, seed=llm.seed if llm.seed is not None else 0)
        res = grow_pool(cfg, llm, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh,
                        plot=plot, plot_to=plot_to)
        if json_:
            prefkit.print_json(res.to_dict())
        else:
            print_grow(res)
        if res.run:
            prefkit.command_exit(res.run)

    @personas_app.command("build")
    @prefkit.with_options(BuildConfig, "cfg")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    def build_cmd(json_: bool = JSON, cfg: BuildConfig = None, run_opts: prefkit.RunOptions = None) -> None:
        """Pair every profile with a random personality, --passes times (331 x 10 = 3,310 personas), seeded."""
        from .pools import build

        res = build(cfg, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
        if json_:
            prefkit.print_json(res)
        else:
            prefkit.print_table([{"statistic": k, "value": res[k]}
                                 for k in ("personas", "profiles", "personalities", "passes", "personalities_used",
                                           "most_used_personality", "pronouns_differ")],
                                title="aloe personas build")
            prefkit.info(f"personas: {res['file']}  (run {res['run']})")
        prefkit.command_exit(res["run"])

    @app.command("generate")
    @prefkit.with_options(GenerateConfig, "cfg")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    @prefkit.with_roles(ROLES, "roles", default_backend="hf")
    def generate_cmd(json_: bool = JSON, *, cfg: GenerateConfig, run_opts: prefkit.RunOptions,
                     roles: prefkit.Roles) -> None:
        """Multi-turn preference trees: simulated user, persona extractor, aware + plain replies, judge (both orders)."""
        from .generate import generate, print_result

        res = generate(cfg, roles, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
        if json_:
            prefkit.print_json(res.to_dict())
        else:
            print_result(res)
        if res.run:
            prefkit.command_exit(res.run)

    @app.command("export")
    @prefkit.with_options(ExportConfig, "cfg")
    @prefkit.with_options(prefkit.RunOptions, "run_opts")
    def export_cmd(run: str = typer.Argument(..., help="An 'aloe generate' run directory."), json_: bool = JSON,
                   cfg: ExportConfig = None, run_opts: prefkit.RunOptions = None) -> None:
        """SFT / DPO datasets (TRL conversational format, save_to_disk + jsonl, dataset card) from a generate run."""
        from .export import export, print_export

        res = export(run, cfg, output_dir=run_opts.output_dir, run_name=run_opts.run_name, fresh=run_opts.fresh)
        if json_:
            prefkit.print_json(res)
        else:
            print_export(res)
        prefkit.command_exit(res["run"])
