"""Deterministic template repair of formal programs (no model): a baseline and a pre-pass.

Rules, each a local edit of the program's code (never its comments or strings):

- SMT-LIB2: strip markdown fences and prose lines; balance parentheses (close an open command where
  the next command starts, drop an unmatched ``)``); add a missing ``(check-sat)`` (also before a
  ``get-value``/``get-model`` that comes before every ``check-sat``); declare a constant that Z3
  reports as ``unknown constant x`` with the sort its context implies (Bool under ``and``/``or``/
  ``not``/``=>``/``assert``, the sort of a declared sibling, Real next to a decimal or under ``/``,
  else Int).
- ASP: strip fence lines; ``{{``/``}}`` -> ``{``/``}``; add a missing final period.
- DOT: strip fences and the prose around the graph; ``--`` -> ``->`` in a digraph; close open braces.

Why it is conservative: the public SMT pipeline "repairs" a broken program by substituting a keyword
template, an unrelated program that happens to parse. Here the result is the input with these
edits, returned only when the real solver accepts it; a valid input, or one no rule makes valid, comes
back unchanged, so the pre-pass can never make a program worse or different in meaning beyond the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from distill.verify.formal import FORMAL_TIMEOUT_S
from distill.verify.formal.augment import validate
from distill.verify.formal.augment_smt import _top_forms, _form_head, _symbol_uses, smt_constants
from distill.verify.formal.lexical import code_mask, code_positions

_SMT_COMMAND = re.compile(r"\(\s*(?:declare-|define-|assert\b|check-sat|get-|set-|push\b|pop\b|exit\b|echo\b|"
                          r"minimize\b|maximize\b|reset\b)")
_MAX_DECLARATIONS = 8


def _drop_fence_lines(program: str) -> str:
    return "\n".join(line for line in program.split("\n") if not line.lstrip().startswith("```"))


def _smt_strip(program: str) -> str:
    """Fence lines and prose lines (a line that starts at depth 0 with neither ``(``, ``)`` nor ``;``)."""
    text = _drop_fence_lines(program)
    mask = code_mask("smt", text)
    out, depth, pos = [], 0, 0
    for line in text.split("\n"):
        stripped = line.strip()
        if not (depth == 0 and stripped and stripped[0] not in "();"):
            out.append(line)
        for k, ch in enumerate(line):
            if mask[pos + k]:
                depth += (ch == "(") - (ch == ")")
        depth = max(depth, 0)
        pos += len(line) + 1
    return "\n".join(out).strip()


def _smt_balance(program: str) -> str:
    """Close every command still open where the next command starts a line (and at the end); drop
    a ``)`` that closes nothing."""
    mask = code_mask("smt", program)
    out: list[str] = []
    depth, last_code = 0, 0
    for i, ch in enumerate(program):
        if mask[i]:
            if ch == "(":
                line_start = program.rfind("\n", 0, i) + 1
                if depth > 0 and not program[line_start:i].strip() and _SMT_COMMAND.match(program, i):
                    out.insert(last_code, ")" * depth)
                    depth = 0
                depth += 1
            elif ch == ")":
                if depth == 0:
                    continue
                depth -= 1
        out.append(ch)
        if mask[i] and not ch.isspace():
            last_code = len(out)
    if depth > 0:
        out.insert(last_code, ")" * depth)
    return "".join(out)


def _smt_check_sat(program: str) -> str:
    """Add ``(check-sat)`` where it is missing: before a model query that precedes every check-sat,
    else before ``(exit)``, else at the end."""
    forms = _top_forms(program)
    heads = [_form_head(program, s) for s in forms]
    checks = [i for i, h in enumerate(heads) if h in ("check-sat", "check-sat-assuming")]
    first_check = checks[0] if checks else len(forms)
    for i, h in enumerate(heads[:first_check]):
        if h in ("get-value", "get-model", "get-objectives") or (not checks and h == "exit"):
            at = forms[i][0]
            return program[:at] + "(check-sat)\n" + program[at:]
    if not checks:
        return program.rstrip() + "\n(check-sat)"
    return program


_BOOL_OPS = {"and", "or", "not", "=>", "xor", "assert"}
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+\Z")
_NUMERAL = re.compile(r"[0-9]+\Z")


def _enclosing(program: str, pos: int) -> tuple[str, list[str]]:
    """The operator of the innermost application around ``pos`` and its atomic arguments."""
    mask = code_mask("smt", program)
    depth, start = 0, None
    for i in range(pos - 1, -1, -1):
        if not mask[i]:
            continue
        if program[i] == ")":
            depth += 1
        elif program[i] == "(":
            if depth == 0:
                start = i
                break
            depth -= 1
    if start is None:
        return "", []
    atoms, depth, tok = [], 0, ""
    for i in range(start, len(program)):
        ch = program[i]
        if ch in "()" and mask[i]:
            if tok and depth == 1:
                atoms.append(tok)
            tok = ""
            depth += 1 if ch == "(" else -1
            if depth == 0:
                break
        elif ch.isspace():
            if tok and depth == 1:
                atoms.append(tok)
            tok = ""
        else:
            tok += ch
    return (atoms[0] if atoms else ""), atoms[1:]


def infer_sort(program: str, name: str) -> str:
    """The sort an undeclared constant's first use implies (see the module docstring); Int by default."""
    uses = _symbol_uses(program, name)
    if not uses:
        return "Int"
    op, args = _enclosing(program, uses[0])
    if op in _BOOL_OPS:
        return "Bool"
    consts = smt_constants(program)
    for arg in args:
        if arg != name and arg in consts:
            return consts[arg]
    if op == "/" or any(_DECIMAL.match(a) for a in args):
        return "Real"
    return "Int"


def _smt_declare(program: str, name: str) -> str:
    sort = infer_sort(program, name)
    uses = _symbol_uses(program, name)
    forms = _top_forms(program)
    at = next((s for s, e in forms if s <= uses[0] < e), 0) if uses else 0
    return program[:at] + f"(declare-const {name} {sort})\n" + program[at:]


def _asp_rules(program: str) -> str:
    text = _drop_fence_lines(program).strip()
    while True:
        pos = code_positions("asp", text, "{{") or code_positions("asp", text, "}}")
        if not pos:
            break
        text = text[:pos[0]] + text[pos[0] + 1:]
    mask = code_mask("asp", text)
    last = max((i for i, ch in enumerate(text) if mask[i] and not ch.isspace()), default=None)
    if last is not None and text[last] not in ".]":
        text = text[:last + 1] + "." + text[last + 1:]
    return text


_DOT_START = re.compile(r"^[ \t]*(?:strict\s+)?(di)?graph\b", re.I | re.M)


def _dot_rules(program: str) -> str:
    text = _drop_fence_lines(program)
    m = _DOT_START.search(text)
    if m:
        text = text[m.start():]
    mask = code_mask("dot", text)
    depth, end = 0, None
    for i, ch in enumerate(text):
        if mask[i] and ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth == 0 and ch == "}":
                end = i + 1
                break
    if end is not None and not text[end:].strip().startswith(("//", "/*", "#")):
        text = text[:end]  # prose after the graph
    if m and m.group(1):
        for p in reversed(code_positions("dot", text, "--")):
            text = text[:p] + "->" + text[p + 2:]
    mask = code_mask("dot", text)
    opened = sum(1 for i, ch in enumerate(text) if mask[i] and ch == "{") - \
        sum(1 for i, ch in enumerate(text) if mask[i] and ch == "}")
    if opened > 0:
        text = text.rstrip() + "\n" + "}" * opened
    return text.strip()


def _has_program(language: str, program: str) -> bool:
    """Does ``program`` hold code of its own for a repair to keep? Without this, prose (``hello world``)
    would "repair" into boilerplate -- ``(check-sat)``, ``hello.`` -- that the solver accepts but that
    has nothing of the input: an unrelated program, which a repair must never return."""
    code = "".join(ch for ch, is_code in zip(program, code_mask(language, program)) if is_code)
    if language == "smt":
        return re.search(r"\(\s*(assert|declare-|define-|minimize|maximize)", code) is not None
    if language == "asp":
        return re.search(r"[.]\s*(\n|$)|:-|#show|#const", code) is not None or "." in code.rstrip()[:-1]
    return re.search(r"\b(di)?graph\b", code, re.I) is not None and "{" in code


def template_repair(language: str, program: str, *, facts: str | None = None,
                    timeout: float = FORMAL_TIMEOUT_S) -> str:
    """The program with the rules above applied, when that makes the solver accept it; else ``program``
    unchanged (also when it is valid already, or holds no code of its own: see :func:`_has_program`)."""
    if validate(language, program, facts, timeout=timeout).valid or not _has_program(language, program):
        return program
    if language == "smt":
        text = _smt_check_sat(_smt_balance(_smt_strip(program)))
        verdict = validate(language, text, timeout=timeout)
        for _ in range(_MAX_DECLARATIONS):
            m = re.search(r"unknown constant (\S+)", verdict.diagnostic or "")
            if verdict.valid or not m or m.group(1) in smt_constants(text):
                break
            text = _smt_declare(text, m.group(1))
            verdict = validate(language, text, timeout=timeout)
        return text if verdict.valid else program
    if language == "asp":
        text = _asp_rules(program)
    elif language == "dot":
        text = _dot_rules(program)
    else:
        raise ValueError(f"unknown formal language {language!r}")
    if text != program and validate(language, text, facts, timeout=timeout).valid:
        return text
    return program


def fix_rate(language: str, pairs: Iterable[dict[str, Any]], *, timeout: float = FORMAL_TIMEOUT_S) -> tuple[int, int]:
    """``(fixed, total)``: how many repair pairs' broken programs :func:`template_repair` makes valid
    (a changed output is always valid: see :func:`template_repair`)."""
    fixed = total = 0
    for pair in pairs:
        total += 1
        fixed += template_repair(language, pair["broken"], facts=pair.get("facts"), timeout=timeout) != pair["broken"]
    return fixed, total
