"""Small plotting helpers shared by the core and the plugins.

Every function draws one figure with matplotlib's non-interactive ``Agg``
backend and writes it in each of ``formats`` (PNG and PDF by default) next to
``path``: ``bar_chart(..., path="out/winrate")`` writes ``out/winrate.png`` and
``out/winrate.pdf`` (a suffix on ``path`` is replaced). Each returns the list of
files written. matplotlib is imported inside the functions, so importing this
module costs nothing.

* :func:`bar_chart` — one bar per label, optional error bars (symmetric or a
  ``(low, high)`` interval per bar) and an optional dashed reference line
  (e.g. a 50 % win rate);
* :func:`grouped_bars` — several series side by side per group;
* :func:`stacked_bars` — proportions (e.g. A wins / ties / B wins) per label;
* :func:`line_plot` — series over turns, context sizes or steps, with optional
  error bands;
* :func:`loss_curve` — training (and evaluation) loss over steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFAULT_FORMATS = ("png", "pdf")
# colour-blind friendly (Okabe–Ito)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

Number = float | int
Interval = tuple[Number, Number]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (for plugins drawing their own figures)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _targets(path: str | Path, formats: Sequence[str]) -> list[Path]:
    p = Path(path)
    if p.suffix.lower().lstrip(".") in {"png", "pdf", "svg", "jpg", "jpeg"}:
        if not formats or list(formats) == list(DEFAULT_FORMATS):
            # an explicit suffix wins its own format; the other default formats come along
            first = p.suffix.lower().lstrip(".")
            formats = [first] + [f for f in DEFAULT_FORMATS if f != first]
        p = p.with_suffix("")
    p.parent.mkdir(parents=True, exist_ok=True)
    return [p.with_suffix("." + f.lower().lstrip(".")) for f in formats]


def save_figure(fig, path: str | Path, formats: Sequence[str] = DEFAULT_FORMATS, dpi: int = 150, *,
                tight_layout: bool = True) -> list[Path]:
    """Write ``fig`` once per format (PNG and PDF by default) and close it; returns the files.

    ``tight_layout=False`` keeps a layout the caller already set (e.g. room left for a figure legend).
    """
    plt = pyplot()
    out = []
    try:
        if tight_layout:
            fig.tight_layout()
        for target in _targets(path, formats):
            fig.savefig(target, dpi=dpi, bbox_inches="tight")
            out.append(target)
    finally:
        plt.close(fig)
    return out


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _yerr(values: Sequence[Number], errors: Sequence[Any] | None) -> Any:
    """Matplotlib ``yerr`` from symmetric errors or absolute ``(low, high)`` intervals."""
    if errors is None:
        return None
    if len(errors) != len(values):
        raise ValueError(f"{len(errors)} errors for {len(values)} values")
    lows, highs = [], []
    for v, e in zip(values, errors):
        if e is None or not _finite(v):
            lows.append(0.0)
            highs.append(0.0)
        elif isinstance(e, (tuple, list)):
            lo, hi = e
            lows.append(max(0.0, v - lo) if _finite(lo) else 0.0)
            highs.append(max(0.0, hi - v) if _finite(hi) else 0.0)
        else:
            lows.append(abs(e) if _finite(e) else 0.0)
            highs.append(abs(e) if _finite(e) else 0.0)
    return [lows, highs]


def wrap_label(text: Any, width: int = 24) -> str:
    """Break a long label into lines at spaces, underscores, hyphens and slashes (no word is cut)."""
    import re

    text = str(text)
    if len(text) <= width:
        return text
    pieces = [p for p in re.split(r"(?<=[\s/])|(?<=[_\-])(?![_\-])", text) if p]
    lines, cur = [], ""
    for p in pieces:
        if cur and len(cur) + len(p.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = p.lstrip() if p.strip() else ""
        else:
            cur += p
    if cur.strip():
        lines.append(cur.rstrip())
    return "\n".join(lines)


def _decorate(ax, title, xlabel, ylabel, ylim):
    if title:
        ax.set_title(wrap_label(title, 70))
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _width(n_labels: int, per: float = 0.9, base: float = 2.5, lo: float = 4.0, hi: float = 14.0) -> float:
    return min(hi, max(lo, base + per * n_labels))


def _rotate(ax, labels: Sequence[str]) -> None:
    longest = max((len(line) for x in labels for line in wrap_label(x, 22).split("\n")), default=0)
    if len(labels) * longest > 70:
        for t in ax.get_xticklabels():
            t.set_rotation(25)
            t.set_horizontalalignment("right")


def _xtick_labels(ax, labels: Sequence[str]) -> None:
    """One tick per label at 0, 1, ... with the labels wrapped (and rotated when long)."""
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels([wrap_label(x, 22) for x in labels])
    _rotate(ax, labels)


def _annotate_bars(ax, xs: Sequence[float], values: Sequence[Number], yerr: Any, value_format: str, *,
                   lift: int, fontsize: int, missing: str | None = None) -> None:
    """Each bar's value just above it (and above its error bar); a non-finite one as ``missing`` at 0, if given."""
    for i, (x, v) in enumerate(zip(xs, values)):
        if not _finite(v):
            if missing is not None:
                ax.annotate(missing, (x, 0), ha="center", va="bottom", fontsize=fontsize)
            continue
        top = v + (yerr[1][i] if yerr else 0.0)
        ax.annotate(value_format.format(v), (x, top), xytext=(0, lift), textcoords="offset points",
                    ha="center", va="bottom", fontsize=fontsize)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[Number],
    errors: Sequence[Number | Interval | None] | None = None,
    *,
    path: str | Path,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    reference: Number | None = None,
    reference_label: str | None = None,
    ylim: tuple[Number, Number] | None = None,
    colors: Sequence[str] | None = None,
    annotate: bool = True,
    value_format: str = "{:.2f}",
    formats: Sequence[str] = DEFAULT_FORMATS,
    dpi: int = 150,
) -> list[Path]:
    """One bar per label, with error bars and an optional dashed reference line.

    ``errors``: per bar either a symmetric error (``0.03``) or an absolute
    interval (``(0.41, 0.55)``, e.g. a bootstrap CI), or ``None``.
    """
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(_width(len(labels)), 4.0))
    xs = list(range(len(labels)))
    vals = [v if _finite(v) else 0.0 for v in values]
    cols = list(colors) if colors else [PALETTE[i % len(PALETTE)] for i in xs]
    ax.bar(xs, vals, color=cols, yerr=_yerr(values, errors), capsize=5, edgecolor="black", linewidth=0.6,
           error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="#555555", linewidth=1.2,
                   label=reference_label or None)
        if reference_label:
            ax.legend(frameon=False, loc="best")
    if annotate:
        _annotate_bars(ax, xs, values, _yerr(values, errors), value_format, lift=3, fontsize=9, missing="n/a")
    _xtick_labels(ax, labels)
    _decorate(ax, title, xlabel, ylabel, ylim)
    return save_figure(fig, path, formats, dpi)


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[Number]],
    errors: Mapping[str, Sequence[Number | Interval | None]] | None = None,
    *,
    path: str | Path,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    reference: Number | None = None,
    reference_label: str | None = None,
    ylim: tuple[Number, Number] | None = None,
    colors: Sequence[str] | None = None,
    annotate: bool = False,
    value_format: str = "{:.2f}",
    legend_loc: str = "best",
    formats: Sequence[str] = DEFAULT_FORMATS,
    dpi: int = 150,
) -> list[Path]:
    """Several series side by side for each group (``series``: name → one value per group)."""
    names = list(series)
    for name in names:
        if len(series[name]) != len(groups):
            raise ValueError(f"series {name!r} has {len(series[name])} values for {len(groups)} groups")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(_width(len(groups) * max(1, len(names)), per=0.5), 4.0))
    n = max(1, len(names))
    width = 0.8 / n
    for j, name in enumerate(names):
        vals = series[name]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        err = _yerr(vals, (errors or {}).get(name))
        color = (colors[j] if colors else PALETTE[j % len(PALETTE)])
        ax.bar(xs, [v if _finite(v) else 0.0 for v in vals], width=width * 0.95, label=name, color=color,
               yerr=err, capsize=3, edgecolor="black", linewidth=0.5, error_kw={"elinewidth": 1.0})
        if annotate:
            _annotate_bars(ax, xs, vals, err, value_format, lift=2, fontsize=8)
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="#555555", linewidth=1.2, label=reference_label or None)
    _xtick_labels(ax, groups)
    ax.legend(frameon=False, loc=legend_loc)
    _decorate(ax, title, xlabel, ylabel, ylim)
    return save_figure(fig, path, formats, dpi)


def stacked_bars(
    labels: Sequence[str],
    parts: Mapping[str, Sequence[Number]],
    *,
    path: str | Path,
    normalize: bool = True,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    colors: Sequence[str] | None = None,
    annotate: bool = True,
    horizontal: bool = False,
    reference: Number | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    dpi: int = 150,
) -> list[Path]:
    """Stacked bars of parts per label (e.g. ``{"A wins": [...], "tie": [...], "B wins": [...]}``).

    With ``normalize`` (default) each bar shows proportions summing to 1, and a
    part of at least 4 % is labelled with its percentage.
    """
    names = list(parts)
    for name in names:
        if len(parts[name]) != len(labels):
            raise ValueError(f"part {name!r} has {len(parts[name])} values for {len(labels)} labels")
    totals = [sum(float(parts[n][i] or 0) for n in names) for i in range(len(labels))]
    plt = pyplot()
    if horizontal:
        lines = max((wrap_label(x, 30).count("\n") + 1 for x in labels), default=1)
        fig, ax = plt.subplots(figsize=(8.0, max(2.2, 1.0 + (0.35 + 0.2 * lines) * len(labels))))
    else:
        fig, ax = plt.subplots(figsize=(_width(len(labels), per=0.8), 4.0))
    pos = list(range(len(labels)))
    bottom = [0.0] * len(labels)
    for j, name in enumerate(names):
        raw = [float(parts[name][i] or 0) for i in range(len(labels))]
        vals = [(r / t if t else 0.0) if normalize else r for r, t in zip(raw, totals)]
        color = colors[j] if colors else PALETTE[j % len(PALETTE)]
        if horizontal:
            ax.barh(pos, vals, left=bottom, label=name, color=color, edgecolor="white", linewidth=0.8)
        else:
            ax.bar(pos, vals, bottom=bottom, label=name, color=color, edgecolor="white", linewidth=0.8)
        if annotate:
            for i, v in enumerate(vals):
                share = v if normalize else (v / totals[i] if totals[i] else 0.0)
                if share >= 0.04:
                    text = f"{share * 100:.0f}%" if normalize else f"{v:g}"
                    xy = (bottom[i] + v / 2, i) if horizontal else (i, bottom[i] + v / 2)
                    ax.annotate(text, xy, ha="center", va="center", fontsize=8, color="white", fontweight="bold")
        bottom = [b + v for b, v in zip(bottom, vals)]
    if reference is not None:
        (ax.axvline if horizontal else ax.axhline)(reference, linestyle="--", color="#333333", linewidth=1.0)
    if horizontal:
        ax.set_yticks(pos)
        ax.set_yticklabels([wrap_label(x, 30) for x in labels])
        ax.invert_yaxis()
        if normalize:
            ax.set_xlim(0, 1)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _decorate(ax, title, xlabel or ("proportion" if normalize else None), ylabel, None)
    else:
        ax.set_xticks(pos)
        ax.set_xticklabels([wrap_label(x, 22) for x in labels])
        _rotate(ax, labels)
        if normalize:
            ax.set_ylim(0, 1)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _decorate(ax, title, xlabel, ylabel or ("proportion" if normalize else None), None)
    return save_figure(fig, path, formats, dpi)


def line_plot(
    x: Sequence[Number | str],
    series: Mapping[str, Sequence[Number | None]],
    errors: Mapping[str, Sequence[Number | Interval | None]] | None = None,
    *,
    path: str | Path,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    reference: Number | None = None,
    reference_label: str | None = None,
    ylim: tuple[Number, Number] | None = None,
    logx: bool = False,
    markers: bool = True,
    colors: Sequence[str] | None = None,
    legend_loc: str = "best",
    formats: Sequence[str] = DEFAULT_FORMATS,
    dpi: int = 150,
) -> list[Path]:
    """Series over ``x`` (turns, context sizes, steps) with optional error bands.

    ``errors[name]``: per point a symmetric error or an absolute ``(low, high)``
    interval; drawn as a shaded band. ``None`` values are gaps.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    categorical = any(isinstance(v, str) for v in x)
    xs = list(range(len(x))) if categorical else [float(v) for v in x]
    for j, (name, ys) in enumerate(series.items()):
        if len(ys) != len(x):
            raise ValueError(f"series {name!r} has {len(ys)} values for {len(x)} x values")
        color = colors[j] if colors else PALETTE[j % len(PALETTE)]
        yv = [float(v) if _finite(v) else float("nan") for v in ys]
        ax.plot(xs, yv, label=name, color=color, marker="o" if markers else None, markersize=4, linewidth=1.6)
        errs = (errors or {}).get(name)
        if errs is not None:
            if len(errs) != len(ys):
                raise ValueError(f"errors of {name!r} has {len(errs)} values for {len(ys)} points")
            lo, hi = [], []
            for v, e in zip(yv, errs):
                if e is None or not math.isfinite(v):
                    lo.append(float("nan"))
                    hi.append(float("nan"))
                elif isinstance(e, (tuple, list)):
                    lo.append(float(e[0]))
                    hi.append(float(e[1]))
                else:
                    lo.append(v - abs(float(e)))
                    hi.append(v + abs(float(e)))
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="#555555", linewidth=1.2, label=reference_label or None)
    if categorical:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(v) for v in x])
    if logx:
        ax.set_xscale("symlog" if any(v <= 0 for v in xs) else "log")
    if len(series) > 1 or reference_label:
        ax.legend(frameon=False, loc=legend_loc)
    ax.grid(True, alpha=0.3)
    _decorate(ax, title, xlabel, ylabel, ylim)
    return save_figure(fig, path, formats, dpi)


def loss_curve(
    steps: Sequence[Number],
    losses: Sequence[Number],
    *,
    path: str | Path,
    eval_steps: Sequence[Number] | None = None,
    eval_losses: Sequence[Number] | None = None,
    title: str | None = "training loss",
    ylabel: str = "loss",
    smooth: int = 0,
    formats: Sequence[str] = DEFAULT_FORMATS,
    dpi: int = 150,
) -> list[Path]:
    """Training loss over steps (optionally smoothed with a running mean), plus eval loss points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(list(steps), list(losses), color=PALETTE[0], alpha=0.35 if smooth > 1 else 1.0, linewidth=1.2,
            label="train")
    if smooth > 1 and len(losses) >= smooth:
        vals = [float(v) for v in losses]
        run = [sum(vals[max(0, i - smooth + 1):i + 1]) / (i + 1 - max(0, i - smooth + 1)) for i in range(len(vals))]
        ax.plot(list(steps), run, color=PALETTE[0], linewidth=1.8, label=f"train (mean of {smooth})")
    if eval_steps is not None and eval_losses is not None and len(eval_steps):
        ax.plot(list(eval_steps), list(eval_losses), color=PALETTE[3], marker="o", markersize=4, linewidth=1.4,
                label="eval")
    ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)
    _decorate(ax, title, "step", ylabel, None)
    return save_figure(fig, path, formats, dpi)


__all__ = ["pyplot", "save_figure", "wrap_label", "bar_chart", "grouped_bars", "stacked_bars", "line_plot", "loss_curve", "PALETTE", "DEFAULT_FORMATS"]
