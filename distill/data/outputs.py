"""The project's output files: their names beside a source and the correct-only projection.

``dir/test.jsonl`` -> ``dir/test.enriched.jsonl`` (every path) and ``dir/test.correct.jsonl``
(:func:`correct_only`: the verified paths only); :func:`stem_of` and :func:`is_output_file` tell our
outputs from sources.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distill.data.tasks import FORMAL_PATH_FIELDS, PATH_FIELDS


def correct_only(row: dict[str, Any]) -> dict[str, Any]:
    """Project an enriched row onto its verified paths (the ``*.correct.jsonl`` schema).

    Keeps ``id``, ``gold_answer`` (and a formal row's ``facts``) and the parallel path lists
    (with ``valid_flags``/``diagnostics`` where the row has them) restricted to correct paths, plus ``path_idx`` (indices into the enriched lists) so analyses can recover
    each path's style and position.
    """
    flags = row.get("correct_flags") or []
    keep = [i for i, ok in enumerate(flags) if ok]
    out: dict[str, Any] = {"id": row["id"], "gold_answer": row["gold_answer"]}
    if "facts" in row:  # part of a formal row's reference: the instance both programs are solved on
        out["facts"] = row["facts"]
    for field in PATH_FIELDS:
        vals = row.get(field) or []
        out[field] = [vals[i] for i in keep if i < len(vals)]
    for field in FORMAL_PATH_FIELDS:  # formal tasks: every kept path is valid; its diagnostic is None
        if isinstance(row.get(field), list):
            out[field] = [row[field][i] for i in keep if i < len(row[field])]
    out["path_idx"] = keep
    return out


def enriched_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` -> ``dir/test.enriched.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.enriched.jsonl")


def correct_path(source: str | os.PathLike) -> Path:
    """``dir/test.jsonl`` or ``dir/test.enriched.jsonl`` -> ``dir/test.correct.jsonl``."""
    p = Path(source)
    return p.with_name(f"{stem_of(p)}.correct.jsonl")


OUTPUT_SUFFIXES = (".enriched.jsonl", ".correct.jsonl", ".judged.jsonl", ".cache.jsonl", ".repairs.jsonl")


def stem_of(path: str | os.PathLike) -> str:
    """The source stem of a data file, with any of our output suffixes removed."""
    name = Path(path).name
    for suf in OUTPUT_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem


def is_output_file(path: str | os.PathLike) -> bool:
    """True for files this project writes (never to be scanned as sources)."""
    return Path(path).name.endswith(OUTPUT_SUFFIXES)
