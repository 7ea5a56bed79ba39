"""Crash-safe JSONL reading and writing with errors that name the file, line and field.

Why: a bad line in a 10k-row teacher log must say *where* it is, and a crash halfway
through a rewrite must never leave a half-written file where a good one stood. Writers
therefore go through a temporary file in the same directory and ``os.replace`` it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from distill.errors import DistillError
from distill.data.tasks import PATH_FIELDS, TaskSpec, get_task


class DataError(DistillError, ValueError):
    """Bad input data. The message starts with ``FILE:LINE:`` (and names the field)."""

    def __init__(self, path: str | os.PathLike, lineno: int | None, message: str):
        where = f"{os.fspath(path)}:{lineno}" if lineno is not None else os.fspath(path)
        super().__init__(f"{where}: {message}")
        self.path = os.fspath(path)
        self.lineno = lineno


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; 1-based line numbers."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def validate_row(row: dict[str, Any], spec: TaskSpec, path: str | os.PathLike, lineno: int,
                 *, enriched: bool = False) -> None:
    """Check that ``row`` has the fields its task needs (and, if enriched, consistent path lists)."""
    for field in spec.required:
        if field not in row or row[field] is None or row[field] == "":
            raise DataError(path, lineno, f"missing required field {field!r} for task {spec.name!r}")
    if spec.kind == "mcq":
        ch = row["choices"]
        if not (isinstance(ch, dict) and isinstance(ch.get("label"), list) and isinstance(ch.get("text"), list)
                and len(ch["label"]) == len(ch["text"])):
            raise DataError(path, lineno, "field 'choices' must be {label: [...], text: [...]} of equal length")
    if enriched:
        n = None
        for field in PATH_FIELDS:
            if field == "preds" or field == "correct_flags":
                continue  # recomputed by the verifiers; may be absent in hand-made files
            val = row.get(field)
            if not isinstance(val, list):
                raise DataError(path, lineno, f"missing or non-list path field {field!r}")
            if n is None:
                n = len(val)
            elif len(val) != n:
                raise DataError(path, lineno, f"path field {field!r} has {len(val)} entries, expected {n}")


def read_rows(path: str | os.PathLike, task: str | TaskSpec, *, enriched: bool = False) -> list[dict[str, Any]]:
    """Read and validate every row of a task file. Raises :class:`DataError` on the first bad line."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    rows = []
    for lineno, row in iter_jsonl(path):
        validate_row(row, spec, path, lineno, enriched=enriched)
        rows.append(row)
    return rows


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only if the block completes.

    Writes go to a temporary file in the same directory, which is fsynced and then
    ``os.replace``d over ``path``; on any exception the temporary file is removed and an
    existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to ``path`` atomically (temp file + fsync + rename). Returns the row count."""
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (e.g. metrics JSON)."""
    with atomic_open(path) as fh:
        fh.write(text)


def correct_only(row: dict[str, Any]) -> dict[str, Any]:
    """Project an enriched row onto its verified paths (the ``*.correct.jsonl`` schema).

    Keeps ``id``, ``gold_answer`` and the parallel path lists restricted to correct
    paths, plus ``path_idx`` (indices into the enriched lists) so analyses can recover
    each path's style and position.
    """
    flags = row.get("correct_flags") or []
    keep = [i for i, ok in enumerate(flags) if ok]
    out: dict[str, Any] = {"id": row["id"], "gold_answer": row["gold_answer"]}
    for field in PATH_FIELDS:
        vals = row.get(field) or []
        out[field] = [vals[i] for i in keep if i < len(vals)]
    out["path_idx"] = keep
    return out


def enriched_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` -> ``dir/test.enriched.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.enriched.jsonl")


def correct_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` or ``dir/test.enriched.jsonl`` -> ``dir/test.correct.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.correct.jsonl")


OUTPUT_SUFFIXES = (".enriched.jsonl", ".correct.jsonl", ".judged.jsonl", ".cache.jsonl")


def stem_of(path: str | os.PathLike) -> str:
    """The source stem of a data file, with any of our output suffixes removed."""
    name = Path(path).name
    for suf in OUTPUT_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem


def is_output_file(path: str | os.PathLike) -> bool:
    """True for files this project writes (never to be scanned as sources)."""
    return Path(path).name.endswith(OUTPUT_SUFFIXES)
