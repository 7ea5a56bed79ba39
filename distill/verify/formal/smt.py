"""SMT-LIB2 verdicts with the real Z3 binary, run in a child process that is killed at the deadline.

**Valid**: Z3 runs the script with no ``(error ...)`` in its output and prints at least one
``check-sat`` result. Z3 keeps going after an error (an undeclared symbol still prints ``sat``),
so the exit code and the last line say nothing; a ``check-sat`` after ``(exit)`` or inside a
comment is never run. To tell which command printed what, the script Z3 runs is the program with
an ``(echo "<nonce>:<i>")`` marker after each top-level command (on the same line, so Z3's
``line L column C`` positions are mapped back to the program's own).

**Correct** against the reference: both *last* ``check-sat`` statuses are known and equal;
unsat-unsat is correct; for sat-sat, on the constants the reference declares (a candidate
declaring one with another sort is incorrect; Z3 itself would silently coerce Int/Real), both

1. candidate assertions => reference assertions, and
2. reference assertions => exists (candidate-only constants) candidate assertions

are proved by Z3 (each negation ``unsat``). ``unknown``, a timeout, an error in the check script
or anything this module does not understand (an unknown command, a candidate-only function that
would need a second-order quantifier) is incorrect: fail closed. The verdict never relies on Z3
rejecting ill-typed literals (it silently makes ``(= x 1.5)`` with ``x`` Int unsat) or on
non-linear terms being errors (they are ``unknown``).

The assertions compared are the ones active at the last ``check-sat`` (``push``/``pop``/``reset``
simulated; ``check-sat-assuming`` adds its literals). Both sides are renamed apart
scope-aware (bound variables of ``let``/``forall``/``exists``/``match`` are left alone):
reference-declared constants become ``|s.N|`` on both sides, other reference symbols ``|r.N|``,
other candidate symbols ``|c.N|``; sorts and datatype constructors are shared by name and must be
declared identically. A candidate's nullary ``define-fun`` is a constant plus an equality.

Speed (starting Z3 costs more than solving a typical small program): the reference's own run is
cached; the two implication checks ride in the candidate's Z3 run after a ``(reset)`` when the
candidate sets no option that could outlive it; and programs run in pooled long-lived ``z3 -in``
processes (killed at the deadline, on a crash, on any doubt; never shared across ``fork``), so a
typical verdict is one script, about 15 ms of CPU. Positions in Z3's messages are mapped back to
the program's own lines (a pooled Z3 keeps counting lines across scripts).

Layout: :mod:`~distill.verify.formal.smt_parse` reads the text, :mod:`~distill.verify.formal.smt_z3`
runs Z3 (one-shot or pooled), :mod:`~distill.verify.formal.smt_run` runs one program and reads its
verdict, :mod:`~distill.verify.formal.smt_snapshot` and :mod:`~distill.verify.formal.smt_checks` build
the equivalence checks; this module holds the two verdicts and the reference cache.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from distill.verify.formal.smt_checks import _build_checks
from distill.verify.formal.smt_run import _HARMLESS_OPTIONS, _Analysis, _run_program
from distill.verify.formal.smt_snapshot import _Side, _snapshot, _split
from distill.verify.formal.smt_z3 import (  # noqa: F401 (re-exported: tests and benchmarks use them)
    STATUSES, Z3_ENV, _ERROR, _POOL, _close_pool, _run_z3, _z3_binary)
from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict


# ---------------------------------------------------------------- the interface


def validate(program: str, *, timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Valid iff Z3 runs ``program`` without an ``(error ...)`` and prints a check-sat result."""
    a = _run_program(program or "", timeout)
    return FormalVerdict(a.valid, False, a.diagnostic, a.status if a.valid else None, a.timed_out)


_REF_CACHE: "OrderedDict[tuple, tuple[_Analysis, _Side | None]]" = OrderedDict()
_REF_CACHE_SIZE = 512
_REF_LOCK = threading.Lock()


def _reference(reference: str, timeout: float) -> tuple[_Analysis, _Side | None]:
    """The reference's own run, cached: a row's reference is verified against many candidates.
    A timed-out or crashed run is not cached (it may be the machine, not the program)."""
    key = (reference, timeout, _z3_binary())
    with _REF_LOCK:
        if key in _REF_CACHE:
            _REF_CACHE.move_to_end(key)
            return _REF_CACHE[key]
    a = _run_program(reference, timeout)
    side = None
    if a.valid and a.status == "sat":
        snap = _snapshot(a.forms)
        side = _split(snap) if snap is not None else None
    transient = a.timed_out or (a.diagnostic or "").startswith(("z3 crashed", "z3 exited", "cannot start"))
    if not transient:
        with _REF_LOCK:
            _REF_CACHE[key] = (a, side)
            if len(_REF_CACHE) > _REF_CACHE_SIZE:
                _REF_CACHE.popitem(last=False)
    return a, side


def _options_harmless(forms: list) -> bool:
    return all(not (isinstance(f, list) and f and f[0] == "set-option")
               or (len(f) > 1 and f[1] in _HARMLESS_OPTIONS) for f in forms)


def verify(candidate: str, reference: str, row: dict[str, Any] | None = None, *,
           timeout: float = FORMAL_TIMEOUT_S) -> FormalVerdict:
    """Validity of ``candidate`` and its equivalence with ``reference`` (module docstring).

    ``row`` is unused for SMT (kept for the shared interface). A reference that is itself
    invalid, ``unknown`` or not comparable makes every candidate incorrect."""
    ref, ref_side = _reference(reference or "", timeout)

    def checks(forms: list) -> str | None:
        if ref_side is None or not _options_harmless(forms):
            return None
        body = _build_checks(forms, ref_side, timeout)
        return None if body is None else "(reset)\n" + body

    cand = _run_program(candidate or "", timeout, checks if ref.valid and ref.status == "sat" else None)
    if not cand.valid:
        return FormalVerdict(False, False, cand.diagnostic, None, cand.timed_out)
    verdict = dict(valid=True, diagnostic=None, status=cand.status)
    if not ref.valid or ref.status not in ("sat", "unsat") or cand.status != ref.status:
        return FormalVerdict(correct=False, timed_out=ref.timed_out, **verdict)
    if cand.status == "unsat":
        return FormalVerdict(correct=True, **verdict)
    check = cand.check
    timed_out = cand.check_timed_out
    if check is None and ref_side is not None:  # options kept the checks out of the candidate's process
        body = _build_checks(cand.forms, ref_side, timeout)
        if body is not None:
            run = _run_z3(body, 2 * timeout, reuse=True)
            check = ("error",) if _ERROR.search(run.out) or run.crashed else \
                tuple(s.strip() for s in run.out.split("\n") if s.strip() in STATUSES)
            timed_out = run.timed_out or bool(re.search(r"timeout|canceled", run.out))
    ok = check == ("unsat", "unsat")
    return FormalVerdict(correct=ok, timed_out=timed_out and not ok, **verdict)
