"""The report's figures: one axes per PNG, at a fixed place, legend outside it (matplotlib Agg, lazily).

Every figure is :data:`FIGSIZE` inches at :data:`DPI` with its one axes at :data:`AXES_RECT` (figure
fractions: left, bottom, width, height) and the legend to the right of it, so the plotted data is
exactly what lies inside the axes box (:func:`axes_box` gives it in image pixels) -- which is how
the tests check that a PNG holds its series and not an empty canvas. Series colours come from
:data:`PALETTE` in order; each function returns the ``{label: colour}`` it drew.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

FIGSIZE = (8.0, 4.0)
DPI = 100
AXES_RECT = (0.09, 0.13, 0.60, 0.77)
#: matplotlib's tab10 without its grey (C7), which a reader would take for a grid line
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axes_box(width: int, height: int) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the axes interior in a ``height x width`` image (spines excluded)."""
    left, bottom, w, h = AXES_RECT
    col0, col1 = math.ceil(left * width) + 2, math.floor((left + w) * width) - 2
    row0, row1 = math.ceil((1 - bottom - h) * height) + 2, math.floor((1 - bottom) * height) - 2
    return row0, row1, col0, col1


def _figure(title: str, xlabel: str, ylabel: str):
    plt = _pyplot()
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_axes(AXES_RECT)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return plt, fig, ax


def _save(plt, fig, ax, out: Path) -> Path:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def line_plot(out: str | Path, title: str, xlabel: str, ylabel: str,
              series: dict[str, tuple[Sequence[float], Sequence[float]]], *,
              dashed: Sequence[str] = (), colors: dict[str, str] | None = None,
              ylim: tuple[float, float] | None = None) -> dict[str, str]:
    """Lines (``label -> (xs, ys)``), markers when a series has few points; returns ``{label: colour}``."""
    plt, fig, ax = _figure(title, xlabel, ylabel)
    drawn = {}
    for i, (label, (xs, ys)) in enumerate(series.items()):
        color = (colors or {}).get(label, PALETTE[i % len(PALETTE)])
        ax.plot(list(xs), list(ys), "--" if label in dashed else "-", color=color, label=label, linewidth=2,
                marker=("s" if label in dashed else "o") if len(xs) <= 12 else None,
                markersize=4 if label in dashed else 6)
        drawn[label] = color
    if ylim is not None:
        ax.set_ylim(*ylim)
    xs_all = sorted({x for xs, _ in series.values() for x in xs})
    if len(xs_all) <= 12:  # steps and epochs are integers: tick each one, half a step of margin
        ax.set_xticks(xs_all)
        if xs_all:
            ax.set_xlim(xs_all[0] - 0.5, xs_all[-1] + 0.5)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="#dddddd", linewidth=0.6)
    _save(plt, fig, ax, Path(out))
    return drawn


def bar_plot(out: str | Path, title: str, ylabel: str, categories: Sequence[str],
             groups: dict[str, Sequence[float | None]]) -> dict[str, str]:
    """Grouped bars: one group per category, one bar per ``groups`` entry (``None``: no bar); y in [0, 1]."""
    plt, fig, ax = _figure(title, "", ylabel)
    width = 0.8 / max(1, len(groups))
    drawn = {}
    for i, (label, values) in enumerate(groups.items()):
        xs = [c + (i - (len(groups) - 1) / 2) * width for c in range(len(categories))]
        pairs = [(x, v) for x, v in zip(xs, values) if v is not None]
        color = PALETTE[i % len(PALETTE)]
        bars = ax.bar([x for x, _ in pairs], [v for _, v in pairs], width * 0.95, color=color, label=label)
        ax.bar_label(bars, labels=[f"{v:.0%}" for _, v in pairs], fontsize=7, padding=2)
        drawn[label] = color
    ax.set_xticks(range(len(categories)), list(categories))
    ax.set_ylim(0, 1.08)
    _save(plt, fig, ax, Path(out))
    return drawn
