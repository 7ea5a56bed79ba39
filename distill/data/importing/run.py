"""``distill data import`` as a library call: check outputs, load, convert, sample, write, report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.data.importing.config import ImportConfig
from distill.data.importing.convert import Problem, check_problems, convert, sample
from distill.data.importing.load import load_source, scratch
from distill.data.importing.write import prepare, write

#: problem lines printed per run; the sidecar lists them all
SHOWN_PROBLEMS = 20
_KIND_WORDS = {"no_gold": "missing gold", "duplicate": "duplicate id", "invalid": "invalid"}


@dataclass
class ImportReport:
    output: Path
    sidecar: Path
    format: str
    source_rows: int
    convertible: int
    written: int
    problems: list[Problem] = field(default_factory=list)
    license: str | None = None
    license_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = list(self.notes)
        out += [p.line() for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            more = len(self.problems) - SHOWN_PROBLEMS
            out.append(f"... and {more} more skipped row(s), all listed in {self.sidecar}")
        counts = Counter(p.kind for p in self.problems)
        skipped = ", ".join(f"{n} {_KIND_WORDS[k]}" for k, n in sorted(counts.items()))
        sampled = f", sampled from {self.convertible}" if self.written < self.convertible else ""
        out.append(f"wrote {self.written} rows to {self.output} ({self.format}; {self.source_rows} source rows"
                   f"{sampled}; skipped {len(self.problems)}{': ' + skipped if skipped else ''})")
        out.append(f"licence: {self.license} (from {self.license_from})" if self.license else
                   "licence: unknown (no dataset card or info names one; set it with --license)")
        return out


def import_dataset(cfg: ImportConfig) -> ImportReport:
    """Import ``cfg.source`` into ``cfg.output``. Raises ConfigError / DataError / OutputError (one line)."""
    notes = prepare(cfg)
    with scratch() as tmp:
        loaded = load_source(cfg, tmp)
        fmt, rows, problems = convert(cfg, loaded)
    check_problems(problems, cfg.strict)
    kept = sample(rows, cfg.limit, cfg.seed)
    sidecar: dict[str, Any] = {
        "task": cfg.task.name, "split": cfg.split, "file": cfg.output.name, "source": loaded.info,
        "format": fmt.name, "map": cfg.mapping, "license": loaded.license, "license_from": loaded.license_from,
        "rows": {"source": loaded.rows, "convertible": len(rows), "written": len(kept), "skipped": len(problems)},
        "limit": cfg.limit, "seed": cfg.seed if cfg.limit is not None else None,
        "skipped": [p.as_dict() for p in problems],
    }
    write(cfg, kept, sidecar)
    return ImportReport(cfg.output, cfg.sidecar, fmt.name, loaded.rows, len(rows), len(kept), problems,
                        loaded.license, loaded.license_from, notes)
