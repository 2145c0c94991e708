"""The training presets of persona tailoring (registered through ``register_training_presets``).

* ``persona-tailoring-paper`` — the reference implementation's settings (Balepur et al.): LoRA r 16,
  alpha 32, dropout 0.05 on q_proj and v_proj only (PEFT's default target modules for Llama), batch
  size 1, 10 epochs with the best epoch chosen by validation loss, SFT lr 2e-5, DPO lr 5e-6 and beta
  0.1, sequences of at most 512 tokens, DPO prompts of at most 128 tokens; the text format.
* ``persona-tailoring`` — the default of ``prefkit tailor sft/dpo``: the paper's learning rates,
  LoRA size, beta and lengths, with prefkit's own schedule for quick runs (1 epoch, batch size 4,
  LoRA on every attention projection, no best-epoch selection, no separate DPO prompt limit).

``docs/persona-tailoring.md`` has the table of which value is the paper's and which prefkit's.
"""

from __future__ import annotations

PAPER = "persona-tailoring-paper"
DEFAULT = "persona-tailoring"

#: shared by both presets: the paper's values
_PAPER_SHARED = {"format": "text", "max_length": 512, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
_PAPER_PER_TRAINER = {"sft": {"lr": 2e-5}, "dpo": {"lr": 5e-6, "beta": 0.1}}
#: the reference's schedule and LoRA targets (only in the paper preset)
_PAPER_ONLY = {"epochs": 10, "batch_size": 1, "eval_strategy": "epoch", "load_best": True,
               "metric_for_best": "eval_loss", "lora_targets": ["peft-default"]}
_PAPER_ONLY_DPO = {"max_prompt_length": 128}
SOURCE = ("Balepur et al., 'Whose Boat Does it Float? Improving Personalization in Preference Tuning via "
          "Inferred User Personas' (2025): the reference implementation's training settings")


def presets():
    import prefkit

    per_trainer = {k: dict(v) for k, v in _PAPER_PER_TRAINER.items()}
    paper = prefkit.TrainingPreset(
        PAPER, "Persona tailoring as published: 10 epochs (best by validation loss), batch 1, LoRA on q,v; "
               "DPO prompts cut to 128 tokens.",
        settings={**_PAPER_SHARED, **_PAPER_ONLY},
        per_trainer={"sft": per_trainer["sft"], "dpo": {**per_trainer["dpo"], **_PAPER_ONLY_DPO}},
        source=SOURCE)
    default = prefkit.TrainingPreset(
        DEFAULT, "prefkit's persona-tailoring default: the paper's lr, LoRA size, beta and lengths; 1 epoch, "
                 "batch 4, LoRA on all attention projections (quick runs).",
        settings=dict(_PAPER_SHARED), per_trainer=per_trainer,
        source=SOURCE + " (lr, LoRA r/alpha/dropout, beta, max length); schedule and targets: prefkit")
    return [paper, default]
