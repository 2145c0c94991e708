"""``prefkit train sft|dpo|reward``, ``prefkit merge-adapter`` and ``prefkit train list``.

Every training flag comes from :class:`prefkit.training.TrainConfig` (the same
dataclass the Python API takes). ``--config run.yaml`` (or ``.json``) holds any of
those settings plus the command's own (``model``, ``dataset``, ``split``,
``eval_dataset`` ...); flags given on the command line win over the file.
"""


import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.options import RunOptions, with_options
from prefkit.training.config import TrainConfig

CONTEXT = {"help_option_names": ["-h", "--help"]}

train_app = typer.Typer(help="Train models: SFT, DPO and reward models on TRL + PEFT (LoRA by default).",
                        no_args_is_help=True, context_settings=CONTEXT)

#: command settings a --config file may hold besides TrainConfig's fields
COMMAND_KEYS = ("model", "dataset", "split", "eval_dataset", "eval_split", "data_dir", "limit", "eval_limit",
                "column_map",
                "output_dir", "run_name")
LAUNCH_FLAGS = {"--launcher": True, "--accelerate-config": True, "--num-processes": True}


def _explicit(ctx: Any) -> set[str]:
    """Names of the parameters given on the command line (not defaults)."""
    out = set()
    for name in ctx.params:
        src = ctx.get_parameter_source(name)
        # compare by name: typer may ship its own click, with its own ParameterSource enum
        if getattr(src, "name", None) in ("COMMANDLINE", "ENVIRONMENT"):
            out.add(name)
    return out


def _apply_column_map(rows: list[dict], column_map: str | dict | None) -> list[dict]:
    from prefkit.data.sources import parse_column_map
    from prefkit.errors import UsageError

    mapping = parse_column_map(column_map)
    if not mapping or not rows:
        return rows
    for field, col in mapping.items():
        if col not in rows[0]:
            raise UsageError(f"--column-map {field}={col}: no column {col!r} (columns: {', '.join(sorted(rows[0]))})")
    out = []
    for r in rows:
        r = dict(r)
        for field, col in mapping.items():
            r[field] = r.pop(col)
        out.append(r)
    return out


def load_training_rows(dataset: str, split: str | None, data_dir: str | None, limit: int | None,
                       column_map: str | dict | None) -> list[dict]:
    """Rows of a dataset spec (registered name, local file/dir, ``hf:org/name``)."""
    from prefkit.data import load_rows

    rows = load_rows(dataset, split=split, data_dir=data_dir)
    if limit is not None:
        rows = rows[:limit]
    return _apply_column_map(rows, column_map)


# ---------------------------------------------------------------------- accelerate
def accelerate_command(argv: list[str], config_file: str | None, num_processes: int | None,
                       gpus: int | None = None) -> list[str]:
    """The ``accelerate launch`` command line that re-runs ``prefkit ARGV`` (launch flags removed).

    Without CUDA the same code path runs single-process on the CPU (``--cpu --num_processes 1``).
    """
    cleaned: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in LAUNCH_FLAGS:
            skip = "=" not in a
            continue
        cleaned.append(a)
    if gpus is None:
        from prefkit.training.models import cuda_available

        gpus = 1 if cuda_available() else 0
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if gpus == 0:
        cmd += ["--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no"]
    else:
        if config_file:
            cmd += ["--config_file", str(config_file)]
        if num_processes:
            cmd += ["--num_processes", str(num_processes)]
    cmd += ["-m", "prefkit", *cleaned]
    return cmd


def _relaunch(launcher: str, accelerate_config: str | None, num_processes: int | None) -> None:
    from prefkit.console import info, warn
    from prefkit.errors import UsageError

    if accelerate_config and not Path(accelerate_config).is_file():
        raise UsageError(f"--accelerate-config {accelerate_config}: no such file")
    argv = sys.argv[1:]
    from prefkit.training.models import cuda_available

    gpus = None
    if not cuda_available():
        gpus = 0
        if accelerate_config or (num_processes or 1) > 1:
            warn("no CUDA GPU here: running single-process on the CPU (the accelerate config is not used)")
    cmd = accelerate_command(argv, accelerate_config, num_processes, gpus)
    info("launching: " + " ".join(shlex.quote(c) for c in cmd))
    env = dict(os.environ, PREFKIT_LAUNCHED="accelerate")
    code = subprocess.call(cmd, env=env)
    raise typer.Exit(code)


# ---------------------------------------------------------------------- train
def run_train(kind: str, ctx: Any, model: Optional[str], dataset: Optional[str], split: Optional[str],
              eval_dataset: Optional[str], eval_split: Optional[str], data_dir: Optional[str], limit: Optional[int],
              eval_limit: Optional[int], column_map: Optional[str], config_file: Optional[str], launcher: str,
              accelerate_config: Optional[str], num_processes: Optional[int], json_: bool, cfg: TrainConfig,
              run_opts: RunOptions) -> None:
    from prefkit.console import info, print_json
    from prefkit.errors import UsageError
    from prefkit.training.config import merge_config, read_config_file

    launcher = (launcher or "none").lower()
    if launcher not in ("none", "accelerate"):
        raise UsageError(f"--launcher must be none or accelerate (got {launcher!r})")
    if launcher == "accelerate" and not os.environ.get("PREFKIT_LAUNCHED"):
        _relaunch(launcher, accelerate_config, num_processes)
        return

    explicit = _explicit(ctx)
    settings: dict[str, Any] = {"model": model, "dataset": dataset, "split": split, "eval_dataset": eval_dataset,
                                "eval_split": eval_split, "data_dir": data_dir, "limit": limit,
                                "eval_limit": eval_limit,
                                "column_map": column_map, "output_dir": run_opts.output_dir,
                                "run_name": run_opts.run_name}
    if config_file:
        file_values = read_config_file(config_file)
        unknown = sorted(set(file_values) - set(TrainConfig.field_names()) - set(COMMAND_KEYS))
        if unknown:
            raise UsageError(f"--config {config_file}: unknown setting(s) {', '.join(unknown)} (known: the training "
                             f"flags and {', '.join(COMMAND_KEYS)})")
        cfg = merge_config(file_values, cfg, explicit, where=f"--config {config_file}")
        for key in COMMAND_KEYS:
            if key in file_values and (settings.get(key) is None):
                settings[key] = file_values[key]
    if not settings["model"]:
        raise UsageError("give --model (a hub id, model directory, adapter directory or training run)")
    if not settings["dataset"]:
        raise UsageError("give --dataset (a registered name, a .jsonl/.json/.csv/.parquet file, a save_to_disk "
                         "directory or hf:ORG/NAME)")
    rows = load_training_rows(settings["dataset"], settings["split"], settings["data_dir"], settings["limit"],
                              settings["column_map"])
    eval_rows = None
    if settings["eval_dataset"] or settings["eval_split"]:
        eval_rows = load_training_rows(settings["eval_dataset"] or settings["dataset"], settings["eval_split"],
                                       settings["data_dir"], settings["eval_limit"], settings["column_map"])
    from prefkit.training import get_trainer

    trainer = get_trainer(kind)
    info(f"{kind}: {len(rows)} training rows" + (f", {len(eval_rows)} eval rows" if eval_rows else "")
         + f" · model {settings['model']} · {'LoRA r=' + str(cfg.lora_r) if cfg.lora else 'full fine-tuning'}"
         + f" · format {cfg.format}")
    result = trainer.train(settings["model"], rows, eval_rows, cfg, settings["output_dir"],
                           run_name=settings["run_name"], fresh=run_opts.fresh)
    if json_:
        print_json(result.to_dict())
        return
    from prefkit.console import console

    c = console()
    c.print(f"[bold]{kind}[/bold] done: {result.output_dir}")
    m = result.metrics
    if "train_loss" in m:
        c.print(f"  train loss {m['train_loss']:.4g} · steps {m.get('global_step')} · "
                f"{m.get('train_runtime', 0):.1f} s")
    if "eval_loss" in m:
        c.print(f"  eval loss {m['eval_loss']:.4g}")
    if result.adapter_dir:
        c.print(f"  adapter: {result.adapter_dir}")
    if result.merged_dir:
        c.print(f"  model:   {result.merged_dir}   (prefkit generate --backend hf --model {result.merged_dir})")
    if result.loss_plot:
        c.print(f"  loss curve: {result.loss_plot}")


def _make_command(kind: str, summary: str, columns: str):
    def command(
        ctx: typer.Context,
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Hub id, model directory, adapter directory "
                                            "(merged first) or a prefkit training run. Required, here or in --config."),
        dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help=f"Training data with columns {columns}: "
                                              "a registered name (name:config), a file or save_to_disk dir, hf:ORG/NAME. "
                                              "Required, here or in --config."),
        split: Optional[str] = typer.Option(None, "--split", help="Split of --dataset."),
        eval_dataset: Optional[str] = typer.Option(None, "--eval-dataset", help="Evaluation data (default: "
                                                   "--dataset with --eval-split)."),
        eval_split: Optional[str] = typer.Option(None, "--eval-split", help="Split to evaluate on."),
        data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline dataset mirror (PREFKIT_DATA_DIR)."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N training rows."),
        eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N evaluation rows."),
        column_map: Optional[str] = typer.Option(None, "--column-map", help="Rename columns: FIELD=COLUMN,..."),
        config_file: Optional[str] = typer.Option(None, "--config", help="YAML/JSON file of settings (flags given "
                                                  "on the command line override it)."),
        launcher: str = typer.Option("none", "--launcher", help="none, or accelerate: re-run under `accelerate "
                                     "launch` (multi-GPU / multi-node; DDP, DeepSpeed, FSDP)."),
        accelerate_config: Optional[str] = typer.Option(None, "--accelerate-config", help="accelerate config file "
                                                        "(see docs/accelerate/)."),
        num_processes: Optional[int] = typer.Option(None, "--num-processes", help="Processes (GPUs) for accelerate."),
        json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        cfg: TrainConfig = None,  # type: ignore[assignment]
        run_opts: RunOptions = None,  # type: ignore[assignment]
    ) -> None:
        run_train(kind, ctx, model, dataset, split, eval_dataset, eval_split, data_dir, limit, eval_limit, column_map,
                  config_file, launcher, accelerate_config, num_processes, json_, cfg, run_opts)

    command.__doc__ = summary
    return with_options(RunOptions, "run_opts")(with_options(TrainConfig, "cfg")(command))


def merge_adapter_command(
    adapter_dir: str = typer.Argument(..., help="A LoRA adapter directory (or a training run with adapter/)."),
    output_dir: str = typer.Option(..., "--output-dir", "-o", help="Where to save the merged model."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base model (default: read from the "
                                             "adapter config)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Load/save dtype (float32, bfloat16, float16, auto)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge a LoRA adapter into its base model: a normal model directory with tokenizer and chat template."""
    from prefkit.console import console, print_json
    from prefkit.training.core import quiet_libraries
    from prefkit.training.models import ADAPTER_CONFIG, merge_adapter

    src = Path(adapter_dir)
    if not (src / ADAPTER_CONFIG).exists() and (src / "adapter" / ADAPTER_CONFIG).exists():
        src = src / "adapter"
    with quiet_libraries():
        out = merge_adapter(src, output_dir, base_model=base_model, dtype=dtype)
    if json_:
        print_json({"adapter_dir": str(src), "merged_dir": str(out)})
    else:
        console().print(f"merged {src} → {out}")


@train_app.command("list")
def list_trainers(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered trainers (built-in and plugins')."""
    from prefkit.console import print_json, print_table
    from prefkit.plugins import registry

    rows = [{"name": e.name, "plugin": e.plugin, "description": getattr(e.obj, "description", "")}
            for e in registry("trainers").entries()]
    if json_:
        print_json(rows)
    else:
        print_table(rows, ["name", "plugin", "description"], title="prefkit trainers")


train_app.command("sft")(_make_command(
    "sft", "Supervised fine-tuning (loss on the completion only unless --train-on-prompt).",
    "prompt+completion (or chosen, messages, text)"))
train_app.command("dpo")(_make_command(
    "dpo", "Direct preference optimization. Starting from an SFT adapter merges it first and trains a new adapter "
    "with the merged SFT model as the reference.", "prompt+chosen+rejected"))
train_app.command("reward")(_make_command("reward", "Train a reward model (Bradley-Terry, sequence classification).",
                                          "prompt+chosen+rejected"))
train_app.command("merge-adapter")(merge_adapter_command)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("merge-adapter")(merge_adapter_command)
