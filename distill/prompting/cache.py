"""An append-only, crash-safe response cache: every paid-for answer is on disk as it arrives.

Why append-only JSONL with one ``write(2)`` per record: after ``kill -9`` the kernel still
holds every completed write, so a rerun re-asks only what had not come back. A record is
one line written by a single unbuffered ``os.write`` on an ``O_APPEND`` descriptor, so
records never interleave; a torn last line (power loss) is skipped on load and the file
is re-terminated before new appends. A record that cannot be used (edited by hand: no
``text``, a non-string answer, bad JSON) is skipped and reported, and its answer asked again.
A write that fails part-way (full disk) is truncated away: a record counts only when whole.
The file is created by the first :meth:`ResponseCache.open_for_append` (the writability check before any
request) or record; a file this object created that is still empty when it is closed (every request was
refused, the run stopped before an answer) is removed again, so a refused run leaves nothing behind.
``fsync`` runs at most every ``fsync_every`` seconds and on close, which bounds loss on power
failure without paying a disk flush per request. Each record keeps the answer's token usage
(``prompt_tokens``, ``completion_tokens``, ``cached_tokens``), so a rerun reports what its cached
answers cost when they were asked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from distill.data.jsonl import OutputError, output_error


class CacheWriteError(OutputError):
    """An answer could not be appended to the cache (full disk, I/O error)."""


def _parse_record(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` or ``(None, why the line is unusable)``. A usable record is a JSON object
    with a string ``key``, a non-empty string ``text`` and integer token counts (if present)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not valid JSON"
    if not isinstance(rec, dict):
        return None, f"not a JSON object ({type(rec).__name__})"
    if not isinstance(rec.get("key"), str):
        return None, "no string 'key'"
    text = rec.get("text")
    if not isinstance(text, str):
        return None, "no 'text'" if text is None else f"'text' is {type(text).__name__}, not a string"
    if not text.strip():
        return None, "'text' is empty"
    for f in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        v = rec.get(f, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return None, f"{f!r} is not a count"
    reason = rec.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        return None, f"'finish_reason' is {type(reason).__name__}, not a string"
    return rec, None


def cache_key(*, model: str, prompt: str, style: str, sample_index: int, temperature: float,
              max_tokens: int, kind: str = "prompt") -> str:
    """Stable key of one request: same inputs and generation settings -> same answer slot."""
    blob = json.dumps([kind, model, prompt, style, sample_index, float(temperature), int(max_tokens)],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]


def _key_of(line: bytes) -> str | None:
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    key = rec.get("key") if isinstance(rec, dict) else None
    return key if isinstance(key, str) else None


class ResponseCache:
    """``key -> record`` loaded from ``path``; :meth:`add` appends durably."""

    def __init__(self, path: str | os.PathLike, *, fsync_every: float = 1.0):
        self.path = Path(path)
        self.fsync_every = fsync_every
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self.damaged: list[tuple[str | None, str]] = []  # (key, "line N: why"), torn last line excluded
        self._fd: int | None = None
        self._last_sync = 0.0
        self._dirty = False
        self._created = False  # this object created the file (removed again on close if still empty)
        self._wrote = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise output_error(self.path, exc, "cannot read the answer cache") from None
        lines = data.split(b"\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            rec, problem = _parse_record(line)
            if rec is not None:
                self.records[rec["key"]] = rec
                continue
            self.skipped_lines += 1
            torn_tail = lineno == len(lines) and not data.endswith(b"\n")
            if not torn_tail:  # a torn last line is a crash mid-write; anything else was damaged
                self.damaged.append((_key_of(line), f"line {lineno}: {problem}"))
        # a damaged record already asked again (a later good record of its key) needs no more notice
        self.damaged = [(k, m) for k, m in self.damaged if k is None or k not in self.records]
        self._needs_newline = bool(data) and not data.endswith(b"\n")

    def damage_note(self) -> str | None:
        """One line about damaged (skipped) records, or None: their answers are asked again."""
        if not self.damaged:
            return None
        more = len(self.damaged) - 3
        shown = "; ".join(m for _, m in self.damaged[:3]) + (f"; ... {more} more" if more > 0 else "")
        return (f"{self.path}: skipped {len(self.damaged)} damaged cache record(s) ({shown}); "
                "a path without a usable answer is asked again")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def __len__(self) -> int:
        return len(self.records)

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o666)
                    self._created = True
                except FileExistsError:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            except OSError as exc:
                raise output_error(self.path, exc, "cannot open the answer cache") from None
            if getattr(self, "_needs_newline", False):
                self._write_all(b"\n")
                self._needs_newline = False
        return self._fd

    def _write_all(self, data: bytes) -> None:
        """Write all of ``data`` or none of it: a short or failed ``write(2)`` (a full disk) is
        rolled back with ``ftruncate`` so no torn record stays behind, then raised as one line."""
        fd = self._fd
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[n:]
        except OSError as exc:
            # if even the truncate fails, the torn piece is the file's last line, which the next
            # load skips as a torn tail; the write error below is what the user must see
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise CacheWriteError(
                f"{self.path}: cannot save an answer ({exc.strerror or exc}); the {len(self.records)} answers "
                f"saved before it are kept and a rerun asks only the rest") from None

    def open_for_append(self) -> None:
        """Open (create) the file now, so an unwritable cache fails before any request is sent."""
        self._open()

    def add(self, key: str, record: dict[str, Any]) -> None:
        """Append one record (``key`` is stored in it) and remember it; it counts as saved only once
        the whole line is written."""
        record = {"key": key, **record}
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        self._open()
        self._write_all(line)
        self._wrote = True
        fd = self._fd
        self.records[key] = record
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every:
            os.fsync(fd)
            self._last_sync = now
            self._dirty = False

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if self._dirty:
                    os.fsync(fd)
            finally:
                os.close(fd)
                self._dirty = False
            if self._created and not self._wrote:
                self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """Remove the file this object created when nothing was ever written to it."""
        try:
            if self.path.stat().st_size == 0:
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise output_error(self.path, exc, "cannot remove the empty answer cache") from None
        self._created = False

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
