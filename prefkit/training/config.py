"""``TrainConfig``: one dataclass for the Python API, the CLI flags and ``--config run.yaml``.

It holds what every trainer shares (steps, learning rate, batch, LoRA, precision,
logging, checkpointing) and maps onto TRL's ``SFTConfig`` / ``DPOConfig`` /
``RewardConfig`` in :mod:`prefkit.training.trainers`. Anything TRL offers that is
not a field here can still be set through ``trl_args`` (a dict passed through
to the TRL config; in a config file: ``trl_args: {warmup_steps: 10}``).
"""


import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..options import opt, split_csv

FORMATS = ("chat", "text")
REPORT_TO = ("none", "tensorboard", "wandb", "all")

#: The default learning rate per (trainer kind, LoRA?) when ``lr`` is not set.
DEFAULT_LR = {
    ("sft", True): 2e-4, ("sft", False): 2e-5,
    ("dpo", True): 5e-5, ("dpo", False): 5e-7,
    ("reward", True): 1e-4, ("reward", False): 1e-5,
}

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


@dataclass
class TrainConfig:
    """Settings of one training run (SFT, DPO or reward model).

    Defaults are sensible for LoRA on a small instruct model; every one is a flag.
    ``lr=None`` picks a default by trainer and LoRA/full fine-tuning (see ``DEFAULT_LR``).
    """

    # ---- schedule
    max_steps: int = opt(-1, help="Stop after this many optimizer steps (-1: train for --epochs).")
    epochs: float = opt(1.0, help="Passes over the training data (when --max-steps is -1).")
    lr: float | None = opt(None, help="Learning rate (default: sft 2e-4 / dpo 5e-5 / reward 1e-4 with LoRA; "
                                      "2e-5 / 5e-7 / 1e-5 for full fine-tuning).")
    batch_size: int = opt(4, help="Per-device batch size.", short="-b")
    grad_accum: int = opt(1, help="Gradient accumulation steps (effective batch = batch size x this x GPUs).")
    warmup: float = opt(0.0, help="Learning-rate warm-up: a fraction of the steps (< 1) or a number of steps.")
    lr_scheduler: str = opt("linear", help="Learning-rate schedule (linear, cosine, constant, ...).")
    weight_decay: float = opt(0.0, help="AdamW weight decay.")
    max_length: int = opt(1024, help="Truncate tokenized sequences (prompt + completion) to this many tokens.")
    seed: int = opt(42, help="Random seed (data order, LoRA init, dropout).")
    # ---- data
    format: str = opt("chat", help="chat: the tokenizer's chat template; text: a plain 'Prompt: ... Response:' "
                                   "template (base models).", parser=_choice(FORMATS, "format"))
    text_template: str = opt(DEFAULT_TEXT_TEMPLATE, help="Prompt template of --format text ({prompt} is replaced).")
    chat_template: str | None = opt(None, help="Use this chat template: a .jinja file or a model/tokenizer directory "
                                               "(for base models without one).")
    train_on_prompt: bool = opt(False, help="SFT: compute the loss on prompt tokens too (default: completion only).")
    # ---- LoRA / PEFT
    lora: bool = opt(True, help="Train a LoRA adapter (--no-lora: full fine-tuning).")
    lora_r: int = opt(16, help="LoRA rank.")
    lora_alpha: int = opt(32, help="LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = opt(0.05, help="LoRA dropout.")
    lora_targets: list[str] | None = opt(None, help="Comma-separated module names to adapt (default: the model's "
                                                    "attention projections; 'all-linear' for every linear layer).",
                                         parser=_targets, cli_type=str)
    load_in_4bit: bool = opt(False, help="QLoRA: load the base model in 4 bit (needs CUDA and bitsandbytes).")
    merge: bool = opt(True, help="After LoRA training, also save the merged full model (<output-dir>/merged).")
    # ---- DPO
    beta: float = opt(0.1, help="DPO: KL strength beta.")
    loss_type: str = opt("sigmoid", help="DPO loss (sigmoid, ipo, hinge, robust, ...; see TRL's DPOConfig).")
    ref_model: str | None = opt(None, help="DPO: reference model (default: the starting model; after an SFT adapter, "
                                           "the merged SFT model).")
    # ---- precision / memory
    bf16: bool | None = opt(None, help="bf16 mixed precision (default: on when the GPU supports it).", cli_type=bool)
    fp16: bool = opt(False, help="fp16 mixed precision (GPUs without bf16).")
    dtype: str | None = opt(None, help="Weights dtype to load (float32, bfloat16, float16, auto; default: bfloat16 "
                                       "for LoRA with bf16, else float32).")
    gradient_checkpointing: bool = opt(False, help="Trade compute for memory (off by default; useful on GPUs).")
    # ---- logging / checkpoints
    report_to: str = opt("none", help="Where to log: none, tensorboard, wandb.", parser=_choice(REPORT_TO, "report-to"))
    logging_steps: int = opt(10, help="Log the loss every N steps.")
    eval_steps: int | None = opt(None, help="Evaluate every N steps when eval data is given (always once at the end).")
    save_steps: int = opt(200, help="Save a checkpoint every N steps (resume with --resume).")
    save_total_limit: int = opt(2, help="Keep only the last N checkpoints.")
    resume: bool = opt(False, help="Continue from the last checkpoint in the output directory (optimizer, "
                                   "scheduler, RNG and data position included).")
    dataloader_workers: int = opt(0, help="Data loader worker processes.")
    # ---- passthrough (Python API / config file only)
    trl_args: dict[str, Any] = opt(default_factory=dict, cli=False,
                                   help="Extra keyword arguments for the TRL config (SFTConfig/DPOConfig/RewardConfig).")
    no_lora: bool = opt(False, cli=False, help="Python-API alias: no_lora=True is lora=False.")

    def __post_init__(self) -> None:
        if self.no_lora:
            self.lora = False
        self.no_lora = not self.lora
        self.format = _choice(FORMATS, "format")(self.format)
        self.report_to = _choice(REPORT_TO, "report-to")(self.report_to)
        if isinstance(self.lora_targets, str):
            self.lora_targets = _targets(self.lora_targets)
        for name in ("batch_size", "grad_accum", "max_length", "lora_r", "logging_steps", "save_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.max_steps == 0 or self.max_steps < -1:
            raise UsageError(f"--max-steps must be positive, or -1 to train for --epochs (got {self.max_steps})")
        if self.max_steps == -1 and self.epochs <= 0:
            raise UsageError(f"--epochs must be positive (got {self.epochs})")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"--lr must be positive (got {self.lr})")
        if self.bf16 and self.fp16:
            raise UsageError("--bf16 and --fp16 cannot both be on")
        if self.format == "text" and "{prompt}" not in self.text_template:
            raise UsageError("--text-template must contain {prompt}")

    # ------------------------------------------------------------------ helpers
    def learning_rate(self, kind: str) -> float:
        if self.lr is not None:
            return float(self.lr)
        return DEFAULT_LR.get((kind, bool(self.lora)), 1e-5)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("no_lora", None)
        return d

    def identity(self) -> dict[str, Any]:
        """The settings that decide what a run trains (resuming with others is refused)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_CONTROL_FIELDS}

    def replace(self, **changes: Any) -> "TrainConfig":
        d = self.to_dict()
        d.update(changes)
        return TrainConfig(**d)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> "TrainConfig":
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


def merge_config(file_values: dict[str, Any], cli_config: TrainConfig, explicit: set[str],
                 *, where: str = "config") -> TrainConfig:
    """File settings, overridden by the flags given explicitly on the command line."""
    base = TrainConfig.from_dict({k: v for k, v in file_values.items() if k in TrainConfig.field_names()}, where=where)
    overrides = {k: getattr(cli_config, k) for k in explicit if k in TrainConfig.field_names()}
    if "lora" in overrides:
        overrides["no_lora"] = not overrides["lora"]
    return base.replace(**overrides) if overrides else base
