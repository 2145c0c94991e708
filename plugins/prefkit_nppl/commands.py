"""Bodies of the ``prefkit nppl`` commands (torch and friends are imported here, lazily)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from prefkit import info, print_json, print_table
from prefkit import UsageError
from prefkit import RunOptions, split_csv
from prefkit import Run

from .config import CONVENTIONS, DPOOptions, EmbedOptions, EvalOptions, TrainOptions, parse_int_list

# settings that do not change results (left out of run identities)
_NOT_IDENTITY = {"device", "threads", "json"}


def _identity(opts: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(opts).items() if k not in _NOT_IDENTITY}


def _name_hint(prefix: str, opts: Any, skip: tuple[str, ...] = ()) -> str:
    """``prefix`` + every identity setting that differs from its default (so a new
    setting gets a new run directory and the same settings resume the same one)."""
    defaults = type(opts)()
    parts = [prefix]
    for k, v in _identity(opts).items():
        if k in skip or v == getattr(defaults, k):
            continue
        parts.append(f"{k.replace('_', '')}{v}")
    return "-".join(str(p) for p in parts)


def _data_label(spec: str) -> str:
    return "synthetic" if spec == "synthetic" else Path(spec).name or "data"


def _open(command: str, run_opts: RunOptions | None, *, config: Any, identity: dict, name_hint: str) -> Run:
    ro = run_opts or RunOptions()
    return Run.open(command, config=config, identity=identity, output_dir=ro.output_dir, run_name=ro.run_name,
                    name_hint=name_hint, fresh=ro.fresh)


# ---------------------------------------------------------------------- synthetic
def synthetic(n: int = 20_000, seed: int = 0, run_opts: RunOptions | None = None, as_json: bool = False) -> Path:
    from .data import SPLITS, make_synthetic

    if n < 100:
        raise UsageError("--n must be at least 100")
    run = _open("nppl synthetic", run_opts, config={"n": n, "seed": seed}, identity={"n": n, "seed": seed},
                name_hint=f"n{n}-seed{seed}")
    with run:
        data = make_synthetic(n=n, seed=seed)
        data.save(run.path)
        stats = data.stats()
        for i, split in enumerate(SPLITS):
            sel = data.split == i
            ch = data.choices[sel]
            run.append({"split": split, "pairs": int(sel.sum()),
                        "types_disagree": float((ch[:, 0] != ch[:, 1]).float().mean()) if len(ch) else 0.0},
                       key=split)
        run.write_metrics(stats)
    if as_json:
        print_json({"path": str(run.path), **stats})
    else:
        info(f"wrote the synthetic benchmark to {run.path} ({stats['n']} pairs: {stats['splits']}; "
             f"the two user types disagree on {100 * stats['conflict_rate']:.1f}% of pairs, so a model without "
             f"context tops out near {100 * stats['context_free_ceiling']:.1f}%)")
    return run.path


# ---------------------------------------------------------------------- train
def train(opts: TrainOptions, run_opts: RunOptions | None = None, as_json: bool = False,
          progress: bool = True) -> Path:
    from .training import train_reward_model

    opts.validate()
    opts.model_config(1)  # validates --model / layer names early
    data_spec = opts.data if opts.data == "synthetic" else str(Path(opts.data).resolve())
    opts = dataclasses.replace(opts, data=data_spec)
    hint = _name_hint(f"{opts.model}-{_data_label(opts.data)}-seed{opts.seed}", opts, skip=("model", "data", "seed"))
    run = _open("nppl train", run_opts, config=opts, identity=_identity(opts), name_hint=hint)
    with run:
        metrics = train_reward_model(opts, run, progress=progress)
    if as_json:
        print_json({"path": str(run.path), **metrics})
    else:
        split_note = "" if metrics.get("selection_split", "val") == "val" else ", chosen on the TRAINING split"
        info(f"{opts.model}: kept step {metrics.get('kept_step')} (validation accuracy "
             f"{100 * (metrics.get('best_val_accuracy') or 0):.1f}%{split_note}), {metrics.get('wall_time_s')} s, "
             f"{metrics.get('train_ms_per_step')} ms/step → {run.path}")
        info(f"next: prefkit nppl eval {run.path}")
    return run.path


# ---------------------------------------------------------------------- eval
def _run_kind(path: str) -> str:
    run = Run.load(path)
    return str(run.manifest.get("command"))


def evaluate(runs: list[str], labels: str | None, opts: EvalOptions, run_opts: RunOptions | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate train (or dpo) runs; writes an ``nppl eval`` run with results, table and plot."""
    from .evaluation import (PAPER_SYNTHETIC, evaluate_model, markdown_table, plot_accuracy, resolve_aggregation,
                             summarise, summarise_by_type, table_rows)

    if not runs:
        raise UsageError("give at least one run directory")
    contexts = parse_int_list(opts.contexts)
    if not contexts:
        raise UsageError("--contexts is empty")
    conventions = split_csv(opts.conventions)
    bad = [c for c in conventions if c not in CONVENTIONS]
    if bad or not conventions:
        raise UsageError(f"unknown --conventions {', '.join(bad) or '(none)'} (choose from {', '.join(CONVENTIONS)})")
    if opts.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    aggs = {c: resolve_aggregation(opts.aggregation, c) for c in conventions}
    kinds = {_run_kind(r) for r in runs}
    if kinds == {"nppl dpo"}:
        from .np_dpo import evaluate_dpo_runs

        return evaluate_dpo_runs(runs, labels, opts, run_opts)
    if kinds != {"nppl train"}:
        raise UsageError(f"expected 'nppl train' run directories, got {', '.join(sorted(kinds))}")
    label_list = split_csv(labels) if labels else []
    if label_list and len(label_list) != len(runs):
        raise UsageError(f"--labels has {len(label_list)} labels for {len(runs)} runs")

    import torch

    from .data import load_data
    from .training import MODEL_FILE, file_digest, load_run_model, resolve_device

    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    loaded = []
    for i, r in enumerate(runs):
        model, cfg = load_run_model(r, device)
        label = label_list[i] if label_list else model.cfg.kind
        data_spec = opts.data or cfg.get("data", "synthetic")
        # cells are keyed by the checkpoint's hash: a retrained run is evaluated afresh
        loaded.append((str(Path(r).resolve()), label, model, data_spec, file_digest(Path(r) / MODEL_FILE)))
    synthetic_only = all(x[3] == "synthetic" for x in loaded)
    show_paper = opts.paper and synthetic_only
    identity = {"runs": [x[0] for x in loaded], "labels": [x[1] for x in loaded], "split": opts.split,
                "data": opts.data, "z_samples": opts.z_samples, "num_targets": opts.num_targets}
    if opts.aggregation != "auto":  # (auto was the only behaviour before: old runs keep resuming)
        identity["aggregation"] = opts.aggregation
    hint = "+".join(dict.fromkeys(Path(x[0]).name for x in loaded))[:60] + f"-{opts.split}"
    run = _open("nppl eval", run_opts, config=opts, identity=identity, name_hint=hint)
    seeds = list(range(opts.seeds))
    cache: dict[str, Any] = {}
    with run:
        from prefkit import progress as progress_bar

        total = len(loaded) * len(conventions) * len(contexts) * len(seeds)
        with progress_bar(total, "evaluating", disable=None if progress else True) as (bar, task):
            for path, label, model, data_spec, digest in loaded:
                if data_spec not in cache:
                    cache[data_spec] = load_data(data_spec).to(device)
                data = cache[data_spec]
                if data.input_dim != model.cfg.input_dim:
                    raise UsageError(f"{path}: the model takes {model.cfg.input_dim}-dim inputs, the data has {data.input_dim}")

                def on_result(key, row, _p=path, _l=label, _d=digest):
                    run.append({**row, "run": _p, "label": _l, "checkpoint": _d}, key=f"{_d}|{key}")
                    bar.advance(task)

                def done(key, _d=digest):
                    hit = run.is_done(f"{_d}|{key}")
                    if hit:
                        bar.advance(task)
                    return hit

                evaluate_model(model, data, contexts, seeds, conventions, split=opts.split, z_samples=opts.z_samples,
                               num_targets=opts.num_targets, aggregation=opts.aggregation, done=done,
                               on_result=on_result)
        wanted = {(c, k, s, aggs[c]) for c in conventions for k in contexts for s in seeds}
        current = {(x[0], x[4]) for x in loaded}
        rows = [r for r in run.results() if (r.get("run"), r.get("checkpoint")) in current
                and (r["convention"], int(r["context"]), int(r["seed"]), r.get("aggregation")) in wanted]
        summary = summarise(rows)
        by_type = summarise_by_type(rows) if opts.per_type else {}
        n_runs = max((c["n_runs"] for by in summary.values() for cells in by.values() for c in cells.values()), default=1)
        seeds_txt = f"{opts.seeds} evaluation seed{'s' if opts.seeds > 1 else ''}"
        if n_runs > 1:
            seeds_txt = f"{n_runs} training seeds × {seeds_txt}; bars: s.e. over training seeds"
        plot_files = plot_accuracy(summary, contexts, conventions, Path(run.path) / "accuracy_vs_context",
                                   paper=show_paper, title=f"accuracy vs context size ({opts.split} split, {seeds_txt})")
        tables = {conv: markdown_table(summary, contexts, conv, show_paper and conv == "paper") for conv in conventions}
        agg_txt = {c: "mean of per-sample accuracies" if a == "samples" else "posterior-predictive mean"
                   for c, a in aggs.items()}
        md = [f"### {c} ({agg_txt[c]})\n\n{t}" for c, t in tables.items()]
        if by_type:
            type_plot = plot_accuracy(by_type, contexts, conventions, Path(run.path) / "accuracy_by_type",
                                      title=f"accuracy per user type ({opts.split} split, {seeds_txt})")
            plot_files = list(plot_files) + list(type_plot)
            md += [f"### {c}, per user type ({agg_txt[c]})\n\n{markdown_table(by_type, contexts, c, False)}"
                   for c in conventions]
        (Path(run.path) / "table.md").write_text("\n\n".join(md) + "\n")
        gaps = {}
        if show_paper and "paper" in conventions:
            for label, by_conv in summary.items():
                if label in PAPER_SYNTHETIC:
                    gaps[label] = {k: round(v["mean"] - PAPER_SYNTHETIC[label][k], 2)
                                   for k, v in by_conv.get("paper", {}).items() if k in PAPER_SYNTHETIC[label]}
        result = {"path": str(run.path), "summary": summary, "plot": [str(p) for p in plot_files],
                  "contexts": contexts, "conventions": conventions, "seeds": opts.seeds, "aggregation": aggs,
                  "checkpoints": {x[0]: x[4] for x in loaded}}
        if by_type:
            result["summary_by_type"] = by_type
        if gaps:
            result["gap_to_paper"] = gaps
            result["max_abs_gap"] = max(abs(g) for per in gaps.values() for g in per.values())
        run.write_metrics({k: v for k, v in result.items() if k != "path"})
    if opts.json:
        print_json(result)
    else:
        trows, cols = table_rows(summary, contexts, conventions, show_paper)
        print_table(trows, cols, title="accuracy (%) vs context pairs, mean ± s.e.")
        if by_type:
            trows, cols = table_rows(by_type, contexts, conventions, False)
            print_table(trows, cols, title="accuracy (%) per user type")
        if gaps:
            info(f"largest gap to the paper (paper's convention): {result['max_abs_gap']:.1f} points")
        info(f"plot: {plot_files[0]}")
    return result


# ---------------------------------------------------------------------- embed
def embed(opts: EmbedOptions, run_opts: RunOptions | None = None, as_json: bool = False) -> Path:
    from .text import build_and_embed, default_datasets

    datasets = split_csv(opts.dataset) or default_datasets(opts.task, opts.data_dir)
    opts = dataclasses.replace(opts, dataset=datasets)
    ident = _identity(opts)
    ident.pop("batch_size", None)
    ident.pop("chunk_size", None)
    hint = f"{opts.task}-{opts.embedder.split('/')[-1]}"
    run = _open("nppl embed", run_opts, config=opts, identity=ident, name_hint=hint)
    with run:
        stats = build_and_embed(opts, run)
    if as_json:
        print_json({"path": str(run.path), **stats})
    else:
        info(f"embedded {stats['n']} pairs ({stats['splits']}) with {opts.embedder} ({stats['input_dim']} dims), "
             f"user types {', '.join(stats['user_types'])} → {run.path}")
        info(f"next: prefkit nppl train --model nppl --data {run.path}")
    return run.path


# ---------------------------------------------------------------------- dpo / generate
def dpo(opts: DPOOptions, run_opts: RunOptions | None = None, as_json: bool = False) -> Path:
    from .np_dpo import run_dpo

    if not opts.data:
        raise UsageError("--data is required: an embedding directory written by 'prefkit nppl embed'")
    opts = dataclasses.replace(opts, data=str(Path(opts.data).resolve()))
    kind = "dpo-baseline" if opts.baseline else "np-dpo"
    hint = _name_hint(f"{kind}-{Path(opts.model).name}-{Path(opts.data).name}", opts,
                      skip=("model", "data", "baseline"))
    ident = _identity(opts)
    for k in ("eval_contexts", "eval_seeds", "eval_limit"):
        ident.pop(k, None)
    run = _open("nppl dpo", run_opts, config=opts, identity=ident, name_hint=hint)
    with run:
        metrics = run_dpo(opts, run)
    if as_json:
        print_json({"path": str(run.path), **metrics})
    else:
        acc = metrics.get("implicit_accuracy")
        if acc:
            rows = [{"context": k, **{t: f"{100 * v:.1f}" for t, v in per.items()}} for k, per in acc.items()]
            print_table(rows, title="implicit-reward accuracy (%) on test pairs vs context size")
        if metrics.get("kept_step") is not None:
            on_train = "" if metrics.get("selection_split", "val") == "val" else ", chosen on the TRAINING split"
            info(f"kept step {metrics['kept_step']} (validation DPO loss {metrics['best_val_loss']:.4f}{on_train})")
        info(f"saved to {run.path}")
    return run.path


def generate(run: str, *, context: str | None, prompts: list[str], prompts_file: str | None,
             max_new_tokens: int = 128, temperature: float = 0.0, seed: int = 0, device: str = "auto",
             output: str | None = None, as_json: bool = False) -> list[dict[str, Any]]:
    from .np_dpo import generate_from_run

    all_prompts = list(prompts)
    if prompts_file:
        p = Path(prompts_file)
        if not p.exists():
            raise UsageError(f"no such file: {p}")
        all_prompts += [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not all_prompts:
        raise UsageError("give a prompt with --prompt TEXT or --prompts FILE")
    rows = generate_from_run(run, context, all_prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             seed=seed, device=device)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    if as_json:
        print_json(rows)
    else:
        from prefkit import rich_console as console

        for r in rows:
            console().rule(r["prompt"][:70])
            console().print(r["response"], highlight=False, markup=False)
    return rows
