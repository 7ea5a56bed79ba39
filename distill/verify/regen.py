"""Re-score enriched teacher logs with the current verifiers (``distill regen-correct``).

Why: verifiers improve after the (paid) teacher calls are made. This recomputes ``preds`` and
``correct_flags`` from ``responses`` and ``gold_answer`` (stored values are ignored), rewrites
each ``*.enriched.jsonl`` atomically and the ``*.correct.jsonl`` beside it.

All-or-nothing: every file is read and validated before anything is scored or written, so a
bad line anywhere raises :class:`distill.data.jsonl.DataError` (``FILE:LINE: ... field``) with
no file touched. Each file is then replaced by an atomic rename. No torch is imported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.data.jsonl import (
    DataError,
    atomic_write_jsonl,
    correct_only,
    correct_path,
    iter_jsonl,
    validate_row,
)
from distill.data.tasks import TASKS, TaskSpec, get_task
from distill.errors import DistillError

ENRICHED_GLOB = "*.enriched.jsonl"


@dataclass
class _File:
    path: Path
    task: TaskSpec
    rows: list[dict[str, Any]]


def _task_from_path(path: Path) -> TaskSpec:
    for part in reversed(path.resolve().parent.parts):
        if part in TASKS:
            return TASKS[part]
    raise DistillError(f"{path}: cannot tell the task from the path; pass --dataset")


def discover(*, root: str | Path | None = None, input: str | Path | None = None,
             dataset: str | None = None) -> list[tuple[Path, TaskSpec]]:
    """The (file, task) pairs selected by ``root`` + ``dataset`` or by one ``input`` file, in a
    stable order. With ``input`` the task defaults to the one named by a parent folder."""
    if input is not None:
        input = Path(input)
        if not input.is_file():
            raise DistillError(f"{input}: no such file")
        if not input.name.endswith(".enriched.jsonl"):
            raise DistillError(f"{input}: expected a *.enriched.jsonl file")
        spec = get_task(dataset) if dataset and dataset != "all" else _task_from_path(input)
        return [(input, spec)]
    if root is None:
        raise DistillError("pass --root ROOT or --input FILE")
    root = Path(root)
    if not root.is_dir():
        raise DistillError(f"{root}: not a directory")
    if dataset is None:
        raise DistillError("--root needs --dataset TASK (or --dataset all)")
    names = sorted(TASKS) if dataset == "all" else [get_task(dataset).name]
    found = []
    for name in names:
        base = root / name
        if base.is_dir():
            found += [(p, TASKS[name]) for p in sorted(base.rglob(ENRICHED_GLOB)) if p.is_file()]
    if not found:
        raise DistillError(f"no {ENRICHED_GLOB} files under {root}/{'<task>' if dataset == 'all' else names[0]}/")
    return found


def load(path: Path, spec: TaskSpec) -> _File:
    """Read and validate an enriched file; the responses must be a list of strings."""
    rows = []
    for lineno, row in iter_jsonl(path):
        task = row.get("task")
        if task is not None and task != spec.name:
            if task not in TASKS:
                raise DataError(path, lineno, f"field 'task': unknown task {task!r}")
            raise DataError(path, lineno, f"field 'task' is {task!r} but the file is scored as {spec.name!r}")
        validate_row(row, spec, path, lineno, enriched=True)
        for i, resp in enumerate(row["responses"]):
            if not isinstance(resp, str):
                raise DataError(path, lineno, f"field 'responses'[{i}] must be a string, got {type(resp).__name__}")
        rows.append(row)
    return _File(path, spec, rows)


def regen(files: list[_File], *, workers: int | None, timeout: float, progress: bool) -> dict[str, Any]:
    """Re-score every path of every file in place (rows are mutated), then write the files."""
    from distill.verify.batch import score_batch

    stats = {"files": len(files), "rows": 0, "paths": 0, "correct": 0, "timeouts": 0, "errors": 0, "seconds": 0.0}
    by_task: dict[str, list[tuple[_File, int, int]]] = {}
    for f in files:
        stats["rows"] += len(f.rows)
        for r_i, row in enumerate(f.rows):
            for p_i in range(len(row["responses"])):
                by_task.setdefault(f.task.name, []).append((f, r_i, p_i))
    for f in files:
        for row in f.rows:
            n = len(row["responses"])
            row["preds"], row["correct_flags"] = [None] * n, [False] * n
    for task, refs in by_task.items():
        items = [(f.rows[r]["responses"][p], f.rows[r]) for f, r, p in refs]
        res = score_batch(task, items, workers=workers, timeout=timeout, progress=progress)
        for (f, r, p), v in zip(refs, res.verdicts):
            f.rows[r]["preds"][p] = v.pred
            f.rows[r]["correct_flags"][p] = bool(v.correct)
        stats["paths"] += len(items)
        stats["correct"] += res.correct
        stats["timeouts"] += res.timeouts
        stats["errors"] += res.errors
        stats["seconds"] += res.seconds
    for f in files:
        atomic_write_jsonl(f.path, f.rows)
        atomic_write_jsonl(correct_path(f.path), (correct_only(r) for r in f.rows))
    return stats


@dataclass
class RegenReport:
    files: list[_File]
    stats: dict[str, Any]
    wall_s: float

    def format(self) -> str:
        lines = []
        for f in self.files:
            n = sum(len(r["responses"]) for r in f.rows)
            ok = sum(sum(map(bool, r["correct_flags"])) for r in f.rows)
            lines.append(f"{f.path}: {len(f.rows)} rows, {n} paths, {ok} correct -> {correct_path(f.path).name}")
        s = self.stats
        rate = s["paths"] / s["seconds"] if s["seconds"] > 0 else 0.0
        acc = s["correct"] / s["paths"] if s["paths"] else 0.0
        lines.append(f"regen-correct: {s['files']} files, {s['rows']} rows, {s['paths']} paths, "
                     f"{s['correct']} correct ({acc:.1%}), {s['timeouts']} timeouts, {s['errors']} errors, "
                     f"{rate:.0f} paths/s scoring, {self.wall_s:.2f}s total")
        return "\n".join(lines)


def regen_correct(*, root: str | Path | None = None, input: str | Path | None = None, dataset: str | None = None,
                  workers: int | None = None, timeout: float = 5.0, progress: bool = False) -> RegenReport:
    """``distill regen-correct``: select, read and validate every file, then re-score and rewrite them."""
    t0 = time.perf_counter()
    if timeout <= 0:
        raise DistillError("--timeout must be > 0 seconds")
    if workers is not None and workers < 1:
        raise DistillError("--workers must be >= 1")
    targets = discover(root=root, input=input, dataset=dataset)
    files = [load(p, spec) for p, spec in targets]  # everything validated before anything is written
    stats = regen(files, workers=workers, timeout=timeout, progress=progress)
    return RegenReport(files, stats, time.perf_counter() - t0)
