"""Hook implementations of the NPPL plugin (kept light: heavy work is imported lazily).

Adds the ``prefkit nppl`` command group: ``synthetic``, ``train``, ``eval``, ``embed``,
``dpo`` and ``generate``. Command bodies live in :mod:`prefkit_nppl.commands` and
import torch only when they run.
"""

from __future__ import annotations

from typing import List, Optional

import typer

import prefkit
from prefkit import RunOptions, with_options

from .config import DPOOptions, EmbedOptions, EvalOptions, TrainOptions

CONTEXT = {"help_option_names": ["-h", "--help"]}

nppl_app = typer.Typer(
    help="Few-shot steerable reward models and policies with neural processes (Kobalczyk et al., "
    "'Towards Few-shot Steerable Alignment'): infer a user's preferences from a few of their choices.",
    no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode="rich")


@nppl_app.command("synthetic")
@with_options(RunOptions, "run_opts")
def synthetic_cmd(
    n: int = typer.Option(20_000, "--n", help="Number of option pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the options and of the 80/10/10 split (0: the paper's data)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
    run_opts: RunOptions = None,
) -> None:
    """Write the paper's synthetic benchmark (two user types over scalar options) as a pair dataset."""
    from .commands import synthetic

    synthetic(n=n, seed=seed, run_opts=run_opts, as_json=json_)


@nppl_app.command("train")
@with_options(TrainOptions, "opts")
@with_options(RunOptions, "run_opts")
def train_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print the final metrics as JSON."),
              opts: TrainOptions = None, run_opts: RunOptions = None) -> None:
    """Train a reward model (btl, dpl or nppl) on the synthetic benchmark or an embedding dataset."""
    from .commands import train

    train(opts, run_opts, as_json=json_)


@nppl_app.command("eval")
@with_options(EvalOptions, "opts")
@with_options(RunOptions, "run_opts")
def eval_cmd(
    runs: List[str] = typer.Argument(..., help="Run directories of 'prefkit nppl train' (or 'nppl dpo'); "
                                     "runs with the same label are pooled as training seeds."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated label per run (default: the model name)."),
    opts: EvalOptions = None, run_opts: RunOptions = None,
) -> None:
    """Accuracy vs number of context pairs on the whole test split (mean ± s.e. over seeds): table + plot."""
    from .commands import evaluate

    evaluate(runs, labels, opts, run_opts)


@nppl_app.command("embed")
@with_options(EmbedOptions, "opts")
@with_options(RunOptions, "run_opts")
def embed_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print the dataset summary as JSON."),
              opts: EmbedOptions = None, run_opts: RunOptions = None) -> None:
    """Build a text preference task with several user types and embed every option (prompt + response)."""
    from .commands import embed

    embed(opts, run_opts, as_json=json_)


@nppl_app.command("dpo")
@with_options(DPOOptions, "opts")
@with_options(RunOptions, "run_opts")
def dpo_cmd(json_: bool = typer.Option(False, "--json", metavar="", help="Print the final metrics as JSON."),
            opts: DPOOptions = None, run_opts: RunOptions = None) -> None:
    """NP-DPO: a LoRA + FiLM policy conditioned on the user's context (or --baseline: plain DPO)."""
    from .commands import dpo

    dpo(opts, run_opts, as_json=json_)


@nppl_app.command("generate")
def generate_cmd(
    run: str = typer.Argument(..., help="A 'prefkit nppl dpo' run directory."),
    context: Optional[str] = typer.Option(None, "--context", help="JSONL/JSON file of the user's choices: "
                                          "{prompt, chosen, rejected} rows (or precomputed chosen_embedding/rejected_embedding)."),
    prompt: List[str] = typer.Option([], "--prompt", "-p", help="Prompt(s) to answer (repeatable)."),
    prompts_file: Optional[str] = typer.Option(None, "--prompts", help="A text file with one prompt per line."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0: greedy)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    device: str = typer.Option("auto", "--device", help="Device: auto, cpu, cuda ..."),
    output: Optional[str] = typer.Option(None, "--output", help="Also write the generations to this JSONL file."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
) -> None:
    """Generate with an NP-DPO policy conditioned on a user's context pairs."""
    from .commands import generate

    generate(run, context=context, prompts=list(prompt), prompts_file=prompts_file, max_new_tokens=max_new_tokens,
             temperature=temperature, seed=seed, device=device, output=output, as_json=json_)


@prefkit.hookimpl
def register_commands(app):
    app.add_typer(nppl_app, name="nppl")
