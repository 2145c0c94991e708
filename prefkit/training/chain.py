"""Chained training stages: SFT → DPO (→ ...), each stage starting from the one before.

::

    import prefkit

    result = prefkit.train_chain("HuggingFaceTB/SmolLM2-135M", [
        prefkit.ChainStage("sft", sft_rows, eval_data=sft_val),
        prefkit.ChainStage("dpo", pairs, eval_data=pairs_val, config={"beta": 0.1}),
    ], output_dir="runs/chain/my-run", preset="my-paper")
    result.final.merged_dir         # the last stage's model
    result.stages[0].output_dir     # each stage is its own training run directory

Each stage's output is the next stage's model, and so (TRL computes the reference with the
new adapter disabled) the DPO reference: ``handoff="merged"`` (default) hands on the stage's
merged model; ``handoff="adapter"`` saves only the adapter (no merged copy) and the next stage
merges it onto its base at start (``<next stage>/base``). The chain directory holds one run
directory per stage (``01-sft/``, ``02-dpo/``) and a chain run (``manifest.json``,
``results.jsonl``: one line per finished stage with its resolved settings, input and output
model and the output's hash). Re-running the same chain resumes: finished stages are kept
(their output hash checked), an interrupted stage continues from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from .config import RUN_CONTROL_FIELDS
from .core import CHECKPOINTS, DONE_MARKER, TrainResult, last_checkpoint
from .formats import TextTemplate

HANDOFFS = ("merged", "adapter")


@dataclass
class ChainStage:
    """One stage of a chain.

    ``trainer``: a registered trainer (``sft``, ``dpo``, ``reward`` or a plugin's).
    ``train_data``/``eval_data``: rows (dicts, records) or a ``datasets.Dataset``.
    ``config``: this stage's settings (a dict, the trainer's config class or a ``TrainConfig``;
    over the chain's preset and shared settings). ``model_config``: LoRA etc. for this stage.
    ``name``: the stage's directory name (default ``NN-<trainer>``). ``handoff``: what the next
    stage starts from (``merged`` or ``adapter``). ``text_template``: as in :func:`prefkit.train`.
    """

    trainer: str
    train_data: Any = None
    eval_data: Any = None
    config: Any = None
    model_config: Any = None
    name: str | None = None
    handoff: str = "merged"
    text_template: TextTemplate | None = None

    def __post_init__(self) -> None:
        if self.handoff not in HANDOFFS:
            raise UsageError(f"stage {self.name or self.trainer}: handoff must be one of {', '.join(HANDOFFS)} "
                             f"(got {self.handoff!r})")


@dataclass
class StageRecord:
    """A finished stage: where it ran, what it started from, what it produced."""

    name: str
    trainer: str
    output_dir: Path
    model_in: str
    model_out: str
    output_hash: str
    result: TrainResult | None = None
    skipped: bool = False      # finished in an earlier run of the chain

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "trainer": self.trainer, "output_dir": str(self.output_dir),
                "model_in": self.model_in, "model_out": self.model_out, "output_hash": self.output_hash,
                "skipped": self.skipped, "metrics": self.result.metrics if self.result else {}}


@dataclass
class ChainResult:
    """The chain's run directory and every stage, in order (``final``: the last one's result)."""

    output_dir: Path
    stages: list[StageRecord] = field(default_factory=list)

    @property
    def final(self) -> TrainResult | None:
        return self.stages[-1].result if self.stages else None

    @property
    def model_dir(self) -> str | None:
        return self.stages[-1].model_out if self.stages else None

    def to_dict(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir), "model_dir": self.model_dir,
                "stages": [s.to_dict() for s in self.stages]}


def _data_hash(data: Any) -> str | None:
    if data is None:
        return None
    if isinstance(data, (str, Path)):
        return str(data)
    try:
        from datasets import Dataset

        if isinstance(data, Dataset):
            data = data.to_list()
    except ImportError:  # pragma: no cover
        pass
    h = hashlib.sha256()
    for row in data:
        d = row.to_dict() if hasattr(row, "to_dict") else row
        h.update(json.dumps(d, sort_keys=True, default=str, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def output_hash(model_dir: str | Path) -> str:
    """sha256 (16 hex digits) of a model or adapter directory's weight and config files."""
    d = Path(model_dir)
    h = hashlib.sha256()
    files = sorted(p for p in d.iterdir() if p.is_file() and (p.suffix in (".safetensors", ".bin")
                                                              or p.name in ("config.json", "adapter_config.json")))
    if not files:
        raise UsageError(f"{d} holds no model weights")
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _handoff_dir(result: TrainResult, handoff: str) -> Path:
    target = result.adapter_dir if handoff == "adapter" else result.merged_dir
    if target is None:  # full fine-tuning has no adapter: its model is the handoff
        target = result.merged_dir or result.adapter_dir
    if target is None:
        raise UsageError(f"stage {result.output_dir.name} produced no model to hand on")
    return Path(target)


def stage_names(stages: Sequence[ChainStage]) -> list[str]:
    names = [s.name or f"{i + 1:02d}-{s.trainer}" for i, s in enumerate(stages)]
    if len(set(names)) != len(names):
        raise UsageError(f"chain stage names must differ (got {', '.join(names)})")
    return names


def train_chain(model: str | Path, stages: Sequence[ChainStage], output_dir: str | Path | None = None, *,
                preset: Any = None, shared: dict[str, Any] | None = None, run_name: str | None = None,
                fresh: bool = False, callbacks: Sequence[Any] = (), argv: list[str] | None = None,
                layers: Sequence[tuple[str, dict[str, Any]]] = ()) -> ChainResult:
    """Train ``stages`` one after the other from ``model``; returns a :class:`ChainResult`.

    Settings of a stage, later winning: its trainer's defaults < ``preset`` (a registered
    preset's name or a :class:`prefkit.TrainingPreset`) < ``layers`` (``[(source, values)]``,
    e.g. a config file and flags: the CLI passes them) < ``shared`` (settings for every stage
    that has them) < the stage's own ``config``/``model_config``. ``output_dir``: default
    ``runs/train-chain/<run_name or model-stages>``. ``fresh``: start every stage over.
    """
    from ..plugins import registry
    from ..runs import Run, slug

    if not stages:
        raise UsageError("a chain needs at least one stage")
    names = stage_names(stages)
    trainers = [registry("trainers").get(s.trainer) for s in stages]
    for st, name in zip(stages, names):
        if st.train_data is None:
            raise UsageError(f"chain stage {name}: no training data")
    label = Path(str(model).rstrip("/")).name or "model"
    if output_dir is None:
        base = Path(os.environ.get("PREFKIT_RUNS_DIR", "runs"))
        output_dir = base / "train-chain" / slug(run_name or f"{label}-{'-'.join(s.trainer for s in stages)}")
    out = Path(output_dir)
    preset_name = preset if isinstance(preset, str) or preset is None else getattr(preset, "name", None)
    plan = []
    for st, name, tr in zip(stages, names, trainers):
        stage_layers = list(layers)
        if shared:
            own = set(tr.config_class.field_names())
            from .config import TrainModelConfig

            own |= set(TrainModelConfig.field_names())
            stage_layers.append(("chain settings", {k: v for k, v in shared.items() if k in own}))
        from .core import _explicit_values

        stage_layers += [(f"stage {name}", _explicit_values(st.config)),
                         (f"stage {name} model config", _explicit_values(st.model_config))]
        cfg, mcfg, prov = tr.resolve(None, None, preset, stage_layers)
        plan.append((st, name, tr, cfg, mcfg, prov, stage_layers))
    identity = {"model": str(Path(model).resolve()) if Path(str(model)).exists() else str(model),
                "preset": preset_name,
                "stages": [{"name": name, "trainer": st.trainer, "handoff": st.handoff,
                            "data": _data_hash(st.train_data), "eval_data": _data_hash(st.eval_data),
                            "settings": {k: v for k, v in cfg.identity().items() if k != "resume"},
                            "model_settings": {k: v for k, v in mcfg.to_dict().items()
                                               if k not in RUN_CONTROL_FIELDS}}
                           for st, name, tr, cfg, mcfg, prov, _ in plan]}
    from .core import is_main_process

    main = is_main_process()
    chain_run = None
    if main:
        chain_run = Run.open("train chain", config={"model": str(model), "preset": preset_name,
                                                    "stages": [{"name": name, "trainer": st.trainer,
                                                                "handoff": st.handoff, "config": cfg.to_dict(),
                                                                "model_config": mcfg.to_dict(),
                                                                "setting_sources": prov["sources"]}
                                                               for st, name, tr, cfg, mcfg, prov, _ in plan]},
                             identity=identity, output_dir=out, fresh=fresh, argv=argv)
    done = {r["key"]: r for r in (chain_run.results() if chain_run else [])}
    result = ChainResult(out)
    current = str(model)
    try:
        for i, (st, name, tr, cfg, mcfg, prov, stage_layers) in enumerate(plan):
            stage_dir = out / name
            last = i == len(plan) - 1
            control: dict[str, Any] = {}
            if not last:  # what the next stage needs must be saved
                control["merge"] = st.handoff == "merged" or not mcfg.lora
            rec = done.get(name)

            def run_stage(extra: dict[str, Any], fresh_stage: bool = False) -> TrainResult:
                return tr.train(current, st.train_data, st.eval_data, None, stage_dir, st.text_template,
                                preset=preset, layers=[*stage_layers, ("chain", {**control, **extra})],
                                fresh=fresh_stage, callbacks=callbacks, argv=argv)

            if rec and not fresh and (stage_dir / DONE_MARKER).exists() and Path(rec["model_out"]).exists() \
                    and output_hash(rec["model_out"]) == rec["output_hash"] and rec["model_in"] == current:
                record = StageRecord(name, st.trainer, stage_dir, current, rec["model_out"], rec["output_hash"],
                                     run_stage({}), skipped=True)
                result.stages.append(record)
                current = rec["model_out"]
                continue
            resume = (not fresh and last_checkpoint(stage_dir) is not None
                      and not (stage_dir / DONE_MARKER).exists())
            if main:
                from ..console import info

                info(f"chain stage {i + 1}/{len(plan)}: {name} ({st.trainer}) from {current}"
                     + (f" — resuming from {last_checkpoint(stage_dir).name}" if resume else ""))
            stage_result = run_stage({"resume": True} if resume else {}, fresh_stage=fresh)
            handed = _handoff_dir(stage_result, st.handoff if not last else "merged")
            record = StageRecord(name, st.trainer, stage_dir, current, str(handed.resolve()),
                                 output_hash(handed) if main else "", stage_result)
            if chain_run is not None:
                chain_run.append({**record.to_dict(), "config": cfg.to_dict(), "model_config": mcfg.to_dict(),
                                  "preset": prov["preset"], "reference": current if st.trainer == "dpo" else None},
                                 key=name)
            result.stages.append(record)
            current = record.model_out
    except KeyboardInterrupt:
        if chain_run is not None:
            chain_run.finish("interrupted")
        raise
    except BaseException as exc:
        if chain_run is not None:
            chain_run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if chain_run is not None:
        chain_run.write_metrics({"model_dir": result.model_dir,
                                 "stages": {s.name: {"output_hash": s.output_hash, "model_out": s.model_out,
                                                     **(s.result.metrics if s.result else {})}
                                            for s in result.stages}})
        chain_run.finish("done", model_dir=result.model_dir)
    return result


__all__ = ["ChainStage", "ChainResult", "StageRecord", "train_chain", "output_hash", "CHECKPOINTS"]
