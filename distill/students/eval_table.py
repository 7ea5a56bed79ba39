"""The evaluation table for a trained run (``distill eval --table``): the untrained students, then the
trained ones with template repair and solver-in-the-loop refinement, compared with the base row.

Rows, columns and statistics: :mod:`distill.students.eval_rows` (re-exported here); the PNG:
:mod:`distill.students.eval_plot`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from distill.students.eval_rows import (GROUPS, ROW_LABELS, add_comparisons, format_table, merge_predictions,
                                        row_flags, row_label, summarise, table_rows)

__all__ = ["GROUPS", "ROW_LABELS", "add_comparisons", "format_table", "merge_predictions", "row_flags", "row_label",
           "run_eval_table", "summarise", "table_rows"]


def run_eval_table(run_dir, task: str, test_file, *, refine: int = 2, refine_on: str = "invalid",
                   template_repair: bool = True, include_base: bool = True, eval_bs: int = 8,
                   max_new_tokens: int | None = None, limit: int | None = None, out_dir=None,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """The table for a trained run: the untrained students (``include_base``), then the trained ones with
    ``template_repair`` and ``refine`` rounds; writes ``OUT/metrics.json`` (the trained evaluation's keys,
    as ``distill eval`` writes them, plus ``base``, ``table``, ``table_text``), ``OUT/predictions.jsonl``
    (trained items, each with its ``base`` record), ``OUT/table.png``, ``OUT/table.txt`` and, from the
    base pass, ``OUT/base/``. ``OUT`` defaults to ``RUN/eval``. Logs the table; returns the metrics.
    """
    from accelerate import PartialState

    from distill.data.jsonl import atomic_write_jsonl, atomic_write_text, iter_jsonl
    from distill.students.eval_plot import plot_table
    from distill.students.evaluate import evaluate_run
    from distill.students.formal_eval import check_formal_options

    check_formal_options(task, refine=refine, refine_on=refine_on, template_repair=template_repair)
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    common = dict(eval_bs=eval_bs, max_new_tokens=max_new_tokens, limit=limit, log=log)
    base_metrics = evaluate_run(run_dir, task, test_file, base=True, out_dir=out / "base", **common) \
        if include_base else None
    metrics = evaluate_run(run_dir, task, test_file, out_dir=out, template_repair=template_repair, refine=refine,
                           refine_on=refine_on, **common)
    if not PartialState().is_main_process:
        return metrics
    table = metrics.pop("table")
    if base_metrics is not None:
        base_table = base_metrics.pop("table")
        table = {g: {"base": base_table[g]["base"], **rows} for g, rows in table.items()}
        preds = [r for _, r in iter_jsonl(out / "predictions.jsonl")]
        base_preds = [r for _, r in iter_jsonl(out / "base" / "predictions.jsonl")]
        add_comparisons(table, base_preds, preds)
        atomic_write_jsonl(out / "predictions.jsonl", merge_predictions(preds, base_preds))
        metrics["base"] = base_metrics
    text = format_table(table)
    metrics.update(table=table, table_text=text, table_config={
        "refine": refine, "refine_on": refine_on, "oracle_feedback": bool(refine) and refine_on == "wrong",
        "template_repair": template_repair, "include_base": include_base})
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / "table.txt", text)
    plot_table(table, out / "table.png", title=f"{task}: {Path(run_dir).name}")
    if log is not None:
        log(text.rstrip("\n"))
    return metrics
