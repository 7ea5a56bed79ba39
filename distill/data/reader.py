"""Reading JSONL: one JSON object per line, with errors that name the file, line and field.

Why: a bad line in a 10k-row teacher log must say *where* it is. :func:`iter_jsonl` rejects, at read
time, anything no later stage could write back (bad UTF-8, deep nesting, lone surrogates), so every
command fails before it writes or pays for anything. Row validation per task is in
:mod:`distill.data.rows`; writing in :mod:`distill.data.writes`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from distill.errors import DistillError


class DataError(DistillError, ValueError):
    """Bad input data. The message starts with ``FILE:LINE:`` (and names the field)."""

    def __init__(self, path: str | os.PathLike, lineno: int | None, message: str):
        where = f"{os.fspath(path)}:{lineno}" if lineno is not None else os.fspath(path)
        super().__init__(f"{where}: {message}")
        self.path = os.fspath(path)
        self.lineno = lineno


#: Deepest nesting a row may have. Real rows nest 3 levels (``choices.label[i]``); a deeper one is
#: damaged or hostile, and a few hundred levels already overflow the stack of JSON encoders downstream.
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


def _scan(obj: Any) -> tuple[str | None, str] | None:
    """The first thing no UTF-8 file or JSON encoder can take back, in a parsed row, else None:
    ``(top-level field, character)`` for a lone surrogate, ``(top-level field, "")`` for nesting
    deeper than :data:`MAX_DEPTH`. Iterative, so a deep row cannot overflow the stack here."""
    stack: list[tuple[Any, int, str | None]] = [(obj, 0, None)]
    while stack:
        val, depth, field = stack.pop()
        if depth > MAX_DEPTH:
            return field, ""
        if isinstance(val, str):
            m = _SURROGATE.search(val)
            if m:
                return field, m.group()
        elif isinstance(val, dict):
            for k, v in val.items():
                top = k if field is None else field
                m = _SURROGATE.search(k)
                if m:
                    return top, m.group()
                stack.append((v, depth + 1, top))
        elif isinstance(val, list):
            stack.extend((v, depth + 1, field) for v in val)
    return None


def _field_of_deep_line(text: str) -> str | None:
    """The top-level key under which a JSON line nests deeper than :data:`MAX_DEPTH` (error path only)."""
    depth, in_str, esc, start, last, key = 0, False, False, 0, None, None
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                last = text[start:i + 1]
        elif ch == '"':
            in_str, start = True, i
        elif ch == ":" and depth == 1 and last is not None:
            try:
                key = json.loads(last)
            except ValueError:
                key = None
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return key
        elif ch in "]}":
            depth -= 1
    return key


def _field_prefix(field: str | None) -> str:
    return f"field {field!r}: " if field is not None else ""


def _decode(raw: bytes, path: str | os.PathLike, lineno: int) -> str:
    """One line as text; bytes that are not UTF-8 fail naming the line, column and (if it parses) field."""
    enc = "utf-8-sig" if lineno == 1 else "utf-8"  # a byte-order mark is tolerated at the start of the file
    try:
        return raw.decode(enc)
    except UnicodeDecodeError as exc:
        col = len(raw[:exc.start].decode("utf-8", "replace")) + 1
        field = None
        with contextlib.suppress(ValueError, RecursionError):
            found = _scan(json.loads(raw.decode(enc, "surrogateescape")))
            field = found[0] if found else None
        raise DataError(path, lineno, f"{_field_prefix(field)}not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                                      f"column {col}); save the file as UTF-8") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; 1-based line numbers.

    Every line must be UTF-8, one JSON object, nested at most :data:`MAX_DEPTH` deep and free of
    lone surrogates (``"\\ud800"`` parses, but no UTF-8 file can hold it: the first write would fail,
    possibly after other files were rewritten). Anything else is a :class:`DataError` here, at read
    time, so every command fails before it writes or pays for anything.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise DataError(path, lineno, f"{_field_prefix(_field_of_deep_line(line))}JSON nested more than "
                                              f"{MAX_DEPTH} levels deep") from None
            if not isinstance(obj, dict):
                raise DataError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            found = _scan(obj)
            if found is not None:
                field, ch = found
                if not ch:
                    raise DataError(path, lineno, f"{_field_prefix(field)}JSON nested more than {MAX_DEPTH} levels deep")
                raise DataError(path, lineno, f"{_field_prefix(field)}contains a lone surrogate "
                                              f"{ascii(ch)[1:-1]} (an unpaired \\u escape), which UTF-8 cannot hold")
            yield lineno, obj
