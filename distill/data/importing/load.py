"""Loading a source with the ``datasets`` library: a hub name (online, or from the cache when offline),
a local folder (a hub repository's clone or a ``save_to_disk`` folder), or local files.

With ``HF_HUB_OFFLINE`` set, or no network (a 3-second probe of the hub's host), a hub name is read
from the local cache only, so a missing dataset fails in one line at once instead of after minutes
of retries. Local files are read into a temporary cache that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distill.data.importing.config import ImportConfig, Source, file_type
from distill.data.reader import DataError

PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "ON", "YES", "TRUE")


@dataclass
class Part:
    """One block of source rows with its own row numbers: a file, or a split of a hub dataset."""

    label: str  # the split name or file stem (made ids use it)
    where: str  # for messages: the file, or NAME[split]
    dataset: Any  # datasets.Dataset


@dataclass
class Loaded:
    parts: list[Part]
    columns: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # provenance for the sidecar
    license: str | None = None
    license_from: str | None = None

    @property
    def rows(self) -> int:
        return sum(len(p.dataset) for p in self.parts)


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def offline_reason() -> str | None:
    """Why the hub cannot be reached now (``HF_HUB_OFFLINE`` set, no network), else None."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").upper() in _TRUE:
            return f"{var} is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[BaseException | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            result.append(None)
        except OSError as exc:
            result.append(exc)

    t = threading.Thread(target=probe, daemon=True)  # name resolution ignores socket time-outs
    t.start()
    t.join(PROBE_TIMEOUT_S + 1)
    if not result:
        return f"no network: {host}:{port} did not answer within {PROBE_TIMEOUT_S:g} s"
    if result[0] is not None:
        return f"no network: cannot reach {host}:{port} ({one_line(result[0], 120)})"
    return None


@contextlib.contextmanager
def _offline(on: bool) -> Iterator[None]:
    """Force the hub libraries offline (they read the flag at call time) for the block."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    old = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    if on:
        datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = old


def card_license(ref: str | os.PathLike) -> str | None:
    """The ``license:`` of a dataset card (a hub name, from the cache when offline, or a README.md)."""
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard.load(ref)
    except Exception:  # noqa: BLE001 - no card, no network, not YAML: the sidecar then says "unknown"
        return None
    lic = card.data.to_dict().get("license") if card.data else None
    if isinstance(lic, list):
        lic = ", ".join(str(x) for x in lic) or None
    return str(lic) if lic else None


def _info_license(ds: Any) -> str | None:
    lic = getattr(getattr(ds, "info", None), "license", None)
    return lic.strip() if isinstance(lic, str) and lic.strip() else None


def _local_card(paths: list[Path]) -> tuple[str | None, str | None]:
    """A licence from a README.md dataset card beside the files or up to two folders above them."""
    seen = set()
    for p in paths:
        folder = p if p.is_dir() else p.parent
        for d in [folder, *list(folder.resolve().parents)[:2]]:
            readme = d / "README.md"
            if readme in seen or not readme.is_file():
                continue
            seen.add(readme)
            lic = card_license(readme)
            if lic:
                return lic, str(readme)
    return None, None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json_document(path: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """A ``.json`` file holding one document: ``{"examples": [...]}`` (BBH) -> ``field``; an object of
    records keyed by id (TabMWP) -> a JSONL copy with the key as column ``pid``; a list -> as it is."""
    if path.suffix.lower() != ".json":
        return path, {}
    try:
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except ValueError:
        return path, {}  # JSON lines under a .json name: datasets reads them
    if not isinstance(doc, dict):
        return path, {}
    lists = [k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        return path, {"field": lists[0]}
    if doc and all(isinstance(v, dict) for v in doc.values()):
        out = tmp / f"{path.stem}.records.jsonl"
        with open(out, "w", encoding="utf-8") as fh:
            for key, rec in doc.items():
                fh.write(json.dumps({"pid": key, **rec} if "pid" not in rec else rec, ensure_ascii=False) + "\n")
        return out, {}
    raise DataError(path, None, "a JSON object that is neither {FIELD: [rows]} nor {ID: row, ...}; "
                                "save the rows as JSON lines")


def _load_files(source: Source, tmp: Path) -> list[Part]:
    import datasets

    parts = []
    for path in source.files:
        kind = file_type(path)
        try:
            if kind == "arrow":
                ds = datasets.Dataset.from_file(str(path))
            else:
                target, kwargs = _json_document(path, tmp) if kind == "json" else (path, {})
                if path.name.lower().endswith((".tsv", ".tsv.gz")):
                    kwargs["sep"] = "\t"
                ds = datasets.load_dataset(kind, data_files=[str(target)], split="train", cache_dir=str(tmp),
                                           **kwargs)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is the file's fault: one line naming it
            raise DataError(path, None, f"cannot read as {kind} ({one_line(exc)})") from None
        parts.append(Part(path.name.split(".")[0], str(path), ds))
    return parts


def _pick_split(dd: Any, wanted: str | None, default: str, where: str) -> tuple[str, Any]:
    names = list(dd.keys())
    if wanted is None and default not in names and len(names) == 1:
        return names[0], dd[names[0]]
    name = wanted or default
    if name not in names:
        raise DataError(where, None, f"no split {name!r} (splits: {', '.join(names)}); choose one with --source-split")
    return name, dd[name]


def load_source(cfg: ImportConfig, tmp: Path) -> Loaded:
    """Load ``cfg.source``; raises :class:`DataError` (one line) for anything unreadable or unreachable."""
    import datasets

    datasets.logging.set_verbosity_error()
    if not cfg.progress or cfg.source.kind != "hub":  # local files load in seconds: no bars of theirs
        datasets.disable_progress_bars()
    src = cfg.source
    if src.kind == "files":
        parts = _load_files(src, tmp)
        lic, lic_from = _local_card(list(src.files))
        info = {"kind": "files", "files": [{"path": str(p), "sha256": _sha256(p)} for p in src.files]}
        ds0 = parts[0].dataset
    elif src.kind == "dir":
        folder = Path(src.name)
        try:
            if (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(folder))
            else:
                loaded = datasets.load_dataset(str(folder), cfg.subset, cache_dir=str(tmp))
        except Exception as exc:  # noqa: BLE001 - one line naming the folder
            raise DataError(folder, None, f"cannot load with datasets ({one_line(exc)})") from None
        label, ds0 = (_pick_split(loaded, cfg.source_split, cfg.split, str(folder))
                      if isinstance(loaded, datasets.DatasetDict) else (cfg.source_split or cfg.split, loaded))
        parts = [Part(label, f"{folder}[{label}]", ds0)]
        lic, lic_from = _local_card([folder])
        info = {"kind": "dir", "path": str(folder), "subset": cfg.subset, "source_split": label}
    else:
        reason = offline_reason()
        label = cfg.source_split or cfg.split
        try:
            with _offline(reason is not None):
                ds0 = datasets.load_dataset(src.name, cfg.subset, split=label)
                lic, lic_from = card_license(src.name), f"the dataset card of {src.name}"
        except Exception as exc:  # noqa: BLE001 - not found, no such split or config, not cached: one line
            if reason:
                raise DataError(src.name, None, f"not in the Hugging Face cache and {reason}; run once online, "
                                                f"or pass local files (--from FILE.parquet)") from None
            raise DataError(src.name, None, f"cannot load from the hub ({one_line(exc)})") from None
        parts = [Part(label, f"{src.name}[{label}]", ds0)]
        info = {"kind": "hub", "name": src.name, "subset": cfg.subset, "source_split": label,
                "offline": reason, "fingerprint": getattr(ds0, "_fingerprint", None)}
    if lic is None and _info_license(ds0):
        lic, lic_from = _info_license(ds0), "the dataset info"
    if cfg.license:
        lic, lic_from = cfg.license, "--license"
    columns = list(parts[0].dataset.column_names)
    for p in parts[1:]:
        columns += [c for c in p.dataset.column_names if c not in columns]
    return Loaded(parts, columns, info, lic, lic_from if lic else None)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for the local files' ``datasets`` cache, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="distill-import-") as d:
        yield Path(d)
