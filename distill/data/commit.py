"""Output safety shared by ``distill prompt`` and ``distill regen-correct``: per-source locks,
writability checks before any paid work, multi-file commits that a kill cannot leave half done,
and removal of temporary files left by killed runs.

Why: an enriched file and its correct file are one result, and a ``--root`` rewrite of many
files is one result too. Each file is first written in full to a temporary file beside it
(:func:`distill.data.jsonl.stage_jsonl`); then a small journal listing every pending rename is
written atomically, the renames run, and the journal is removed. A run killed between two
renames leaves the journal; the next run finishes the renames (:func:`recover`) before it reads
anything, so a pair is never seen mixed for longer than until the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

from distill.data.jsonl import OutputError, atomic_write_text, output_error, stem_of
from distill.errors import DistillError

JOURNAL_GLOB = ".*.commit.json"
STALE_TEMP_AGE_S = 3600.0  # leftovers without a pid in their name (older versions) count as stale after this


class LockedError(DistillError):
    """Another live run holds the lock of a source file."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SourceLock:
    """An exclusive ``flock`` on ``.<stem>.lock`` beside a source file, held until :meth:`release`.

    The kernel drops it when the holder dies (even by ``kill -9``), so a lock never blocks a later
    run. The holder writes its pid and start time into the file for the message another run shows,
    and removes the file on :meth:`release` (a finished or refused run leaves nothing beside the
    source; a killed one leaves a file that the next run simply locks again). Removing a lock file
    is safe because a run that locked a file must still find it at the path afterwards (same
    inode); if the holder removed it in between, the run locks the new file instead."""

    def __init__(self, source: str | os.PathLike, *, purpose: str = "distill"):
        self.source = Path(source)
        self.path = self.source.with_name(f".{stem_of(self.source)}.lock")
        self.fd: int | None = None
        while self.fd is None:
            fd = self._open_and_lock()
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
            else:  # the previous holder removed the file after we opened it: lock the current one
                os.close(fd)
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{purpose} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        except OSError as exc:  # a full disk: say so now, before anything is asked or written
            self.release()
            raise output_error(self.path, exc, "cannot write the run lock") from None

    def _open_and_lock(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise output_error(self.path, exc, "cannot create the run lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown pid"
            finally:
                os.close(fd)
            raise LockedError(f"{self.source}: another run holds {self.path} ({holder}); wait for it to "
                              f"finish or stop it, then rerun (nothing was asked)") from None
        return fd

    def release(self) -> None:
        if self.fd is not None:
            # still holding the lock: nobody else can have locked this inode. In a read-only folder the
            # file stays, harmless (the next run locks it again)
            with contextlib.suppress(FileNotFoundError, PermissionError):
                self.path.unlink()
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def lock_sources(stack: contextlib.ExitStack, sources, *, purpose: str) -> None:
    """Take :class:`SourceLock` for every source (once per stem and folder); released by ``stack``."""
    seen = set()
    for src in sources:
        lock_file = Path(src).with_name(f".{stem_of(src)}.lock")
        if lock_file in seen:
            continue
        seen.add(lock_file)
        lock = SourceLock(src, purpose=purpose)
        stack.callback(lock.release)


def check_writable(target: str | os.PathLike, *, probe_bytes: int = 4096) -> None:
    """Raise :class:`OutputError` now if ``target`` could not be written later: a folder in its
    place, a read-only or full file system. Writes (and removes) a small probe file beside it."""
    target = Path(target)
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
        try:
            view = memoryview(b"\0" * probe_bytes)
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(target, exc) from None


def remove_stale_temps(target: str | os.PathLike) -> int:
    """Remove temporary files of ``target`` (``.NAME.PID.*.tmp``) whose writer is dead, and pid-less
    leftovers older than an hour. Returns how many were removed."""
    target = Path(target)
    prefix = f".{target.name}."
    removed = 0
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except FileNotFoundError:
        return 0
    for p in candidates:
        middle = p.name[len(prefix):-len(".tmp")]
        pid_part = middle.split(".", 1)[0]
        if pid_part.isdigit() and "." in middle:
            if _pid_alive(int(pid_part)):
                continue
        else:
            try:
                if time.time() - p.stat().st_mtime < STALE_TEMP_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed += 1
    return removed


def commit(staged: list[tuple[Path, Path]], journal: Path | None) -> None:
    """Rename every ``(tmp, target)`` in order. With a ``journal`` the list is recorded first, so a
    kill between renames is completed by the next run's :func:`recover`."""
    if journal is not None:
        atomic_write_text(journal, json.dumps({"pid": os.getpid(), "time_ns": time.time_ns(),
                                               "renames": [[str(t), str(d)] for t, d in staged]}) + "\n")
    for i, (tmp, target) in enumerate(staged):
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if journal is None:
                discard(staged[i:])
            raise output_error(target, exc) from None
    if journal is not None:
        with contextlib.suppress(FileNotFoundError):
            journal.unlink()


def discard(staged: list[tuple[Path, Path]]) -> None:
    """Remove staged temporary files (nothing was renamed)."""
    for tmp, _ in staged:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def recover(dirs) -> list[str]:
    """Finish the renames of runs killed mid-commit (journals in ``dirs`` whose writer is dead).
    Returns one line per finished journal."""
    done = []
    for d in dict.fromkeys(Path(x) for x in dirs):
        try:
            journals = sorted(d.glob(JOURNAL_GLOB))
        except OSError:
            continue
        for j in journals:
            try:
                data = json.loads(j.read_text(encoding="utf-8"))
                pid, renames = int(data["pid"]), [(Path(a), Path(b)) for a, b in data["renames"]]
                written_ns = int(data.get("time_ns", 0))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours or unreadable: leave it alone
            if _pid_alive(pid):
                continue  # a live run is committing right now
            finished = 0
            for tmp, target in renames:
                if not tmp.exists():
                    continue
                try:
                    newer = target.stat().st_mtime_ns > written_ns  # rewritten by a later run: that one wins
                except FileNotFoundError:
                    newer = False
                try:
                    if newer:
                        os.unlink(tmp)
                    else:
                        os.replace(tmp, target)
                        finished += 1
                except OSError as exc:
                    raise output_error(target, exc, "cannot finish an interrupted commit") from None
            with contextlib.suppress(FileNotFoundError):
                j.unlink()
            if finished:
                done.append(f"finished an interrupted write of {finished} file(s) listed in {j}")
    return done


def ancestors(paths) -> list[Path]:
    """Every folder holding one of ``paths`` and every folder above it (where journals may lie)."""
    out: dict[Path, None] = {}
    for p in paths:
        for d in Path(os.path.abspath(p)).parents:
            out[d] = None
    return list(out)
