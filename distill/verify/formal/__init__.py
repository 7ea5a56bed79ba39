"""Formal-language tasks: SMT-LIB2 (Z3), Answer Set Programming (clingo) and DOT (Graphviz).

A candidate program is verified by the real solver against the row's reference program
(``gold_answer``), semantically and failing closed:

- :func:`extract_program` takes the last fenced block in the task's language, else the bare
  response when it has no fence at all;
- :func:`verify_program` returns a :class:`FormalVerdict`: ``valid`` (the solver accepts the program),
  ``correct`` (it means the same as the reference; ``correct`` always implies ``valid``) and the
  solver's first error as ``diagnostic`` (normalised, with ``line:column`` where the solver gives one),
  kept as training signal.

Each language lives in its own module with the same two functions: ``validate(program, *, timeout)``
and ``verify(candidate, reference, row, *, timeout)``, both returning a :class:`FormalVerdict`. Every
solver call runs in a child process with a hard kill; output is decoded with replacement; a crash
or a timeout is an invalid (or incorrect) verdict, never an exception.
"""

from __future__ import annotations

import re
from typing import Any

from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict

__all__ = ["FENCES", "FORMAL_TIMEOUT_S", "FormalVerdict", "LANGUAGES", "extract_program", "validate_program",
           "verify_program"]

#: language -> fence tags that mark a block of it (lower case)
FENCES: dict[str, tuple[str, ...]] = {"smt": ("smt2", "smt", "smtlib", "lisp"), "asp": ("asp", "lp", "clingo"),
                                      "dot": ("dot", "gv", "graphviz")}
LANGUAGES = tuple(FENCES)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)


def extract_program(language: str, response: str) -> str:
    """The last fenced block tagged with one of the language's fences; else, when the response has no
    fence at all, the whole response (stripped); else ``""`` (fenced in another language only)."""
    tags = FENCES[language]
    blocks = _FENCE.findall(response or "")
    mine = [body for tag, body in blocks if tag.lower() in tags]
    if mine:
        return mine[-1].strip()
    if "```" not in (response or ""):
        return (response or "").strip()
    return ""


def _module(language: str):
    if language == "smt":
        from distill.verify.formal import smt as mod
    elif language == "asp":
        from distill.verify.formal import asp as mod
    elif language == "dot":
        from distill.verify.formal import dot as mod
    else:
        raise ValueError(f"unknown formal language {language!r}; one of {', '.join(LANGUAGES)}")
    return mod


def validate_program(language: str, program: str, *, timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Is ``program`` valid for its solver (``correct`` is always False here: no reference)."""
    return _module(language).validate(program, timeout=timeout)


def verify_program(language: str, candidate: str, reference: str, row: dict[str, Any] | None = None, *,
                   timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Validity of ``candidate`` and its semantic equivalence with ``reference`` (see each module)."""
    return _module(language).verify(candidate, reference, row or {}, timeout=timeout)
