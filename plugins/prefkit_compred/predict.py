"""``prefkit compred predict``: one greedy answer per test post, keyed by ``post_id``.

Fixes the reference's generation bugs (``predict.py``): posts are deduplicated by
``post_id`` (no row skipped by batching), stops actually stop (the backend halts on them
and cuts the text before them), only the new tokens are decoded, the post is cut to the
same token budget as in training, and each output carries ``post_id``, the model id and
the context mode. Runs through the ``hf`` backend, or any OpenAI-compatible server
(``--backend openai --base-url http://localhost:8000/v1`` for ``vllm serve``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prefkit

from . import data
from .prompts import STOPS, CommunityLabeler, Context, LengthPolicy, PromptBuilder, check_format, parse_context

LOCAL_BACKENDS = ("hf",)
TRAIN_COMMAND = "compred train"
PREDICT_COMMAND = "compred predict"
DEFAULT_MAX_NEW_TOKENS = 1024  # the reference's max_new_tokens


@dataclass
class PredictOptions:
    """What ``compred predict`` generates for."""

    subset: str | None = prefkit.opt(None, help="Subset: finance, gender_sexuality, history, politics, science "
                                     "or shp (default: the training run's).")
    context: Context | None = prefkit.opt(None, help="Community context at inference: none, subreddit or "
                                          "random-subreddit (default: the training run's, else subreddit).",
                                          cli_type=Context)
    format: str | None = prefkit.opt(None, help="Prompt format: text (base models) or chat (the model's chat "
                                     "template) (default: the training run's, else text).")
    data_dir: str | None = prefkit.opt(None, help="Offline mirror folder (compred-<config>/, shp/; also "
                                       "PREFKIT_DATA_DIR; default: the training run's).")
    hub_id: str | None = prefkit.opt(None, help="Hub dataset id (default allenai/compred or stanfordnlp/SHP; a "
                                     "local copy of the hub repository works too).")
    limit: int | None = prefkit.opt(None, help="Only the first N test posts (after deduplication by post_id).")
    max_prompt_tokens: int | None = prefkit.opt(None, help="Cut the post so the prompt fits this many tokens "
                                                "(default: the training run's, else 512).")
    repetition_penalty: float = prefkit.opt(1.1, help="Repetition penalty (the reference's 1.1; 1 turns it off).")
    tokenizer: str | None = prefkit.opt(None, help="Tokenizer for the prompt budget with API backends (default: "
                                        "the model's when it can be loaded locally).")
    context_seed: int | None = prefkit.opt(None, help="Seed of the random-subreddit substitution (default: the "
                                           "training run's --seed, so a post gets the same substitute; else 0).")


# ------------------------------------------------------------------------------------------------ model hand-off
def read_train_run(path: str | Path) -> dict[str, Any] | None:
    """The hand-off of a ``compred train`` run (model dir, subset, context, format, limits), or None."""
    p = Path(path)
    mp = p / "manifest.json"
    if not mp.is_file():
        return None
    manifest = json.loads(mp.read_text())
    if manifest.get("command") != TRAIN_COMMAND:
        return None
    handoff = (manifest.get("summary") or {}).get("handoff") or {}
    if not handoff.get("model_dir"):
        metrics_path = p / "metrics.json"
        handoff = (json.loads(metrics_path.read_text()).get("handoff") if metrics_path.is_file() else None) or {}
    if not handoff.get("model_dir"):
        raise prefkit.UsageError(f"{p} is a compred train run without a finished model (status "
                                 f"{manifest.get('status')!r}); finish it first")
    return handoff


def model_label(model: str) -> str:
    p = Path(model)
    return p.name if p.exists() else str(model).replace("/", "-")


def _tokenizer(name: str | None):
    if not name:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(name))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ planning
@dataclass
class Plan:
    model: str
    model_id: str
    subset: data.Subset
    context: Context
    fmt: str
    requests: list[Any]
    inputs: dict[str, dict[str, Any]]
    counts: dict[str, Any]
    policy: LengthPolicy
    seed: int = 0


def plan(model: str, opts: PredictOptions, llm: Any) -> Plan:
    """Resolve the model and settings, load the test posts and build one request per post."""
    handoff = read_train_run(model) or {}
    model_dir = str(handoff.get("model_dir") or model)
    sub = data.subset(opts.subset or handoff.get("subset") or _required("--subset"))
    context = parse_context(opts.context or handoff.get("context") or Context.subreddit)
    fmt = check_format(opts.format or handoff.get("format") or "text")
    max_prompt = int(opts.max_prompt_tokens or handoff.get("max_prompt_tokens") or 512)
    max_new = max_new_tokens(llm)
    posts, counts = data.load_posts(sub, data_dir=opts.data_dir or handoff.get("data_dir"),
                                    hub_id=opts.hub_id or handoff.get("hub_id"))
    seed = opts.context_seed if opts.context_seed is not None else int(handoff.get("seed") or 0)
    labeler = CommunityLabeler(context, [p["subreddit"] for p in posts], seed=seed)
    if opts.limit is not None:
        if opts.limit < 1:
            raise prefkit.UsageError(f"--limit must be at least 1 (got {opts.limit})")
        posts = posts[:opts.limit]
    counts["used"] = len(posts)
    local = llm.backend in LOCAL_BACKENDS
    tok = _tokenizer(opts.tokenizer or (model_dir if local or Path(model_dir).exists() else None))
    if tok is None and fmt == "chat":
        raise prefkit.UsageError("the chat format needs the model's tokenizer to measure prompts; pass --tokenizer")
    policy = LengthPolicy(max_prompt_tokens=max_prompt, max_length=max_prompt + max_new)
    builder = PromptBuilder(fmt, labeler, tok, policy)
    extra: dict[str, Any] = {}
    if opts.repetition_penalty != 1.0:
        extra["repetition_penalty"] = float(opts.repetition_penalty)
    requests, inputs = [], {}
    for post in posts:
        row = builder.generation_prompt(post)
        if row is None:
            continue
        prompt = row["prompt"]
        if fmt == "text":
            messages = [{"role": "user", "content": prompt}]
            req_extra = {**extra, "raw_prompt": True} if local else dict(extra)
        else:
            messages, req_extra = prompt, dict(extra)
        requests.append(prefkit.ChatRequest(key=post["post_id"], messages=messages, stop=list(STOPS),
                                            max_tokens=max_new, temperature=0.0, extra=req_extra))
        inputs[post["post_id"]] = {**post, "prompt": prompt, "context_subreddit": row["context_subreddit"]}
    counts["prompt_policy"] = dict(policy.counts)
    counts["prompt_tokens_measured"] = tok is not None
    return Plan(seed=seed, model=model_dir, model_id=str(handoff.get("model_id") or model), subset=sub, context=context,
                fmt=fmt, requests=requests, inputs=inputs, counts=counts, policy=policy)


def max_new_tokens(llm: Any) -> int:
    """Most tokens per answer: --max-tokens, else the reference's 1024."""
    n = int(llm.max_tokens or DEFAULT_MAX_NEW_TOKENS)
    if n < 1:
        raise prefkit.UsageError(f"--max-tokens must be at least 1 (got {n})")
    return n


def _required(flag: str):
    raise prefkit.UsageError(f"{flag} is required (the model is not a compred train run that records it)")


# ------------------------------------------------------------------------------------------------ running
def predict(model: str, opts: PredictOptions | None = None, llm: Any = None, *, output_dir: str | None = None,
            run_name: str | None = None, fresh: bool = False, progress: bool = True) -> dict[str, Any]:
    """Generate one answer per test post into a resumable run; returns the summary."""
    opts = opts or PredictOptions()
    llm = prefkit.BackendOptions() if llm is None else llm
    p = plan(str(model), opts, llm)
    local = llm.backend in LOCAL_BACKENDS
    # a local model directory can be retrained in place: the run store (not the response cache) resumes
    llm = llm.replace(model=p.model, temperature=0.0, max_tokens=max_new_tokens(llm),
                      **({"cache": False} if local else {}))
    config = {"model": p.model, "model_id": p.model_id, "subset": p.subset.name, "context": p.context.value,
              "format": p.fmt, "context_seed": p.seed, "max_new_tokens": llm.max_tokens,
              "max_prompt_tokens": p.policy.max_prompt_tokens, "repetition_penalty": opts.repetition_penalty,
              "limit": opts.limit, "stop": list(STOPS), "backend": llm.to_dict()}
    identity = {k: config[k] for k in ("model", "subset", "context", "format", "context_seed", "max_new_tokens",
                                       "max_prompt_tokens", "repetition_penalty")}
    identity["llm"] = llm.identity()
    run = prefkit.Run.open(PREDICT_COMMAND, config=config, identity=identity, output_dir=output_dir,
                           run_name=run_name, fresh=fresh,
                           name_hint=f"{p.subset.name}-{p.context.value}-{model_label(p.model_id)}")

    def on_result(c: Any) -> dict[str, Any]:
        it = p.inputs[c.key]
        return {"post_id": c.key, "subreddit": it["subreddit"], "context": p.context.value,
                "context_subreddit": it["context_subreddit"], "model": p.model_id, "model_path": p.model,
                "format": p.fmt, "title": it["title"], "post": it["post"], "prompt": it["prompt"],
                "response": (c.text or "").strip(), "finish_reason": c.finish_reason}

    with run:  # the core lifecycle: an exception records "failed", Ctrl-C/SIGTERM "interrupted"
        prefkit.run_requests(p.requests, llm, run=run, on_result=on_result, progress=progress,
                             description=f"compred predict {p.subset.name} ({p.context.value})")
        results = run.results()
        counts = {**p.counts, "requests": len(p.requests), "done": len(results), "failed": len(run.failures()),
                  "hit_max_new_tokens": sum(1 for r in results if r.get("finish_reason") == "length")}
        run.write_metrics({"counts": counts})
        status = (prefkit.RunStatus.DONE if counts["failed"] == 0 and counts["done"] == counts["requests"]
                  else prefkit.RunStatus.INCOMPLETE)
        run.finish(status, **{k: counts[k] for k in ("requests", "done", "failed")})
    return {"run": str(run.path), "status": run.manifest["status"], **config, "counts": counts}
