"""Answer Set Programming (clingo): validity and semantic equivalence, failing closed.

Why it is built this way:

- **Valid** means clingo adds, grounds and solves the program within the limit with no
  error-level message. Info and warning messages (an atom that occurs in no head, an undefined
  operation) are not errors. Unsafe variables show up only at grounding, so parsing alone is not
  enough: validity is always a real ground-and-solve run.
- **Correct** compares the *set of all* answer sets, each projected on the reference's ``#show``
  signatures (every signature of the reference when it has no ``#show``). Comparing only the first
  model (what the public pipeline does) accepts a program with extra or missing models. With
  ``#minimize``/``#maximize``/weak constraints only the optimal models count (``--opt-mode=optN``);
  unsat-unsat is correct; a model cap hit or a timeout is incorrect.
- Every run is the ``clingo`` binary in a child process (``--outf=2`` JSON) killed at the deadline:
  grounding ignores signals. Program, row facts and the verifier's own directives are separate
  files, so a missing final period in the program is reported in the program, not at the facts.
  Output is read as bytes and decoded with replacement (clingo cuts non-ASCII identifiers in half
  in its messages). The candidate and the reference run at the same time; reference outcomes are
  cached (many candidates share one reference). The child stays in the caller's process group (a
  batch worker that kills its group takes clingo with it) and carries clingo's own
  ``--time-limit`` one second past ours, which stops even grounding: an orphan cannot live on.
- ``#script`` blocks are refused (invalid): the verifier never runs embedded Python/Lua code.

The projection: the reference's signatures ``S`` come from its ``#show`` statements (parsed with
``clingo.ast``); both programs get ``#show s.`` and ``#project s.`` for every ``s`` in ``S`` appended,
are enumerated with projection, and each model is cut down to the symbols whose signature is in
``S``. So helper predicates of either program do not matter; what the reference shows does.

Layout: :mod:`~distill.verify.formal.asp_output` reads clingo's output and errors,
:mod:`~distill.verify.formal.asp_project` computes the projection; this module runs clingo (its
command lives here) and holds the two verdicts and the reference cache.
"""

from __future__ import annotations

import math
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

from distill.verify.formal.asp_output import _EXTRA, _FACTS, _MAX_OUTPUT, _PROGRAM, AspRun, _decode, _interpret
from distill.verify.formal.asp_output import first_error  # noqa: F401 (re-exported: tests use it)
from distill.verify.formal.asp_project import _directives, projection_keys
from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict

#: at most this many (optimal, projected) models are enumerated; more is a cap hit (incorrect)
MODEL_CAP = 1000

# comments and strings, so that ``#script`` or ``%`` inside them is not mistaken for code
_SKIP = re.compile(r'%\*.*?(?:\*%|\Z)|%[^\n]*|"(?:\\.|[^"\\\n])*"', re.S)
_SCRIPT = re.compile(r"#script\b")


# ---------------------------------------------------------------- running clingo
def _clingo_cmd() -> list[str]:
    exe = shutil.which("clingo")
    return [exe] if exe else [sys.executable, "-m", "clingo"]


def _exited_within(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``proc`` to exit. A pidfd wakes up the moment it does:
    ``Popen.wait(timeout=)`` polls with sleeps of up to 50 ms, as long as a whole small solve."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready, _, _ = select.select([fd], [], [], seconds)
        return bool(ready) or proc.poll() is not None
    finally:
        os.close(fd)


class _Job:
    """A clingo child started on files in its own folder; :meth:`result` waits (hard kill at the
    deadline) and reads its output."""

    def __init__(self, program: str, facts: str, extra: str, args: list[str], timeout: float):
        self.timeout = timeout
        self.start = time.monotonic()
        self.proc: subprocess.Popen | None = None
        self.dir = self.out = self.err = None
        try:
            self.dir = tempfile.TemporaryDirectory(prefix="distill-asp-")
            d = self.dir.name
            files = []
            for name, text in ((_PROGRAM, program), (_FACTS, facts), (_EXTRA, extra)):
                if name == _PROGRAM or text:
                    with open(os.path.join(d, name), "w", encoding="utf-8", errors="replace") as fh:
                        fh.write(text)
                    files.append(name)
            self.out = open(os.path.join(d, "stdout"), "w+b")
            self.err = open(os.path.join(d, "stderr"), "w+b")
            self.proc = subprocess.Popen(
                _clingo_cmd() + ["--outf=2", f"--time-limit={math.ceil(timeout) + 1}", *args, *files],
                cwd=d, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
            self.spawn_error = None
        except OSError as exc:
            self.proc, self.spawn_error = None, f"clingo could not be started: {exc}"

    def _kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def result(self) -> tuple[int | None, str, str, bool]:
        """``(returncode, stdout, stderr, timed_out)``; the child is gone afterwards."""
        try:
            if self.proc is None:
                return None, "", self.spawn_error or "clingo could not be started", False
            left = self.timeout - (time.monotonic() - self.start)
            if _exited_within(self.proc, max(0.0, left)):
                rc, timed_out = self.proc.wait(), False
            else:
                self._kill()
                rc, timed_out = None, True
            self.out.seek(0)
            self.err.seek(0)
            return rc, _decode(self.out.read(_MAX_OUTPUT)), _decode(self.err.read(_MAX_OUTPUT)), timed_out
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self._kill()
            for fh in (self.out, self.err):
                if fh is not None:
                    fh.close()
            if self.dir is not None:
                self.dir.cleanup()


def _refused(program: str) -> str | None:
    """Why a program is refused before any run (empty; embedded scripts), else ``None``."""
    code = _SKIP.sub(" ", program)
    if not code.strip():
        return "empty program: no ASP statement"
    if _SCRIPT.search(code):
        return "#script blocks are not allowed (the verifier does not run embedded code)"
    return None


def _facts_of(row: dict[str, Any] | None) -> str:
    facts = (row or {}).get("facts")
    if facts is None:
        return ""
    if isinstance(facts, (list, tuple)):
        return "\n".join(str(f) for f in facts)
    return str(facts)


# ---------------------------------------------------------------- public API
def validate(program: str, *, timeout: float = FORMAL_TIMEOUT_S, facts: str = "") -> FormalVerdict:
    """Does clingo add, ground and solve ``program`` (plus ``facts``) with no error within ``timeout``
    (the first model; optimisation is not needed for validity)."""
    refused = _refused(program)
    if refused:
        return FormalVerdict(False, False, refused)
    rc, out, err, timed_out = _Job(program, facts, "", ["1", "--opt-mode=ignore"], timeout).result()
    run = _interpret(rc, out, err, timed_out, timeout, None, 1)
    return FormalVerdict(run.ok, False, run.diagnostic, run.status if run.ok else None, run.timed_out)


_REF_CACHE: OrderedDict[tuple, AspRun] = OrderedDict()
_REF_CACHE_SIZE = 256
_REF_LOCK = threading.Lock()  # verdicts may run in threads (their solver runs are child processes)


def _run_args(cap: int, proj: list[str]) -> list[str]:
    return [str(cap + 1), "--opt-mode=optN", *proj]


def verify(candidate: str, reference: str, row: dict[str, Any] | None = None, *,
           timeout: float = FORMAL_TIMEOUT_S, model_cap: int = MODEL_CAP) -> FormalVerdict:
    """Validity of ``candidate`` and equality of its projected (optimal) answer sets with the
    reference's; ``row["facts"]`` is appended to both. Never raises for a bad program."""
    facts = _facts_of(row)
    refused = _refused(candidate)
    if refused:
        return FormalVerdict(False, False, refused)
    keys = projection_keys(reference, facts)
    extra, proj = _directives(keys) if keys is not None else ("", [])
    args = _run_args(model_cap, proj)
    cjob = _Job(candidate, facts, extra, args, timeout)
    cache_key = (reference, facts, model_cap, timeout)
    with _REF_LOCK:
        ref = _REF_CACHE.get(cache_key)
        if ref is not None:
            _REF_CACHE.move_to_end(cache_key)
    rjob = None
    if ref is None and keys is not None and _refused(reference) is None:
        rjob = _Job(reference, facts, extra, args, timeout)
    cand = _interpret(*cjob.result(), timeout, keys, model_cap)
    if rjob is not None:
        ref = _interpret(*rjob.result(), timeout, keys, model_cap)
        if not ref.timed_out:
            with _REF_LOCK:
                _REF_CACHE[cache_key] = ref
                while len(_REF_CACHE) > _REF_CACHE_SIZE:
                    _REF_CACHE.popitem(last=False)
    if not cand.ok and cand.timed_out:
        # enumerating every model ran out of time; validity only needs the first one
        first = validate(candidate, timeout=timeout, facts=facts)
        if first.valid:
            return FormalVerdict(True, False, None, first.status, True)
    if not cand.ok:
        return FormalVerdict(False, False, cand.diagnostic, None, cand.timed_out)
    if ref is None or not ref.ok:  # the reference does not parse, is refused or fails: fail closed
        return FormalVerdict(True, False, None, cand.status, bool(ref and ref.timed_out))
    correct = (not cand.capped and not ref.capped and cand.status == ref.status
               and cand.models == ref.models)
    return FormalVerdict(True, correct, None, cand.status, ref.timed_out)
