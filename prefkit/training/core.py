"""The trainers: TRL's SFTTrainer / DPOTrainer / RewardTrainer behind one call.

A trainer here does only what TRL leaves to the caller: resolve the model (merge
an SFT adapter first), turn rows into TRL rows (chat or text format), map
:class:`TrainConfig` onto TRL's config class, build the LoRA config, keep a
prefkit run (manifest, logs, metrics), save tokenizer + chat template with every
model, merge the adapter and draw the loss curve. The training loop, the losses
and the data collation are TRL's.

Output directory layout::

    <output_dir>/
      manifest.json  metrics.json  results.jsonl (one line per logged step)
      checkpoints/checkpoint-N/   Trainer checkpoints (optimizer, scheduler, RNG, data position)
      adapter/                    the LoRA adapter + tokenizer (LoRA runs)
      merged/                     the full model + tokenizer (merged LoRA, or the full fine-tune)
      base/                       when training started from an adapter: that adapter merged (the DPO reference)
      loss.png                    the loss curve
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import PrefkitError, UsageError
from .config import (RUN_CONTROL_FIELDS, BaseTrainConfig, DPOTrainConfig, RewardTrainConfig, SFTTrainConfig,
                     TrainModelConfig, config_values, resolve_configs)
from .formats import (FitStats, TextTemplate, fingerprint, fit_preference_rows, normalize_rows,
                      require_chat_template, tokenize_sft)
from .presets import preset_values

CHECKPOINTS = "checkpoints"
DONE_MARKER = "trainer_done.json"
OUTPUT_NAMES = (CHECKPOINTS, "adapter", "merged", "base", "ref", "loss.png", "loss.pdf", "tensorboard", DONE_MARKER)


@dataclass
class TrainResult:
    """Where a training run put things, and its final metrics."""

    output_dir: Path
    adapter_dir: Path | None
    merged_dir: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    loss_plot: Path | None = None
    kind: str = ""
    base_model: str | None = None

    @property
    def model_dir(self) -> Path | None:
        """The model to use next: the merged/full model if saved, else the adapter."""
        return self.merged_dir or self.adapter_dir

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "output_dir": str(self.output_dir),
                "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                "merged_dir": str(self.merged_dir) if self.merged_dir else None,
                "loss_plot": str(self.loss_plot) if self.loss_plot else None,
                "base_model": self.base_model, "metrics": self.metrics}


@contextlib.contextmanager
def quiet_libraries():
    """Silence the libraries' own progress bars, info logs and deprecation chatter (not with --debug).

    prefkit shows its own progress bar and one status line per phase instead.
    """
    if os.environ.get("PREFKIT_DEBUG", "") not in ("", "0") or os.environ.get("PREFKIT_VERBOSE_TRAINING"):
        yield
        return
    import datasets
    import transformers
    from transformers.utils import logging as hf_logging

    old_hf = hf_logging.get_verbosity()
    old_ds = datasets.logging.get_verbosity()
    old_bar_hf = hf_logging.is_progress_bar_enabled()
    from datasets.utils.logging import is_progress_bar_enabled

    old_bar_ds = is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    trl_logger = logging.getLogger("trl")
    old_trl = trl_logger.level
    trl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            warnings.filterwarnings("ignore", message=".*tokenizer has new PAD/BOS/EOS tokens.*")
            yield
    finally:
        hf_logging.set_verbosity(old_hf)
        datasets.logging.set_verbosity(old_ds)
        trl_logger.setLevel(old_trl)
        if old_bar_hf:
            hf_logging.enable_progress_bar()
        if old_bar_ds:
            datasets.enable_progress_bars()
        del transformers


def is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _abs(path: str) -> str:
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def last_checkpoint(output_dir: str | Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    d = Path(output_dir) / CHECKPOINTS
    if not d.is_dir():
        return None
    last = get_last_checkpoint(str(d))
    return Path(last) if last else None


def _set_chat_template(tokenizer: Any, source: str) -> None:
    p = Path(source).expanduser()
    if p.is_file():
        tokenizer.chat_template = p.read_text(encoding="utf-8")
        return
    from .models import load_tokenizer

    other = load_tokenizer(str(p) if p.exists() else source)
    if not getattr(other, "chat_template", None):
        raise UsageError(f"--chat-template {source}: that tokenizer has no chat template")
    tokenizer.chat_template = other.chat_template


def _template_identity(template: TextTemplate) -> str:
    if callable(template):
        return f"{getattr(template, '__module__', '')}.{getattr(template, '__qualname__', repr(template))}"
    return template


def _rows(data: Any) -> list[Any]:
    if data is None:
        return []
    try:
        from datasets import Dataset

        if isinstance(data, Dataset):
            return data.to_list()
    except ImportError:  # pragma: no cover
        pass
    return list(data)


def _mixed_precision(cfg: TrainModelConfig) -> tuple[bool, bool]:
    from .models import cuda_available

    if cfg.bf16 is not None:
        bf16 = bool(cfg.bf16)
        if bf16 and not cuda_available():
            raise UsageError("--bf16 needs a GPU with bf16 support (none found); drop --bf16")
        return bf16, bool(cfg.fp16)
    if cfg.fp16:
        if not cuda_available():
            raise UsageError("--fp16 needs a CUDA GPU (none found); drop --fp16")
        return False, True
    if cuda_available():
        import torch

        return bool(torch.cuda.is_bf16_supported()), False
    return False, False


def _explicit_values(config: Any) -> dict[str, Any]:
    """The settings a config object sets: a dict/TrainConfig as given; a dataclass: its non-default fields."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out = {}
        for f in dataclasses.fields(config):
            v = getattr(config, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            if v != default:
                out[f.name] = v
        return out
    return config_values(config)


class TRLTrainer:
    """A trainer on one of TRL's trainers. Subclasses name the TRL classes and own their settings.

    A subclass sets ``name``, ``description``, ``columns``, ``trl_names`` (trainer class, config
    class of the ``trl`` package) and ``config_class`` (a :class:`BaseTrainConfig` subclass: its
    fields are ``prefkit train NAME``'s flags) and may override:

    * ``normalize_rows(rows, cfg, template)`` — input rows → TRL rows (no tokenizer; bad input fails
      here, before anything is loaded);
    * ``fit_rows(rows, tokenizer, cfg)`` — rows fitted to the length limits, with a :class:`FitStats`;
    * ``trl_args(cfg)`` — the trainer-specific keyword arguments of the TRL config class.

    Everything else (model resolution and merging, LoRA, runs and resume, evaluation, the best
    checkpoint, plots, multi-process runs) is the layer's.
    """

    name = ""
    description = ""
    #: TRL column layout this trainer consumes (for help texts)
    columns = ""
    #: names of the TRL trainer and config classes, e.g. ("SFTTrainer", "SFTConfig")
    trl_names: tuple[str, str] | None = None
    #: this trainer's settings (its CLI flags); the model settings are TrainModelConfig's
    config_class: type = BaseTrainConfig
    #: the task of the model trained (CAUSAL_LM, or SEQ_CLS for reward models)
    task = "CAUSAL_LM"

    # ---------------------------------------------------------------- to override
    def trl_classes(self) -> tuple[type, type]:
        """The TRL trainer and config classes (by default the ``trl_names`` of the ``trl`` package)."""
        if not self.trl_names:
            raise NotImplementedError(f"trainer {self.name!r} names no TRL classes (trl_names)")
        import trl

        trainer, config = self.trl_names
        return getattr(trl, trainer), getattr(trl, config)

    def normalize_rows(self, rows: list[Any], cfg: Any, template: TextTemplate) -> list[dict[str, Any]]:
        """Input rows → TRL rows (default: dicts passed on as they are)."""
        from .formats import _as_dict

        out = [_as_dict(r, cfg.format) for r in rows]
        if not out:
            raise UsageError(f"no training rows for {self.name}")
        return out

    def fit_rows(self, rows: list[dict[str, Any]], tokenizer: Any, cfg: Any) -> tuple[list[dict[str, Any]], FitStats]:
        """Rows fitted to ``cfg.max_length`` / ``cfg.max_prompt_length`` (default: unchanged)."""
        return rows, FitStats(rows=len(rows), kept=len(rows))

    def trl_args(self, cfg: Any) -> dict[str, Any]:
        return {}

    # ---------------------------------------------------------------- settings
    def resolve(self, config: Any = None, model_config: Any = None, preset: Any = None,
                layers: Sequence[tuple[str, dict[str, Any]]] = ()) -> tuple[Any, TrainModelConfig, dict[str, Any]]:
        """``(trainer config, model config, provenance)`` with precedence preset < layers < config < model_config.

        ``config``: this trainer's config class, a dict of settings (trainer and model settings
        mixed), or a :class:`TrainConfig`; a dataclass contributes its non-default values, so
        a preset's values survive. ``provenance``: ``{"preset": name, "sources": {setting: source}}``.
        """
        preset_name, pvals = preset_values(preset, self)
        all_layers: list[tuple[str, dict[str, Any]]] = [(f"preset {preset_name}", pvals)] if preset_name else []
        all_layers += list(layers)
        all_layers.append(("config", _explicit_values(config)))
        all_layers.append(("model config", _explicit_values(model_config)))
        cfg, mcfg, sources = resolve_configs(self.config_class, all_layers)
        return cfg, mcfg, {"preset": preset_name, "sources": sources}

    # ---------------------------------------------------------------- API
    def train(self, model: str | Path, train_data: Any, eval_data: Any = None, config: Any = None,
              output_dir: str | Path | None = None, text_template: TextTemplate | None = None, *,
              model_config: Any = None, preset: Any = None, run_name: str | None = None, fresh: bool = False,
              callbacks: Sequence[Any] = (), argv: list[str] | None = None,
              layers: Sequence[tuple[str, dict[str, Any]]] = ()) -> TrainResult:
        with quiet_libraries():
            prepared = self.prepare(model, train_data, eval_data, config, output_dir, text_template,
                                    model_config=model_config, preset=preset, run_name=run_name, fresh=fresh,
                                    callbacks=callbacks, argv=argv, layers=layers)
            return prepared.run()

    def prepare(self, model: str | Path, train_data: Any, eval_data: Any = None, config: Any = None,
                output_dir: str | Path | None = None, text_template: TextTemplate | None = None, *,
                model_config: Any = None, preset: Any = None, run_name: str | None = None, fresh: bool = False,
                callbacks: Sequence[Any] = (), argv: list[str] | None = None,
                layers: Sequence[tuple[str, dict[str, Any]]] = ()) -> "PreparedTraining":
        """Everything up to ``trainer.train()``: the TRL trainer is built (``.trainer``) but not run."""
        cfg, mcfg, provenance = self.resolve(config, model_config, preset, layers)
        with quiet_libraries():
            return PreparedTraining(self, model, train_data, eval_data, cfg, mcfg, provenance, output_dir,
                                    text_template, run_name, fresh, list(callbacks), argv)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class PreparedTraining:
    """One training run, set up. ``.trainer`` is the TRL trainer; ``.run()`` trains and saves."""

    def __init__(self, spec: TRLTrainer, model, train_data, eval_data, cfg: Any, mcfg: TrainModelConfig,
                 provenance: dict[str, Any], output_dir, text_template, run_name, fresh, callbacks, argv):
        from .models import cuda_available, quantization_config, resolve_model

        self.spec = spec
        self.kind = spec.name
        self.cfg = cfg
        self.mcfg = mcfg
        self.provenance = provenance
        self.main = is_main_process()
        self.world_size = _world_size()
        template = text_template if text_template is not None else cfg.text_template
        self.template = template
        quant = quantization_config(mcfg)  # fails fast without CUDA
        ref = resolve_model(model)
        self.model_ref = ref

        # ---- rows (no tokenizer yet), so bad input fails before anything is loaded or written
        train_rows = spec.normalize_rows(_rows(train_data), cfg, template)
        eval_rows = spec.normalize_rows(_rows(eval_data), cfg, template) if eval_data is not None else None
        if eval_rows is None and cfg.load_best:
            raise UsageError("--load-best needs evaluation data (--eval-dataset or --eval-split)")

        # ---- tokenizer
        from .models import load_tokenizer

        tokenizer = load_tokenizer(ref.path, fallback=ref.base)
        if cfg.chat_template:
            _set_chat_template(tokenizer, cfg.chat_template)
        if cfg.format == "chat":
            require_chat_template(tokenizer, ref.name)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer

        # ---- the run directory
        from ..runs import Run, runs_dir, slug

        model_label = Path(ref.name.rstrip("/")).name or "model"
        data_hash = fingerprint(train_rows)
        if output_dir is None:
            output_dir = runs_dir() / "train" / slug(run_name or f"{self.kind}-{model_label}-{data_hash[:8]}")
        out = Path(output_dir)
        self.output_dir = out
        identity = {"kind": self.kind, "model": _abs(ref.name), "data": data_hash,
                    "eval_data": fingerprint(eval_rows) if eval_rows else None,
                    "text_template": _template_identity(template) if cfg.format == "text" else None,
                    **{k: v for k, v in cfg.identity().items() if k != "text_template"},
                    **{k: v for k, v in mcfg.to_dict().items() if k not in RUN_CONTROL_FIELDS}}
        if fresh and self.main:
            for name in OUTPUT_NAMES:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.run_store = None
        self.already_done = False
        if self.main:
            run_config = {"kind": self.kind, "model": ref.name, "preset": provenance.get("preset"),
                          **cfg.to_dict(), **mcfg.to_dict(),
                          "setting_sources": provenance.get("sources", {}), "world_size": self.world_size}
            self.run_store = Run.open("train", config=run_config, identity=identity, output_dir=out, fresh=fresh,
                                      argv=argv)
            self.run_store.fsync_every = 20  # step logs: flushed per line, synced every 20 (checkpoints hold the state)
        self.resume_from = last_checkpoint(out)
        if (out / DONE_MARKER).exists() and not cfg.resume:
            self.already_done = True       # a finished run: return it, do not train again
        elif self.resume_from is not None and not cfg.resume:
            status = self.run_store.manifest.get("status") if self.run_store else None
            self._close_run("failed", error="checkpoints exist; not resumed")
            raise UsageError(f"{out} already has checkpoints of an unfinished run (status: {status}); pass "
                             "--resume to continue from the last one, or --fresh to start over")
        if cfg.resume and self.resume_from is None and self.main:
            from ..console import info

            info(f"no checkpoint in {out / CHECKPOINTS}; training from the start")
        if self.already_done and not cfg.resume:
            self.trainer = None
            self.fit_stats = self.eval_fit_stats = None
            return

        # ---- fit the rows to the length limits (counted, never silent)
        train_rows, self.fit_stats = spec.fit_rows(train_rows, tokenizer, cfg)
        self.eval_fit_stats = None
        if eval_rows is not None:
            eval_rows, self.eval_fit_stats = spec.fit_rows(eval_rows, tokenizer, cfg)
        if not train_rows:
            self._close_run("failed", error="no training row fits --max-length")
            raise UsageError(f"no training row fits --max-length {cfg.max_length} "
                             f"({self.fit_stats.dropped} responses are longer); raise --max-length or pass "
                             "--long-responses truncate")

        # ---- the starting model: an adapter is merged first (never wrap a PeftModel twice)
        model_path = ref.path
        if ref.adapter:
            model_path = str(self._merge_start_adapter(ref))
        model_path = _abs(model_path)
        self.model_path = model_path

        # ---- TRL config, PEFT config, trainer
        trainer_cls, config_cls = self.spec.trl_classes()
        bf16, fp16 = _mixed_precision(mcfg)
        has_eval = eval_rows is not None and len(eval_rows) > 0
        if mcfg.dtype:
            dtype = mcfg.dtype
        elif quant is not None:
            dtype = "bfloat16" if bf16 else "float16"
        else:
            dtype = "bfloat16" if (mcfg.lora and bf16) else "float32"
        model_init_kwargs: dict[str, Any] = {"dtype": dtype}
        eval_strategy = cfg.eval_strategy if has_eval and cfg.eval_strategy in ("steps", "epoch") else "no"
        save_strategy, save_steps = "steps", cfg.save_steps
        if cfg.load_best:  # the Trainer needs a checkpoint at every evaluation to pick the best one
            save_strategy = eval_strategy
            save_steps = cfg.eval_steps or cfg.save_steps
        args: dict[str, Any] = dict(
            output_dir=str(out / CHECKPOINTS),
            max_steps=cfg.max_steps, num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate(mcfg.lora),
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            warmup_steps=cfg.warmup, lr_scheduler_type=cfg.lr_scheduler, weight_decay=cfg.weight_decay,
            max_length=cfg.max_length, seed=cfg.seed, data_seed=cfg.seed,
            bf16=bf16, fp16=fp16, gradient_checkpointing=mcfg.gradient_checkpointing,
            report_to=[] if cfg.report_to == "none" else [cfg.report_to] if cfg.report_to != "all" else "all",
            logging_steps=cfg.logging_steps, logging_first_step=True,
            save_strategy=save_strategy, save_steps=save_steps, save_total_limit=cfg.save_total_limit,
            eval_strategy=eval_strategy, eval_steps=cfg.eval_steps if eval_strategy == "steps" else None,
            load_best_model_at_end=bool(cfg.load_best), metric_for_best_model=cfg.metric_for_best if cfg.load_best
            else None, dataloader_num_workers=cfg.dataloader_workers,
            disable_tqdm=True, model_init_kwargs=model_init_kwargs, dataloader_pin_memory=cuda_available(),
        )
        if cfg.load_best:
            args["greater_is_better"] = not cfg.metric_for_best.endswith("loss")
        if not cuda_available():
            args["use_cpu"] = True
        if self.world_size > 1:
            args["ddp_backend"] = "nccl" if cuda_available() else "gloo"
        args.update(self.spec.trl_args(cfg))
        args.update(cfg.trl_args)
        try:
            trl_args = config_cls(**args)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid training settings: {exc}") from None
        self.trl_args = trl_args

        from datasets import Dataset

        train_ds = Dataset.from_list(train_rows)
        eval_ds = Dataset.from_list(eval_rows) if has_eval else None
        peft_config = None
        if mcfg.lora:
            from .models import lora_config

            peft_config = lora_config(mcfg, model_path, self.spec.task)
        kwargs: dict[str, Any] = dict(model=model_path, args=trl_args, train_dataset=train_ds, eval_dataset=eval_ds,
                                      processing_class=tokenizer, peft_config=peft_config)
        if quant is not None:
            kwargs["quantization_config"] = quant
        ref_model = getattr(cfg, "ref_model", None)
        if ref_model:
            kwargs["ref_model"] = self._load_ref_model(ref_model, dtype)
        if self.spec.task == "SEQ_CLS":
            kwargs["model"] = self._reward_model(model_path, model_init_kwargs, quant)
            kwargs.pop("quantization_config", None)
        from transformers import PrinterCallback, ProgressCallback

        from .callbacks import RichProgressCallback, RunLogCallback

        try:
            trainer = trainer_cls(**kwargs)
        except (ValueError, KeyError) as exc:
            self._close_run("failed", error=f"{type(exc).__name__}: {exc}")
            raise PrefkitError(f"{self.kind} trainer setup failed: {exc}") from None
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)
        for cb in trainer.callback_handler.callbacks:  # TensorBoard logs go to <output_dir>/tensorboard
            if type(cb).__name__ == "TensorBoardCallback" and getattr(cb, "logging_dir", None) is None:
                cb.logging_dir = str(out / "tensorboard")
        self.progress_cb = RichProgressCallback(f"{self.kind} training")
        trainer.add_callback(self.progress_cb)
        trainer.add_callback(RunLogCallback(self.run_store))
        for cb in callbacks:
            trainer.add_callback(cb)
        self.trainer = trainer
        self.peft = peft_config is not None
        if self.main:
            from ..console import info

            line = f"{self.kind} data: {self.fit_stats.describe('training rows')}"
            if self.eval_fit_stats is not None:
                line += f"; {self.eval_fit_stats.describe('eval rows')}"
            info(line + (f" · {self.world_size} processes" if self.world_size > 1 else ""))

    # ---------------------------------------------------------------- helpers
    def _close_run(self, status: str, **summary: Any) -> None:
        if self.run_store is not None:
            self.run_store.finish(status, **summary)

    def _merge_start_adapter(self, ref) -> Path:
        """Merge the adapter we start from into ``<out>/base`` (reused when already there)."""
        from accelerate import PartialState

        from ..console import info
        from .models import merge_adapter

        target = self.output_dir / "base"
        with PartialState().main_process_first():
            if not (target / "config.json").exists():
                if self.main:
                    info(f"merging the adapter {ref.path} into its base {ref.base} → {target} "
                         f"(the new {self.kind} run starts a fresh adapter on it"
                         + (" and uses it as the DPO reference)" if self.kind == "dpo" else ")"))
                    merge_adapter(ref.path, target)
        return target

    def _load_ref_model(self, name: str, dtype: str):
        import torch
        from accelerate import PartialState
        from transformers import AutoModelForCausalLM

        from .models import merge_adapter, resolve_model

        r = resolve_model(name)
        path = r.path
        if r.adapter:
            path = str(self.output_dir / "ref")
            with PartialState().main_process_first():
                if not (Path(path) / "config.json").exists() and self.main:
                    merge_adapter(r.path, path)
        return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype) if dtype != "auto" else "auto")

    def _reward_model(self, model_path: str, init_kwargs: dict[str, Any], quant: Any):
        """Load the sequence-classification model ourselves so its pad token id is set (needed to pool)."""
        import torch
        from transformers import AutoModelForSequenceClassification

        kw = dict(init_kwargs)
        dt = kw.pop("dtype", "float32")
        kw["dtype"] = getattr(torch, dt) if isinstance(dt, str) and dt != "auto" else dt
        if quant is not None:
            kw["quantization_config"] = quant
        from trl.trainer.reward_trainer import suppress_seqcls_warning  # type: ignore[attr-defined]

        with suppress_seqcls_warning():
            model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, **kw)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model

    # ---------------------------------------------------------------- run
    def run(self) -> TrainResult:
        out = self.output_dir
        if self.trainer is None:  # finished before: report it, do not retrain
            from ..console import info

            if self.main:
                info(f"{out} holds a finished {self.kind} run; returning it (use --fresh to train again)")
            result = self._result(self.run_store.metrics() if self.run_store else _read_metrics(out))
            self._close_run("done")
            return result
        trainer = self.trainer
        started = time.time()
        try:
            train_out = trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from and
                                      self.cfg.resume else None)
        except KeyboardInterrupt:
            self.progress_cb.close()
            self._close_run("interrupted")
            raise
        except BaseException as exc:
            self.progress_cb.close()
            self._close_run("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        metrics: dict[str, Any] = dict(train_out.metrics)
        if trainer.eval_dataset is not None and self.cfg.eval_strategy != "no":
            metrics.update(trainer.evaluate())
        if self.cfg.load_best and trainer.state.best_model_checkpoint:
            metrics["best_checkpoint"] = Path(trainer.state.best_model_checkpoint).name
            metrics["best_metric"] = trainer.state.best_metric
            best_step = _checkpoint_step(trainer.state.best_model_checkpoint)
            metrics["best_step"] = best_step
            metrics["best_epoch"] = next((h.get("epoch") for h in trainer.state.log_history
                                          if h.get("step") == best_step and self.cfg.metric_for_best in h), None)
        metrics.update(self.fit_stats.to_metrics("train_"))
        if self.eval_fit_stats is not None:
            metrics.update(self.eval_fit_stats.to_metrics("eval_"))
        metrics["world_size"] = int(getattr(trainer.args, "world_size", self.world_size) or 1)
        # the loss curve is drawn in the background while the model is saved (and merged)
        plotter = _Background(loss_plot, list(trainer.state.log_history), out / "loss.png",
                              title=f"{self.kind}: {self.model_ref.name}") if self.main else None
        metrics["global_step"] = trainer.state.global_step
        metrics["wall_time_s"] = round(time.time() - started, 3)
        adapter_dir = merged_dir = None
        try:
            if self.peft:
                adapter_dir = out / "adapter"
                trainer.save_model(str(adapter_dir))
                if self.main:
                    from .models import save_tokenizer

                    save_tokenizer(self.tokenizer, adapter_dir, if_missing=True)
                    _fix_adapter_base(adapter_dir, self.model_path)
                if self.mcfg.merge:
                    merged_dir = out / "merged"
                    if self.main:
                        from .models import merge_adapter

                        merge_adapter(adapter_dir, merged_dir)
            else:
                merged_dir = out / "merged"
                trainer.save_model(str(merged_dir))
                if self.main:
                    from .models import save_tokenizer

                    save_tokenizer(self.tokenizer, merged_dir, if_missing=True)
            if hasattr(trainer.accelerator, "wait_for_everyone"):
                trainer.accelerator.wait_for_everyone()
        except BaseException as exc:
            if plotter is not None:
                plotter.join()
            self._close_run("failed", error=f"saving: {type(exc).__name__}: {exc}")
            raise
        plot = None
        if plotter is not None:
            plot = plotter.join()
            (out / DONE_MARKER).write_text(json.dumps({"global_step": trainer.state.global_step}))
        result = TrainResult(out, adapter_dir, merged_dir, _clean(metrics), plot, self.kind, self.model_path)
        if self.run_store is not None:
            self.run_store.write_metrics({**result.metrics, "adapter_dir": str(adapter_dir) if adapter_dir else None,
                                          "merged_dir": str(merged_dir) if merged_dir else None,
                                          "loss_plot": str(plot) if plot else None, "base_model": self.model_path})
            self._close_run("done")
        return result

    def _result(self, metrics: dict[str, Any]) -> TrainResult:
        out = self.output_dir
        adapter = out / "adapter" if (out / "adapter").is_dir() else None
        merged = out / "merged" if (out / "merged").is_dir() else None
        plot = out / "loss.png" if (out / "loss.png").exists() else None
        keep = {k: v for k, v in metrics.items() if k not in ("adapter_dir", "merged_dir", "loss_plot", "base_model")}
        return TrainResult(out, adapter, merged, keep, plot, self.kind, metrics.get("base_model"))


def _read_metrics(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _checkpoint_step(path: str) -> int | None:
    try:
        return int(Path(path).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


class _Background:
    """Run ``fn(*args, **kwargs)`` in a thread; ``join()`` returns its result (None, with a warning, on failure)."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        self.result: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = fn(*args, **kwargs)
            except Exception as exc:  # a plot must never fail a finished training run
                self.error = exc

        self.thread = threading.Thread(target=target, name="prefkit-plot", daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join()
        if self.error is not None:
            from ..console import warn

            warn(f"could not draw the loss curve: {type(self.error).__name__}: {self.error}")
        return self.result


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        else:
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                out[k] = repr(v)
    return out


def _fix_adapter_base(adapter_dir: Path, base: str) -> None:
    """Make the adapter name its base model by absolute path, so ``merge-adapter`` works from any directory."""
    p = adapter_dir / "adapter_config.json"
    if not p.exists():
        return
    cfg = json.loads(p.read_text())
    if cfg.get("base_model_name_or_path") != base:
        cfg["base_model_name_or_path"] = base
        p.write_text(json.dumps(cfg, indent=2, sort_keys=True))


def loss_plot(log_history: list[dict[str, Any]], path: Path, title: str | None = None) -> Path | None:
    """Train and eval loss over steps; a second panel with DPO reward accuracy and margins
    (train and eval) when the trainer logged them. ``None`` when nothing was logged."""

    def series(key: str) -> list[tuple[int, float]]:
        return [(h["step"], h[key]) for h in log_history if key in h and "step" in h]

    losses = {"train loss": series("loss"), "eval loss": series("eval_loss")}
    rewards = {"train reward accuracy": series("rewards/accuracies"), "eval reward accuracy":
               series("eval_rewards/accuracies"), "train reward margin": series("rewards/margins"),
               "eval reward margin": series("eval_rewards/margins")}
    losses = {k: v for k, v in losses.items() if v}
    rewards = {k: v for k, v in rewards.items() if v}
    if not losses:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if rewards else 1
    fig = Figure(figsize=(6.4, 4.0 * panels))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(panels, 1, i + 1) for i in range(panels)]
    for ax, group, ylabel in zip(axes, (losses, rewards), ("loss", "reward accuracy / margin")):
        for name, points in group.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) <= 60 else None, ms=3,
                    linestyle="--" if name.startswith("eval") else "-", label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------- the three built-in trainers
class SFTTrainerSpec(TRLTrainer):
    """Supervised fine-tuning (TRL SFTTrainer): loss on the assistant turns only (every turn of a
    ``messages`` row, or the last with ``--train-turns last``); ``--train-on-prompt`` trains on all."""

    name = "sft"
    description = "Supervised fine-tuning on prompt/completion or multi-turn messages rows (TRL SFTTrainer)."
    columns = "prompt, completion (or chosen, messages, text)"
    trl_names = ("SFTTrainer", "SFTConfig")
    config_class = SFTTrainConfig

    def normalize_rows(self, rows, cfg, template):
        return normalize_rows("sft", rows, cfg.format, template)

    def fit_rows(self, rows, tokenizer, cfg):
        # tokenized here (labels = -100 outside the assistant turns), so the masks are ours and checked
        return tokenize_sft(rows, tokenizer, fmt=cfg.format, max_length=cfg.max_length,
                            max_prompt_length=cfg.max_prompt_length, train_turns=cfg.train_turns,
                            train_on_prompt=cfg.train_on_prompt, long_responses=cfg.long_responses)

    def trl_args(self, cfg):
        return {"completion_only_loss": None}


class DPOTrainerSpec(TRLTrainer):
    """Direct preference optimization (TRL DPOTrainer); multi-turn prompts, the history cut from its start."""

    name = "dpo"
    description = "Direct preference optimization on prompt/chosen/rejected rows (TRL DPOTrainer)."
    columns = "prompt, chosen, rejected"
    trl_names = ("DPOTrainer", "DPOConfig")
    config_class = DPOTrainConfig

    def normalize_rows(self, rows, cfg, template):
        return normalize_rows("dpo", rows, cfg.format, template)

    def fit_rows(self, rows, tokenizer, cfg):
        return fit_preference_rows(rows, tokenizer, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length,
                                   long_responses=cfg.long_responses)

    def trl_args(self, cfg):
        return {"beta": cfg.beta, "loss_type": cfg.loss_type}


class RewardTrainerSpec(TRLTrainer):
    """A Bradley-Terry reward model (TRL RewardTrainer)."""

    name = "reward"
    description = "Reward model (Bradley-Terry) on prompt/chosen/rejected rows (TRL RewardTrainer)."
    columns = "prompt, chosen, rejected"
    trl_names = ("RewardTrainer", "RewardConfig")
    config_class = RewardTrainConfig
    task = "SEQ_CLS"

    def normalize_rows(self, rows, cfg, template):
        return normalize_rows("reward", rows, cfg.format, template)

    def fit_rows(self, rows, tokenizer, cfg):
        return fit_preference_rows(rows, tokenizer, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length,
                                   long_responses=cfg.long_responses)

    def trl_args(self, cfg):
        return {"center_rewards_coefficient": cfg.center_rewards} if cfg.center_rewards is not None else {}


BUILTIN_TRAINERS: dict[str, type[TRLTrainer]] = {"sft": SFTTrainerSpec, "dpo": DPOTrainerSpec,
                                                 "reward": RewardTrainerSpec}
