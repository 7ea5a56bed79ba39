"""Routing rates (``distill posrate``): how often each reasoning style (and path index) is routed to each student.

The seed's ``calc_posrate``. The training engine writes one ``router_logs_epoch{e}.jsonl`` per epoch
with one line per routed path (``id, path_idx, style, route, probs, correct``; ``route`` is 1, 2 or
``"both"``). This command reads them all and reports, per epoch and over all epochs, the fraction of
paths of each style that went to student 1 and to student 2. A path routed to *both* counts for both
students, so ``student1 + student2`` can exceed 1; the difference is the "both" rate (shown in the
table, and derivable from the JSON).

JSON shape (``--json``)::

    {"all": {STYLE: {"student1": r, "student2": r, "count": n}, ...},
     "per_epoch": {"1": {STYLE: {...}}, ...},
     "by_path_idx": {"all": {"0": {...}}, "per_epoch": {"1": {"0": {...}}}}}

No torch import: this runs on a laptop over copied logs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.data.jsonl import DataError, iter_jsonl
from distill.errors import DistillError

LOG_RE = re.compile(r"^router_logs_epoch(\d+)\.jsonl$")


def parse_route(value: Any, path: Path, lineno: int) -> tuple[bool, bool]:
    """Map a logged route to ``(to_student1, to_student2)``.

    Accepts 1, 2, "both" (the documented values) and 3 / "1" / "2" / "3" (what a tensor dump
    would write), so a log written by an older engine still reads.
    """
    v = value.strip().lower() if isinstance(value, str) else value
    if v in (1, "1"):
        return True, False
    if v in (2, "2"):
        return False, True
    if v in (3, "3", "both"):
        return True, True
    raise DataError(path, lineno, f"field 'route' must be 1, 2 or \"both\", got {value!r}")


def find_logs(log_dir: str | Path) -> dict[int, Path]:
    """``{epoch: path}`` for every ``router_logs_epoch{e}.jsonl`` in ``log_dir``."""
    d = Path(log_dir)
    if not d.is_dir():
        raise DistillError(f"--log_dir {d} is not a directory")
    logs = {int(m.group(1)): p for p in d.iterdir() if (m := LOG_RE.match(p.name))}
    if not logs:
        raise DistillError(f"no router_logs_epoch*.jsonl files in {d}; train with --routing learned first")
    return dict(sorted(logs.items()))


class _Counter:
    __slots__ = ("count", "s1", "s2")

    def __init__(self) -> None:
        self.count = 0
        self.s1 = 0
        self.s2 = 0

    def add(self, to1: bool, to2: bool) -> None:
        self.count += 1
        self.s1 += to1
        self.s2 += to2

    def rates(self) -> dict[str, float | int]:
        n = self.count
        return {"student1": self.s1 / n if n else 0.0, "student2": self.s2 / n if n else 0.0, "count": n}


def compute_rates(log_dir: str | Path) -> dict[str, Any]:
    """Read every epoch log of ``log_dir`` and return the JSON-shaped rates (see module docstring)."""
    logs = find_logs(log_dir)
    style_all: dict[str, _Counter] = defaultdict(_Counter)
    idx_all: dict[str, _Counter] = defaultdict(_Counter)
    style_ep: dict[str, dict[str, _Counter]] = {}
    idx_ep: dict[str, dict[str, _Counter]] = {}
    for epoch, path in logs.items():
        se: dict[str, _Counter] = defaultdict(_Counter)
        ie: dict[str, _Counter] = defaultdict(_Counter)
        for lineno, row in iter_jsonl(path):
            if "route" not in row:
                raise DataError(path, lineno, "missing field 'route'")
            to1, to2 = parse_route(row["route"], path, lineno)
            style = row.get("style")
            style = "unknown" if style in (None, "") else str(style)
            pidx = row.get("path_idx")
            pidx = "unknown" if pidx is None else str(pidx)
            for c in (style_all[style], se[style]):
                c.add(to1, to2)
            for c in (idx_all[pidx], ie[pidx]):
                c.add(to1, to2)
        style_ep[str(epoch)] = se
        idx_ep[str(epoch)] = ie

    def dump(d: dict[str, _Counter]) -> dict[str, Any]:
        return {k: d[k].rates() for k in sorted(d, key=_sort_key)}

    return {
        "all": dump(style_all),
        "per_epoch": {e: dump(c) for e, c in style_ep.items()},
        "by_path_idx": {"all": dump(idx_all), "per_epoch": {e: dump(c) for e, c in idx_ep.items()}},
    }


def _sort_key(k: str) -> tuple[int, int | str]:
    return (0, int(k)) if k.isdigit() else (1, k)


def format_table(rates: dict[str, Any]) -> str:
    """A plain-text table: one block per epoch, then overall; styles then path indices."""
    lines: list[str] = []

    def block(title: str, table: dict[str, Any], key_name: str) -> None:
        lines.append(title)
        w = max([len(key_name)] + [len(k) for k in table])
        lines.append(f"  {key_name:<{w}}  {'count':>6}  {'student1':>8}  {'student2':>8}  {'both':>6}")
        for k, r in table.items():
            both = r["student1"] + r["student2"] - 1.0 if r["count"] else 0.0
            lines.append(f"  {k:<{w}}  {r['count']:>6d}  {r['student1']:>8.3f}  {r['student2']:>8.3f}  "
                         f"{max(both, 0.0):>6.3f}")

    for e, table in rates["per_epoch"].items():
        block(f"epoch {e} by style", table, "style")
        block(f"epoch {e} by path index", rates["by_path_idx"]["per_epoch"][e], "path_idx")
        lines.append("")
    block("all epochs by style", rates["all"], "style")
    block("all epochs by path index", rates["by_path_idx"]["all"], "path_idx")
    return "\n".join(lines)


def plot_rates(rates: dict[str, Any], out_file: str | Path) -> Path:
    """Plot each style's student-1 (solid) and student-2 (dashed) rate across epochs to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(rates["per_epoch"])
    xs = [int(e) for e in epochs]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, style in enumerate(rates["all"]):
        color = f"C{i % 10}"
        for student, ls in (("student1", "-"), ("student2", "--")):
            ys = [rates["per_epoch"][e].get(style, {}).get(student, float("nan")) for e in epochs]
            ax.plot(xs, ys, ls, marker="o", color=color, label=f"{style} → {student}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("routing rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(xs)
    ax.set_title("CoT router: share of paths per style sent to each student")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
