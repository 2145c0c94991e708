"""The three persona-tailoring methods and test-split generation, through the core layers.

* :func:`train_tailored` — ``sft`` (LoRA SFT on sft_train, eval on sft_val), ``dpo``
  (LoRA DPO on dpo_train, eval on dpo_val, from the merged SFT model), or both chained, through
  the core training layer (``prefkit.train`` / ``prefkit.train_chain``) with a training preset
  (``persona-tailoring`` by default, ``persona-tailoring-paper`` for the reference settings).
* :func:`generate` — greedy generation on the test split through the core backend engine
  (``prefkit.run_requests``; default backend ``hf``), optionally with few-shot
  demonstrations from the split's ``fewshot`` rows (the ``fewshot`` method).

Every trained model directory gets a ``tailoring.json`` (split, training type, format,
method), so ``generate`` formats its inputs the way the model was trained without being told.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from prefkit import UsageError

from .data import dataset_ref, load_tailoring_rows
from .formats import (STOP, build_input, check_format, check_inference_personas,
                      check_inference_type, check_training_type, dpo_rows, fewshot_messages, fewshot_prefix,
                      inference_persona, response_seed, sft_rows, split_name, system_persona_for)
from .outputs import result_record
from .presets import DEFAULT

META_FILE = "tailoring.json"
#: the training settings come from a preset (see .presets): this one unless another is chosen
DEFAULT_PRESET = DEFAULT
TRAIN_SPLITS = {"sft": ("sft_train", "sft_val"), "dpo": ("dpo_train", "dpo_val")}
DEFAULT_MAX_TOKENS = 512
#: backends that take text-format inputs as raw text (no chat template)
LOCAL_BACKENDS = ("hf", "transformers", "local")


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-._")[:60] or "model"


def model_label(model: str) -> str:
    """A short name for a model in run names: the last path part that is not ``merged``/``adapter``."""
    p = Path(str(model))
    if p.exists():
        parts = [x for x in p.resolve().parts if x not in ("merged", "adapter", "model", "/")]
        return _slug(parts[-1] if parts else "model")
    return _slug(str(model).split("/")[-1])


def read_model_meta(model: str | Path) -> dict[str, Any]:
    """``tailoring.json`` of a model (or run) directory, if it has one."""
    p = Path(str(model))
    for cand in (p / META_FILE, p.parent / META_FILE):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except json.JSONDecodeError:
                return {}
    return {}


def write_model_meta(path: str | Path, meta: dict[str, Any]) -> None:
    p = Path(path)
    if p.is_dir():
        (p / META_FILE).write_text(json.dumps(meta, indent=2))


# --------------------------------------------------------------------------- training
def resolve_trained_model(model: str, allow_adapter: bool = False) -> str:
    """A model directory for ``model``: itself, or the ``merged/`` model of a tailor sft/dpo output dir.

    ``allow_adapter``: an output dir with only ``adapter/`` gives the adapter (the training layer
    merges an adapter it starts from).
    """
    p = Path(model)
    if not p.exists():
        return model  # a hub id
    if (p / "config.json").is_file():
        return str(p)
    meta = read_model_meta(p)
    for cand in (meta.get("merged_dir"), p / "merged"):
        if cand and (Path(cand) / "config.json").is_file():
            return str(cand)
    if allow_adapter and (p / "adapter" / "adapter_config.json").is_file():
        return str(p / "adapter")
    if allow_adapter and (p / "adapter_config.json").is_file():
        return str(p)
    if (p / "adapter" / "adapter_config.json").is_file() or (p / "adapter_config.json").is_file():
        raise UsageError(f"{p} holds a LoRA adapter but no merged model; merge it first "
                         "(prefkit tailor sft/dpo merge by default, or use prefkit.merge_adapter)")
    raise UsageError(f"{p} is not a model directory or a tailor sft/dpo output directory (no config.json or merged/)")


def stage_data(kind: str, *, split: str, training_type: str, fmt: str = "text", persona_source: str = "gold",
               data_dir: str | None = None, limit: int | None = None,
               eval_limit: int | None = None, dataset: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The training and evaluation rows of one tailoring stage (``sft``: sft_train/sft_val; ``dpo``:
    dpo_train/dpo_val), in the tailoring text (or chat) format. ``eval_limit=0``: no evaluation rows."""
    if kind not in TRAIN_SPLITS:
        raise UsageError(f"unknown method {kind!r} (sft or dpo)")
    train_split, eval_split = TRAIN_SPLITS[kind]
    train_raw = load_tailoring_rows(split, train_split, data_dir=data_dir, limit=limit, dataset=dataset)
    eval_raw = load_tailoring_rows(split, eval_split, data_dir=data_dir, limit=eval_limit,
                                   dataset=dataset) if eval_limit != 0 else []
    build = sft_rows if kind == "sft" else dpo_rows
    train_rows = build(train_raw, training_type, split, fmt=fmt, persona_source=persona_source,
                       where=f"persona-tailoring {split} [{train_split}]")
    eval_rows = build(eval_raw, training_type, split, fmt=fmt, persona_source=persona_source,
                      where=f"persona-tailoring {split} [{eval_split}]") if eval_raw else None
    return train_rows, eval_rows


def train_tailored(kind: str | Sequence[str], model: str, *, split: str, training_type: str, config: Any = None,
                   model_config: Any = None, preset: str | None = DEFAULT_PRESET, fmt: str = "text",
                   persona_source: str = "gold", data_dir: str | None = None, limit: int | None = None,
                   eval_limit: int | None = None, output_dir: str | None = None, run_name: str | None = None,
                   fresh: bool = False,
                   stage_configs: dict[str, Any] | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Train persona-tailoring stages through the core chain (:func:`prefkit.train_chain`).

    ``kind``: ``"sft"``, ``"dpo"`` or a sequence such as ``("sft", "dpo")`` (SFT on sft_train, then
    DPO on dpo_train from the merged SFT model, which is also DPO's reference). A single ``dpo``
    starts from ``model`` (a ``tailor sft`` output directory or a model). ``preset``: the settings
    to start from (default ``persona-tailoring``; ``persona-tailoring-paper`` is the reference
    setup); ``config``: settings over the preset for every stage (a dict, e.g. the flags given);
    ``stage_configs``: ``{stage: settings}`` for one stage. ``eval_limit=0`` skips evaluation.
    Returns a summary of the last stage (output/adapter/merged dirs, row counts, final metrics,
    ``stages``); every stage directory gets ``tailoring.json``.
    """
    import prefkit

    kinds = [kind] if isinstance(kind, str) else list(kind)
    split = split_name(split, dataset)
    training_type = check_training_type(training_type)
    fmt = check_format(fmt)
    if kinds[0] == "dpo":
        sft_meta = read_model_meta(model)
        if sft_meta.get("training_type") and sft_meta["training_type"] != training_type:
            from prefkit import warn

            warn(f"the SFT model was trained with training type {sft_meta['training_type']!r}; DPO uses {training_type!r}")
    # the rows are already in the tailoring text format: the training layer must not wrap them again
    fixed = {"format": fmt, "text_template": "{prompt}"}
    stages, counts = [], {}
    for k in kinds:
        rows, eval_rows = stage_data(k, split=split, training_type=training_type, fmt=fmt,
                                     persona_source=persona_source, data_dir=data_dir, limit=limit,
                                     eval_limit=eval_limit, dataset=dataset)
        counts[k] = (len(rows), len(eval_rows or []))
        own = dict((stage_configs or {}).get(k) or {})
        stages.append(prefkit.ChainStage(k, rows, eval_rows, config={**own, **fixed}, model_config=model_config,
                                         name=k))
    runs_dir = prefkit.runs_dir()
    name = run_name or _slug(f"{split}-{training_type}-{model_label(model)}")
    out = Path(output_dir) if output_dir else runs_dir / f"tailor-{'-'.join(kinds)}" / name
    if len(kinds) == 1:
        # one stage: its run directory is the output directory (as `tailor sft -o DIR` always was)
        only = stages[0]
        result = prefkit.train(only.trainer, model, only.train_data, only.eval_data,
                               config={**config_dict(config), **only.config}, output_dir=out,
                               model_config=model_config, preset=preset, fresh=fresh)
        stage_results = [(kinds[0], out, str(model), result)]
    else:
        chain = prefkit.train_chain(model, stages, out, preset=preset, shared=config_dict(config), fresh=fresh)
        stage_results = [(s.name, s.output_dir, s.model_in, s.result) for s in chain.stages]
    summaries = []
    for name, stage_dir, start, result in stage_results:
        adapter_dir = getattr(result, "adapter_dir", None)
        merged_dir = getattr(result, "merged_dir", None)
        meta = {"method": name, "split": split, "training_type": training_type, "format": fmt,
                "persona_source": persona_source, "base_model": str(getattr(result, "base_model", None) or start),
                "preset": preset, "dataset": dataset_ref(dataset), "train_rows": counts[name][0], "eval_rows": counts[name][1],
                "output_dir": str(stage_dir), "adapter_dir": str(adapter_dir) if adapter_dir else None,
                "merged_dir": str(merged_dir) if merged_dir else None}
        for d in {Path(stage_dir), Path(adapter_dir) if adapter_dir else None,
                  Path(merged_dir) if merged_dir else None} - {None}:
            write_model_meta(d, meta)
        summaries.append({**meta, "metrics": dict(getattr(result, "metrics", None) or {})})
    last = summaries[-1]
    if len(summaries) > 1:
        last = {**last, "chain_dir": str(out), "stages": [s["output_dir"] for s in summaries]}
    return last


def config_dict(config: Any) -> dict[str, Any]:
    """Settings as a dict (``None``, a dict, or a config object with ``to_dict()``)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    return dict(config.to_dict())


# --------------------------------------------------------------------------- generation
@dataclass
class GenerationPlan:
    split: str
    inference_type: str
    training_type: str
    fmt: str
    rows: list[dict[str, Any]]
    requests: list[Any]
    inputs: dict[str, Any]
    personas: dict[str, str | None]
    skipped: list[str] = field(default_factory=list)
    demos: Any = None
    system_persona: str | None = None


def plan_generation(model: str, *, split: str, inference_type: str, training_type: str | None = None,
                    fmt: str | None = None, system_persona: str | None = None, data_dir: str | None = None,
                    limit: int | None = None, fewshot: bool = False, skip_empty: bool = False,
                    max_tokens: int | None = None, raw_text: bool = True,
                    dataset: str | None = None) -> GenerationPlan:
    """Everything generation needs, built before any model is loaded (so bad input fails fast).

    ``raw_text``: text-format inputs go to the backend as they are (``extra={"raw_prompt": True}``,
    which the ``hf`` backend honours by skipping the chat template); without it they are sent
    as one user message (API backends).
    """
    from prefkit import ChatRequest

    split = split_name(split, dataset)
    inference_type = check_inference_type(inference_type)
    meta = read_model_meta(model)
    training_type = check_training_type(training_type or meta.get("training_type") or "chosen")
    fmt = check_format(fmt or meta.get("format") or "text")
    rows = load_tailoring_rows(split, "test", data_dir=data_dir, limit=limit, dataset=dataset)
    empty = set(check_inference_personas(rows, inference_type, split, where=f"the {split} test split"))
    if empty and not skip_empty:
        shown = ", ".join(sorted(empty, key=lambda x: (len(x), x))[:5])
        raise UsageError(f"{len(empty)} of {len(rows)} test rows have no persona for --inference-type {inference_type} "
                         f"(rows {shown}{' ...' if len(empty) > 5 else ''}); pass --skip-empty to leave them out")
    demos = None
    if fewshot:
        demo_rows = load_tailoring_rows(split, "fewshot", data_dir=data_dir, dataset=dataset)
        demos = fewshot_prefix(demo_rows, training_type, split) if fmt == "text" else fewshot_messages(
            demo_rows, training_type)
    sys_persona = system_persona_for(split, system_persona) if inference_type == "system" else None
    requests, inputs, personas, kept = [], {}, {}, []
    for r in rows:
        if r["row_id"] in empty:
            continue
        persona = inference_persona(r, inference_type, split, system_persona)
        model_input = build_input(r["prompt"], persona, training_type=training_type, split=split, fmt=fmt, demos=demos)
        key = str(r["row_id"])
        inputs[key], personas[key] = model_input, persona
        if fmt == "text":
            messages = [{"role": "user", "content": model_input}]
            extra = {"raw_prompt": True} if raw_text else {}
        else:
            messages, extra = model_input, {}
        requests.append(ChatRequest(key=key, messages=messages, stop=[STOP], max_tokens=max_tokens, temperature=0.0,
                                    extra=extra, meta={"index": r["index"]}))
        kept.append(r)
    return GenerationPlan(split=split, inference_type=inference_type, training_type=training_type, fmt=fmt,
                          rows=kept, requests=requests, inputs=inputs, personas=personas, skipped=sorted(empty),
                          demos=demos, system_persona=sys_persona)


def _digest(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def generate(model: str, *, split: str, inference_type: str, llm: Any = None, training_type: str | None = None,
             fmt: str | None = None, system_persona: str | None = None, data_dir: str | None = None,
             limit: int | None = None, fewshot: bool = False, skip_empty: bool = False,
             output_dir: str | None = None, run_name: str | None = None, fresh: bool = False,
             progress: bool = True, dataset: str | None = None) -> dict[str, Any]:
    """Generate answers for the test split; results keyed by ``row_id`` in a resumable run."""
    import prefkit

    llm = prefkit.BackendOptions() if llm is None else llm
    label = model_label(model)
    model = resolve_trained_model(str(model)) if llm.backend in LOCAL_BACKENDS else str(model)
    max_tokens = llm.max_tokens or DEFAULT_MAX_TOKENS
    llm = llm.replace(model=str(model), max_tokens=max_tokens, temperature=0.0,
                      stop=sorted(set(list(llm.stop or []) + [STOP])))
    if llm.backend in LOCAL_BACKENDS:
        # a local model directory can be retrained in place: never answer from the response cache
        # (the run store already makes generation resumable)
        llm = llm.replace(cache=False)
    plan = plan_generation(model, split=split, inference_type=inference_type, training_type=training_type, fmt=fmt,
                           system_persona=system_persona, data_dir=data_dir, limit=limit, fewshot=fewshot,
                           skip_empty=skip_empty, max_tokens=max_tokens, raw_text=llm.backend in LOCAL_BACKENDS,
                           dataset=dataset)
    method = "fewshot" if fewshot else (read_model_meta(model).get("method") or "model")
    command = "tailor fewshot" if fewshot else "tailor generate"
    config = {"split": plan.split, "inference_type": plan.inference_type, "training_type": plan.training_type,
              "format": plan.fmt, "method": method, "model": str(model), "system_persona": plan.system_persona,
              "limit": limit, "data_dir": str(Path(data_dir).resolve()) if data_dir else None, "backend": llm.to_dict(),
              "dataset": dataset_ref(dataset)}
    identity = {"split": plan.split, "inference_type": plan.inference_type, "training_type": plan.training_type,
                "format": plan.fmt, "model": str(model), "system_persona": plan.system_persona,
                "demos": _digest(plan.demos), "llm": llm.identity(),
                **({"dataset": dataset_ref(dataset)} if dataset else {})}
    run = prefkit.Run.open(command, config=config, identity=identity, output_dir=output_dir, run_name=run_name,
                           name_hint=f"{plan.split}-train-{plan.training_type}-infer-{plan.inference_type}-"
                                     f"{label}", fresh=fresh)
    by_key = {str(r["row_id"]): r for r in plan.rows}
    seeds = {k: response_seed(r["prompt"], plan.split, plan.fmt) for k, r in by_key.items()}

    def on_result(c: Any) -> dict[str, Any]:
        return result_record(by_key[c.key], persona=plan.personas[c.key], model_input=plan.inputs[c.key],
                             raw=c.text, seed=seeds[c.key], finish_reason=c.finish_reason)

    with run:  # the core's lifecycle: failed / interrupted recorded there
        prefkit.run_requests(plan.requests, llm, run=run, on_result=on_result,
                             description=f"tailor {plan.split} {plan.inference_type}", progress=progress)
    results = run.results()
    counts = {"rows": len(plan.rows), "done": len(results), "failed": len(run.failures()),
              "skipped_empty_persona": len(plan.skipped),
              "hit_max_tokens": sum(1 for r in results if r.get("finish_reason") == "length")}
    run.write_metrics({"counts": counts})
    status = "done" if counts["failed"] == 0 and counts["done"] == counts["rows"] else "incomplete"
    run.finish(status, **counts)
    return {"run": str(run.path), "status": status, **config, **counts}
