"""``prefkit train NAME`` (one sub-command per registered trainer), ``train chain``, ``train presets``,
``prefkit trainers`` and ``prefkit merge-adapter``.

Each ``prefkit train NAME`` has exactly its trainer's flags (its config class, e.g.
:class:`prefkit.SFTTrainConfig`) plus the model flags (:class:`prefkit.TrainModelConfig`) and
the command's own (data, ``--preset``, ``--config``, launcher). Settings resolve as
preset < ``--config run.yaml`` < flags given on the command line.
"""


import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from prefkit.options import RunOptions, with_options
from prefkit.training.config import BaseTrainConfig, TrainModelConfig

CONTEXT = {"help_option_names": ["-h", "--help"]}

#: command settings a --config file may hold besides the trainer's and the model's settings
COMMAND_KEYS = ("model", "dataset", "split", "eval_dataset", "eval_split", "data_dir", "limit", "eval_limit",
                "column_map", "output_dir", "run_name", "preset")
LAUNCH_FLAGS = {"--launcher": True, "--accelerate-config": True, "--num-processes": True}
#: sub-commands of `prefkit train` that are not trainers (a trainer cannot take these names)
RESERVED = ("list", "presets", "chain", "merge-adapter")


def _explicit(ctx: Any) -> set[str]:
    """Names of the parameters given on the command line (not defaults)."""
    out = set()
    for name in ctx.params:
        src = ctx.get_parameter_source(name)
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

    Without CUDA: ``--num-processes N`` (N > 1) runs N CPU processes, DDP over gloo (the config file
    is not used); one process otherwise (``--cpu``).
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
        n = num_processes or 1
        cmd += (["--multi_gpu", "--num_processes", str(n)] if n > 1 else ["--cpu", "--num_processes", "1"])
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
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
    env = dict(os.environ, PREFKIT_LAUNCHED="accelerate")
    if not cuda_available():
        gpus = 0
        env["CUDA_VISIBLE_DEVICES"] = ""
        n = num_processes or 1
        if accelerate_config:
            warn(f"no CUDA GPU here: running {n} CPU process{'es' if n > 1 else ''} "
                 f"({'DDP over gloo; ' if n > 1 else ''}the accelerate config is not used)")
    cmd = accelerate_command(argv, accelerate_config, num_processes, gpus)
    info("launching: " + " ".join(shlex.quote(c) for c in cmd))
    code = subprocess.call(cmd, env=env)
    raise typer.Exit(code)


def is_main() -> bool:
    """Whether this is the main process of a launch (rank 0): only it prints."""
    from prefkit.training.core import is_main_process

    return is_main_process()


# ---------------------------------------------------------------------- settings
def _settings_layers(ctx: Any, config_file: Optional[str], cfg: Any, mcfg: TrainModelConfig, command_values: dict,
                     known: set[str]) -> tuple[list[tuple[str, dict]], dict[str, Any]]:
    """``(layers, command settings)``: the --config file's settings, then the flags given explicitly.

    ``command_values`` (model, dataset ...) are filled from the file where the flag is absent.
    """
    from prefkit.errors import UsageError
    from prefkit.training.config import read_config_file

    from prefkit.training.config import explicit_settings

    layers: list[tuple[str, dict]] = []
    settings = dict(command_values)
    if config_file:
        values = read_config_file(config_file)
        if "stages" in values and "stages" not in command_values:
            raise UsageError(f"--config {config_file} lists stages: run it with `prefkit train chain --config`")
        unknown = sorted(set(values) - known - set(COMMAND_KEYS) - set(command_values))
        if unknown:
            raise UsageError(f"--config {config_file}: unknown setting(s) {', '.join(unknown)} (known: this "
                             f"command's flags and {', '.join(COMMAND_KEYS)})")
        for key in set(COMMAND_KEYS) | set(command_values):
            if key in values and settings.get(key) in (None, ()):
                settings[key] = values[key]
        layers.append((f"--config {config_file}", {k: v for k, v in values.items() if k in known}))
    layers.append(("flag", explicit_settings(ctx, cfg, mcfg)))
    return layers, settings


def _load_data(settings: dict, split_key: str = "split", eval_split_key: str = "eval_split"):
    rows = load_training_rows(settings["dataset"], settings.get(split_key), settings.get("data_dir"),
                              settings.get("limit"), settings.get("column_map"))
    eval_rows = None
    if settings.get("eval_dataset") or settings.get(eval_split_key):
        eval_rows = load_training_rows(settings.get("eval_dataset") or settings["dataset"],
                                       settings.get(eval_split_key), settings.get("data_dir"),
                                       settings.get("eval_limit"), settings.get("column_map"))
    return rows, eval_rows


def _check_launcher(launcher: str, accelerate_config: Optional[str], num_processes: Optional[int]) -> bool:
    """True when this process should relaunch itself under accelerate (and has done so)."""
    from prefkit.errors import UsageError

    launcher = (launcher or "none").lower()
    if launcher not in ("none", "accelerate"):
        raise UsageError(f"--launcher must be none or accelerate (got {launcher!r})")
    if num_processes is not None and num_processes < 1:
        raise UsageError(f"--num-processes must be at least 1 (got {num_processes})")
    if launcher == "accelerate" and not os.environ.get("PREFKIT_LAUNCHED"):
        _relaunch(launcher, accelerate_config, num_processes)
        return True
    return False


# ---------------------------------------------------------------------- printers
def _print_metrics(c: Any, m: dict) -> None:
    if "train_loss" in m:
        c.print(f"  train loss {m['train_loss']:.4g} · steps {m.get('global_step')} · "
                f"{m.get('train_runtime', 0):.1f} s · world size {m.get('world_size', 1)}")
    if "eval_loss" in m:
        extra = ""
        if "eval_rewards/accuracies" in m:
            extra = (f" · reward accuracy {m['eval_rewards/accuracies']:.3f} · margin "
                     f"{m.get('eval_rewards/margins', 0):.4g}")
        c.print(f"  eval loss {m['eval_loss']:.4g}{extra}")
    if m.get("best_checkpoint"):
        c.print(f"  best: {m['best_checkpoint']} (epoch {m.get('best_epoch')}, {m.get('best_metric')})")
    if "train_rows" in m:
        c.print(f"  rows: {m.get('train_rows_kept')}/{m['train_rows']} trained, {m.get('train_rows_truncated', 0)} "
                f"with the history cut, {m.get('train_rows_dropped_too_long', 0)} dropped as too long")


def print_result(result: Any, json_: bool) -> None:
    from prefkit.console import console, print_json

    if not is_main():
        return
    if json_:
        print_json(result.to_dict())
        return
    c = console()
    c.print(f"[bold]{result.kind}[/bold] done: {result.output_dir}")
    _print_metrics(c, result.metrics)
    if result.adapter_dir:
        c.print(f"  adapter: {result.adapter_dir}")
    if result.merged_dir:
        c.print(f"  model:   {result.merged_dir}   (prefkit generate --backend hf --model {result.merged_dir})")
    if result.loss_plot:
        c.print(f"  loss curve: {result.loss_plot}")


# ---------------------------------------------------------------------- train NAME
def run_train(trainer: Any, ctx: Any, settings: dict, config_file: Optional[str], preset: Optional[str],
              json_: bool, cfg: Any, mcfg: TrainModelConfig, run_opts: RunOptions) -> None:
    from prefkit.console import info
    from prefkit.errors import UsageError

    known = set(trainer.config_class.field_names()) | set(TrainModelConfig.field_names())
    layers, settings = _settings_layers(ctx, config_file, cfg, mcfg, settings, known)
    settings.setdefault("output_dir", run_opts.output_dir)
    settings.setdefault("run_name", run_opts.run_name)
    if not settings.get("model"):
        raise UsageError("give --model (a hub id, model directory, adapter directory or training run)")
    if not settings.get("dataset"):
        raise UsageError("give --dataset (a registered name, a .jsonl/.json/.csv/.parquet file, a save_to_disk "
                         "directory or hf:ORG/NAME)")
    preset = preset or settings.get("preset")
    rows, eval_rows = _load_data(settings)
    cfg, mcfg, _ = trainer.resolve(None, None, preset, layers)  # fail on bad settings before anything loads
    if is_main():
        info(f"{trainer.name}: {len(rows)} training rows" + (f", {len(eval_rows)} eval rows" if eval_rows else "")
             + f" · model {settings['model']} · {'LoRA r=' + str(mcfg.lora_r) if mcfg.lora else 'full fine-tuning'}"
             + f" · format {cfg.format}" + (f" · preset {preset}" if preset else ""))
    result = trainer.train(settings["model"], rows, eval_rows, None, settings.get("output_dir"), preset=preset,
                           layers=layers, run_name=settings.get("run_name"), fresh=run_opts.fresh)
    print_result(result, json_)


def make_train_command(trainer: Any):
    """The ``prefkit train NAME`` command of a trainer: its config class's flags and the model flags."""
    columns = getattr(trainer, "columns", "") or "as the trainer documents"

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
        preset: Optional[str] = typer.Option(None, "--preset", help="Start from a registered preset's settings "
                                             "(`prefkit train presets`); --config and flags override it."),
        config_file: Optional[str] = typer.Option(None, "--config", help="YAML/JSON file of settings (over the "
                                                  "preset; flags given on the command line override it)."),
        launcher: str = typer.Option("none", "--launcher", help="none, or accelerate: re-run under `accelerate "
                                     "launch` (several processes: DDP on GPUs, or over gloo on CPUs; DeepSpeed, FSDP)."),
        accelerate_config: Optional[str] = typer.Option(None, "--accelerate-config", help="accelerate config file "
                                                        "(see docs/accelerate/)."),
        num_processes: Optional[int] = typer.Option(None, "--num-processes", help="Processes for accelerate "
                                                    "(GPUs, or CPU processes without CUDA)."),
        json_: bool = typer.Option(False, "--json", metavar="", help="Print the result as JSON."),
        cfg: Any = None,
        mcfg: Any = None,
        run_opts: RunOptions = None,  # type: ignore[assignment]
    ) -> None:
        if _check_launcher(launcher, accelerate_config, num_processes):
            return
        settings = {"model": model, "dataset": dataset, "split": split, "eval_dataset": eval_dataset,
                    "eval_split": eval_split, "data_dir": data_dir, "limit": limit, "eval_limit": eval_limit,
                    "column_map": column_map}
        run_train(trainer, ctx, settings, config_file, preset, json_, cfg, mcfg, run_opts)

    command.__doc__ = trainer.description or trainer.name
    command.__name__ = f"train_{trainer.name}"
    return with_options(RunOptions, "run_opts")(with_options(TrainModelConfig, "mcfg")(
        with_options(trainer.config_class, "cfg")(command)))


# ---------------------------------------------------------------------- train chain
def _stages_from(values: list, where: str) -> list[dict]:
    from prefkit.errors import UsageError

    if not isinstance(values, list) or not values:
        raise UsageError(f"{where}: 'stages' must be a non-empty list")
    out = []
    for i, st in enumerate(values):
        if isinstance(st, str):
            st = {"trainer": st}
        if not isinstance(st, dict) or "trainer" not in st:
            raise UsageError(f"{where}: stage {i + 1} needs a 'trainer' (sft, dpo, ...)")
        allowed = {"trainer", "name", "handoff", "dataset", "split", "eval_dataset", "eval_split", "limit",
                   "eval_limit", "column_map", "settings"}
        bad = sorted(set(st) - allowed)
        if bad:
            raise UsageError(f"{where}: stage {i + 1}: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(allowed))})")
        out.append(dict(st))
    return out


def chain_command(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model the first stage starts from."),
    stages: Optional[str] = typer.Option(None, "--stages", help="Trainers in order, e.g. sft,dpo (or `stages:` in "
                                         "--config, a list with per-stage data and settings)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Data of every stage (unless a stage in "
                                          "--config names its own)."),
    splits: Optional[str] = typer.Option(None, "--splits", help="Training split per stage, e.g. sft_train,dpo_train."),
    eval_dataset: Optional[str] = typer.Option(None, "--eval-dataset", help="Evaluation data (default: --dataset)."),
    eval_splits: Optional[str] = typer.Option(None, "--eval-splits", help="Evaluation split per stage, e.g. "
                                              "sft_val,dpo_val."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline dataset mirror (PREFKIT_DATA_DIR)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N training rows of each stage."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Use only the first N evaluation rows."),
    column_map: Optional[str] = typer.Option(None, "--column-map", help="Rename columns: FIELD=COLUMN,..."),
    handoff: str = typer.Option("merged", "--handoff", help="What each stage hands the next (its model and DPO "
                                "reference): merged (the merged model) or adapter (adapter + base, merged by the "
                                "next stage)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A registered preset for every stage."),
    config_file: Optional[str] = typer.Option(None, "--config", help="YAML/JSON: settings for every stage and "
                                              "`stages:` (a list of {trainer, dataset, split, settings, ...})."),
    launcher: str = typer.Option("none", "--launcher", help="none, or accelerate (several processes)."),
    accelerate_config: Optional[str] = typer.Option(None, "--accelerate-config", help="accelerate config file."),
    num_processes: Optional[int] = typer.Option(None, "--num-processes", help="Processes for accelerate."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print the result as JSON."),
    cfg: BaseTrainConfig = None,  # type: ignore[assignment]
    mcfg: TrainModelConfig = None,  # type: ignore[assignment]
    run_opts: RunOptions = None,  # type: ignore[assignment]
) -> None:
    """Chained stages (e.g. SFT → DPO): each stage's output is the next stage's model and DPO reference.

    Each stage is its own run directory under the chain's; re-running resumes at the first unfinished stage.
    """
    from prefkit.console import console, info, print_json
    from prefkit.errors import UsageError
    from prefkit.options import split_csv
    from prefkit.plugins import registry
    from prefkit.training.chain import ChainStage, train_chain

    if _check_launcher(launcher, accelerate_config, num_processes):
        return
    known = set(BaseTrainConfig.field_names()) | set(TrainModelConfig.field_names())
    command_values = {"model": model, "dataset": dataset, "eval_dataset": eval_dataset, "data_dir": data_dir,
                      "limit": limit, "eval_limit": eval_limit, "column_map": column_map, "stages": None,
                      "splits": splits, "eval_splits": eval_splits, "handoff": None}
    layers, settings = _settings_layers(ctx, config_file, cfg, mcfg, command_values, known)
    if not settings.get("model"):
        raise UsageError("give --model (the model the first stage starts from)")
    if stages:
        stage_specs = [{"trainer": t} for t in split_csv(stages)]
        if settings.get("stages"):
            raise UsageError("give the stages once: --stages or `stages:` in --config")
    elif settings.get("stages"):
        stage_specs = _stages_from(settings["stages"], f"--config {config_file}")
    else:
        raise UsageError("give --stages (e.g. sft,dpo) or a `stages:` list in --config")
    split_list = split_csv(settings.get("splits"))
    eval_split_list = split_csv(settings.get("eval_splits"))
    for name, lst in (("--splits", split_list), ("--eval-splits", eval_split_list)):
        if lst and len(lst) != len(stage_specs):
            raise UsageError(f"{name} names {len(lst)} splits for {len(stage_specs)} stages")
    default_handoff = handoff if "handoff" in _explicit(ctx) else (settings.get("handoff") or handoff)
    chain_stages = []
    for i, spec in enumerate(stage_specs):
        trainer = registry("trainers").get(spec["trainer"])
        data_settings = {"dataset": spec.get("dataset") or settings.get("dataset"),
                         "split": spec.get("split") or (split_list[i] if split_list else None),
                         "eval_dataset": spec.get("eval_dataset") or settings.get("eval_dataset"),
                         "eval_split": spec.get("eval_split") or (eval_split_list[i] if eval_split_list else None),
                         "data_dir": settings.get("data_dir"), "limit": spec.get("limit", settings.get("limit")),
                         "eval_limit": spec.get("eval_limit", settings.get("eval_limit")),
                         "column_map": spec.get("column_map", settings.get("column_map"))}
        if not data_settings["dataset"]:
            raise UsageError(f"stage {i + 1} ({trainer.name}): give --dataset or the stage's `dataset:`")
        rows, eval_rows = _load_data(data_settings)
        chain_stages.append(ChainStage(trainer.name, rows, eval_rows, config=spec.get("settings") or None,
                                       name=spec.get("name"), handoff=spec.get("handoff") or default_handoff))
        if is_main():
            info(f"stage {i + 1}: {trainer.name} on {len(rows)} rows"
                 + (f", {len(eval_rows)} eval rows" if eval_rows else ""))
    result = train_chain(settings["model"], chain_stages, run_opts.output_dir, preset=preset or settings.get("preset"),
                         layers=layers, run_name=run_opts.run_name, fresh=run_opts.fresh)
    if not is_main():
        return
    if json_:
        print_json(result.to_dict())
        return
    c = console()
    c.print(f"[bold]chain[/bold] done: {result.output_dir}")
    for s in result.stages:
        c.print(f"[bold]{s.name}[/bold] ({s.trainer}){' — finished before' if s.skipped else ''}: {s.output_dir}")
        if s.result is not None:
            _print_metrics(c, s.result.metrics)
        c.print(f"  output {s.model_out} (sha256 {s.output_hash})")
    c.print(f"  final model: {result.model_dir}")


# ---------------------------------------------------------------------- listings
def merge_adapter_command(
    adapter_dir: str = typer.Argument(..., help="A LoRA adapter directory (or a training run with adapter/)."),
    output_dir: str = typer.Option(..., "--output-dir", "-o", help="Where to save the merged model."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base model (default: read from the "
                                             "adapter config)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Load/save dtype (float32, bfloat16, float16, auto)."),
    json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
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


def trainer_rows() -> list[dict]:
    from prefkit.plugins import registry

    rows = []
    for e in registry("trainers").entries():
        cls = getattr(e.obj, "config_class", None)
        own = sorted(set(cls.field_names()) - set(BaseTrainConfig.field_names())) if cls else []
        lr = getattr(cls, "default_lr", None)
        rows.append({"name": e.name, "plugin": e.plugin, "description": getattr(e.obj, "description", ""),
                     "columns": getattr(e.obj, "columns", ""), "own_settings": own,
                     "default_lr": {"lora": lr[0], "full": lr[1]} if lr else None})
    return rows


def list_trainers(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List registered trainers (built-in and plugins'): columns, own settings, default learning rates."""
    from prefkit.console import print_json, print_table

    rows = trainer_rows()
    if json_:
        print_json(rows)
    else:
        print_table([{**r, "own_settings": ", ".join(r["own_settings"]),
                      "default_lr": (f"{r['default_lr']['lora']:g} / {r['default_lr']['full']:g}"
                                     if r["default_lr"] else "")} for r in rows],
                    ["name", "plugin", "columns", "own_settings", "default_lr"],
                    title="prefkit trainers (default lr: LoRA / full)")


def presets_command(json_: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
    """List training presets: their values (for every trainer, and per trainer) and where they come from."""
    from prefkit.console import console, print_json
    from prefkit.training.presets import list_presets

    rows = list_presets()
    if json_:
        print_json(rows)
        return
    c = console()
    if not rows:
        c.print("no training presets registered")
    for p in rows:
        c.print(f"[bold]{p['name']}[/bold] (plugin {p['plugin']}): {p['description']}", soft_wrap=True)
        if p["source"]:
            c.print(f"  source: {p['source']}", soft_wrap=True, highlight=False)
        if p["settings"]:
            c.print("  all trainers: " + ", ".join(f"{k}={v}" for k, v in p["settings"].items()), soft_wrap=True,
                    highlight=False)
        for t, vals in p["per_trainer"].items():
            c.print(f"  {t}: " + ", ".join(f"{k}={v}" for k, v in vals.items()), soft_wrap=True, highlight=False)


def build_train_app() -> typer.Typer:
    """``prefkit train``: one sub-command per registered trainer, plus chain, presets, list, merge-adapter."""
    from prefkit.console import warn
    from prefkit.plugins import registry

    app = typer.Typer(help="Train models: one sub-command per registered trainer (sft, dpo, reward, plugins'), "
                           "chained stages, presets. TRL + PEFT, LoRA by default.",
                      no_args_is_help=True, context_settings=CONTEXT)
    for entry in registry("trainers").entries():
        if entry.name in RESERVED:
            warn(f"trainer {entry.name!r} of plugin {entry.plugin!r} is not a `prefkit train` command "
                 f"({', '.join(RESERVED)} are reserved)")
            continue
        if not hasattr(entry.obj, "config_class"):
            continue  # a trainer without a config class is usable from Python only
        app.command(entry.name)(make_train_command(entry.obj))
    app.command("chain")(with_options(RunOptions, "run_opts")(with_options(TrainModelConfig, "mcfg")(
        with_options(BaseTrainConfig, "cfg")(chain_command))))
    app.command("presets")(presets_command)
    app.command("list")(list_trainers)
    app.command("merge-adapter")(merge_adapter_command)
    return app


def register(app: typer.Typer) -> None:
    app.add_typer(build_train_app(), name="train")
    app.command("trainers")(list_trainers)
    app.command("merge-adapter")(merge_adapter_command)
