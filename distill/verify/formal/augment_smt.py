"""SMT-LIB2 corruption operators for :mod:`distill.verify.formal.augment` (a dropped ``)``, an
undeclared symbol, a non-Bool assert, ``get-value`` before ``check-sat``, a stray markdown fence),
and the light-weight SMT text helpers the template repair shares.

Each operator is ``op(program, rng) -> str | None`` (``None``: it does not apply to this program),
deterministic for a seeded :class:`random.Random`.
"""

from __future__ import annotations

import random
import re

from distill.verify.formal.lexical import code_mask, code_positions

_SMT_DECL = re.compile(r"\(\s*declare-(?:const\s+([^\s()]+)\s+([^\s()]+|\([^()]*\))\s*\)|"
                       r"fun\s+([^\s()]+)\s+\(\s*\)\s+([^\s()]+|\([^()]*\))\s*\))")
_SMT_SYMBOL = re.compile(r"[A-Za-z~!@$%^&*_\-+=<>.?/][0-9A-Za-z~!@$%^&*_\-+=<>.?/]*")
_SMT_TOKEN_END = set(" \t\r\n();\"|")


def smt_constants(program: str) -> dict[str, str]:
    """Declared nullary constants -> their sort text (``declare-const`` and ``declare-fun c ()``)."""
    out: dict[str, str] = {}
    for m in _SMT_DECL.finditer(program):
        name, sort = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        out[name] = sort
    return out


def _top_forms(program: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level parenthesised form (code only)."""
    mask = code_mask("smt", program)
    forms, depth, start = [], 0, 0
    for i, ch in enumerate(program):
        if not mask[i]:
            continue
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                forms.append((start, i + 1))
    return forms


def _form_head(program: str, span: tuple[int, int]) -> str:
    m = re.match(r"\(\s*([^\s()]+)", program[span[0]:span[1]])
    return m.group(1) if m else ""


def _symbol_uses(program: str, name: str, lo: int = 0, hi: int | None = None) -> list[int]:
    """Offsets of ``name`` as a whole SMT symbol token in code between ``lo`` and ``hi``."""
    mask = code_mask("smt", program)
    hi = len(program) if hi is None else hi
    out = []
    for m in re.finditer(re.escape(name), program[lo:hi]):
        s, e = lo + m.start(), lo + m.end()
        if all(mask[s:e]) and (s == 0 or program[s - 1] in _SMT_TOKEN_END) and \
                (e == len(program) or program[e] in _SMT_TOKEN_END):
            out.append(s)
    return out


def smt_drop_paren(program: str, rng: random.Random) -> str | None:
    """Drop one closing parenthesis."""
    pos = code_positions("smt", program, ")")
    if not pos:
        return None
    i = rng.choice(pos)
    return program[:i] + program[i + 1:]


def smt_undeclared_symbol(program: str, rng: random.Random) -> str | None:
    """Use a symbol that is never declared: one occurrence of a declared constant inside an
    ``assert`` is renamed to a fresh name (a typo or a forgotten declaration)."""
    consts = smt_constants(program)
    asserts = [s for s in _top_forms(program) if _form_head(program, s) == "assert"]
    uses = [(name, p) for s in asserts for name in consts for p in _symbol_uses(program, name, *s)]
    if not uses:
        return None
    name, p = rng.choice(sorted(uses, key=lambda u: u[1]))
    taken = set(_SMT_SYMBOL.findall(program))
    fresh = next(f"{name}_{k}" for k in range(1, 10_000) if f"{name}_{k}" not in taken)
    return program[:p] + fresh + program[p + len(name):]


def smt_non_bool_assert(program: str, rng: random.Random) -> str | None:
    """Assert a term that is not Boolean: an arithmetic constant (``(assert x)``) inserted before the
    first ``check-sat``, else one assertion's body wrapped in ``(ite B 1 0)``."""
    forms = _top_forms(program)
    numeric = [c for c, s in smt_constants(program).items() if s in ("Int", "Real")]
    checks = [s for s in forms if _form_head(program, s) in ("check-sat", "check-sat-assuming")]
    if numeric and checks:
        at = checks[0][0]
        return program[:at] + f"(assert {rng.choice(sorted(numeric))})\n" + program[at:]
    asserts = [s for s in forms if _form_head(program, s) == "assert"]
    if not asserts:
        return None
    s, e = rng.choice(asserts)
    m = re.match(r"\(\s*assert\s+", program[s:e])
    body = program[s + m.end():e - 1].strip()
    return program[:s] + f"(assert (ite {body} 1 0))" + program[e:]


def smt_get_value_before_check_sat(program: str, rng: random.Random) -> str | None:
    """Ask for a value before the first ``check-sat`` (no model is available yet)."""
    consts = sorted(smt_constants(program))
    checks = [s for s in _top_forms(program) if _form_head(program, s) in ("check-sat", "check-sat-assuming")]
    if not checks:
        return None
    ask = f"(get-value ({rng.choice(consts)}))" if consts else "(get-model)"
    at = checks[0][0]
    return program[:at] + ask + "\n" + program[at:]


def smt_stray_fence(program: str, rng: random.Random) -> str | None:
    """A markdown fence left in the program (the opening ``` or the closing one)."""
    if rng.random() < 0.5:
        return "```smt2\n" + program
    return program.rstrip("\n") + "\n```"
