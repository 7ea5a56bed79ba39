"""Alpha-renaming of ASP variables, per statement and simultaneous (training-data augmentation).

Why simultaneous: the public pipeline substitutes one variable after another, so the renaming
``{X -> Y, Y -> V3}`` first turns ``p(X,Y)`` into ``p(Y,Y)`` and then into ``p(V3,V3)``: the program
silently means something else. Here every statement is scanned once and each variable token is
replaced through one callback that looks at the *original* name, so ``p(X,Y)`` becomes ``p(Y,V3)``.

What is left alone: strings, ``%`` and ``%* *%`` comments (they carry the step-by-step descriptions),
``#script`` blocks, the anonymous variable ``_`` and every identifier that is not a variable. Fresh
names never clash with any variable of the program, so no capture is possible either.
A variable's scope in ASP is its statement, so each statement (a rule ended by ``.``; a weak
constraint ``:~ body. [w@p,t]`` ended by ``]``) gets its own mapping.

:func:`rename_checked` keeps a renamed program only when the ASP verifier finds that it has the
same projected answer sets as the original.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from distill.verify.formal import asp

_TOKEN = re.compile(
    r"""(?P<skip>%\*.*?(?:\*%|\Z)|%[^\n]*|"(?:\\.|[^"\\\n])*"|\#script\b.*?(?:\#end\s*\.|\Z))"""
    r"""|(?P<var>(?<![A-Za-z0-9_'])_*[A-Z][A-Za-z0-9_']*)"""
    r"""|(?P<ident>[A-Za-z0-9_']+)"""
    r"""|(?P<weak>:~)"""
    r"""|(?P<end>(?<!\.)\.(?!\.)|\])""",
    re.S,
)


def _statements(program: str) -> list[list[tuple[int, int, str]]]:
    """The variable tokens ``(start, end, name)`` of each statement, in order."""
    out: list[list[tuple[int, int, str]]] = [[]]
    weak = awaiting_bracket = False
    for m in _TOKEN.finditer(program):
        kind = m.lastgroup
        if kind == "var":
            out[-1].append((m.start(), m.end(), m.group()))
        elif kind == "weak":
            weak = True
        elif kind == "end":
            if m.group() == "]":
                if awaiting_bracket:
                    out.append([])
                    weak = awaiting_bracket = False
            elif weak:
                awaiting_bracket = True  # ":~ body. [w@p, terms]": the terms share the body's variables
            else:
                out.append([])
    return [s for s in out if s]


def variables(program: str) -> set[str]:
    """Every variable name of the program (outside strings, comments and scripts; ``_`` excluded)."""
    return {name for stmt in _statements(program) for _, _, name in stmt}


def substitute(program: str, mapping: Callable[[int, list[str]], dict[str, str]] | dict[str, str]) -> str:
    """Replace the variables of every statement *simultaneously*: each token is looked up by its
    original name in the statement's mapping (``mapping(index, names)``, or one dict for all);
    names missing from it stay."""
    pieces, last = [], 0
    for idx, stmt in enumerate(_statements(program)):
        names = list(dict.fromkeys(name for _, _, name in stmt))
        table = mapping(idx, names) if callable(mapping) else mapping
        for start, end, name in stmt:
            pieces.append(program[last:start])
            pieces.append(table.get(name, name))
            last = end
    pieces.append(program[last:])
    return "".join(pieces)


def _fresh_pool(taken: set[str], needed: int) -> list[str]:
    pool = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in taken]
    i = 1
    while len(pool) < max(needed, 26):
        name = f"V{i}"
        if name not in taken:
            pool.append(name)
        i += 1
    return pool


def rename_variables(program: str, seed: int) -> str:
    """Rename the variables of each statement to fresh names drawn with ``seed`` (one pass, no name
    of the program reused, distinct within a statement). Deterministic for a given seed."""
    rng = random.Random(seed)
    stmts = _statements(program)
    widest = max((len({n for _, _, n in s}) for s in stmts), default=0)
    pool = _fresh_pool(variables(program), widest)

    def draw(_idx: int, names: list[str]) -> dict[str, str]:
        return dict(zip(names, rng.sample(pool, len(names))))

    return substitute(program, draw)


def rename_checked(program: str, seed: int, facts: str | None = None, *,
                   timeout: float = asp.FORMAL_TIMEOUT_S) -> str | None:
    """:func:`rename_variables`, kept only when the verifier finds the renamed program valid with the
    same projected answer sets as the original (with ``facts`` appended to both); else ``None``."""
    renamed = rename_variables(program, seed)
    verdict = asp.verify(renamed, program, {"facts": facts}, timeout=timeout)
    return renamed if verdict.correct else None
