"""An append-only, crash-safe response cache: every paid-for answer is on disk as it arrives.

Why append-only JSONL with one ``write(2)`` per record: after ``kill -9`` the kernel still
holds every completed write, so a rerun re-asks only what had not come back. A record is
one line written by a single unbuffered ``os.write`` on an ``O_APPEND`` descriptor, so
records never interleave; a torn last line (power loss) is skipped on load and the file
is re-terminated before new appends. ``fsync`` runs at most every ``fsync_every`` seconds
and on close, which bounds loss on power failure without paying a disk flush per request.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any


def cache_key(*, model: str, prompt: str, style: str, sample_index: int, temperature: float,
              max_tokens: int, kind: str = "prompt") -> str:
    """Stable key of one request: same inputs and generation settings -> same answer slot."""
    blob = json.dumps([kind, model, prompt, style, sample_index, float(temperature), int(max_tokens)],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:40]


class ResponseCache:
    """``key -> record`` loaded from ``path``; :meth:`add` appends durably."""

    def __init__(self, path: str | os.PathLike, *, fsync_every: float = 1.0):
        self.path = Path(path)
        self.fsync_every = fsync_every
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self._fd: int | None = None
        self._last_sync = 0.0
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            data = fh.read()
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self.records[rec["key"]] = rec
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1  # torn write from a crash; that request is simply asked again
        self._needs_newline = bool(data) and not data.endswith(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def __len__(self) -> int:
        return len(self.records)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if getattr(self, "_needs_newline", False):
                os.write(self._fd, b"\n")
                self._needs_newline = False
        return self._fd

    def add(self, key: str, record: dict[str, Any]) -> None:
        """Append one record (``key`` is stored in it) and remember it."""
        record = {"key": key, **record}
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._open()
        os.write(fd, line)
        self.records[key] = record
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every:
            os.fsync(fd)
            self._last_sync = now
            self._dirty = False

    def close(self) -> None:
        if self._fd is not None:
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            self._dirty = False

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
