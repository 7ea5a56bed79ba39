"""The evaluation table's rows: base / distilled / distilled + template repair / distilled + refinement, for
student 1, student 2 and the ensemble.

Columns (shares of the test items): ``valid`` (the solver accepts the program), ``correct``,
``valid_wrong`` (valid, not correct), ``repair_rate`` (of the items whose first program was invalid,
the share the row made valid; rows that repair nothing: ``None``), ``mean_iterations`` (refinement
rounds run per item) and ``timeout`` (a solver call hit its limit). Against the base row (same
items): ``vs_base`` = ``{valid, correct}`` each ``{diff, ci95, z, p}``
(:func:`distill.students.eval_stats.compare`: paired bootstrap 95% interval, two-proportion z-test).

The ensemble follows the student :func:`distill.students.evaluate.ensemble_pick` chose on the first
answers (log-prob per byte), in every row. Non-formal tasks have the plain row only, ``valid`` ``None``.

The table for a trained run (both passes, files, PNG) is :func:`distill.students.eval_table.run_eval_table`.
"""

from __future__ import annotations

from typing import Any

from distill.students.eval_stats import compare

GROUPS = {"s1": "student 1", "s2": "student 2", "ensemble": "ensemble"}
ROW_LABELS = {"base": "base", "distilled": "distilled", "template_repair": "distilled + template repair",
              "refine": "distilled + refinement"}


def _student(item: dict[str, Any], group: str) -> dict[str, Any]:
    return item[f"s{item['ensemble']['pick']}"] if group == "ensemble" else item[group]


def row_flags(item: dict[str, Any], group: str, row: str) -> dict[str, Any]:
    """One item's outcome in one row: ``valid, correct, timed_out, iterations, fixed`` (``fixed``: None
    unless the first program was invalid and the row repairs)."""
    s = _student(item, group)
    if row == "template_repair":
        r = s["repair"]
        return {"valid": r["valid"], "correct": r["correct"], "timed_out": r["timed_out"], "iterations": None,
                "fixed": None if s["valid"] else r["valid"]}
    if row == "refine":
        return {"valid": s["final_valid"], "correct": s["final_correct"], "timed_out": s["final_timed_out"],
                "iterations": s["iterations"], "fixed": None if s["initial_valid"] else s["final_valid"]}
    return {"valid": s.get("valid"), "correct": s["correct"], "timed_out": s.get("timed_out", False),
            "iterations": None, "fixed": None}


def summarise(flags: list[dict[str, Any]], *, repairs: bool) -> dict[str, Any]:
    n = len(flags)

    def share(f) -> float | None:
        return sum(1 for x in flags if f(x)) / n if n else None

    formal = bool(flags) and flags[0]["valid"] is not None
    broken = [x["fixed"] for x in flags if x["fixed"] is not None]
    iters = [x["iterations"] for x in flags if x["iterations"] is not None]
    return {"n": n, "valid": share(lambda x: x["valid"]) if formal else None,
            "correct": share(lambda x: x["correct"]),
            "valid_wrong": share(lambda x: x["valid"] and not x["correct"]) if formal else None,
            "repair_rate": (sum(broken) / len(broken) if broken else None) if repairs else None,
            "repaired": [sum(broken), len(broken)] if repairs else None,
            "mean_iterations": sum(iters) / len(iters) if iters else None,
            "timeout": share(lambda x: x["timed_out"]) if formal else None}


def row_names(first: str, *, refine: int, template_repair: bool) -> list[str]:
    return [first] + (["template_repair"] if template_repair else []) + (["refine"] if refine else [])


def table_rows(preds: list[dict[str, Any]], *, n_students: int, first: str = "distilled", refine: int = 0,
               refine_on: str = "invalid", template_repair: bool = False) -> dict[str, dict[str, Any]]:
    """``{group: {row: summary}}`` for the rows these predictions carry."""
    groups = ["s1", "s2", "ensemble"] if n_students == 2 else ["s1"]
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        out[g] = {}
        for r in row_names(first, refine=refine, template_repair=template_repair):
            out[g][r] = summarise([row_flags(p, g, r) for p in preds], repairs=r in ("template_repair", "refine"))
            if r == "refine":
                out[g][r].update(rounds=refine, refine_on=refine_on, oracle_feedback=refine_on == "wrong")
    return out


def add_comparisons(table: dict[str, dict[str, Any]], base_preds: list[dict[str, Any]], preds: list[dict[str, Any]],
                    *, seed: int = 0) -> None:
    """Each non-base row's ``vs_base`` (paired by item: both prediction lists in the test file's order)."""
    if [p.get("id") for p in base_preds] != [p.get("id") for p in preds]:
        raise ValueError("base and trained predictions are not over the same items in the same order")
    for g, rows in table.items():
        base = [row_flags(p, g, "base") for p in base_preds]
        for r, summary in rows.items():
            if r == "base" or not preds:
                continue
            now = [row_flags(p, g, r) for p in preds]
            keys = ("valid", "correct") if summary["valid"] is not None else ("correct",)
            summary["vs_base"] = {k: compare([b[k] for b in base], [x[k] for x in now], seed=seed) for k in keys}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _delta(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    lo, hi = c["ci95"]
    return f"{100 * c['diff']:+.1f} [{100 * lo:+.1f},{100 * hi:+.1f}] p={c['p']:.3f}"


def row_label(row: str, summary: dict[str, Any]) -> str:
    label = ROW_LABELS.get(row, row)
    if row == "refine":
        label += f" (K={summary.get('rounds')})" + (" [oracle feedback]" if summary.get("oracle_feedback") else "")
    return label


def format_table(table: dict[str, dict[str, Any]]) -> str:
    """The table as console text, one block per group."""
    head = (f"{'':40} {'valid%':>7} {'correct%':>8} {'val-wrong%':>10} {'inv->valid%':>11} {'iters':>5} "
            f"{'timeout%':>8}  {'d valid% vs base [95% CI]':<34} d correct% vs base [95% CI]")
    lines: list[str] = []
    for g, rows in table.items():
        n = next(iter(rows.values()))["n"] if rows else 0
        lines += [f"{GROUPS.get(g, g)} (n={n})", head]
        for r, s in rows.items():
            vs = s.get("vs_base") or {}
            it = "-" if s["mean_iterations"] is None else f"{s['mean_iterations']:.2f}"
            lines.append(f"  {row_label(r, s):38} {_pct(s['valid']):>7} {_pct(s['correct']):>8} "
                         f"{_pct(s['valid_wrong']):>10} {_pct(s['repair_rate']):>11} {it:>5} {_pct(s['timeout']):>8}  "
                         f"{_delta(vs.get('valid')):<34} {_delta(vs.get('correct'))}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def merge_predictions(preds: list[dict[str, Any]], base_preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trained item with its base counterpart under ``base`` (same order: see :func:`add_comparisons`)."""
    return [{**p, "base": {k: v for k, v in b.items() if k not in ("id", "gold_answer")}}
            for p, b in zip(preds, base_preds)]


