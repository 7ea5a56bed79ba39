"""The formal demo's report (``report.md``): teacher and repair-data counts, the evaluation table, and
the two claims the demo checks, each with its measured size: training beats the untrained students on
correct %, and refinement raises validity over the distilled row."""

from __future__ import annotations

from typing import Any

from distill.demo.report import routing_lines

GROUP_NAMES = {"s1": "student 1", "s2": "student 2", "ensemble": "ensemble"}


def _pct(v: float | None) -> str:
    return "  -  " if v is None else f"{100 * v:5.1f}%"


def claims(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group: ``correct`` base -> distilled and ``valid`` distilled -> refinement, with the gains
    (``None`` where a row is missing) and whether each gain is positive."""
    out = {}
    for g, rows in (table or {}).items():
        base, dist, ref = rows.get("base") or {}, rows.get("distilled") or {}, rows.get("refine") or {}
        c0, c1 = base.get("correct"), dist.get("correct")
        v1, v2 = dist.get("valid"), ref.get("valid")
        out[g] = {"correct_base": c0, "correct_distilled": c1,
                  "correct_gain": None if c0 is None or c1 is None else c1 - c0,
                  "valid_distilled": v1, "valid_refined": v2,
                  "valid_gain": None if v1 is None or v2 is None else v2 - v1}
    return out


def format_formal_report(result: dict[str, Any]) -> str:
    lines = [f"distill demo --task {result['task']}: {result.get('n_test')} test problems, "
             f"wall time {result['wall_s']:.0f} s", ""]
    walls = result.get("stage_wall_s") or {}
    if walls:
        lines += ["stage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()), ""]
    t = result.get("teacher") or {}
    if t:
        lines.append(f"teacher: {t['paths_total']} paths, {t['paths_correct']} verified correct "
                     f"({t['paths_correct'] / max(1, t['paths_total']):.0%}); broken and wrong ones filtered out")
    rep = result.get("repairs") or {}
    if rep:
        lines.append(f"repair rows: {rep.get('augment', 0)} from distill augment, {rep.get('teacher', 0)} from the "
                     "teacher's rejected programs (multi-turn, the broken turn as context)")
    lines.append("")
    if result.get("table_text"):
        lines += [result["table_text"].rstrip(), ""]
    for g, c in claims(result.get("table") or {}).items():
        name = GROUP_NAMES.get(g, g)
        lines.append(f"{name:<10} correct untrained -> distilled: {_pct(c['correct_base'])} -> "
                     f"{_pct(c['correct_distilled'])}"
                     + ("" if c["correct_gain"] is None else f" ({100 * c['correct_gain']:+.1f} points)"))
        lines.append(f"{'':<10} valid distilled -> refined:    {_pct(c['valid_distilled'])} -> "
                     f"{_pct(c['valid_refined'])}"
                     + ("" if c["valid_gain"] is None else f" ({100 * c['valid_gain']:+.1f} points)"))
    lines.append("")
    lines += routing_lines(result)
    if result.get("table_png"):
        lines.append(f"table plot: {result['table_png']}")
    if result.get("plot"):
        lines.append(f"routing plot: {result['plot']}")
    lines.append(f"run folder: {result['run_dir']}")
    return "\n".join(lines)
