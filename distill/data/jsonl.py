"""Crash-safe JSONL reading and writing with errors that name the file, line and field.

Why: a bad line in a 10k-row teacher log must say *where* it is, and a crash halfway
through a rewrite must never leave a half-written file where a good one stood. Writers
therefore go through a temporary file in the same directory and ``os.replace`` it.

The work is split by job; this module re-exports the public names, so callers import from here:

- :mod:`distill.data.reader` -- :class:`DataError`, :func:`iter_jsonl` (lines -> JSON objects)
- :mod:`distill.data.rows` -- :func:`validate_row`, :func:`iter_rows`, :func:`read_rows` (per task)
- :mod:`distill.data.writes` -- :class:`OutputError`, :func:`atomic_open`, :func:`staged_open`,
  :func:`atomic_write_jsonl`, :func:`stage_jsonl`, :func:`atomic_write_text`
- :mod:`distill.data.outputs` -- output file names and :func:`correct_only`
"""

from __future__ import annotations

from distill.data.outputs import (
    OUTPUT_SUFFIXES, correct_only, correct_path, enriched_path, is_output_file, stem_of,
)
from distill.data.reader import MAX_DEPTH, DataError, iter_jsonl
from distill.data.rows import has_question_fields, iter_rows, read_rows, validate_row
from distill.data.writes import (
    OutputError, atomic_open, atomic_write_jsonl, atomic_write_text, current_umask, output_error, stage_jsonl,
    staged_open, temp_prefix,
)

__all__ = [
    "MAX_DEPTH", "OUTPUT_SUFFIXES", "DataError", "OutputError", "atomic_open", "atomic_write_jsonl",
    "atomic_write_text", "correct_only", "correct_path", "current_umask", "enriched_path", "has_question_fields",
    "is_output_file", "iter_jsonl", "iter_rows", "output_error", "read_rows", "stage_jsonl", "staged_open",
    "stem_of", "temp_prefix", "validate_row",
]
