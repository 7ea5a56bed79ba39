"""Re-score enriched teacher logs with the current verifiers (``distill regen-correct``).

Why: verifiers improve after the (paid) teacher calls are made. This recomputes ``preds`` and
``correct_flags`` from ``responses`` and ``gold_answer`` (stored values are ignored), rewrites
each ``*.enriched.jsonl`` atomically and the ``*.correct.jsonl`` beside it.

All-or-nothing: every file is read and validated before anything is scored or written, so a
bad line anywhere raises :class:`distill.data.jsonl.DataError` (``FILE:LINE: ... field``) with
no file touched. Every output is then staged in full and renamed under one commit journal
(:mod:`distill.data.commit`): a write failure leaves every file as it was, and a run killed between
renames is completed by the next run. No torch is imported.

Formal tasks (``smt``, ``asp``, ``dot``) also get ``valid_flags`` and ``diagnostics`` recomputed
(parallel to ``responses``; ``correct`` implies ``valid``), and their solver time-outs counted.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.commit import ancestors, check_writable, commit, discard, lock_sources, recover, remove_stale_temps
from distill.data.jsonl import (
    correct_only,
    correct_path,
    read_rows,
    stage_jsonl,
)
from distill.data.tasks import TASKS, TaskSpec, get_task, is_formal
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
    """Read and validate an enriched file through the one row validator
    (:func:`distill.data.jsonl.read_rows`: fields, gold, ids, path lists, responses strings, ``task``)."""
    return _File(path, spec, read_rows(path, spec, enriched=True))


def regen(files: list[_File], *, workers: int | None, timeout: float | None, progress: bool,
          journal: Path | None = None) -> dict[str, Any]:
    """Re-score every path of every file in place (rows are mutated), then write the files.
    ``timeout``: the hard per-path limit (``None``: the verifier kind's default)."""
    from distill.verify.batch import score_batch

    stats = {"files": len(files), "rows": 0, "paths": 0, "correct": 0, "timeouts": 0, "errors": 0, "seconds": 0.0}
    if any(is_formal(f.task) for f in files):
        stats.update(valid=0, solver_timeouts=0)
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
            if is_formal(f.task):
                row["valid_flags"], row["diagnostics"] = [False] * n, [None] * n
    for task, refs in by_task.items():
        items = [(f.rows[r]["responses"][p], f.rows[r]) for f, r, p in refs]
        res = score_batch(task, items, workers=workers, timeout=timeout, progress=progress)
        formal = is_formal(get_task(task))
        for (f, r, p), v in zip(refs, res.verdicts):
            f.rows[r]["preds"][p] = v.pred
            # a path the teacher's token limit cut off is never correct (kept for analysis)
            f.rows[r]["correct_flags"][p] = bool(v.correct) and not _cut_by_limit(f.rows[r], p)
            if formal:
                f.rows[r]["valid_flags"][p] = bool(v.valid)
                f.rows[r]["diagnostics"][p] = v.diagnostic
        if formal:
            stats["valid"] += sum(f.rows[r]["valid_flags"][p] for f, r, p in refs)
            stats["solver_timeouts"] += res.solver_timeouts
        stats["paths"] += len(items)
        stats["correct"] += sum(f.rows[r]["correct_flags"][p] for f, r, p in refs)
        stats["timeouts"] += res.timeouts
        stats["errors"] += res.errors
        stats["seconds"] += res.seconds
    write_all(files, journal)
    return stats


def write_all(files: list[_File], journal: Path | None) -> None:
    """All or nothing: stage every enriched and correct file as a complete temporary file first
    (any failure removes them all and leaves every file as it was), then rename them all under a
    commit journal, so a kill between renames is finished by the next run. ``*.correct.jsonl``
    keeps only rows with at least one verified path (the research format)."""
    staged: list[tuple[Path, Path]] = []
    try:
        for f in files:
            staged.append((stage_jsonl(f.path, f.rows), f.path))
            c_path = correct_path(f.path)
            staged.append((stage_jsonl(c_path, (correct_only(r) for r in f.rows if any(r["correct_flags"]))),
                           c_path))
    except BaseException:
        discard(staged)
        raise
    commit(staged, journal)


@dataclass
class RegenReport:
    files: list[_File]
    stats: dict[str, Any]
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        for f in self.files:
            n = sum(len(r["responses"]) for r in f.rows)
            ok = sum(sum(map(bool, r["correct_flags"])) for r in f.rows)
            lines.append(f"{f.path}: {len(f.rows)} rows, {n} paths, {ok} correct -> {correct_path(f.path).name}")
        lines += [f"note: {n}" for n in self.notes]
        s = self.stats
        rate = s["paths"] / s["seconds"] if s["seconds"] > 0 else 0.0
        acc = s["correct"] / s["paths"] if s["paths"] else 0.0
        lines.append(f"regen-correct: {s['files']} files, {s['rows']} rows, {s['paths']} paths, "
                     f"{s['correct']} correct ({acc:.1%}), {s['timeouts']} timeouts, {s['errors']} errors, "
                     f"{rate:.0f} paths/s scoring, {self.wall_s:.2f}s total")
        if "valid" in s:
            lines.append(f"formal programs: {s['valid']} valid, {s['solver_timeouts']} solver time-outs "
                         f"(counted incorrect; hard time-outs above)")
        return "\n".join(lines)


def regen_correct(*, root: str | Path | None = None, input: str | Path | None = None, dataset: str | None = None,
                  workers: int | None = None, timeout: float | None = None, progress: bool = False) -> RegenReport:
    """``distill regen-correct``: select, read and validate every file, then re-score and rewrite them.
    ``timeout``: hard per-path limit in seconds (``None``: 5 s; formal tasks 22 s, several solver calls)."""
    t0 = time.perf_counter()
    if timeout is not None and timeout <= 0:
        raise DistillError("--timeout must be > 0 seconds")
    if workers is not None and workers < 1:
        raise DistillError("--workers must be >= 1")
    targets = discover(root=root, input=input, dataset=dataset)
    anchor = Path(root) if input is None else Path(input).parent
    with contextlib.ExitStack() as stack:
        # one run per source at a time (prompt takes the same locks), then finish what a killed run
        # left half renamed, then check every output can be written, all before any scoring
        lock_sources(stack, [p for p, _ in targets], purpose="distill regen-correct")
        notes = recover([anchor, *ancestors(p for p, _ in targets)])
        removed = 0
        for p, _ in targets:
            for target in (p, correct_path(p)):
                check_writable(target)
                removed += remove_stale_temps(target)
        if removed:
            notes.append(f"removed {removed} temporary file(s) of killed runs")
        files = [load(p, spec) for p, spec in targets]  # everything validated before anything is written
        stats = regen(files, workers=workers, timeout=timeout, progress=progress,
                      journal=anchor / ".regen-correct.commit.json")
    return RegenReport(files, stats, time.perf_counter() - t0, notes)


def _cut_by_limit(row: dict, p: int) -> bool:
    """Path ``p`` stopped at the teacher's token limit (``finish_reasons[p] == "length"``)."""
    reasons = row.get("finish_reasons")
    return isinstance(reasons, list) and p < len(reasons) and reasons[p] == "length"
