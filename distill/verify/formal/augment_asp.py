"""ASP corruption operators for :mod:`distill.verify.formal.augment` (a missing final ``.``, ``{{``,
a dropped body, `` if `` for ``:-``, ``//`` comments, ``show``/``minimize`` without ``#``, ``'``
quotes, a non-ASCII identifier).

Each operator is ``op(program, rng) -> str | None`` (``None``: it does not apply to this program),
deterministic for a seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
import re

from distill.verify.formal.lexical import code_mask, code_positions, non_code_spans

def _asp_periods(program: str) -> list[int]:
    """Statement-ending periods in code (not the ``..`` of an interval)."""
    return [p for p in code_positions("asp", program, ".")
            if not (p > 0 and program[p - 1] == ".") and not (p + 1 < len(program) and program[p + 1] == ".")]


def asp_drop_final_period(program: str, rng: random.Random) -> str | None:
    """Drop the period that ends the last statement."""
    periods = _asp_periods(program)
    if not periods:
        return None
    i = periods[-1]
    return program[:i] + program[i + 1:]


def asp_double_brace(program: str, rng: random.Random) -> str | None:
    """``{`` written ``{{`` (a template-escaping habit)."""
    pos = code_positions("asp", program, "{")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + "{" + program[i:]


def _asp_statements(program: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each statement (end = offset of its final period), weak constraints skipped."""
    out, start = [], 0
    for p in _asp_periods(program):
        out.append((start, p))
        start = p + 1
    return [(s, e) for s, e in out if ":~" not in program[s:e]]


_ASP_VAR = re.compile(r"(?<![A-Za-z0-9_'])_*[A-Z][A-Za-z0-9_']*")


def asp_drop_body(program: str, rng: random.Random) -> str | None:
    """Drop the body of a rule whose head has a variable (the variable becomes unsafe)."""
    mask = code_mask("asp", program)
    cands = []
    for s, e in _asp_statements(program):
        necks = [p for p in code_positions("asp", program[s:e], ":-")]
        if not necks:
            continue
        n = s + necks[0]
        head = "".join(ch for ch, ok in zip(program[s:n], mask[s:n]) if ok)
        if head.strip() and _ASP_VAR.search(head):
            cands.append((n, e))
    if not cands:
        return None
    n, e = rng.choice(cands)
    return program[:n].rstrip() + program[e:]


def asp_if_for_neck(program: str, rng: random.Random) -> str | None:
    """``:-`` written `` if `` (prose-style rules)."""
    pos = code_positions("asp", program, ":-")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i].rstrip() + " if " + program[i + 2:].lstrip()


def asp_slash_comment(program: str, rng: random.Random) -> str | None:
    """A ``%`` line comment written ``//`` (C style)."""
    pos = [m.start() for m in non_code_spans("asp", program) if m.group().startswith("%") and not
           m.group().startswith("%*")]
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + "//" + program[i + 1:]


def asp_hashless_directive(program: str, rng: random.Random) -> str | None:
    """``#show``/``#minimize``/``#maximize``/``#const`` written without the ``#``."""
    pos = [p for word in ("#show", "#minimize", "#maximize", "#const") for p in code_positions("asp", program, word)]
    if not pos:
        return None
    i = rng.choice(sorted(pos))
    return program[:i] + program[i + 1:]


def asp_single_quotes(program: str, rng: random.Random) -> str | None:
    """A string quoted with ``'`` instead of ``"``."""
    strings = [m for m in non_code_spans("asp", program) if m.group().startswith('"') and m.group().endswith('"')
               and len(m.group()) >= 2]
    if not strings:
        return None
    m = rng.choice(strings)
    return program[:m.start()] + "'" + m.group()[1:-1] + "'" + program[m.end():]


_ACCENT = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"}
_ASP_KEYWORDS = {"not", "inf", "sup"}


def asp_non_ascii_identifier(program: str, rng: random.Random) -> str | None:
    """A predicate or constant spelt with a non-ASCII letter (``café``), every occurrence."""
    mask = code_mask("asp", program)
    idents = sorted({m.group() for m in re.finditer(r"(?<![A-Za-z0-9_'#])[a-z][A-Za-z0-9_']*", program)
                     if all(mask[m.start():m.end()]) and m.group() not in _ASP_KEYWORDS})
    if not idents:
        return None
    name = rng.choice(idents)
    k = next((j for j, ch in enumerate(name) if ch in _ACCENT), None)
    new = name[:k] + _ACCENT[name[k]] + name[k + 1:] if k is not None else name + "ñ"
    pieces, last = [], 0
    for m in re.finditer(rf"(?<![A-Za-z0-9_'#]){re.escape(name)}(?![A-Za-z0-9_'])", program):
        if all(mask[m.start():m.end()]):
            pieces += [program[last:m.start()], new]
            last = m.end()
    return "".join(pieces) + program[last:]
