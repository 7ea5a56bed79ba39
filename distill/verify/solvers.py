"""Program-style paths: run the program a response carries and read its answer.

How solvers plug into :func:`distill.verify.score` (documented in ``distill/verify/__init__.py``):

1. An explicit final answer in the prose (``\\boxed{}``, "the answer is ...") is the prediction.
2. Otherwise the *last* ```smt2 / ```asp (``lp``, ``clingo``) block that yields a value is:
   - SMT-LIB2 (Z3): the last ``(get-value (...))`` output after ``sat``; one value -> ``"3"``,
     several -> ``"(3, 4)"``; ``true``/``false`` for Booleans. Without get-value, a
     ``(get-model)`` constant named answer/ans/result, or the model's only constant.
   - ASP (clingo): the argument of an ``answer(X)`` atom in the first model.
3. Otherwise the task's loose fallback (e.g. the last number of the prose).
4. ```dot blocks are a well-formedness check: a path whose DOT graph Graphviz cannot parse
   is scored incorrect even when its answer matches.

Every call is bounded: Z3 runs in-process under its own ``timeout`` option (a soft limit on
solving); clingo and ``dot`` run as child processes killed at the deadline, because clingo's
grounding ignores signals; their output is decoded as UTF-8 with replacement. All runs for one
response share a :class:`Budget` (``RESPONSE_SOLVER_BUDGET_S``): blocks past it are not run.
For a hard bound on everything, score through
:func:`distill.verify.batch.score_batch`, whose workers are killed at the per-item timeout.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction

SOLVER_TIMEOUT_S = 3.0
#: Total seconds all solver runs of one response may take together (each run is also capped at
#: ``SOLVER_TIMEOUT_S``). A response with many slow blocks would otherwise cost 3 s per block.
RESPONSE_SOLVER_BUDGET_S = 6.0

_BLOCK_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
SMT_LANGS = {"smt2", "smt", "smtlib", "smt-lib", "smtlib2", "z3"}
ASP_LANGS = {"asp", "lp", "clingo"}
DOT_LANGS = {"dot", "graphviz", "gv"}


@dataclass(frozen=True)
class SolverResult:
    """``ok``: the program ran (and, for DOT, parsed); ``value``: its answer, if it has one."""

    ok: bool
    value: str | None = None
    error: str | None = None


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks as ``(language, code)``, language lower-cased ("" when untagged)."""
    return [(m.group(1).lower(), m.group(2)) for m in _BLOCK_RE.finditer(text)]


# ---------------------------------------------------------------- SMT-LIB2 via Z3
def _sexpr_tokens(s: str) -> list[str]:
    return re.findall(r"\(|\)|\"(?:[^\"]|\"\")*\"|[^\s()]+", s)


def _sexpr(tokens: list[str], i: int = 0):
    if tokens[i] == "(":
        out, i = [], i + 1
        while tokens[i] != ")":
            node, i = _sexpr(tokens, i)
            out.append(node)
        return out, i + 1
    return tokens[i], i + 1


def _value_str(node) -> str:
    """Render a Z3 model value: numbers exactly (``(- (/ 1.0 2.0))`` -> ``-1/2``), Booleans, strings."""
    def num(n) -> Fraction:
        if isinstance(n, str):
            if n.startswith("#x"):
                return Fraction(int(n[2:], 16))
            if n.startswith("#b"):
                return Fraction(int(n[2:], 2))
            return Fraction(n)
        op, *args = n
        vals = [num(a) for a in args]
        if op == "-":
            return -vals[0] if len(vals) == 1 else vals[0] - sum(vals[1:])
        if op == "/":
            return vals[0] / vals[1]
        if op == "+":
            return sum(vals, Fraction(0))
        if op == "*":
            out = Fraction(1)
            for v in vals:
                out *= v
            return out
        raise ValueError(f"unsupported value form {op!r}")

    if isinstance(node, str) and node.startswith('"'):
        return node[1:-1].replace('""', '"')
    if node in ("true", "false"):
        return node
    try:
        v = num(node)
    except (ValueError, ZeroDivisionError, IndexError):
        return node if isinstance(node, str) else " ".join(map(str, node))
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def run_smt2(code: str, timeout: float = SOLVER_TIMEOUT_S) -> SolverResult:
    """Run an SMT-LIB2 script with Z3; the value is its ``get-value`` answer after ``sat``."""
    import z3

    ctx = z3.Context()
    script = f"(set-option :timeout {int(timeout * 1000)})\n{code}"
    try:
        out = z3.Z3_eval_smtlib2_string(ctx.ref(), script)
    except z3.Z3Exception as exc:
        msg = exc.value.decode("utf-8", errors="replace") if isinstance(exc.value, bytes) else str(exc.value)
        return SolverResult(False, None, msg.strip())
    finally:
        del ctx
    out = out.strip()
    if not out.startswith("sat"):
        return SolverResult(True, None, f"z3 says {out.splitlines()[0] if out else 'nothing'}")
    rest = out[3:].strip()
    try:
        tokens, forms, i = _sexpr_tokens(rest), [], 0
        while i < len(tokens):
            form, i = _sexpr(tokens, i)
            forms.append(form)
    except (IndexError, TypeError, ValueError) as exc:
        return SolverResult(True, None, f"unreadable solver output: {exc}")
    value = _pick_value(forms)
    if value is None:
        return SolverResult(True, None, "no (get-value ...) answer (or single/answer-named model constant)")
    return SolverResult(True, value)


_ANSWER_NAMES = ("answer", "ans", "result", "res")


def _pick_value(forms: list) -> str | None:
    """The last ``get-value`` output; else from ``get-model``, a constant named answer/ans/result
    or the only constant."""
    for form in reversed(forms):
        if isinstance(form, list) and form and all(isinstance(p, list) and len(p) == 2 for p in form):
            values = [_value_str(p[1]) for p in form]
            return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
    consts: dict[str, str] = {}
    for form in forms:
        if not isinstance(form, list):
            continue
        body = form[1:] if form and form[0] == "model" else form
        for d in body:
            if isinstance(d, list) and len(d) == 5 and d[0] == "define-fun" and d[2] == []:
                consts[str(d[1])] = _value_str(d[4])
    for name in _ANSWER_NAMES:
        if name in consts:
            return consts[name]
    return next(iter(consts.values())) if len(consts) == 1 else None


# ---------------------------------------------------------------- child processes
def _run_child(cmd: list[str], code: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a solver binary on ``code``; its output is decoded as UTF-8 *with replacement*.

    Solvers truncate their messages by bytes (clingo cuts a non-ASCII identifier in half in its
    error text), so a strict decode would turn a bad program into a ``UnicodeDecodeError``.
    """
    return subprocess.run(cmd, input=code, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=timeout)


class Budget:
    """What is left of one response's solver time (:data:`RESPONSE_SOLVER_BUDGET_S`)."""

    def __init__(self, seconds: float = RESPONSE_SOLVER_BUDGET_S):
        self.deadline = time.monotonic() + seconds

    def cap(self, timeout: float) -> float:
        """``timeout`` or less: the seconds the next solver run may take (0 when spent)."""
        return max(0.0, min(timeout, self.deadline - time.monotonic()))


# ---------------------------------------------------------------- ASP via clingo
def _clingo_cmd() -> list[str]:
    exe = shutil.which("clingo")
    return [exe] if exe else [sys.executable, "-m", "clingo"]


def run_asp(code: str, timeout: float = SOLVER_TIMEOUT_S) -> SolverResult:
    """Ground and solve an ASP program with clingo in a child process killed at ``timeout``."""
    cmd = _clingo_cmd() + ["--outf=2", "-n", "1", f"--time-limit={max(1, int(timeout))}"]
    try:
        proc = _run_child(cmd, code, timeout)
    except subprocess.TimeoutExpired:
        return SolverResult(False, None, f"clingo timed out after {timeout:g}s")
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return SolverResult(False, None, (proc.stderr or proc.stdout).strip()[:300] or f"clingo exit {proc.returncode}")
    if proc.returncode not in (0, 10, 20, 30) or "error" in proc.stderr.lower():
        return SolverResult(False, None, proc.stderr.strip()[:300])
    witnesses = (doc.get("Call") or [{}])[-1].get("Witnesses") or []
    if not witnesses:
        return SolverResult(True, None, f"clingo: {doc.get('Result', 'no model')}")
    for atom in witnesses[0].get("Value", []):
        m = re.fullmatch(r"answer\((.*)\)", atom)
        if m:
            val = m.group(1).strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            return SolverResult(True, val)
    return SolverResult(True, None, "no answer/1 atom in the first model")


# ---------------------------------------------------------------- Graphviz DOT
def check_dot(code: str, timeout: float = SOLVER_TIMEOUT_S) -> SolverResult:
    """Valid iff Graphviz ``dot`` parses the graph (child process, killed at ``timeout``)."""
    exe = shutil.which("dot")
    if exe is None:
        return SolverResult(False, None, "graphviz 'dot' is not installed")
    try:
        proc = _run_child([exe, "-Tcanon"], code, timeout)
    except subprocess.TimeoutExpired:
        return SolverResult(False, None, f"dot timed out after {timeout:g}s")
    if proc.returncode != 0:
        return SolverResult(False, None, proc.stderr.strip()[:300])
    return SolverResult(True)


#: A solver run shorter than this is not started (the budget is spent).
_MIN_RUN_S = 0.05


def solver_prediction(response: str, timeout: float = SOLVER_TIMEOUT_S, budget: Budget | None = None) -> str | None:
    """The value of the last SMT-LIB2/ASP block that produces one, else ``None``.

    All runs together stay within ``budget`` (a fresh :class:`Budget` when none is given): once it
    is spent, the remaining blocks are not run and count as giving no value.
    """
    budget = budget or Budget()
    for lang, code in reversed(code_blocks(response)):
        if lang not in SMT_LANGS and lang not in ASP_LANGS:
            continue
        t = budget.cap(timeout)
        if t < _MIN_RUN_S:
            return None
        res = run_smt2(code, t) if lang in SMT_LANGS else run_asp(code, t)
        if res.value is not None:
            return res.value
    return None


def structure_ok(response: str, timeout: float = SOLVER_TIMEOUT_S, budget: Budget | None = None) -> bool:
    """False when the response carries a DOT graph that Graphviz rejects, or one left unchecked
    because the response's solver budget was spent (fail closed)."""
    budget = budget or Budget()
    for lang, code in code_blocks(response):
        if lang not in DOT_LANGS:
            continue
        t = budget.cap(timeout)
        if t < _MIN_RUN_S or not check_dot(code, t).ok:
            return False
    return True
