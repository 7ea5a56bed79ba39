"""Reading clingo's output for :mod:`distill.verify.formal.asp`: its first error-level message
normalised, and one run's ``--outf=2`` JSON turned into an :class:`AspRun` (projected, optimal
models), failing closed at every step."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache

#: bytes of solver output kept per stream (a cap hit is already bounded by MODEL_CAP)
_MAX_OUTPUT = 64 * 1024 * 1024
_PROGRAM, _FACTS, _EXTRA = "program.lp", "facts.lp", "verifier.lp"
_FILE_LABEL = {_PROGRAM: "", _FACTS: "facts ", _EXTRA: "verifier "}

# "<file>:L:C[-[L2:]C2]: level: message"
_MSG = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?: "
                  r"(?P<level>error|warning|info|note): (?P<text>.*)$")
_FATAL = re.compile(r"^\*\*\* ERROR: \((?:clingo|gringo|clasp)\): (?P<text>.*)$")


@dataclass(frozen=True)
class AspRun:
    """One clingo run: ``ok`` (no error, finished); ``status`` ``sat``/``unsat``; ``models``: the
    distinct projected (optimal) models; ``capped``: more than the cap (or not exhausted)."""

    ok: bool
    status: str | None = None
    models: frozenset[frozenset[str]] = frozenset()
    capped: bool = False
    diagnostic: str | None = None
    timed_out: bool = False


def _decode(data: bytes) -> str:
    return data[:_MAX_OUTPUT].decode("utf-8", errors="replace")


def first_error(stderr: str) -> str | None:
    """clingo's first error-level message, normalised: ``-:2:13-14: error: syntax error, ...`` ->
    ``line 2 column 13: syntax error, ...``; its continuation lines and the notes right after it are
    kept (``'X' is unsafe``). Errors in the row's facts say ``facts line ...``. A fatal
    ``*** ERROR`` without a located message is returned as its text. ``None`` when there is none."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _MSG.match(line)
        if not m or m.group("level") != "error":
            continue
        label = _FILE_LABEL.get(os.path.basename(m.group("file")), "")
        out = [f"{label}line {m.group('line')} column {m.group('col')}: {m.group('text').strip()}"]
        for nxt in lines[i + 1:]:
            n = _MSG.match(nxt)
            if n and n.group("level") == "note":
                nl = _FILE_LABEL.get(os.path.basename(n.group("file")), "")
                out.append(f"{nl}line {n.group('line')} column {n.group('col')}: note: {n.group('text').strip()}")
            elif n or _FATAL.match(nxt):
                break
            elif nxt.strip():
                out.append(nxt.rstrip())
        return "\n".join(out)
    for line in lines:
        m = _FATAL.match(line)
        if m:
            return m.group("text").strip()
    return None


def _has_error(stderr: str) -> bool:
    return any((m := _MSG.match(line)) and m.group("level") == "error" or _FATAL.match(line)
               for line in stderr.splitlines())


def _symbol_key(text: str) -> tuple:
    """The signature of an output symbol: ``(name, arity, positive)`` for a function, else
    ``("#term",)`` (numbers, strings, tuples shown by ``#show t : body.``)."""
    return _key_cache(text)


def _key_cache_impl(text: str) -> tuple:
    import clingo

    try:
        sym = clingo.parse_term(text)
    except (RuntimeError, ValueError):
        return ("#term",)
    if sym.type == clingo.SymbolType.Function and sym.name:
        return (sym.name, len(sym.arguments), sym.positive)
    return ("#term",)


_key_cache = lru_cache(maxsize=65536)(_key_cache_impl)


def _interpret(rc: int | None, out: str, err: str, timed_out: bool, timeout: float,
               keys: frozenset | None, cap: int) -> AspRun:
    """Turn one run's output into an :class:`AspRun` (fail closed at every step)."""
    if timed_out:
        return AspRun(False, diagnostic=f"clingo timed out after {timeout:g}s (killed)", timed_out=True)
    diag = first_error(err)
    if diag is not None or _has_error(err):
        return AspRun(False, diagnostic=diag or err.strip()[:500])
    try:
        doc = json.loads(out)
        result = doc["Result"]
        summary = doc.get("Models") or {}
        witnesses = (doc.get("Call") or [{}])[-1].get("Witnesses") or []
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        tail = (err or out).strip()[:500]
        return AspRun(False, diagnostic=f"clingo crashed or gave no result (exit {rc}): {tail}".strip())
    if rc not in (10, 20, 30) or result not in ("SATISFIABLE", "UNSATISFIABLE", "OPTIMUM FOUND"):
        return AspRun(False, diagnostic=f"clingo gave no answer (exit {rc}, {result})")
    if result == "UNSATISFIABLE":
        return AspRun(True, "unsat")
    costs = summary.get("Costs")
    if costs is not None:
        if summary.get("Optimum") != "yes":
            return AspRun(True, "sat", capped=True)
        witnesses = [w for w in witnesses if w.get("Costs") == costs]
    models = set()
    for w in witnesses:
        atoms = w.get("Value") or []
        if keys is not None:
            atoms = [a for a in atoms if _symbol_key(a) in keys or ("#any",) in keys]
        models.add(frozenset(atoms))
    capped = summary.get("More") == "yes" or len(models) > cap
    return AspRun(True, "sat", frozenset(models), capped)
