"""Accuracy vs number of context pairs, over seeds, with standard errors; table and plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

#: Kobalczyk et al., synthetic benchmark (accuracy %, paper's evaluation notebook).
PAPER_SYNTHETIC = {
    "btl": {0: 76.4, 1: 76.4, 3: 76.4, 5: 76.4, 10: 76.4},
    "dpl": {0: 76.3, 1: 76.3, 3: 76.3, 5: 76.3, 10: 76.3},
    "nppl": {0: 76.4, 1: 86.6, 3: 94.7, 5: 97.4, 10: 98.9},
}


def resolve_aggregation(aggregation: str, convention: str) -> str:
    """``auto`` → ``samples`` for the paper's convention (its evaluation averages the accuracy
    of every latent sample), ``predictive`` (threshold the posterior-predictive mean) otherwise."""
    from prefkit import UsageError

    from .config import AGGREGATIONS

    if aggregation not in AGGREGATIONS:
        raise UsageError(f"unknown --aggregation {aggregation!r} (choose from {', '.join(AGGREGATIONS)})")
    if aggregation == "auto":
        return "samples" if convention == "paper" else "predictive"
    return aggregation


def correct_counts(model, batches, z_samples: int = 16, aggregation: str = "predictive") -> dict[int, list[float]]:
    """{user type index: [correct, scored]} over the scored targets of ``batches``.

    ``predictive``: a target is correct when the posterior-predictive mean probability (averaged
    over ``z_samples`` latents) is on the chosen side of 0.5. ``samples``: each latent sample
    predicts on its own and a target counts the fraction of samples that are right (the
    paper's evaluation: the mean of the per-sample accuracies).
    """
    import torch

    out: dict[int, list[float]] = {}
    with torch.no_grad():
        model.eval()
        for b in batches:
            p = model.predict_samples(b, samples=z_samples)                      # (S, B, T)
            if aggregation == "predictive":
                p = p.mean(dim=0, keepdim=True)
            hit = ((p > 0.5).long() == b.choices_t.unsqueeze(0)).float().mean(dim=0)  # (B, T)
            w = b.score_t.float()
            for u in b.users.unique().tolist():
                sel = b.users == u
                c = out.setdefault(int(u), [0.0, 0.0])
                c[0] += float((hit[sel] * w[sel]).sum())
                c[1] += float(w[sel].sum())
    return out


def accuracy(model, batches, z_samples: int = 16, aggregation: str = "predictive") -> tuple[float, int]:
    """Micro-averaged accuracy over the scored targets (see :func:`correct_counts`)."""
    counts = correct_counts(model, batches, z_samples, aggregation)
    correct = sum(c for c, _ in counts.values())
    n = sum(n for _, n in counts.values())
    return correct / max(n, 1), int(n)


def evaluate_model(model, data, contexts: Sequence[int], seeds: Iterable[int], conventions: Sequence[str],
                   split: str = "test", z_samples: int = 16, num_targets: int = 20, aggregation: str = "auto",
                   done=lambda key: False, on_result=None) -> list[dict[str, Any]]:
    """One row per (convention, context size, seed): accuracy on the whole split, overall and
    per user type (``by_type``)."""
    import torch

    from .data import eval_batches

    rows = []
    types = data.user_types
    for conv in conventions:
        agg = resolve_aggregation(aggregation, conv)
        for k in contexts:
            for seed in seeds:
                key = f"{conv}|{k}|{seed}|{agg}"
                if done(key):
                    continue
                torch.manual_seed(seed)
                batches = eval_batches(data, split, k, conv, seed, num_targets=num_targets)
                counts = correct_counts(model, batches, z_samples, agg)
                correct = sum(c for c, _ in counts.values())
                n = sum(m for _, m in counts.values())
                row = {"convention": conv, "context": k, "seed": seed, "aggregation": agg,
                       "accuracy": correct / max(n, 1), "n_scored": int(n),
                       "by_type": {types[u]: c / max(m, 1) for u, (c, m) in sorted(counts.items())}}
                rows.append(row)
                if on_result:
                    on_result(key, row)
    return rows


from prefkit import mean_se  # noqa: E402  (the core's mean ± SE: one value has no SE, nan)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """rows with label, run, convention, context, seed, accuracy ->
    {label: {convention: {k: {mean, se, n_runs, n_seeds}}}} in percent.

    Several runs under one label (training seeds): each run is averaged over its
    evaluation seeds first and the standard error is over runs; one run: over seeds.
    """
    groups: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        key = (r["label"], r["convention"], int(r["context"]))
        groups.setdefault(key, {}).setdefault(r.get("run", ""), []).append(100.0 * r["accuracy"])
    out: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for (label, conv, k), per_run in groups.items():
        if len(per_run) > 1:
            m, se = mean_se([sum(v) / len(v) for v in per_run.values()])
        else:
            m, se = mean_se(next(iter(per_run.values())))
        out.setdefault(label, {}).setdefault(conv, {})[k] = {
            "mean": m, "se": se, "n_runs": len(per_run), "n_seeds": max(len(v) for v in per_run.values())}
    return out


def summarise_by_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """As :func:`summarise`, one entry per (label, user type) named ``"label: type"``
    (rows without per-type accuracies are skipped)."""
    expanded = [{**r, "label": f"{r['label']}: {t}", "accuracy": a}
                for r in rows for t, a in (r.get("by_type") or {}).items()]
    return summarise(expanded)


def table_rows(summary, contexts: Sequence[int], conventions: Sequence[str], paper: bool) -> tuple[list[dict], list[str]]:
    """Rows for the terminal table; the paper's numbers go in the paper-convention rows."""
    labels = list(summary)
    paper = paper and "paper" in conventions
    rows, columns = [], ["convention", "context"]
    for label in labels:
        columns.append(label)
        if paper and label in PAPER_SYNTHETIC:
            columns.append(f"{label} (paper)")
    for conv in conventions:
        for k in contexts:
            row: dict[str, Any] = {"convention": conv, "context": k}
            for label in labels:
                cell = summary[label].get(conv, {}).get(k)
                row[label] = "" if cell is None else f"{cell['mean']:.1f} ± {cell['se']:.1f}"
                if paper and label in PAPER_SYNTHETIC:
                    ref = PAPER_SYNTHETIC[label].get(k) if conv == "paper" else None
                    row[f"{label} (paper)"] = "" if ref is None else f"{ref:.1f}"
            rows.append(row)
    return rows, columns


def markdown_table(summary, contexts: Sequence[int], convention: str, paper: bool) -> str:
    labels = list(summary)
    head = ["context pairs"]
    for label in labels:
        head.append(label)
        if paper and label in PAPER_SYNTHETIC:
            head.append(f"{label} paper")
            head.append("gap")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for k in contexts:
        cells = [str(k)]
        for label in labels:
            c = summary[label].get(convention, {}).get(k)
            cells.append("" if c is None else f"{c['mean']:.1f} ± {c['se']:.1f}")
            if paper and label in PAPER_SYNTHETIC:
                ref = PAPER_SYNTHETIC[label].get(k)
                cells.append("" if ref is None else f"{ref:.1f}")
                cells.append("" if (ref is None or c is None) else f"{c['mean'] - ref:+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy(summary, contexts: Sequence[int], conventions: Sequence[str], path: str | Path,
                  paper: bool = False, title: str | None = None) -> list[Path]:
    """Accuracy vs context size, one line per model (± s.e. band), one panel per convention;
    the paper's numbers as dashed lines when ``paper``."""
    from prefkit import plots
    PALETTE, pyplot, save_figure = plots.PALETTE, plots.pyplot, plots.save_figure

    plt = pyplot()
    names = {"unseen": "targets exclude the context", "paper": "paper's convention (context among targets)",
             "all": "all targets incl. context"}
    n = len(conventions)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.9), squeeze=False, sharey=True)
    for ax, conv in zip(axes[0], conventions):
        for j, (label, by_conv) in enumerate(summary.items()):
            color = PALETTE[j % len(PALETTE)]
            pts = by_conv.get(conv, {})
            ks = [k for k in contexts if k in pts]
            if not ks:
                continue
            m = [pts[k]["mean"] for k in ks]
            se = [pts[k]["se"] for k in ks]
            ax.errorbar(ks, m, yerr=se, label=label, color=color, marker="o", markersize=4, linewidth=1.6,
                        capsize=3)
            if paper and label in PAPER_SYNTHETIC and conv == "paper":
                ref = [PAPER_SYNTHETIC[label].get(k) for k in ks]
                ax.plot(ks, ref, linestyle="--", color=color, linewidth=1.1, alpha=0.8, label=f"{label} (paper)")
        ax.set_title(names.get(conv, conv), fontsize=10)
        ax.set_xlabel("context pairs")
        ax.set_xticks(list(contexts))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("accuracy on target choices (%)")
    handles: dict = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    handles = dict(sorted(handles.items(), key=lambda kv: kv[0].endswith("(paper)")))  # models first
    ncol = min(len(handles), 6) or 1
    rows = math.ceil(len(handles) / ncol) if handles else 0
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05 + 0.05 * rows, 1, 1))  # leave room for the figure legend
    return save_figure(fig, Path(path).with_suffix(""), dpi=150, tight_layout=False)
