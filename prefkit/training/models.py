"""Models for training: resolving what ``--model`` names, LoRA targets, adapters and merging.

``--model`` may be:

* a Hugging Face hub id or a local model directory (``config.json``);
* a PEFT adapter directory (``adapter_config.json``): its base model is read
  from the adapter config; for further training it is merged first (a
  ``PeftModel`` is never wrapped twice);
* a prefkit training run directory (``runs/train/...``): its ``merged/`` model
  when there is one, else its ``adapter/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PrefkitError, UsageError

ADAPTER_CONFIG = "adapter_config.json"

# Attention projection names across architectures, most specific first
_ATTENTION_SETS = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),          # Llama, Mistral, Qwen, SmolLM, Gemma
    ("q_proj", "k_proj", "v_proj", "out_proj"),        # OPT, Phi-1/2, BART
    ("qkv_proj", "o_proj"),                            # Phi-3
    ("query_key_value", "dense"),                      # GPT-NeoX, Falcon, Bloom
    ("Wqkv", "out_proj"),                              # MPT
    ("c_attn", "c_proj"),                              # GPT-2
    ("query", "key", "value"),                         # BERT-like
    ("q", "k", "v", "o"),                              # T5
)


@dataclass
class ModelRef:
    """What a ``--model`` value points at."""

    name: str                      # as given
    path: str                      # model dir / hub id to load (the adapter dir for adapters)
    adapter: bool = False          # a PEFT adapter directory
    base: str | None = None        # an adapter's base model


def _local(value: str | Path) -> Path | None:
    p = Path(value).expanduser()
    return p if p.exists() else None


def resolve_model(model: str | Path) -> ModelRef:
    name = str(model)
    p = _local(model)
    if p is None:
        if name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise UsageError(f"model {name!r}: no such directory")
        return ModelRef(name, _alias(name))  # a hub id (or an alias of the backends layer)
    if p.is_file():
        raise UsageError(f"model {name!r} is a file; pass a model directory or a hub id")
    if (p / "manifest.json").exists() and not (p / "config.json").exists() and not (p / ADAPTER_CONFIG).exists():
        for sub in ("merged", "adapter"):
            if (p / sub).is_dir():
                inner = resolve_model(p / sub)
                inner.name = name
                return inner
        raise UsageError(f"{p} is a prefkit run directory without a trained model (no merged/ or adapter/)")
    if (p / ADAPTER_CONFIG).exists():
        return ModelRef(name, str(p), adapter=True, base=adapter_base(p))
    if not (p / "config.json").exists():
        raise UsageError(f"{p} is not a model directory (no config.json or {ADAPTER_CONFIG})")
    return ModelRef(name, str(p))


def _alias(name: str) -> str:
    """Resolve a model alias of the backends layer (``prefkit models``: ``smollm2`` ...), when it has them."""
    try:
        from ..backends.models import resolve_model as backend_resolve
    except ImportError:
        return name
    try:
        out = backend_resolve(name)
    except UsageError:
        raise
    except Exception:
        return name
    return str(out) if isinstance(out, (str, Path)) else name


def adapter_base(adapter_dir: str | Path) -> str:
    cfg_path = Path(adapter_dir) / ADAPTER_CONFIG
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{cfg_path}: cannot read the adapter config ({exc})") from None
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise UsageError(f"{cfg_path} does not name its base model (base_model_name_or_path)")
    return str(base)


def adapter_task(adapter_dir: str | Path) -> str | None:
    try:
        return json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text()).get("task_type")
    except Exception:
        return None


def load_tokenizer(path: str, fallback: str | None = None):
    from transformers import AutoTokenizer

    last: Exception | None = None
    for p in [path, fallback]:
        if not p:
            continue
        try:
            return AutoTokenizer.from_pretrained(p)
        except Exception as exc:  # try the fallback (an adapter dir may have no tokenizer)
            last = exc
    raise PrefkitError(f"cannot load a tokenizer for {path}: {type(last).__name__}: {last}")


#: Default LoRA targets per architecture (``config.model_type``): the attention projections.
#: Documented in docs/training.md. Architectures not listed: detected from the module names
#: (:func:`attention_targets_of`), else ``all-linear``. ``--lora-targets peft-default`` uses PEFT's
#: own per-architecture default instead (q_proj,v_proj on Llama/Mistral/Qwen), ``attention`` this table.
LORA_TARGETS: dict[str, list[str]] = {
    **{t: ["q_proj", "k_proj", "v_proj", "o_proj"] for t in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
        "olmo", "olmo2", "granite", "cohere", "starcoder2", "smollm3", "phimoe", "deepseek_v2", "glm")},
    **{t: ["q_proj", "k_proj", "v_proj", "out_proj"] for t in ("opt", "bart")},
    **{t: ["q_proj", "k_proj", "v_proj", "dense"] for t in ("phi",)},
    **{t: ["qkv_proj", "o_proj"] for t in ("phi3",)},
    **{t: ["query_key_value", "dense"] for t in ("gpt_neox", "falcon", "bloom")},
    "gpt2": ["c_attn", "c_proj"],
    "gpt_bigcode": ["c_attn", "c_proj"],
    "mpt": ["Wqkv", "out_proj"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "t5": ["q", "k", "v", "o"],
    **{t: ["query", "key", "value"] for t in ("bert", "roberta", "deberta", "deberta-v2", "distilbert")},
}


def attention_targets(model_path: str, *, kind: str = "sft") -> list[str] | str:
    """LoRA target modules for ``model_path``: :data:`LORA_TARGETS` by ``model_type``; other
    architectures: the attention projections found on the meta-device model (no weights read),
    else ``'all-linear'``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_path)
    if getattr(config, "model_type", None) in LORA_TARGETS:
        return list(LORA_TARGETS[config.model_type])
    cls = AutoModelForSequenceClassification if kind in ("reward", "SEQ_CLS") else AutoModelForCausalLM
    try:
        with torch.device("meta"):
            model = cls.from_config(config)
    except Exception:
        return "all-linear"
    return attention_targets_of(model)


def attention_targets_of(model: Any) -> list[str] | str:
    leaves: set[str] = set()
    for full, module in model.named_modules():
        parts = full.split(".")
        if len(parts) < 2 or list(module.children()):
            continue
        if any("attn" in p.lower() or "attention" in p.lower() for p in parts[:-1]):
            leaves.add(parts[-1])
    for names in _ATTENTION_SETS:
        if all(n in leaves for n in names):
            return list(names)
    return "all-linear"


def resolve_lora_targets(mcfg: Any, model_path: str, task: str = "CAUSAL_LM") -> list[str] | str | None:
    """What ``target_modules`` PEFT gets (``None``: PEFT's own default for the architecture)."""
    targets = mcfg.lora_targets
    if targets is None or targets == ["attention"]:
        return attention_targets(model_path, kind=task)
    if targets == ["all-linear"]:
        return "all-linear"
    if targets == ["peft-default"]:
        return None
    return list(targets)


def lora_config(mcfg: Any, model_path: str, task: str = "CAUSAL_LM"):
    from peft import LoraConfig

    task = "SEQ_CLS" if task in ("reward", "SEQ_CLS") else "CAUSAL_LM"
    targets = resolve_lora_targets(mcfg, model_path, task)
    if targets is None:  # PEFT's default per architecture, resolved here so the manifest can show it
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults
        from transformers import AutoConfig

        model_type = getattr(AutoConfig.from_pretrained(model_path), "model_type", None)
        if model_type not in peft_defaults:
            raise UsageError(f"--lora-targets peft-default: PEFT has no default for model type {model_type!r}; "
                             "name the modules")
        targets = list(peft_defaults[model_type])
    return LoraConfig(r=mcfg.lora_r, lora_alpha=mcfg.lora_alpha, lora_dropout=mcfg.lora_dropout,
                      target_modules=targets, bias="none", task_type=task)


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def quantization_config(cfg: Any):
    """The 4-bit (QLoRA) config; a clear error without CUDA or bitsandbytes."""
    if not cfg.load_in_4bit:
        return None
    if not cfg.lora:
        raise UsageError("--load-in-4bit trains a LoRA adapter on a 4-bit base (QLoRA); it cannot be combined with --no-lora")
    if not cuda_available():
        raise UsageError("--load-in-4bit (QLoRA) needs a CUDA GPU, and none is available; drop --load-in-4bit to "
                         "train LoRA on a full-precision model")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UsageError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes") from None
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def save_tokenizer(tokenizer: Any, out_dir: str | Path, *, if_missing: bool = False) -> None:
    """Save the tokenizer (and so its chat template) beside a model or adapter.

    ``if_missing``: skip when the directory already holds a tokenizer config (the Trainer saved it).
    """
    if tokenizer is None:
        return
    if if_missing and (Path(out_dir) / "tokenizer_config.json").exists():
        return
    tokenizer.save_pretrained(str(out_dir))


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, *, dtype: str | None = None,
                  base_model: str | None = None) -> Path:
    """Merge a LoRA adapter into its base model and save a normal model directory.

    The base model is read from the adapter config (``base_model_name_or_path``)
    unless ``base_model`` is given. The tokenizer (with its chat template) is
    saved beside the merged weights: the adapter's own when it has one, else the
    base model's. Returns ``output_dir``.
    """
    import torch

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / ADAPTER_CONFIG).exists():
        raise UsageError(f"{adapter_dir} is not a PEFT adapter directory (no {ADAPTER_CONFIG})")
    base = base_model or adapter_base(adapter_dir)
    out = Path(output_dir)
    if out.resolve() == adapter_dir.resolve():
        raise UsageError("--output-dir must differ from the adapter directory")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    task = adapter_task(adapter_dir)
    cls = AutoModelForSequenceClassification if task == "SEQ_CLS" else AutoModelForCausalLM
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype) if dtype and dtype != "auto" else (dtype or "auto")}
    if task == "SEQ_CLS":
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise PrefkitError(f"cannot load the adapter's base model {base!r} ({exc}); pass the base model "
                           "explicitly (--base-model) if it moved") from None
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer = load_tokenizer(str(adapter_dir), fallback=base)
    if getattr(merged.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        merged.config.pad_token_id = tokenizer.pad_token_id
        merged.config.save_pretrained(str(out))
    save_tokenizer(tokenizer, out)
    (out / "prefkit_merge.json").write_text(json.dumps({"adapter": str(adapter_dir), "base_model": base}, indent=2))
    return out
