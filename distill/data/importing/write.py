"""Writing an import: ``<name>.jsonl`` and its ``<name>.source.json`` sidecar as one atomic commit."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from distill.data.commit import check_writable, commit, discard, lock_sources, recover, remove_stale_temps
from distill.data.importing.config import ImportConfig
from distill.data.writes import stage_jsonl, staged_open
from distill.errors import ConfigError


def prepare(cfg: ImportConfig) -> list[str]:
    """Before anything is loaded: refuse to replace an output without ``--force``, check both outputs
    can be written, finish an interrupted earlier import. Returns notes for the user."""
    out, side = cfg.output, cfg.sidecar
    if out.exists() and not cfg.force:
        raise ConfigError(f"{out} exists; pass --force to replace it (or choose another --name)")
    check_writable(out)
    check_writable(side)
    notes = recover([out.parent])
    for target in (out, side):
        remove_stale_temps(target)
    return notes


def write(cfg: ImportConfig, rows: list[dict[str, Any]], sidecar: dict[str, Any]) -> None:
    """Both files in full, then both renames under a journal (:func:`distill.data.commit.commit`)."""
    out, side = cfg.output, cfg.sidecar
    staged: list[tuple[Path, Path]] = []
    with contextlib.ExitStack() as stack:
        lock_sources(stack, [out], purpose="distill data import")
        try:
            staged.append((stage_jsonl(out, rows), out))
            with staged_open(side) as (fh, tmp):
                fh.write(json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n")
            staged.append((tmp, side))
        except BaseException:
            discard(staged)
            raise
        commit(staged, out.parent / f".{cfg.name}.import.commit.json")
