"""The typed settings of ``distill data import``, checked before anything is loaded or written."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from distill.data.outputs import is_output_file
from distill.data.tasks import TaskSpec, get_task
from distill.errors import ConfigError

#: Local file types ``datasets`` reads, by extension (a compression suffix may follow).
FILE_TYPES: dict[str, str] = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".ndjson": "json",
                              ".csv": "csv", ".tsv": "csv", ".arrow": "arrow"}
COMPRESSION = (".gz", ".bz2", ".xz", ".zst")
SPLITS = ("train", "test")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?")
_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
_FIELD = re.compile(r"[A-Za-z_]\w*")


def file_type(path: str | os.PathLike) -> str | None:
    """``parquet`` / ``json`` / ``csv`` / ``arrow`` for a data file name, else None."""
    name = Path(path).name.lower()
    for comp in COMPRESSION:
        if name.endswith(comp):
            name = name[: -len(comp)]
    return FILE_TYPES.get(Path(name).suffix)


@dataclass(frozen=True)
class Source:
    """Where rows come from: a hub dataset name, a local folder, or local files (one type)."""

    kind: str  # hub | dir | files
    name: str  # the hub name, folder or first file, for messages and default output names
    files: tuple[Path, ...] = ()

    @property
    def slug(self) -> str:
        base = self.name.rstrip("/").split("/")[-1] if self.kind == "hub" else (
            Path(self.name).name if self.kind == "dir" else Path(self.name).name.split(".")[0])
        return re.sub(r"[^\w.-]+", "-", base).strip("-.").lower() or "imported"


def resolve_source(values: list[str]) -> Source:
    """``--from`` values -> a :class:`Source`: existing paths (globs expanded) are local, one
    ``owner/name`` that is not a path is a hub name."""
    if not values:
        raise ConfigError("--from needs a dataset name or files")
    paths: list[Path] = []
    for v in values:
        if any(c in v for c in "*?[") and not Path(v).exists():
            hits = sorted(glob.glob(os.path.expanduser(v), recursive=True))
            if not hits:
                raise ConfigError(f"--from {v}: no file matches")
            paths.extend(Path(h) for h in hits)
        elif Path(v).expanduser().exists():
            paths.append(Path(v).expanduser())
        elif len(values) == 1 and _HUB_NAME.fullmatch(v) and not file_type(v) and not v.startswith("."):
            return Source("hub", v)
        else:
            raise ConfigError(f"--from {v}: no such file or folder")
    dirs = [p for p in paths if p.is_dir()]
    if dirs:
        if len(paths) > 1:
            raise ConfigError(f"--from {dirs[0]}: a folder must be the only --from value")
        return Source("dir", str(dirs[0]), (dirs[0],))
    types = {file_type(p) for p in paths}
    if None in types:
        bad = next(p for p in paths if file_type(p) is None)
        raise ConfigError(f"--from {bad}: not a data file this command reads "
                          f"({', '.join(sorted(FILE_TYPES))}, optionally compressed)")
    if len(types) > 1:
        raise ConfigError(f"--from: files of one type only, got {', '.join(sorted(types))}")
    return Source("files", str(paths[0]), tuple(paths))


def parse_map(items: list[str]) -> dict[str, str]:
    """``["question=prompt", "gold_answer=meta.label"]`` -> ``{field: column}`` (dotted = nested)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not _FIELD.fullmatch(name) or not column:
            raise ConfigError(f"--map {item!r}: expected FIELD=COLUMN (e.g. question=prompt)")
        if name in out:
            raise ConfigError(f"--map {item!r}: field {name!r} is mapped twice")
        out[name] = column
    return out


@dataclass(frozen=True)
class ImportConfig:
    """Everything ``distill data import`` needs; :meth:`build` validates the raw flags."""

    task: TaskSpec
    source: Source
    split: str = "test"
    root: Path = Path("data")
    name: str = "imported"
    source_split: str | None = None  # the split read from a hub dataset or folder (default: split)
    subset: str | None = None  # a hub dataset's configuration ("main" for openai/gsm8k)
    limit: int | None = None
    seed: int = 0
    mapping: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    force: bool = False
    license: str | None = None
    progress: bool = True

    @property
    def output(self) -> Path:
        return self.root / self.task.name / self.split / f"{self.name}.jsonl"

    @property
    def sidecar(self) -> Path:
        return self.output.with_name(f"{self.name}.source.json")

    @classmethod
    def build(cls, *, task: str, sources: list[str], split: str = "test", root: str | os.PathLike = "data",
              name: str | None = None, source_split: str | None = None, subset: str | None = None,
              limit: int | None = None, seed: int = 0, maps: list[str] | None = None, strict: bool = False,
              force: bool = False, license: str | None = None, progress: bool = True) -> ImportConfig:
        spec = get_task(task)
        if split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be a positive number of rows, got {limit}")
        source = resolve_source(list(sources))
        if source.kind == "files" and (subset or source_split):
            raise ConfigError("--subset and --source-split choose within a hub dataset or folder; "
                              "local files are read whole")
        name = name if name is not None else source.slug
        if not _NAME.fullmatch(name) or is_output_file(f"{name}.jsonl") or name.endswith(".source"):
            raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-' or '.', not starting with '.' "
                              f"and not one of our output suffixes (.enriched, .correct, ...)")
        return cls(task=spec, source=source, split=split, root=Path(root), name=name, source_split=source_split,
                   subset=subset, limit=limit, seed=seed, mapping=parse_map(maps or []), strict=strict,
                   force=force, license=license, progress=progress)
