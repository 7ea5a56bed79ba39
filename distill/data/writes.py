"""Crash-safe writing: a crash halfway through a rewrite never leaves a half-written file where a
good one stood.

Writers therefore go through a temporary file in the same directory, fsync it and ``os.replace``
it over the target (:func:`atomic_open`); :func:`staged_open` stops before the rename, for
:func:`distill.data.commit.commit` to rename several files at once. A write that fails raises an
:class:`OutputError` naming the file and the system's reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from distill.errors import DistillError


class OutputError(DistillError, OSError):
    """An output file cannot be written (read-only file system, full disk, a folder in the way).

    Also an :class:`OSError`, so code that handled the raw error keeps working."""


def output_error(path: str | os.PathLike, exc: OSError, what: str = "cannot write") -> OutputError:
    """One line naming the file and the system's reason (``Read-only file system``, ``No space left ...``)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    err = OutputError(f"{os.fspath(path)}: {what} ({reason})")
    err.errno = exc.errno
    return err


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it, which races threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _mode_for(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: an existing file keeps its mode, a new one
    gets ``0o666 & ~umask``. (``mkstemp`` alone makes every file 0600 whatever the umask.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def temp_prefix(path: str | os.PathLike) -> str:
    """Name prefix of this process's temporary files for ``path``: ``.NAME.PID.`` (the pid lets a
    later run tell a killed writer's leftovers from a live writer's file)."""
    return f".{Path(path).name}.{os.getpid()}."


@contextlib.contextmanager
def staged_open(path: str | os.PathLike) -> Iterator[tuple[IO[str], Path]]:
    """Write a complete, fsynced temporary file beside ``path`` (yielded as ``(fh, tmp)``) without
    renaming it: the caller renames it (:func:`atomic_open`, or several at once with
    :func:`distill.data.commit.commit`). On any error the temporary file is removed; an
    :class:`OSError` becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        mode = _mode_for(path)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
        done = True
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only if the block completes.

    Writes go to a temporary file in the same directory, which is fsynced and then
    ``os.replace``d over ``path``; on any exception the temporary file is removed and an
    existing ``path`` is left untouched. The file gets the mode a normal write would
    (umask respected; an existing file keeps its mode).
    """
    with staged_open(path) as (fh, tmp):
        yield fh
    try:
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise output_error(path, exc) from None


def _write_rows(fh: IO[str], rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to ``path`` atomically (temp file + fsync + rename). Returns the row count."""
    with atomic_open(path) as fh:
        return _write_rows(fh, rows)


def stage_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows to a complete temporary file beside ``path``; returns it, not yet renamed."""
    with staged_open(path) as (fh, tmp):
        _write_rows(fh, rows)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (e.g. metrics JSON)."""
    with atomic_open(path) as fh:
        fh.write(text)
