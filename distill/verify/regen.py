"""``distill regen-correct``: re-score enriched teacher logs with the current verifiers.

Why: verifiers improve after the (paid) teacher calls are made. This recomputes ``preds`` and
``correct_flags`` from ``responses`` and ``gold_answer`` (stored values are ignored), rewrites
each ``*.enriched.jsonl`` atomically and the ``*.correct.jsonl`` beside it.

All-or-nothing: every file is read and validated before anything is scored or written, so a
bad line anywhere raises :class:`distill.data.jsonl.DataError` (``FILE:LINE: ... field``) with
no file touched. Each file is then replaced by an atomic rename. No torch is imported.
"""

from __future__ import annotations

import argparse
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--root", type=Path, help="output root: every *.enriched.jsonl under ROOT/<task>/ (recursively)")
    src.add_argument("--input", type=Path, help="one FILE.enriched.jsonl to re-score")
    parser.add_argument("--dataset", default=None,
                        help=f"task name ({', '.join(TASKS)}) or 'all' (with --root); "
                             "with --input it defaults to the task named by a parent folder")
    parser.add_argument("--workers", type=int, default=None, help="verifier processes (default: CPU count)")
    parser.add_argument("--timeout", type=float, default=5.0, help="hard per-path verification timeout, seconds")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def _task_from_path(path: Path) -> TaskSpec:
    for part in reversed(path.resolve().parent.parts):
        if part in TASKS:
            return TASKS[part]
    raise DistillError(f"{path}: cannot tell the task from the path; pass --dataset")


def discover(args: argparse.Namespace) -> list[tuple[Path, TaskSpec]]:
    """The (file, task) pairs the arguments select, in a stable order."""
    if args.input is not None:
        if not args.input.is_file():
            raise DistillError(f"{args.input}: no such file")
        if not args.input.name.endswith(".enriched.jsonl"):
            raise DistillError(f"{args.input}: expected a *.enriched.jsonl file")
        spec = get_task(args.dataset) if args.dataset and args.dataset != "all" else _task_from_path(args.input)
        return [(args.input, spec)]
    root: Path = args.root
    if not root.is_dir():
        raise DistillError(f"{root}: not a directory")
    if args.dataset is None:
        raise DistillError("--root needs --dataset TASK (or --dataset all)")
    names = sorted(TASKS) if args.dataset == "all" else [get_task(args.dataset).name]
    found = []
    for name in names:
        base = root / name
        if base.is_dir():
            found += [(p, TASKS[name]) for p in sorted(base.rglob(ENRICHED_GLOB)) if p.is_file()]
    if not found:
        raise DistillError(f"no {ENRICHED_GLOB} files under {root}/{'<task>' if args.dataset == 'all' else names[0]}/")
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


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.timeout <= 0:
        raise DistillError("--timeout must be > 0 seconds")
    if args.workers is not None and args.workers < 1:
        raise DistillError("--workers must be >= 1")
    targets = discover(args)
    files = [load(p, spec) for p, spec in targets]  # everything validated before anything is written
    stats = regen(files, workers=args.workers, timeout=args.timeout, progress=args.progress)
    for f in files:
        n = sum(len(r["responses"]) for r in f.rows)
        ok = sum(sum(map(bool, r["correct_flags"])) for r in f.rows)
        print(f"{f.path}: {len(f.rows)} rows, {n} paths, {ok} correct -> {correct_path(f.path).name}")
    wall = time.perf_counter() - t0
    rate = stats["paths"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
    acc = stats["correct"] / stats["paths"] if stats["paths"] else 0.0
    print(f"regen-correct: {stats['files']} files, {stats['rows']} rows, {stats['paths']} paths, "
          f"{stats['correct']} correct ({acc:.1%}), {stats['timeouts']} timeouts, {stats['errors']} errors, "
          f"{rate:.0f} paths/s scoring, {wall:.2f}s total")
    return 0
