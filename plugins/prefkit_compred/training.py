"""``prefkit compred train`` (SFT → DPO) and ``prefkit compred reward`` (Bradley–Terry RM).

Both read the seeded training subsample (:func:`prefkit_compred.data.subsample`), build
every row with the one :class:`~prefkit_compred.prompts.PromptBuilder` (context mode,
format, token limits) and train through the core trainers (``prefkit.train``). The paper's
settings are the preset ``compred-paper`` (:func:`paper_preset`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import prefkit

from . import data
from .predict import TRAIN_COMMAND, model_label
from .prompts import CommunityLabeler, Context, LengthPolicy, PromptBuilder, check_format, describe, parse_context

REWARD_COMMAND = "compred reward"
PRESET = "compred-paper"

#: The reference's effective settings (scripts/sft.sh, scripts/dpo.sh, scripts/reward.sh), per stage.
PAPER = {
    "sft": dict(lr=1e-5, lr_scheduler="cosine", warmup=0.03, batch_size=2, grad_accum=128, epochs=1.0,
                max_length=1024, weight_decay=0.0),
    "dpo": dict(lr=2e-7, lr_scheduler="cosine", warmup=1000, batch_size=2, grad_accum=32, epochs=1.0, beta=0.1,
                loss_type="sigmoid", max_prompt_length=512, max_length=1024, weight_decay=0.0),
    "reward": dict(lr=5e-6, lr_scheduler="linear", warmup=0.0, batch_size=2, grad_accum=4, epochs=1.0,
                   max_length=1024, weight_decay=0.001),
}
#: LoRA 64 / 16 / 0.1 on every linear projection (q, k, v, o, gate, up, down): the reference's GPT-J
#: module names left only q/k/v adapted on Llama, an accident rather than a choice (docs/compred.md).
PAPER_LORA = dict(lora=True, lora_r=64, lora_alpha=16, lora_dropout=0.1, lora_targets=["all-linear"])


def paper_preset() -> "prefkit.TrainingPreset":
    """The ``compred-paper`` training preset (registered by the plugin)."""
    return prefkit.TrainingPreset(
        PRESET, "ComPO / ComPreD (Kumar et al. 2024): the reference's effective SFT, DPO and reward-model settings "
                "(effective batch 256 / 64 / 8; LoRA r 64, alpha 16, dropout 0.1)",
        settings=dict(PAPER_LORA), per_trainer={k: dict(v) for k, v in PAPER.items()},
        source="github.com/allenai/compred scripts/sft.sh, scripts/dpo.sh, scripts/reward.sh (August 2024)")


def stage_settings(kind: str, fmt: str, per_device_batch: int | None, **changes: Any) -> dict[str, Any]:
    """Settings given explicitly for one stage, over the preset: format, and the batch split.

    ``per_device_batch`` changes the per-device batch but keeps the preset's effective batch
    (batch x gradient accumulation). Only values that are not None are set.
    """
    out: dict[str, Any] = {"format": fmt, "text_template": "{prompt}"}
    if per_device_batch:
        effective = PAPER[kind]["batch_size"] * PAPER[kind]["grad_accum"]
        if effective % per_device_batch:
            raise prefkit.UsageError(f"--per-device-batch {per_device_batch} does not divide the effective batch "
                                     f"{effective} of the {kind} stage")
        out.update(batch_size=per_device_batch, grad_accum=effective // per_device_batch)
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


# ------------------------------------------------------------------------------------------------ options
@dataclass
class DataOptions:
    """Which pairs, how they are sampled and how long they may be (train and reward)."""

    subset: str | None = prefkit.opt(None, help="Subset: finance, gender_sexuality, history, politics, science "
                                     "(ComPreD) or shp.")
    model: str | None = prefkit.opt(None, help="Base model: hub id or local directory (the paper's base model is "
                                    "not published; the reference hints meta-llama/Llama-2-7b-hf).")
    context: Context = prefkit.opt(Context.subreddit, help="Community context: subreddit (r/<name>), none "
                                   "('Reddit') or random-subreddit (another subreddit of the subset).",
                                   cli_type=Context)
    format: str = prefkit.opt("text", help="Prompt format: text (the reference's template, base models) or chat "
                              "(the model's chat template, instruct models).")
    data_dir: str | None = prefkit.opt(None, help="Offline mirror folder (compred-<config>/, shp/; also "
                                       "PREFKIT_DATA_DIR).")
    hub_id: str | None = prefkit.opt(None, help="Hub dataset id (default allenai/compred or stanfordnlp/SHP; a "
                                     "local copy of the hub repository works too).")
    streaming: bool = prefkit.opt(False, help="Stream the training split from the hub instead of downloading it "
                                  "(same subsample).")
    min_score_ratio: float = prefkit.opt(2.0, help="Keep pairs with score_ratio at least this (the reference's 2).")
    pairs_per_post: int = prefkit.opt(5, help="At most this many pairs per post (the reference's 5).")
    seed: int = prefkit.opt(0, help="Seed of the subsample, the random-subreddit substitution and training.")
    limit: int | None = prefkit.opt(None, help="Train on the first N pairs of the shuffled subsample (default: all).")
    eval_limit: int | None = prefkit.opt(1000, help="Validation pairs to evaluate on (the reference's DPO uses "
                                         "1000).")
    max_prompt_tokens: int = prefkit.opt(512, help="Prompt budget in tokens: the post is cut to fit.")
    max_length: int = prefkit.opt(1024, help="Prompt + response budget in tokens: the post is cut, the response "
                                  "kept; pairs that cannot fit are dropped and counted.")
    per_device_batch: int | None = prefkit.opt(None, help="Per-device batch (default: the preset's 2); the "
                                               "gradient accumulation follows so the effective batch stays.")


@dataclass
class TrainOptions(DataOptions):
    """``compred train``: SFT then DPO."""

    preset: str = prefkit.opt(PRESET, help="Training preset (compred-paper: the reference's effective settings).")
    sft_max_steps: int = prefkit.opt(-1, help="Stop SFT after N optimizer steps (-1: one epoch).")
    dpo_max_steps: int = prefkit.opt(-1, help="Stop DPO after N optimizer steps (-1: one epoch).")
    dpo_lr: float | None = prefkit.opt(None, help="DPO learning rate (default: the preset's 2e-7).")
    dpo_warmup: float | None = prefkit.opt(None, help="DPO warm-up steps (default: the preset's 1000).")


@dataclass
class RewardOptions(DataOptions):
    """``compred reward``: a Bradley–Terry reward model."""

    max_steps: int = prefkit.opt(-1, help="Stop after N optimizer steps (-1: one epoch).")
    test_limit: int | None = prefkit.opt(None, help="Score only the first N test_pref pairs (default: all).")
    test_subsample: bool = prefkit.opt(True, help="Apply the training subsample (ratio, pairs per post) to "
                                       "test_pref too (--no-test-subsample: every test pair).")
    score_batch: int = prefkit.opt(16, help="Pairs scored together on test_pref.")


def _check(opts: DataOptions) -> tuple[data.Subset, Context, str]:
    if not opts.subset:
        raise prefkit.UsageError("--subset is required (finance, gender_sexuality, history, politics, science or shp)")
    if not opts.model:
        raise prefkit.UsageError("--model is required (a hub id or a local model directory)")
    return data.subset(opts.subset), parse_context(opts.context), check_format(opts.format)


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    path = Path(model)
    for cand in ([path, path / "merged", path / "adapter"] if path.exists() else [model]):
        try:
            return AutoTokenizer.from_pretrained(str(cand))
        except (OSError, ValueError):
            continue
    raise prefkit.UsageError(f"cannot load the tokenizer of {model!r} (offline? a local directory works)")


# ------------------------------------------------------------------------------------------------ data
@dataclass
class Prepared:
    sub: data.Subset
    context: Context
    fmt: str
    builder: PromptBuilder
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    counts: dict[str, Any]


def prepare_pairs(opts: DataOptions, tokenizer: Any) -> Prepared:
    """Subsample train and validation, label the community, fit lengths: the plugin's pair rows."""
    sub, context, fmt = _check(opts)
    train_pairs, train_counts = data.load_pairs(sub, sub.train, data_dir=opts.data_dir, hub_id=opts.hub_id,
                                                streaming=opts.streaming, min_ratio=opts.min_score_ratio,
                                                per_post=opts.pairs_per_post, seed=opts.seed, limit=opts.limit)
    eval_pairs, eval_counts = data.load_pairs(sub, sub.validation, data_dir=opts.data_dir, hub_id=opts.hub_id,
                                              min_ratio=opts.min_score_ratio, per_post=opts.pairs_per_post,
                                              seed=opts.seed, limit=opts.eval_limit)
    subreddits = sorted(train_counts["before"])
    labeler = CommunityLabeler(context, subreddits, seed=opts.seed)
    policy = LengthPolicy(max_prompt_tokens=opts.max_prompt_tokens, max_length=opts.max_length)
    builder = PromptBuilder(fmt, labeler, tokenizer, policy)
    return Prepared(sub, context, fmt, builder, train_pairs, eval_pairs,
                    {"subsample": train_counts, "validation_subsample": eval_counts, "subreddits": subreddits})


def trainer_rows(rows: Sequence[dict[str, Any]], fmt: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Builder rows → core trainer rows, so the trained text is exactly the builder's.

    The core's text format puts a space before a response that does not start with
    whitespace; the text prompt's final newline is therefore moved to the start of each
    response (prompt + response is unchanged: ``...<|assistant|>`` + ``\\n<comment>``).
    """
    out = []
    for r in rows:
        if fmt == "text":
            prompt = r["prompt"][:-1] if r["prompt"].endswith("\n") else r["prompt"]
            out.append({"prompt": prompt, **{f: "\n" + r[f] for f in fields}})
        else:
            out.append({"prompt": r["prompt"], **{f: r[f] for f in fields}})
    return out


# ------------------------------------------------------------------------------------------------ train
def _stages(opts: TrainOptions, fmt: str) -> dict[str, dict[str, Any]]:
    if opts.preset != PRESET:
        prefkit.get_preset(opts.preset)  # a clear error for an unknown name
    common = {"seed": opts.seed, "max_length": opts.max_length}
    return {"sft": stage_settings("sft", fmt, opts.per_device_batch, max_steps=opts.sft_max_steps, **common),
            "dpo": stage_settings("dpo", fmt, opts.per_device_batch, max_steps=opts.dpo_max_steps, lr=opts.dpo_lr,
                                  warmup=opts.dpo_warmup, max_prompt_length=opts.max_prompt_tokens, **common)}


def _last_logged(run_dir: Path, keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in prefkit.read_jsonl(run_dir / "results.jsonl"):
        for k in keys:
            if row.get(k) is not None:
                out[k] = row[k]
    return out


def _open(command: str, opts: DataOptions, extra_identity: dict[str, Any], *, output_dir, run_name, fresh,
          hint: str):
    config = {k: (v.value if isinstance(v, Context) else v) for k, v in vars(opts).items()}
    identity = {k: config[k] for k in ("subset", "model", "context", "format", "hub_id", "min_score_ratio",
                                       "pairs_per_post", "seed", "limit", "eval_limit", "max_prompt_tokens",
                                       "max_length")}
    identity.update(extra_identity)
    return prefkit.Run.open(command, config=config, identity=identity, output_dir=output_dir, run_name=run_name,
                            fresh=fresh, name_hint=hint)


def train(opts: TrainOptions, *, output_dir: str | None = None, run_name: str | None = None,
          fresh: bool = False) -> dict[str, Any]:
    """SFT on the preferred comments, then DPO from the SFT model on the pairs; returns the summary."""
    sub, context, fmt = _check(opts)
    cfgs = _stages(opts, fmt)
    tok = _tokenizer(opts.model)
    prep = prepare_pairs(opts, tok)
    sft_train = prep.builder.sft_rows(prep.train)
    sft_counts = dict(prep.builder.policy.counts)
    prep.builder.policy.counts.update({k: 0 for k in prep.builder.policy.counts})
    dpo_train = prep.builder.pair_rows(prep.train)
    dpo_counts = dict(prep.builder.policy.counts)
    sft_eval = prep.builder.sft_rows(prep.eval)
    dpo_eval = prep.builder.pair_rows(prep.eval)
    if not sft_train or not dpo_train:
        raise prefkit.UsageError(f"no training pairs fit --max-length {opts.max_length} (lengths: {dpo_counts})")
    run = _open(TRAIN_COMMAND, opts, {"preset": opts.preset, "sft": cfgs["sft"], "dpo": cfgs["dpo"],
                                      "prompt": describe(fmt)},
                output_dir=output_dir, run_name=run_name, fresh=fresh,
                hint=f"{sub.name}-{context.value}-{model_label(opts.model)}")
    counts = {**prep.counts, "sft_examples": len(sft_train), "dpo_pairs": len(dpo_train),
              "sft_lengths": sft_counts, "dpo_lengths": dpo_counts, "eval_pairs": len(dpo_eval)}
    run.write_metrics({"data": counts})
    with run:  # the core lifecycle: an exception records "failed", Ctrl-C/SIGTERM "interrupted"
        results = chain(opts.model, run.path / "chain", sft_train, sft_eval, dpo_train, dpo_eval, cfgs, fmt,
                        preset=opts.preset, fresh=fresh)
        sft_res, dpo_res = results["sft"], results["dpo"]
        dpo_metrics = {**_last_logged(dpo_res.output_dir, ("rewards/margins", "rewards/accuracies", "rewards/chosen",
                                                           "rewards/rejected")), **dpo_res.metrics}
        model_dir = dpo_res.merged_dir or dpo_res.adapter_dir
        handoff = {"model_dir": str(model_dir), "model_id": f"{model_label(opts.model)}-compred-{sub.name}-{context.value}",
                   "base_model": opts.model, "subset": sub.name, "context": context.value, "format": fmt,
                   "seed": opts.seed, "max_prompt_tokens": opts.max_prompt_tokens, "max_length": opts.max_length,
                   "data_dir": str(Path(opts.data_dir).resolve()) if opts.data_dir else None, "hub_id": opts.hub_id,
                   "sft_dir": str(sft_res.output_dir), "dpo_dir": str(dpo_res.output_dir)}
        settings = json.loads((run.path / "chain" / "manifest.json").read_text()).get("config", {}).get("stages")
        summary = {"data": counts, "sft": sft_res.metrics, "dpo": dpo_metrics, "handoff": handoff, "settings": settings}
        run.write_metrics(summary)
        run.finish(prefkit.RunStatus.DONE, handoff=handoff)
    return {"run": str(run.path), "status": run.manifest["status"], **summary}


def chain(model: str, out: Path, sft_train, sft_eval, dpo_train, dpo_eval, cfgs: dict[str, Any], fmt: str, *,
          preset: str = PRESET, fresh: bool = False) -> dict[str, Any]:
    """SFT then DPO from the merged SFT model (also the DPO reference) through the core chain."""
    stages = [prefkit.ChainStage("sft", trainer_rows(sft_train, fmt, ("completion",)),
                                 trainer_rows(sft_eval, fmt, ("completion",)) or None, config=cfgs["sft"]),
              prefkit.ChainStage("dpo", trainer_rows(dpo_train, fmt, ("chosen", "rejected")),
                                 trainer_rows(dpo_eval, fmt, ("chosen", "rejected")) or None, config=cfgs["dpo"])]
    res = prefkit.train_chain(model, stages, out, preset=preset, fresh=fresh)
    return {"sft": res.stages[0].result, "dpo": res.stages[1].result, "chain": res}


# ------------------------------------------------------------------------------------------------ reward
def accuracy_by_subreddit(scored: Sequence[dict[str, Any]], *, bootstrap: int = 1000,
                          seed: int = 0) -> dict[str, Any]:
    """Accuracy (r_chosen > r_rejected) per subreddit and overall, with bootstrap CIs.

    ``scored``: dicts with ``subreddit``, ``r_chosen``, ``r_rejected``. A tie in reward counts as
    wrong (the model did not prefer the chosen comment). Overall is over all pairs (micro); the
    macro average over subreddits is reported too. (The reference printed the error rate as
    its overall "accuracy".)
    """
    import numpy as np

    def stats(vals: list[float]) -> dict[str, Any]:
        arr = np.asarray(vals, dtype=float)
        out: dict[str, Any] = {"n": int(arr.size), "correct": int(arr.sum()),
                               "accuracy": float(arr.mean()) if arr.size else None, "accuracy_ci": None}
        if bootstrap and arr.size > 1:
            rng = np.random.default_rng(seed)
            means = arr[rng.integers(0, arr.size, size=(bootstrap, arr.size))].mean(axis=1)
            out["accuracy_ci"] = [float(x) for x in np.quantile(means, [0.025, 0.975])]
        return out

    by: dict[str, list[float]] = {}
    for s in scored:
        by.setdefault(str(s["subreddit"]), []).append(1.0 if s["r_chosen"] > s["r_rejected"] else 0.0)
    per = {k: stats(v) for k, v in sorted(by.items())}
    overall = stats([x for v in by.values() for x in v])
    overall["macro_accuracy"] = float(np.mean([p["accuracy"] for p in per.values()])) if per else None
    return {"per_subreddit": per, "overall": overall}


def score_pairs(model_dir: str | Path, rows: Sequence[dict[str, Any]], fmt: str, *, batch_size: int = 16,
                max_length: int = 1024) -> list[dict[str, Any]]:
    """Reward of chosen and rejected for each row (batched; texts exactly as the reward trainer builds them)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from transformers.utils import logging as hf_logging

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # prefkit prints its own lines; no weight-loading bar
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    tok.padding_side = "right"

    def encode(prompt, response) -> list[int]:
        if fmt == "text":
            text = prompt + response
            if not text.endswith(tok.eos_token or ""):
                text += tok.eos_token or ""
            return tok(text)["input_ids"][:max_length]
        ids = tok.apply_chat_template(prompt + response, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        return list(ids)[:max_length]

    trl_rows = trainer_rows(rows, fmt, ("chosen", "rejected"))
    out = []
    for i in range(0, len(trl_rows), batch_size):
        part = trl_rows[i:i + batch_size]
        seqs = [encode(r["prompt"], r[side]) for r in part for side in ("chosen", "rejected")]
        batch = tok.pad({"input_ids": seqs}, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float().cpu().tolist()
        for j, r in enumerate(rows[i:i + batch_size]):
            out.append({"pair_id": r.get("pair_id"), "post_id": r["post_id"], "subreddit": r["subreddit"],
                        "r_chosen": logits[2 * j], "r_rejected": logits[2 * j + 1]})
    return out


def reward(opts: RewardOptions, *, output_dir: str | None = None, run_name: str | None = None,
           fresh: bool = False) -> dict[str, Any]:
    """Train the reward model on the subsample; accuracy per subreddit and overall on test_pref."""
    sub, context, fmt = _check(opts)
    cfg = stage_settings("reward", fmt, opts.per_device_batch, max_steps=opts.max_steps, seed=opts.seed,
                         max_length=opts.max_length)
    tok = _tokenizer(opts.model)
    prep = prepare_pairs(opts, tok)
    train_rows = prep.builder.pair_rows(prep.train)
    eval_rows = prep.builder.pair_rows(prep.eval)
    train_counts = dict(prep.builder.policy.counts)
    test_pairs, test_counts = data.load_pairs(sub, sub.test, data_dir=opts.data_dir, hub_id=opts.hub_id,
                                              sample=opts.test_subsample, min_ratio=opts.min_score_ratio,
                                              per_post=opts.pairs_per_post, seed=opts.seed, limit=opts.test_limit)
    prep.builder.policy.counts.update({k: 0 for k in prep.builder.policy.counts})
    test_rows = prep.builder.pair_rows(test_pairs)
    counts = {**prep.counts, "reward_pairs": len(train_rows), "lengths": train_counts, "test": test_counts,
              "test_pairs": len(test_rows), "test_lengths": dict(prep.builder.policy.counts)}
    run = _open(REWARD_COMMAND, opts, {"reward": cfg, "prompt": describe(fmt),
                                       "test_subsample": opts.test_subsample, "test_limit": opts.test_limit},
                output_dir=output_dir, run_name=run_name, fresh=fresh,
                hint=f"{sub.name}-{context.value}-{model_label(opts.model)}")
    run.write_metrics({"data": counts})
    with run:  # the core lifecycle: an exception records "failed", Ctrl-C/SIGTERM "interrupted"
        res = prefkit.train("reward", opts.model, trainer_rows(train_rows, fmt, ("chosen", "rejected")),
                            trainer_rows(eval_rows, fmt, ("chosen", "rejected")) or None, config=cfg,
                            output_dir=run.path / "rm", preset=PRESET, fresh=fresh)
        model_dir = res.merged_dir or res.adapter_dir
        scored = score_pairs(model_dir, test_rows, fmt, batch_size=opts.score_batch, max_length=opts.max_length)
        for s in scored:
            run.append({**s, "correct": s["r_chosen"] > s["r_rejected"]}, key=s["pair_id"])
        test = accuracy_by_subreddit(scored, seed=opts.seed)
        summary = {"data": counts, "train": res.metrics, "test": test, "test_split": sub.test,
                   "model_dir": str(model_dir), "settings": json.loads((run.path / "rm" / "manifest.json").read_text()
                                                                        ).get("config")}
        run.write_metrics(summary)
        run.finish(accuracy=test["overall"]["accuracy"])
    return {"run": str(run.path), "status": run.manifest["status"], **summary}
