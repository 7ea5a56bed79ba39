"""The demo's report: teacher statistics and the before/after/routing summary (``report.md``)."""

from __future__ import annotations

from typing import Any


def teacher_stats(summary: dict[str, Any]) -> dict[str, int]:
    """Path counts from ``distill prompt --summary-json``: total, verified correct, per style."""
    per_style = summary.get("correct_per_style", {})
    return {"paths_total": sum(v[1] for v in per_style.values()),
            "paths_correct": sum(v[0] for v in per_style.values()),
            "per_style": {k: {"correct": v[0], "total": v[1]} for k, v in per_style.items()}}


def format_report(result: dict[str, Any]) -> str:
    """The short human-readable report printed at the end (also saved as ``report.md``)."""
    b, a = result["before"], result["after"]
    lines = [f"distill demo ({result['preset']}) - task arith, {result['n_test']} test questions, "
             f"wall time {result['wall_s']:.0f} s", ""]
    t = result.get("teacher", {})
    if t:
        lines.append(f"teacher: {t['paths_total']} paths, {t['paths_correct']} verified correct "
                     f"({t['paths_correct'] / max(1, t['paths_total']):.0%}); wrong ones filtered out")
        lines.append("")
    lines.append("accuracy        before   after    gain")
    for key, label in (("acc_s1", f"student 1 ({result['arch1']})"), ("acc_s2", f"student 2 ({result['arch2']})"),
                       ("acc_ensemble", "ensemble")):
        lines.append(f"{label:<15} {b[key]:6.1%}  {a[key]:6.1%}  {a[key] - b[key]:+6.1%}")
    lines.append("")
    lines += routing_lines(result)
    if result.get("plot"):
        lines.append(f"routing plot: {result['plot']}")
    lines.append(f"run folder: {result['run_dir']}")
    return "\n".join(lines)


def routing_lines(result: dict) -> list[str]:
    """The routing table of a demo summary (share of each style's paths per student, all epochs)."""
    rates = (result.get("routing") or {}).get("all", {})
    if not rates:
        return []
    lines = ["routing (share of each style's paths sent to each student, all epochs)",
             f"{'style':<10} {'student1':>8} {'student2':>8} {'paths':>6}"]
    for style in sorted(rates):
        r = rates[style]
        lines.append(f"{style:<10} {r['student1']:8.1%} {r['student2']:8.1%} {r['count']:6d}")
    return lines + [""]
