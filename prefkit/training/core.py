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
from .config import TrainConfig
from .formats import TextTemplate, fingerprint, normalize_rows, require_chat_template

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


def _mixed_precision(cfg: TrainConfig) -> tuple[bool, bool]:
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


class TRLTrainer:
    """Base of the built-in trainers. Subclasses name the TRL classes and their specific settings."""

    name = ""
    description = ""
    #: TRL column layout this trainer consumes (for help texts)
    columns = ""

    #: names of the TRL trainer and config classes, e.g. ("SFTTrainer", "SFTConfig")
    trl_names: tuple[str, str] | None = None

    # ---------------------------------------------------------------- to override
    def trl_classes(self) -> tuple[type, type]:
        """The TRL trainer and config classes (by default the ``trl_names`` of the ``trl`` package)."""
        if not self.trl_names:
            raise NotImplementedError(f"trainer {self.name!r} names no TRL classes (trl_names)")
        import trl

        trainer, config = self.trl_names
        return getattr(trl, trainer), getattr(trl, config)

    def kind_args(self, cfg: TrainConfig) -> dict[str, Any]:
        return {}

    # ---------------------------------------------------------------- API
    def train(self, model: str | Path, train_data: Any, eval_data: Any = None, config: TrainConfig | None = None,
              output_dir: str | Path | None = None, text_template: TextTemplate | None = None, *,
              run_name: str | None = None, fresh: bool = False, callbacks: Sequence[Any] = (),
              argv: list[str] | None = None) -> TrainResult:
        with quiet_libraries():
            prepared = self.prepare(model, train_data, eval_data, config, output_dir, text_template,
                                    run_name=run_name, fresh=fresh, callbacks=callbacks, argv=argv)
            return prepared.run()

    def prepare(self, model: str | Path, train_data: Any, eval_data: Any = None, config: TrainConfig | None = None,
                output_dir: str | Path | None = None, text_template: TextTemplate | None = None, *,
                run_name: str | None = None, fresh: bool = False, callbacks: Sequence[Any] = (),
                argv: list[str] | None = None) -> "PreparedTraining":
        """Everything up to ``trainer.train()``: the TRL trainer is built (``.trainer``) but not run."""
        with quiet_libraries():
            return PreparedTraining(self, model, train_data, eval_data, config or TrainConfig(), output_dir,
                                    text_template, run_name, fresh, list(callbacks), argv)


class PreparedTraining:
    """One training run, set up. ``.trainer`` is the TRL trainer; ``.run()`` trains and saves."""

    def __init__(self, spec: TRLTrainer, model, train_data, eval_data, cfg: TrainConfig, output_dir,
                 text_template, run_name, fresh, callbacks, argv):
        from .models import cuda_available, quantization_config, resolve_model

        self.spec = spec
        self.kind = spec.name
        self.cfg = cfg
        self.main = is_main_process()
        template = text_template if text_template is not None else cfg.text_template
        self.template = template
        quant = quantization_config(cfg)  # fails fast without CUDA
        ref = resolve_model(model)
        self.model_ref = ref

        # ---- tokenizer and data (cheap, so bad input fails before anything is written)
        from .models import load_tokenizer

        tokenizer = load_tokenizer(ref.path, fallback=ref.base)
        if cfg.chat_template:
            _set_chat_template(tokenizer, cfg.chat_template)
        if cfg.format == "chat":
            require_chat_template(tokenizer, ref.name)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        train_rows = normalize_rows(self.kind, _rows(train_data), cfg.format, template)
        eval_rows = normalize_rows(self.kind, _rows(eval_data), cfg.format, template) if eval_data is not None else None

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
                    **{k: v for k, v in cfg.identity().items() if k != "text_template"}}
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
            self.run_store = Run.open("train", config={"kind": self.kind, "model": ref.name, **cfg.to_dict()},
                                      identity=identity, output_dir=out, fresh=fresh, argv=argv)
            self.run_store.fsync_every = 20  # step logs: flushed per line, synced every 20 (checkpoints hold the state)
        self.resume_from = last_checkpoint(out)
        if (out / DONE_MARKER).exists() and not cfg.resume:
            self.already_done = True       # a finished run: return it, do not train again
        elif self.resume_from is not None and not cfg.resume:
            status = self.run_store.manifest.get("status") if self.run_store else None
            self._close_run("failed", error="checkpoints exist; not resumed")
            raise UsageError(f"{out} already has checkpoints of an unfinished run (status: {status}); pass "
                             "--resume to continue from the last one, or --fresh to start over")
        if cfg.resume and self.resume_from is None:
            from ..console import info

            info(f"no checkpoint in {out / CHECKPOINTS}; training from the start")
        if self.already_done and not cfg.resume:
            self.trainer = None
            return

        # ---- the starting model: an adapter is merged first (never wrap a PeftModel twice)
        model_path = ref.path
        if ref.adapter:
            model_path = str(self._merge_start_adapter(ref))
        model_path = _abs(model_path)
        self.model_path = model_path

        # ---- TRL config, PEFT config, trainer
        trainer_cls, config_cls = self.spec.trl_classes()
        bf16, fp16 = _mixed_precision(cfg)
        has_eval = eval_rows is not None
        if cfg.dtype:
            dtype = cfg.dtype
        elif quant is not None:
            dtype = "bfloat16" if bf16 else "float16"
        else:
            dtype = "bfloat16" if (cfg.lora and bf16) else "float32"
        model_init_kwargs: dict[str, Any] = {"dtype": dtype}
        args: dict[str, Any] = dict(
            output_dir=str(out / CHECKPOINTS),
            max_steps=cfg.max_steps, num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate(self.kind),
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            warmup_steps=cfg.warmup, lr_scheduler_type=cfg.lr_scheduler, weight_decay=cfg.weight_decay,
            max_length=cfg.max_length, seed=cfg.seed, data_seed=cfg.seed,
            bf16=bf16, fp16=fp16, gradient_checkpointing=cfg.gradient_checkpointing,
            report_to=[] if cfg.report_to == "none" else [cfg.report_to] if cfg.report_to != "all" else "all",
            logging_steps=cfg.logging_steps, logging_first_step=True,
            save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
            eval_strategy="steps" if (has_eval and cfg.eval_steps) else "no",  # and once at the end
            eval_steps=cfg.eval_steps, dataloader_num_workers=cfg.dataloader_workers,
            disable_tqdm=True, model_init_kwargs=model_init_kwargs, dataloader_pin_memory=cuda_available(),
        )
        args.update(self.spec.kind_args(cfg))
        args.update(cfg.trl_args)
        try:
            trl_args = config_cls(**args)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid training settings: {exc}") from None
        self.trl_args = trl_args

        from datasets import Dataset

        train_ds = Dataset.from_list(train_rows)
        eval_ds = Dataset.from_list(eval_rows) if eval_rows is not None else None
        peft_config = None
        if cfg.lora:
            from .models import lora_config

            peft_config = lora_config(cfg, model_path, self.kind)
        kwargs: dict[str, Any] = dict(model=model_path, args=trl_args, train_dataset=train_ds, eval_dataset=eval_ds,
                                      processing_class=tokenizer, peft_config=peft_config)
        if quant is not None:
            kwargs["quantization_config"] = quant
        if self.kind == "dpo" and cfg.ref_model:
            kwargs["ref_model"] = self._load_ref_model(cfg.ref_model, dtype)
        if self.kind == "reward":
            kwargs["model"] = self._reward_model(model_path, model_init_kwargs, quant)
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
        from transformers import AutoModelForCausalLM

        from .models import merge_adapter, resolve_model

        r = resolve_model(name)
        path = r.path
        if r.adapter:
            path = str(self.output_dir / "ref")
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

            info(f"{out} holds a finished {self.kind} run; returning it (use --fresh to train again)")
            result = self._result(self.run_store.metrics() if self.run_store else {})
            self._close_run("completed")
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
        if trainer.eval_dataset is not None:
            metrics.update(trainer.evaluate())
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
                if self.cfg.merge:
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
            self._close_run("completed")
        return result

    def _result(self, metrics: dict[str, Any]) -> TrainResult:
        out = self.output_dir
        adapter = out / "adapter" if (out / "adapter").is_dir() else None
        merged = out / "merged" if (out / "merged").is_dir() else None
        plot = out / "loss.png" if (out / "loss.png").exists() else None
        keep = {k: v for k, v in metrics.items() if k not in ("adapter_dir", "merged_dir", "loss_plot", "base_model")}
        return TrainResult(out, adapter, merged, keep, plot, self.kind, metrics.get("base_model"))


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
    """Draw training (and eval) loss over steps; ``None`` when nothing was logged."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    try:
        from ..reports.plots import line_plot
    except ImportError:
        line_plot = None
    steps = sorted({s for s, _ in train} | {s for s, _ in evals})
    series = {"train loss": [dict(train).get(s) for s in steps]}
    if evals:
        series["eval loss"] = [dict(evals).get(s) for s in steps]
    if line_plot is not None:
        try:
            line_plot(steps, series, path=path, title=title, xlabel="step", ylabel="loss", formats=("png",),
                      dpi=110, markers=len(steps) <= 60)
            return path
        except Exception:  # fall back to a minimal plot of our own
            pass
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), marker="o", label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="s", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------- the three built-in trainers
class SFTTrainerSpec(TRLTrainer):
    """Supervised fine-tuning (TRL SFTTrainer); loss on the completion only unless --train-on-prompt."""

    name = "sft"
    description = "Supervised fine-tuning on prompt/completion rows (TRL SFTTrainer)."
    columns = "prompt, completion (or chosen, messages, text)"
    trl_names = ("SFTTrainer", "SFTConfig")

    def kind_args(self, cfg):
        return {"completion_only_loss": not cfg.train_on_prompt}


class DPOTrainerSpec(TRLTrainer):
    """Direct preference optimization (TRL DPOTrainer)."""

    name = "dpo"
    description = "Direct preference optimization on prompt/chosen/rejected rows (TRL DPOTrainer)."
    columns = "prompt, chosen, rejected"
    trl_names = ("DPOTrainer", "DPOConfig")

    def kind_args(self, cfg):
        return {"beta": cfg.beta, "loss_type": cfg.loss_type}


class RewardTrainerSpec(TRLTrainer):
    """A Bradley-Terry reward model (TRL RewardTrainer)."""

    name = "reward"
    description = "Reward model (Bradley-Terry) on prompt/chosen/rejected rows (TRL RewardTrainer)."
    columns = "prompt, chosen, rejected"
    trl_names = ("RewardTrainer", "RewardConfig")


BUILTIN_TRAINERS: dict[str, type[TRLTrainer]] = {"sft": SFTTrainerSpec, "dpo": DPOTrainerSpec,
                                                 "reward": RewardTrainerSpec}
