"""Training settings, split the way TRL splits them.

* :class:`BaseTrainConfig` — what every trainer shares: schedule and optimisation,
  data format and lengths, evaluation and the best checkpoint, logging and checkpoints.
* :class:`TrainModelConfig` — the model side (TRL's ``ModelConfig``): LoRA (rank, alpha,
  dropout, targets), 4-bit quantisation, dtype and mixed precision, merging.
* one config per trainer on top of the base: :class:`SFTTrainConfig`,
  :class:`DPOTrainConfig`, :class:`RewardTrainConfig` (a plugin's trainer brings its own
  subclass of :class:`BaseTrainConfig`).

Each config class is at once the Python API, the CLI flags of ``prefkit train NAME`` (only
that trainer's fields and the model fields: ``prefkit train sft`` has no ``--beta``) and the
keys of a ``--config run.yaml`` file and of a preset (:mod:`prefkit.training.presets`).
Settings are resolved in layers, later ones winning: the class defaults < a preset <
a config file < flags given on the command line (:func:`resolve_configs`).

Anything TRL offers that is not a field here can still be set through ``trl_args`` (a dict
passed to TRL's config class; in a file: ``trl_args: {warmup_steps: 10}``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UsageError
from ..options import opt, split_csv

FORMATS = ("chat", "text")
REPORT_TO = ("none", "tensorboard", "wandb", "all")
EVAL_STRATEGIES = ("end", "steps", "epoch", "no")
TRAIN_TURNS = ("all", "last")
LONG_RESPONSES = ("truncate", "drop")

#: The prompt template of ``--format text`` (base models, as in the persona-tailoring research code).
DEFAULT_TEXT_TEMPLATE = "Prompt: {prompt}\nResponse:"

# fields that do not change what a finished run contains (may differ when resuming)
RUN_CONTROL_FIELDS = frozenset({
    "max_steps", "epochs", "resume", "report_to", "logging_steps", "save_steps", "eval_steps", "save_total_limit",
    "merge", "gradient_checkpointing", "dataloader_workers",
})


def _choice(allowed: tuple[str, ...], name: str):
    def parse(value: Any) -> str:
        v = str(value).strip().lower()
        if v not in allowed:
            raise UsageError(f"--{name} must be one of {', '.join(allowed)} (got {value!r})")
        return v

    return parse


def _targets(value: Any) -> list[str] | None:
    items = split_csv(value)
    return items or None


def _at_least(cfg: Any, names: tuple[str, ...], low: int = 1) -> None:
    for name in names:
        v = getattr(cfg, name, None)
        if v is not None and v < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low} (got {v})")


class _Settings:
    """Helpers shared by the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (validated again)."""
        d = self.to_dict()
        unknown = set(changes) - set(d)
        if unknown:
            raise UsageError(f"unknown {type(self).__name__} setting(s): {', '.join(sorted(unknown))}")
        d.update(changes)
        return type(self)(**d)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config"):
        known = set(cls.field_names())
        clean = {}
        for k, v in data.items():
            key = str(k).replace("-", "_")
            if key not in known:
                raise UsageError(f"{where}: unknown training setting {k!r} (known: {', '.join(sorted(known))})")
            clean[key] = v
        try:
            return cls(**clean)
        except TypeError as exc:
            raise UsageError(f"{where}: {exc}") from None


@dataclass
class TrainModelConfig(_Settings):
    """The model side of a run (TRL's ``ModelConfig``): LoRA, quantisation, precision, merging.

    ``lora_targets=None`` picks the attention projections of the model's architecture from
    :data:`prefkit.training.models.LORA_TARGETS` (documented in ``docs/training.md``).
    """

    lora: bool = opt(True, help="Train a LoRA adapter (--no-lora: full fine-tuning).")
    lora_r: int = opt(16, help="LoRA rank.")
    lora_alpha: int = opt(32, help="LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = opt(0.05, help="LoRA dropout.")
    lora_targets: list[str] | None = opt(None, help="Comma-separated module names to adapt (default: the attention "
                                                    "projections of the architecture, see docs/training.md; "
                                                    "'all-linear' for every linear layer).",
                                         parser=_targets, cli_type=str)
    load_in_4bit: bool = opt(False, help="QLoRA: load the base model in 4 bit (needs CUDA and bitsandbytes).")
    merge: bool = opt(True, help="After LoRA training, also save the merged full model (<output-dir>/merged).")
    bf16: bool | None = opt(None, help="bf16 mixed precision (default: on when the GPU supports it).", cli_type=bool)
    fp16: bool = opt(False, help="fp16 mixed precision (GPUs without bf16).")
    dtype: str | None = opt(None, help="Weights dtype to load (float32, bfloat16, float16, auto; default: bfloat16 "
                                       "for LoRA with bf16, else float32).")
    gradient_checkpointing: bool = opt(False, help="Trade compute for memory (off by default; useful on GPUs).")

    def __post_init__(self) -> None:
        if isinstance(self.lora_targets, str):
            self.lora_targets = _targets(self.lora_targets)
        _at_least(self, ("lora_r",))
        if self.bf16 and self.fp16:
            raise UsageError("--bf16 and --fp16 cannot both be on")
        if not 0 <= float(self.lora_dropout) < 1:
            raise UsageError(f"--lora-dropout must be in [0, 1) (got {self.lora_dropout})")


@dataclass
class BaseTrainConfig(_Settings):
    """What every trainer shares: schedule, optimisation, data, evaluation, logging, checkpoints.

    A trainer's own config subclasses this and adds its fields (see :class:`DPOTrainConfig`).
    ``lr=None`` picks the class's ``default_lr`` (LoRA, full fine-tuning).
    """

    #: the learning rate when ``lr`` is not set: (with LoRA, full fine-tuning)
    default_lr: ClassVar[tuple[float, float]] = (1e-4, 1e-5)

    # ---- schedule / optimisation
    max_steps: int = opt(-1, help="Stop after this many optimizer steps (-1: train for --epochs).")
    epochs: float = opt(1.0, help="Passes over the training data (when --max-steps is -1).")
    lr: float | None = opt(None, help="Learning rate (default: per trainer; see `prefkit trainers`).")
    batch_size: int = opt(4, help="Per-device batch size.", short="-b")
    grad_accum: int = opt(1, help="Gradient accumulation steps (effective batch = batch size x this x processes).")
    warmup: float = opt(0.0, help="Learning-rate warm-up: a fraction of the steps (< 1) or a number of steps.")
    lr_scheduler: str = opt("linear", help="Learning-rate schedule (linear, cosine, constant, ...).")
    weight_decay: float = opt(0.0, help="AdamW weight decay.")
    seed: int = opt(42, help="Random seed (data order, LoRA init, dropout).")
    # ---- data
    max_length: int = opt(1024, help="Most tokens of prompt + response; a longer prompt or conversation history is "
                                     "cut from its start so the response fits whole (counted).")
    max_prompt_length: int | None = opt(None, help="Most tokens of the prompt / conversation history (cut from its "
                                                   "start; default: whatever --max-length leaves).")
    long_responses: str = opt("truncate", help="A response too long to fit whole in --max-length: truncate (cut "
                                               "its end, as TRL does) or drop its row; both counted.",
                              parser=_choice(LONG_RESPONSES, "long-responses"))
    format: str = opt("chat", help="chat: the tokenizer's chat template; text: a plain 'Prompt: ... Response:' "
                                   "template (base models).", parser=_choice(FORMATS, "format"))
    text_template: str = opt(DEFAULT_TEXT_TEMPLATE, help="Prompt template of --format text ({prompt} is replaced).")
    chat_template: str | None = opt(None, help="Use this chat template: a .jinja file or a model/tokenizer directory "
                                               "(for base models without one).")
    # ---- evaluation and the best checkpoint
    eval_strategy: str = opt("end", help="When to evaluate on the eval data: end (once, after training), steps "
                                         "(every --eval-steps), epoch (after each epoch) or no.",
                             parser=_choice(EVAL_STRATEGIES, "eval-strategy"))
    eval_steps: int | None = opt(None, help="Evaluate every N steps (implies --eval-strategy steps).")
    load_best: bool = opt(False, help="At the end, keep the checkpoint with the best --metric-for-best (needs eval "
                                      "data and --eval-strategy steps or epoch).")
    metric_for_best: str = opt("eval_loss", help="Metric that picks the best checkpoint (lower is better for "
                                                 "losses, higher otherwise).")
    # ---- logging / checkpoints
    report_to: str = opt("none", help="Where to log: none, tensorboard, wandb.", parser=_choice(REPORT_TO, "report-to"))
    logging_steps: int = opt(10, help="Log the loss every N steps.")
    save_steps: int = opt(200, help="Save a checkpoint every N steps (resume with --resume).")
    save_total_limit: int = opt(2, help="Keep only the last N checkpoints (the best one is kept too).")
    resume: bool = opt(False, help="Continue from the last checkpoint in the output directory (optimizer, "
                                   "scheduler, RNG and data position included).")
    dataloader_workers: int = opt(0, help="Data loader worker processes.")
    # ---- passthrough (Python API / config file only)
    trl_args: dict[str, Any] = opt(default_factory=dict, cli=False,
                                   help="Extra keyword arguments for the TRL config class.")

    def __post_init__(self) -> None:
        self.format = _choice(FORMATS, "format")(self.format)
        self.report_to = _choice(REPORT_TO, "report-to")(self.report_to)
        self.eval_strategy = _choice(EVAL_STRATEGIES, "eval-strategy")(self.eval_strategy)
        self.long_responses = _choice(LONG_RESPONSES, "long-responses")(self.long_responses)
        if self.eval_steps is not None and self.eval_strategy == "end":
            self.eval_strategy = "steps"
        _at_least(self, ("batch_size", "grad_accum", "max_length", "logging_steps", "save_steps", "eval_steps",
                         "max_prompt_length", "save_total_limit"))
        if self.max_steps == 0 or self.max_steps < -1:
            raise UsageError(f"--max-steps must be positive, or -1 to train for --epochs (got {self.max_steps})")
        if self.max_steps == -1 and self.epochs <= 0:
            raise UsageError(f"--epochs must be positive (got {self.epochs})")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"--lr must be positive (got {self.lr})")
        if self.format == "text" and "{prompt}" not in self.text_template:
            raise UsageError("--text-template must contain {prompt}")
        if self.max_prompt_length is not None and self.max_prompt_length >= self.max_length:
            raise UsageError(f"--max-prompt-length ({self.max_prompt_length}) must be below --max-length "
                             f"({self.max_length}): the response needs room")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise UsageError("--eval-strategy steps needs --eval-steps N")
        if self.load_best and self.eval_strategy not in ("steps", "epoch"):
            raise UsageError("--load-best needs evaluation during training: --eval-strategy epoch or --eval-steps N")

    def learning_rate(self, lora: bool = True) -> float:
        if self.lr is not None:
            return float(self.lr)
        return self.default_lr[0 if lora else 1]

    def identity(self) -> dict[str, Any]:
        """The settings that decide what a run trains (resuming with others is refused)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_CONTROL_FIELDS}


@dataclass
class SFTTrainConfig(BaseTrainConfig):
    """Supervised fine-tuning (TRL ``SFTTrainer``): loss on the assistant turns only.

    ``messages`` rows train every assistant turn (``train_turns="last"``: only the last one);
    prompt/completion rows train the completion. ``train_on_prompt`` puts the loss on every token.
    """

    default_lr: ClassVar[tuple[float, float]] = (2e-4, 2e-5)

    train_on_prompt: bool = opt(False, help="Compute the loss on prompt/user/system tokens too (default: the "
                                            "assistant turns only).")
    train_turns: str = opt("all", help="messages rows: train on all assistant turns, or only the last.",
                           parser=_choice(TRAIN_TURNS, "train-turns"))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.train_turns = _choice(TRAIN_TURNS, "train-turns")(self.train_turns)


@dataclass
class DPOTrainConfig(BaseTrainConfig):
    """Direct preference optimization (TRL ``DPOTrainer``).

    ``prompt`` may be a multi-turn conversation; ``chosen``/``rejected`` are the next assistant
    message. The reference is the starting model (after an SFT stage: the SFT model).
    """

    default_lr: ClassVar[tuple[float, float]] = (5e-5, 5e-7)

    beta: float = opt(0.1, help="KL strength beta.")
    loss_type: str = opt("sigmoid", help="DPO loss (sigmoid, ipo, hinge, robust, ...; see TRL's DPOConfig).")
    ref_model: str | None = opt(None, help="Reference model (default: the starting model; after an SFT adapter, "
                                           "the merged SFT model).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise UsageError(f"--beta must be positive (got {self.beta})")


@dataclass
class RewardTrainConfig(BaseTrainConfig):
    """A Bradley-Terry reward model (TRL ``RewardTrainer``, sequence classification head)."""

    default_lr: ClassVar[tuple[float, float]] = (1e-4, 1e-5)

    center_rewards: float | None = opt(None, help="Coefficient of the term that centres rewards on zero "
                                                  "(TRL's center_rewards_coefficient; default: off).")


class TrainConfig:
    """Flat training settings for any trainer (the pre-split API, kept for callers of ``prefkit.train``).

    ``TrainConfig(max_steps=100, beta=0.1, lora_r=8)`` holds keyword settings of a trainer config
    and :class:`TrainModelConfig`; ``prefkit.train(kind, ..., config=TrainConfig(...))`` resolves
    them against ``kind``'s config class (a setting the trainer does not have is an error).
    New code passes the trainer's own config class (``DPOTrainConfig(...)``) or a dict.
    """

    def __init__(self, **settings: Any):
        if settings.pop("no_lora", False):
            settings["lora"] = False
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._settings[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self._settings)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig(**{**self._settings, **changes})

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self._settings.items())})"


def config_values(config: Any) -> dict[str, Any]:
    """The explicit settings of ``config`` (a dict, a :class:`TrainConfig`, or a config dataclass)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return {str(k).replace("-", "_"): v for k, v in config.items()}
    if isinstance(config, TrainConfig):
        return config.to_dict()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    raise UsageError(f"a training config must be a dict or a config dataclass, got {type(config).__name__}")


def resolve_configs(config_class: type, layers: list[tuple[str, dict[str, Any]]]) -> tuple[Any, TrainModelConfig,
                                                                                            dict[str, str]]:
    """Build ``(trainer config, model config, source of each setting)`` from layered settings.

    ``layers``: ``[(source, {setting: value}), ...]`` in increasing precedence, e.g.
    ``[("preset persona-tailoring-paper", {...}), ("--config run.yaml", {...}), ("flag", {...})]``.
    Each key goes to ``config_class`` or to :class:`TrainModelConfig`; an unknown key is one
    error naming its source and the known settings.
    """
    own = set(config_class.field_names())
    model_keys = set(TrainModelConfig.field_names())
    cfg_values: dict[str, Any] = {}
    model_values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        for k, v in values.items():
            key = str(k).replace("-", "_")
            if key == "no_lora":
                key, v = "lora", not v
            if key in own:
                cfg_values[key] = v
            elif key in model_keys:
                model_values[key] = v
            else:
                known = ", ".join(sorted(own | model_keys))
                raise UsageError(f"{source}: {key!r} is not a setting of this trainer (known: {known})")
            sources[key] = source
    try:
        cfg = config_class(**cfg_values)
        model_cfg = TrainModelConfig(**model_values)
    except TypeError as exc:
        raise UsageError(f"training settings: {exc}") from None
    return cfg, model_cfg, sources


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON run config (a mapping)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise UsageError(f"--config {path}: cannot parse ({type(exc).__name__}: {exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def explicit_settings(ctx: Any, *configs: Any) -> dict[str, Any]:
    """The settings of ``configs`` (config dataclasses built from CLI flags) given explicitly on the
    command line of the click/typer context ``ctx`` — the "flags" layer over a preset and a file.

    ``@with_options(DPOTrainConfig, "cfg")`` commands call ``explicit_settings(ctx, cfg, mcfg)``
    and pass the result as ``config=`` so that only what the user typed overrides the preset.
    """
    given = set()
    for name in ctx.params:
        src = ctx.get_parameter_source(name)
        # compare by name: typer may ship its own click, with its own ParameterSource enum
        if getattr(src, "name", None) in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(name)
    out: dict[str, Any] = {}
    for cfg in configs:
        if cfg is None:
            continue
        for f in dataclasses.fields(cfg):
            if f.name in given:
                out[f.name] = getattr(cfg, f.name)
    return out
