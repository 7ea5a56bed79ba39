"""What ``--backend openai-batch`` has sent, on disk, so a rerun picks a batch up instead of paying again.

One small JSON file per batch under the batch folder (``--batch-dir``, by default
``<root>/.openai-batch/``): the local key, the model and server, the request ids (``custom_id``,
the paths' cache keys) and, as they become known, the uploaded input file, the batch id and the
final status with its output and error files. A file is written (atomically) *before* each step
that costs money: after the upload (status ``uploaded``) and again once the batch exists
(``submitted``), so a run killed at any point leaves a record of everything it started. One file
per batch, so runs on different sources sharing a folder never rewrite each other's records.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distill.data.jsonl import atomic_write_text
from distill.errors import DistillError

STATE_VERSION = 1
#: Batch statuses after which nothing changes on the server (OpenAI's names).
TERMINAL = ("completed", "failed", "expired", "cancelled")


class BatchStateError(DistillError):
    """A batch state file cannot be read or written."""


@dataclass
class BatchRecord:
    key: str
    model: str
    base_url: str | None
    custom_ids: list[str]
    status: str = "uploading"  # uploading | uploaded | submitted | one of TERMINAL | lost (gone from the server)
    input_file_id: str | None = None
    batch_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    failed_ids: list[str] = field(default_factory=list)  # requests this batch did not answer: never re-read
    note: str | None = None  # the server's errors for a failed batch
    created: float = field(default_factory=time.time)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


_FIELDS = {"key": str, "model": str, "custom_ids": list, "status": str, "created": (int, float)}


def _record(path: Path, data: object) -> BatchRecord:
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise BatchStateError(f"{path}: not a batch state file of version {STATE_VERSION}")
    for name, typ in _FIELDS.items():
        if not isinstance(data.get(name), typ):
            raise BatchStateError(f"{path}: field {name!r} is missing or not a {getattr(typ, '__name__', 'number')}")
    if not all(isinstance(c, str) for c in data["custom_ids"]):
        raise BatchStateError(f"{path}: field 'custom_ids' must list strings")
    failed = data.setdefault("failed_ids", [])
    if not isinstance(failed, list) or not all(isinstance(c, str) for c in failed):
        raise BatchStateError(f"{path}: field 'failed_ids' must list strings")
    for name in ("base_url", "input_file_id", "batch_id", "output_file_id", "error_file_id", "note"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BatchStateError(f"{path}: field {name!r} must be a string or null")
    return BatchRecord(**{k: data.get(k) for k in BatchRecord.__dataclass_fields__})


class BatchStore:
    """The batch folder: :meth:`load` the records of one model and server, :meth:`save` one."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, rec: BatchRecord) -> Path:
        return self.folder / f"{rec.key}.json"

    def load(self, model: str, base_url: str | None) -> list[BatchRecord]:
        """Every record of this model and server, oldest first (a later batch of a request wins)."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BatchStateError(
                    f"{path}: cannot read this batch state file ({exc}); move it away to forget that batch "
                    "(if it was submitted, it is already paid for)") from None
            rec = _record(path, data)
            if rec.model == model and rec.base_url == base_url:
                out.append(rec)
        return sorted(out, key=lambda r: r.created)

    def save(self, rec: BatchRecord) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path(rec), json.dumps({"version": STATE_VERSION, **asdict(rec)}) + "\n")
        except OSError as exc:
            raise BatchStateError(f"{self.path(rec)}: cannot write the batch state ({exc.strerror or exc}); "
                                  "without it a rerun could not pick this batch up") from None

    def drop(self, rec: BatchRecord) -> None:
        self.path(rec).unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Fail before the first upload if the folder cannot hold state files."""
        probe = self.folder / ".write-probe"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise BatchStateError(f"--batch-dir {self.folder}: cannot write there ({exc.strerror or exc})") from None
