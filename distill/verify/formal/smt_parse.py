"""Reading SMT-LIB2 text for :mod:`distill.verify.formal.smt`: top-level forms with their offsets,
Z3's ``line:column`` convention, and printing a form back."""

from __future__ import annotations

import re
from typing import Union

Term = Union[str, list]

class _ParseError(Exception):
    def __init__(self, offset: int, msg: str):
        super().__init__(msg)
        self.offset, self.msg = offset, msg


_SIMPLE = re.compile(r"[A-Za-z~!@$%^&*_\-+=<>.?/][0-9A-Za-z~!@$%^&*_\-+=<>.?/]*\Z")
_ATOM_END = set(" \t\r\n\f\v();\"|")


def _commands(text: str) -> tuple[list[tuple[Term, int, int]], int | None]:
    """Top-level forms as ``(form, start, end)`` up to and excluding ``(exit)``, and the offset of
    that ``(exit)`` (``None`` without one). Raises :class:`_ParseError` (offset, message).

    Atoms: symbols (``|x|`` read as ``x`` when ``x`` is a simple symbol), keywords, numerals and
    string literals (kept with their quotes; ``""`` is the escaped quote)."""
    out: list[tuple[Term, int, int]] = []
    stack: list[tuple[list, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n\f\v":
            i += 1
        elif ch == ";":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif ch == "(":
            stack.append(([], i))
            i += 1
        elif ch == ")":
            if not stack:
                raise _ParseError(i, "unexpected ')'")
            form, start = stack.pop()
            i += 1
            if stack:
                stack[-1][0].append(form)
            else:
                if form == ["exit"]:
                    return out, start
                out.append((form, start, i))
        else:
            start = i
            if ch == '"':
                j = i + 1
                while True:
                    k = text.find('"', j)
                    if k < 0:
                        raise _ParseError(i, "unterminated string literal")
                    if text.startswith('""', k):
                        j = k + 2
                        continue
                    break
                atom, i = text[i:k + 1], k + 1
            elif ch == "|":
                k = text.find("|", i + 1)
                if k < 0:
                    raise _ParseError(i, "unterminated quoted symbol")
                inner = text[i + 1:k]
                if "\\" in inner:
                    raise _ParseError(i, "'\\' in a quoted symbol")
                atom, i = (inner if _SIMPLE.match(inner) else text[i:k + 1]), k + 1
            else:
                j = i
                while j < n and text[j] not in _ATOM_END:
                    j += 1
                atom, i = text[i:j], j
            if stack:
                stack[-1][0].append(atom)
            else:
                out.append((atom, start, i))
    if stack:
        raise _ParseError(stack[-1][1], "unbalanced parentheses: '(' is never closed")
    return out, None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """Z3's convention: lines from 1; columns from 0, except on line 1 where they start at 1."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1)
    return line, col + 1 if line == 1 else col


def _show(t: Term) -> str:
    return t if isinstance(t, str) else "(" + " ".join(_show(x) for x in t) + ")"
