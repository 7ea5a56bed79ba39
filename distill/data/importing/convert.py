"""Source rows -> rows of our schema: pick the format, convert, apply ``--map``, give stable ids, and
report (with row numbers) duplicate ids, missing golds and rows our validator rejects."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from distill.data.importing.config import ImportConfig
from distill.data.importing.formats import FORMATS, Format, blank, generic_format, native_format
from distill.data.importing.load import Loaded
from distill.data.reader import DataError
from distill.data.rows import validate_row
from distill.data.tasks import TaskSpec
from distill.errors import ConfigError
from distill.progress import progress_bar

PROGRESS_MIN_ROWS = 5000  # smaller inputs convert in well under a second: no bar


@dataclass(frozen=True)
class Problem:
    """A source row that was not imported."""

    where: str  # the file, or NAME[split]
    row: int  # 1-based row number in that part (the line number of a JSONL file)
    id: Any
    kind: str  # duplicate | no_gold | invalid
    message: str

    def line(self) -> str:
        return f"{self.where} row {self.row}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "row": self.row, "id": self.id, "kind": self.kind, "message": self.message}


def choose_format(spec: TaskSpec, loaded: Loaded, mapping: dict[str, str], where: str) -> Format:
    """Our own schema if the source has every required field, else the task's public format (or fields
    by name); fails now, naming the columns, when a required field has no source column."""
    cols = loaded.columns
    for fld, column in mapping.items():
        if column.split(".")[0] not in cols:
            raise ConfigError(f"--map {fld}={column}: {where} has no column {column.split('.')[0]!r} "
                              f"(columns: {', '.join(cols)})")
    if all(f in cols for f in spec.required):
        return native_format(cols)
    fmt = FORMATS.get(spec.name) or generic_format(spec.required)
    missing = [f for f, alts in fmt.needs.items() if f not in mapping and not any(a in cols for a in alts)]
    if missing:
        wants = "; ".join(f"{f} from {' or '.join(fmt.needs[f])}" for f in missing)
        raise ConfigError(f"{where}: columns ({', '.join(cols)}) do not fit {spec.name} in format {fmt.name}: "
                          f"no column for {wants}; name them with --map FIELD=COLUMN")
    return fmt


def _get(src: dict[str, Any], column: str) -> Any:
    value: Any = src
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: NaN -> null, dates and other objects -> their text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def _mapped(spec: TaskSpec, fld: str, value: Any) -> Any:
    if fld == "choices" and spec.kind == "mcq" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"label": [chr(ord("A") + i) for i in range(len(value))], "text": value}  # plain options: A, B, ...
    return value


def _row_id(fmt: Format, src: dict[str, Any], task: str, label: str, index: int) -> Any:
    for col in fmt.id_columns:
        value = src.get(col)
        if not blank(value) and not isinstance(value, bool):
            return value if fmt.id_template == "{id}" else fmt.id_template.format(id=value)
    return fmt.made_id_template.format(task=task, label=label, index=index)


def convert(cfg: ImportConfig, loaded: Loaded) -> tuple[Format, list[dict[str, Any]], list[Problem]]:
    """Every convertible source row (in source order) and the problems of the others."""
    spec = cfg.task
    fmt = choose_format(spec, loaded, cfg.mapping, loaded.parts[0].where)
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    seen: dict[str, tuple[str, int]] = {}
    bar = progress_bar(loaded.rows, f"import {spec.name}", unit="row",
                       enabled=cfg.progress and loaded.rows >= PROGRESS_MIN_ROWS)
    try:
        for part in loaded.parts:
            for index, src in enumerate(part.dataset):
                bar.update(1)
                rowno = index + 1
                out = fmt.convert(src)
                if fmt.label_fields is not None:
                    out.update(fmt.label_fields(part.label))
                for fld, column in cfg.mapping.items():
                    out[fld] = _mapped(spec, fld, _get(src, column))
                rid = out.pop("id", None)
                if blank(rid):
                    rid = _row_id(fmt, src, spec.name, part.label, index)
                row = jsonable({"id": rid, **out})
                if blank(row.get("gold_answer")):
                    problems.append(Problem(part.where, rowno, rid, "no_gold", f"id {rid!r}: {fmt.no_gold}"))
                    continue
                try:
                    validate_row(row, spec, part.where, rowno)
                except DataError as exc:
                    msg = str(exc).removeprefix(f"{part.where}:{rowno}: ")
                    problems.append(Problem(part.where, rowno, rid, "invalid", f"id {rid!r}: {msg}"))
                    continue
                first = seen.get(str(rid))
                if first is not None:
                    problems.append(Problem(part.where, rowno, rid, "duplicate",
                                            f"duplicate id {rid!r} (first at {first[0]} row {first[1]})"))
                    continue
                seen[str(rid)] = (part.where, rowno)
                rows.append(row)
    finally:
        bar.close()
    return fmt, rows, problems


def sample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    """``limit`` rows drawn with ``random.Random(seed).sample``, kept in source order (all if fewer)."""
    if limit is None or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def check_problems(problems: list[Problem], strict: bool) -> None:
    if strict and problems:
        raise DataError(problems[0].where, None, f"{len(problems)} row(s) cannot be imported, first: "
                                                 f"{problems[0].line()} (nothing written; without --strict "
                                                 f"they are skipped and reported)")
