"""The evaluation table as a PNG: one panel per group (student 1, student 2, ensemble), a pair of bars
(valid %, correct %) per row, with the paired-bootstrap 95% interval of each bar's difference from the
base row drawn around the bar when there is one. Matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_table(table: dict[str, dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.students.eval_rows import GROUPS, row_label

    groups = list(table)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), squeeze=False, sharey=True)
    for ax, g in zip(axes[0], groups):
        rows = table[g]
        names = list(rows)
        keys = [k for k in ("valid", "correct") if any(rows[r][k] is not None for r in names)]
        for j, (key, colour) in enumerate(zip(keys, ("tab:blue", "tab:green")[2 - len(keys):])):
            xs = [i + (j - 0.5) * 0.38 for i in range(len(names))]
            ys = [100 * (rows[r][key] or 0.0) for r in names]
            err = [[0.0] * len(names), [0.0] * len(names)]
            for i, r in enumerate(names):
                c = (rows[r].get("vs_base") or {}).get(key)
                if c:  # the interval of the difference, placed around this bar
                    err[0][i] = max(0.0, -100 * (c["ci95"][0] - c["diff"]))
                    err[1][i] = max(0.0, 100 * (c["ci95"][1] - c["diff"]))
            ax.bar(xs, ys, width=0.38, color=colour, label=f"{key} %", yerr=err, capsize=3)
            for x, y in zip(xs, ys):
                ax.text(x, y + 1, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([row_label(r, rows[r]).replace(" + ", "\n+ ") for r in names], fontsize=7)
        ax.set_ylim(0, 110)
        ax.set_title(f"{GROUPS.get(g, g)} (n={next(iter(rows.values()))['n'] if rows else 0})")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("% of test items")
    axes[0][0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
