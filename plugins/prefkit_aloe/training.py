"""ALOE training: SFT and DPO (and the SFT → DPO chain) through the core training layer.

``prefkit aloe train sft|dpo|chain`` hand the rows of an ``aloe export`` (SFT: one multi-turn
``messages`` example per conversation, loss on every assistant turn — the core's masking; DPO:
one prompt/chosen/rejected pair per turn, the realised history as the prompt) to the core
trainers with the preset ``aloe-paper`` applied by default. Settings resolve as the core
resolves them: trainer defaults < ``--preset`` < ``--config FILE`` < flags typed on the
command line.

The preset ``aloe-paper`` (:func:`paper_preset`) reproduces the reference's settings (spec §3):

=================  ===================  ===================  =========================================
setting            SFT                  DPO                  reference
=================  ===================  ===================  =========================================
fine-tuning        full (``lora`` off)  full                 full-parameter, bf16
learning rate      1e-5                 1e-5                 1e-5 (both)
epochs             1                    1                    1
batch × accum      1 × 48 = 48          4 × 12 = 48          the same (per GPU)
schedule           linear, no warm-up   linear, no warm-up   HF defaults
weight decay       0                    0                    HF default
β                  –                    0.9                  0.9
max_length         4096                 4096                 SFT 8192 (packed text), DPO 512 implicit
max_prompt_length  –                    3584                 DPO 128 implicit
logging            every step           every step           every step
=================  ===================  ===================  =========================================

Deviations, on purpose:

* **Lengths.** The reference's DPO sets no lengths, so trl of that time fell back to 512 / 128
  tokens and cut a 10-turn history to its last 128 tokens — most of the history the method
  means to learn from. A 10-turn ALOE conversation is about 1.5-2k tokens (user messages of
  a few sentences, replies of at most 3 sentences, template overhead), so ``max_length`` 4096
  and ``max_prompt_length`` 3584 hold whole histories with room for a 512-token reply; longer
  ones lose their oldest turns first (the core's rule, counted in ``metrics.json``). SFT trains
  one conversation per example (not the reference's packed cumulative prefixes), so 4096 is
  enough there too.
* **Precision.** As the reference, the weights are loaded and trained in bf16 (``dtype`` bfloat16:
  the memory of a 7-8B full fine-tune); bf16 autocast is the core's automatic choice (on where the
  GPU supports it). ``--dtype float32`` trains fp32 master weights instead.
* **LoRA** is an option (``--lora``, with the core's LoRA flags); the reference has none.
* **No CodeAct mixture, no bos = eos hack.** The reference model of DPO is the starting model (as
  in the reference, TRL holds it as a second full copy in a full fine-tune; ``--lora`` avoids it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import prefkit

PRESET = "aloe-paper"
MAX_LENGTH = 4096
MAX_PROMPT_LENGTH = 3584
EFFECTIVE_BATCH = 48

#: settings every trainer gets
PAPER_SHARED: dict[str, Any] = dict(lora=False, dtype="bfloat16", lr=1e-5, epochs=1.0, lr_scheduler="linear", warmup=0.0,
                                    weight_decay=0.0, logging_steps=1, max_length=MAX_LENGTH)
#: per trainer (wins over the shared ones)
PAPER: dict[str, dict[str, Any]] = {
    "sft": dict(batch_size=1, grad_accum=48),
    "dpo": dict(batch_size=4, grad_accum=12, beta=0.9, loss_type="sigmoid", max_prompt_length=MAX_PROMPT_LENGTH),
}
SOURCE = ("github.com/ShujinWu-0814/ALOE training/SFT.py and training/dpo.py (October 2024); lengths set "
          "explicitly by prefkit (docs/aloe.md)")


def paper_preset() -> "prefkit.TrainingPreset":
    """The ``aloe-paper`` training preset (registered by the plugin)."""
    return prefkit.TrainingPreset(
        PRESET, "ALOE (Wu et al., COLING 2025): full fine-tuning, lr 1e-5, 1 epoch, effective batch 48 "
                "(SFT 1x48, DPO 4x12), DPO beta 0.9; max_length 4096 / max_prompt_length 3584 to hold 10-turn "
                "histories (the reference's implicit 512/128 cut them)",
        settings=dict(PAPER_SHARED), per_trainer={k: dict(v) for k, v in PAPER.items()}, source=SOURCE)


# ------------------------------------------------------------------------------------------ settings
def read_config(path: str | None) -> dict[str, Any]:
    """The settings of a ``--config`` YAML/JSON file (``{}`` without one), read by the core."""
    return prefkit.read_config_file(path) if path else {}


def _known(trainer: str) -> set[str]:
    cls = prefkit.get_trainer(trainer).config_class
    return set(cls.field_names()) | set(prefkit.TrainModelConfig.field_names())


def _layers(config_file: str | None, file_values: dict[str, Any], flags: dict[str, Any],
            known: set[str]) -> list[tuple[str, dict[str, Any]]]:
    layers: list[tuple[str, dict[str, Any]]] = []
    if file_values:
        bad = sorted(set(file_values) - known)
        if bad:
            raise prefkit.UsageError(f"--config {config_file}: unknown setting(s) {', '.join(bad)}")
        layers.append((f"--config {config_file}", dict(file_values)))
    if flags:
        layers.append(("flag", dict(flags)))
    return layers


def load_data(spec: str | None, what: str, *, split: str | None = None, limit: int | None = None,
              columns: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """Rows of an ``aloe export`` output (a save_to_disk dir or a .jsonl/.json/.parquet file) or any dataset spec."""
    if not spec:
        return None
    prefkit.check_limit(limit)
    path = Path(spec)
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        # an export folder: its data file, or a sub-dataset named after the format
        for cand in (path / f"{what}", path / f"{what}.jsonl", path / "data.jsonl", path / "train.jsonl"):
            if cand.exists():
                spec = str(cand)
                break
    try:
        rows = prefkit.load_rows(spec, split=split)
    except prefkit.PrefkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreadable file is bad input
        raise prefkit.UsageError(f"{what} data {spec}: cannot read ({prefkit.one_line(exc)})") from None
    rows = list(rows)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise prefkit.UsageError(f"{what} data {spec}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise prefkit.UsageError(f"{what} data {spec}: no column {', '.join(missing)} (columns: "
                                 f"{', '.join(sorted(rows[0]))}); use `prefkit aloe export RUN --format {what}`")
    return rows


SFT_COLUMNS = ("messages",)
DPO_COLUMNS = ("prompt", "chosen", "rejected")


def _trainer_rows(rows: list[dict[str, Any]] | None, kind: str) -> list[dict[str, Any]] | None:
    """Only the columns the trainer reads (exports carry ids and metadata besides)."""
    if rows is None:
        return None
    cols = SFT_COLUMNS if kind == "sft" else DPO_COLUMNS
    if kind == "sft" and "messages" not in rows[0]:
        return rows  # prompt/completion rows of another source: the core reads them as they are
    return [{c: r[c] for c in cols} for r in rows]


# ------------------------------------------------------------------------------------------ one stage
@dataclass
class StageData:
    """Where one stage's data comes from."""

    dataset: str
    eval_dataset: str | None = None
    split: str | None = None
    limit: int | None = None
    eval_limit: int | None = None


def train_stage(kind: str, model: str, data: StageData, *, preset: str | None = PRESET,
                config_file: str | None = None, flags: dict[str, Any] | None = None,
                output_dir: str | None = None, run_name: str | None = None, fresh: bool = False) -> Any:
    """Train one ``kind`` ("sft" | "dpo") stage on an export through the core; returns the core's TrainResult."""
    if kind not in PAPER:
        raise prefkit.UsageError(f"unknown ALOE training stage {kind!r} (sft or dpo)")
    if not model:
        raise prefkit.UsageError("give --model (a hub id, a model directory or a training run)")
    cols = SFT_COLUMNS if kind == "sft" else DPO_COLUMNS
    rows = load_data(data.dataset, kind, split=data.split, limit=data.limit,
                     columns=cols if kind == "dpo" else ())
    if rows is None:
        raise prefkit.UsageError(f"give --dataset (an `aloe export --format {kind}` output)")
    eval_rows = load_data(data.eval_dataset, kind, limit=data.eval_limit, columns=cols if kind == "dpo" else ())
    trainer = prefkit.get_trainer(kind)
    layers = _layers(config_file, read_config(config_file), dict(flags or {}), _known(kind))
    if preset and preset != PRESET:
        prefkit.get_preset(preset)  # one clear error for an unknown name
    return trainer.train(model, _trainer_rows(rows, kind), _trainer_rows(eval_rows, kind), None, output_dir,
                         preset=preset or None, layers=layers, run_name=run_name, fresh=fresh)


# ------------------------------------------------------------------------------------------ the chain
def train_chain(model: str, sft: StageData, dpo: StageData, *, preset: str | None = PRESET,
                config_file: str | None = None, flags: dict[str, Any] | None = None,
                dpo_flags: dict[str, Any] | None = None, handoff: str = "merged", output_dir: str | None = None,
                run_name: str | None = None, fresh: bool = False) -> Any:
    """SFT on the SFT export, then DPO from the SFT model (also the DPO reference): the core chain.

    ``flags``: settings for both stages (the core's shared ones); ``dpo_flags``: DPO's own
    (``beta``, ``loss_type`` ...). A ``--config`` file's shared keys go to both stages, its
    trainer-specific keys to the stage whose trainer has them.
    """
    if not model:
        raise prefkit.UsageError("give --model (the model SFT starts from)")
    sft_rows = load_data(sft.dataset, "sft", split=sft.split, limit=sft.limit)
    dpo_rows = load_data(dpo.dataset, "dpo", split=dpo.split, limit=dpo.limit, columns=DPO_COLUMNS)
    if sft_rows is None or dpo_rows is None:
        raise prefkit.UsageError("give --sft-dataset and --dpo-dataset (`aloe export --format sft|dpo` outputs)")
    sft_eval = load_data(sft.eval_dataset, "sft", limit=sft.eval_limit)
    dpo_eval = load_data(dpo.eval_dataset, "dpo", limit=dpo.eval_limit, columns=DPO_COLUMNS)
    if preset and preset != PRESET:
        prefkit.get_preset(preset)
    shared_known = set(prefkit.BaseTrainConfig.field_names()) | set(prefkit.TrainModelConfig.field_names())
    file_values = read_config(config_file)
    all_known = _known("sft") | _known("dpo")
    bad = sorted(set(file_values) - all_known)
    if bad:
        raise prefkit.UsageError(f"--config {config_file}: unknown setting(s) {', '.join(bad)}")
    shared_file = {k: v for k, v in file_values.items() if k in shared_known}
    layers = _layers(config_file, shared_file, dict(flags or {}), shared_known)
    own = {kind: {k: v for k, v in file_values.items() if k not in shared_known and k in _known(kind)}
           for kind in ("sft", "dpo")}
    own["dpo"].update(dpo_flags or {})
    stages = [prefkit.ChainStage("sft", _trainer_rows(sft_rows, "sft"), _trainer_rows(sft_eval, "sft"),
                                 config=own["sft"] or None, handoff=handoff),
              prefkit.ChainStage("dpo", _trainer_rows(dpo_rows, "dpo"), _trainer_rows(dpo_eval, "dpo"),
                                 config=own["dpo"] or None, handoff=handoff)]
    return prefkit.train_chain(model, stages, output_dir, preset=preset or None, layers=layers, run_name=run_name,
                               fresh=fresh)


__all__ = ["PRESET", "PAPER", "PAPER_SHARED", "MAX_LENGTH", "MAX_PROMPT_LENGTH", "paper_preset", "StageData",
           "train_stage", "train_chain", "load_data", "read_config"]
