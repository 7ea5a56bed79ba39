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
"""

from __future__ import annotations

import atexit
import math
import os
import re
import secrets
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Union

from distill.verify.formal.verdict import FORMAL_TIMEOUT_S, FormalVerdict

#: environment variable naming the Z3 binary (default: ``z3`` on PATH)
Z3_ENV = "DISTILL_Z3"
#: longest diagnostic kept (Z3's sort-mismatch messages print whole declarations)
MAX_DIAGNOSTIC = 300
STATUSES = ("sat", "unsat", "unknown")

Term = Union[str, list]

# ---------------------------------------------------------------- reading SMT-LIB2 text


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


# ---------------------------------------------------------------- running Z3


def _z3_binary() -> str | None:
    return os.environ.get(Z3_ENV) or shutil.which("z3")


@lru_cache(maxsize=1)
def _workdir() -> str:
    """A private empty folder as Z3's working directory: a program's option can name files."""
    return tempfile.mkdtemp(prefix="distill-z3-")


@dataclass
class _Run:
    out: str
    timed_out: bool
    crashed: str | None = None  # why no usable output came back (missing binary, signal, ...)
    line_base: int = 0  # lines of the stream Z3 had read before this script (a pooled process counts on)


def _encode(script: str) -> bytes:
    try:
        return script.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: pass the bytes they stand for, else '?'
        try:
            return script.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return script.encode("utf-8", "replace")


def _exit_reason(code: int | None) -> str | None:
    if code is None or code in (0, 1):
        return None
    return f"z3 crashed (signal {-code})" if code < 0 else f"z3 exited with status {code}"


def _run_z3(script: str, timeout: float, *, reuse: bool = False) -> _Run:
    """Z3 on ``script`` (stdin), killed at ``timeout`` s; partial output is kept (Z3 flushes per
    command); output is decoded as UTF-8 with replacement. ``reuse``: run it in a pooled Z3
    process, reset afterwards (only for scripts whose options do not outlive ``(reset)``)."""
    exe = _z3_binary()
    if exe is None:
        return _Run("", False, "z3 is not installed (apt install z3)")
    if reuse:
        return _run_pooled(exe, script, timeout)
    cmd = [exe, "-in", "-smt2", f"-T:{max(1, math.ceil(timeout)) + 1}"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=_workdir())
    except OSError as exc:
        return _Run("", False, f"cannot start z3: {exc}")
    timed_out = False
    try:
        out, _ = proc.communicate(_encode(script), timeout=max(0.01, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    return _Run(out.decode("utf-8", "replace"), timed_out, None if timed_out else _exit_reason(proc.returncode))


class _Z3Process:
    """A long-lived ``z3 -in``: starting Z3 costs more than solving a typical small program. It is
    killed at any deadline, crash or doubt, and retired after :data:`_MAX_USES` programs."""

    def __init__(self, exe: str):
        self.exe, self.uses, self.lines = exe, 0, 0
        self.proc = subprocess.Popen([exe, "-in", "-smt2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=_workdir())

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        for fh in (self.proc.stdin, self.proc.stdout):
            try:
                fh.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


_POOL: list[_Z3Process] = []
_POOL_LOCK = threading.Lock()
_MAX_IDLE = 4
_MAX_USES = 200


def _forget_pool_in_child() -> None:
    """A forked child (a scoring worker) must not share its parent's Z3 pipes: start its own."""
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()


def _close_pool() -> None:
    with _POOL_LOCK:
        procs = list(_POOL)
        _POOL.clear()
    for z in procs:
        z.kill()
    if _workdir.cache_info().currsize:
        shutil.rmtree(_workdir(), ignore_errors=True)


os.register_at_fork(after_in_child=_forget_pool_in_child)
atexit.register(_close_pool)


def _run_pooled(exe: str, script: str, timeout: float) -> _Run:
    with _POOL_LOCK:
        z = next((p for p in _POOL if p.exe == exe), None)
        if z is not None:
            _POOL.remove(z)
    if z is None or z.proc.poll() is not None:
        try:
            z = _Z3Process(exe)
        except OSError as exc:
            return _Run("", False, f"cannot start z3: {exc}")
    done = f"{secrets.token_hex(8)}:done".encode()
    data = _encode(script + f'\n(reset)\n(set-option :print-success false)\n(echo "{done.decode()}")\n')

    def write() -> None:
        try:
            z.proc.stdin.write(data)
            z.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    fd = z.proc.stdout.fileno()
    buf = bytearray()
    deadline = time.monotonic() + max(0.01, timeout)
    finished = eof = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            eof = True
            break
        buf += chunk
        at = buf.find(done + b"\n")
        if at >= 0 and (at == 0 or buf[at - 1:at] == b"\n"):
            finished, buf = True, buf[:at]
            break
    text = buf.decode("utf-8", "replace")
    base = z.lines
    if finished:
        writer.join(1.0)
        z.uses += 1
        z.lines += data.count(b"\n")
        with _POOL_LOCK:
            if z.uses < _MAX_USES and len(_POOL) < _MAX_IDLE:
                _POOL.append(z)
                z = None
        if z is not None:
            z.kill()
        return _Run(text, False, line_base=base)
    z.kill()
    writer.join(1.0)
    if eof:
        return _Run(text, False, _exit_reason(z.proc.returncode) or "z3 exited before the end of the script")
    return _Run(text, True)


_ERROR = re.compile(r'\(error "((?:[^"]|"")*)"\)', re.S)
_POS = re.compile(r"line (\d+) column (\d+):\s*")


def _normalise(msg: str) -> str:
    msg = re.sub(r"\s+", " ", msg.replace('""', '"')).strip()
    return msg if len(msg) <= MAX_DIAGNOSTIC else msg[:MAX_DIAGNOSTIC - 3] + "..."


# ---------------------------------------------------------------- one program run


@dataclass
class _Analysis:
    valid: bool
    status: str | None = None
    diagnostic: str | None = None
    timed_out: bool = False
    forms: list = field(default_factory=list)
    check: tuple[str, ...] | None = None  # statuses of the appended implication checks
    check_timed_out: bool = False


def forms_of(cmds: list) -> list:
    return [f for f, _, _ in cmds]


# set-options whose effect ends at (reset) or never changes a verdict: such a program may run in a
# pooled Z3 process; any other option gets a fresh process
_REUSE_OPTIONS = {":produce-models", ":produce-unsat-cores", ":produce-assignments", ":print-success",
                  ":produce-proofs", ":produce-assertions", ":produce-unsat-assumptions"}


def _reusable(forms: list) -> bool:
    return all(not (isinstance(f, list) and f and f[0] == "set-option")
               or (len(f) > 1 and f[1] in _REUSE_OPTIONS) for f in forms)


# set-options that change nothing the check part after (reset) depends on
_HARMLESS_OPTIONS = {":produce-models", ":produce-unsat-cores", ":produce-assignments", ":print-success",
                     ":produce-proofs", ":produce-assertions", ":produce-unsat-assumptions"}
_CHANNELS = {":regular-output-channel", ":diagnostic-output-channel"}
_CHECKS = ("check-sat", "check-sat-assuming")


def _run_program(program: str, timeout: float, check_script: Any = None) -> _Analysis:
    """Run ``program`` (markers after each command) and read its verdict. ``check_script(forms)``
    may return a script to run after the program in the same process (its statuses land in
    ``check``), or ``None``."""
    if not program.strip():
        return _Analysis(False, diagnostic="empty program")
    try:
        cmds, exit_at = _commands(program)
    except _ParseError as exc:
        raw = _run_z3(program, timeout)
        m = _ERROR.search(raw.out)
        if m:
            return _Analysis(False, diagnostic=_normalise(m.group(1)))
        line, col = _line_col(program, exc.offset)
        return _Analysis(False, diagnostic=f"line {line} column {col}: {exc.msg}", timed_out=raw.timed_out)
    for form, start, _ in cmds:
        if isinstance(form, list) and len(form) >= 3 and form[0] == "set-option" and form[1] in _CHANNELS \
                and form[2] not in ('"stdout"', '"stderr"'):
            line, col = _line_col(program, start)
            return _Analysis(False, diagnostic=f"line {line} column {col}: output channels other than "
                                                "stdout are not supported")
    nonce = secrets.token_hex(6)
    body = program if exit_at is None else program[:exit_at]
    pieces, inserts, last = [], [], 0  # inserts: (original offset, inserted length)
    for k, (_, _, end) in enumerate(cmds):
        mark = f'(echo "{nonce}:{k}")'
        pieces.append(body[last:end])
        pieces.append(mark)
        inserts.append((end, len(mark)))
        last = end
    pieces.append(body[last:])
    pieces.append(f'\n(echo "{nonce}:end")\n')
    extra = check_script([f for f, _, _ in cmds]) if check_script else None
    total_timeout = timeout
    if extra:
        pieces.append(extra)
        total_timeout = 2 * timeout
    script = "".join(pieces)
    run = _run_z3(script, total_timeout, reuse=_reusable(forms_of(cmds)))

    def original_pos(msg: str) -> str:
        m = _POS.match(msg)
        if not m:
            return msg
        line, col = int(m.group(1)) - run.line_base, int(m.group(2))
        if line < 1:
            return msg[m.end():]
        starts = [0] + [i + 1 for i, c in enumerate(script) if c == "\n"]
        first = line == 1 and run.line_base == 0  # Z3 counts columns from 1 on the stream's first line
        off = (starts[line - 1] if line - 1 < len(starts) else len(script)) + col - first
        shift = 0
        acc = 0
        for at, length in inserts:  # 'at' in original coordinates; inserted text sits at at+acc
            if off >= at + acc + length:
                shift += length
            elif off >= at + acc:
                off = at + acc + length  # inside a marker: point at the command's end
                shift += length
            acc += length
        oline, ocol = _line_col(program, max(0, min(len(program), off - shift)))
        return f"line {oline} column {ocol}: {msg[m.end():]}"

    lines = run.out.split("\n")
    segments: list[list[str]] = [[]]
    expect = 0
    tail: list[str] | None = None
    for ln in lines:
        s = ln.strip()
        if s == f"{nonce}:{expect}":
            segments.append([])
            expect += 1
        elif s == f"{nonce}:end" and expect == len(cmds):
            tail = []
        elif tail is not None:
            tail.append(ln)
        else:
            segments[-1].append(ln)
    prog_text = "\n".join("\n".join(seg) for seg in segments)
    m = _ERROR.search(prog_text)
    forms = [f for f, _, _ in cmds]
    if m:
        return _Analysis(False, diagnostic=original_pos(_normalise(m.group(1))), forms=forms)
    if tail is None:  # the program did not run to its end
        if run.crashed:
            return _Analysis(False, diagnostic=run.crashed, forms=forms)
        if run.timed_out or any(s.strip() == "timeout" for s in lines):
            return _Analysis(False, diagnostic=f"timeout: z3 did not finish within {timeout:g}s",
                             timed_out=True, forms=forms)
        return _Analysis(False, diagnostic="z3 output could not be attributed to the program's commands",
                         forms=forms)
    statuses = []
    for k, (form, _, _) in enumerate(cmds):
        if isinstance(form, list) and form and form[0] in _CHECKS:
            printed = [s.strip() for s in segments[k] if s.strip() and s.strip() != "success"]
            statuses.append(printed[0] if printed and printed[0] in STATUSES else None)
    got = [s for s in statuses if s is not None]
    if not got:
        return _Analysis(False, diagnostic="no check-sat result printed (missing (check-sat), or only after "
                                           "(exit) or in a comment)", forms=forms)
    res = _Analysis(True, status=statuses[-1] or "unknown", forms=forms)
    if extra:
        tail_text = "\n".join(tail)
        printed = [s.strip() for s in tail if s.strip() in STATUSES]
        if _ERROR.search(tail_text) or run.crashed:
            res.check = ("error",)
        else:
            res.check = tuple(printed)
        res.check_timed_out = run.timed_out or bool(re.search(r"timeout|canceled", tail_text))
    return res


# ---------------------------------------------------------------- meaning at the last check-sat

_DECLS = ("declare-const", "declare-fun")
_DEFS = ("define-fun", "define-const", "define-fun-rec", "define-funs-rec")
_SORTS = ("declare-sort", "define-sort", "declare-datatype", "declare-datatypes", "declare-codatatypes")
_IGNORED = {"set-option", "set-info", "set-logic", "get-value", "get-model", "get-assignment", "get-info",
            "get-option", "get-proof", "get-unsat-core", "get-unsat-assumptions", "get-assertions",
            "get-objectives", "echo", "eval", "simplify", "display", "help", "minimize", "maximize",
            "assert-soft", "check-sat", "check-sat-assuming"}


def _snapshot(forms: list) -> list | None:
    """The declarations and assertions active at the last check-sat, in order; ``None`` when the
    program uses a command whose meaning is not modelled (fail closed)."""
    frames: list[list] = [[]]
    snap: list | None = None
    global_decls = False
    for f in forms:
        if not isinstance(f, list) or not f or not isinstance(f[0], str):
            return None
        head = f[0]
        if head in _DECLS or head in _DEFS or head in _SORTS:
            (frames[0] if global_decls else frames[-1]).append(f)
        elif head == "assert":
            frames[-1].append(f)
        elif head in ("push", "pop"):
            k = int(f[1]) if len(f) > 1 and f[1].isdigit() else 1
            if head == "push":
                frames.extend([] for _ in range(k))
            elif k >= len(frames):
                return None
            else:
                del frames[len(frames) - k:]
        elif head == "reset":
            frames, global_decls = [[]], False
        elif head == "reset-assertions":
            frames = [[g for fr in frames for g in fr if g[0] != "assert"]] if global_decls else \
                [[g for g in frames[0] if g[0] != "assert"]]
        elif head not in _IGNORED:
            return None
        if head == "set-option" and len(f) > 2 and f[1] == ":global-declarations":
            global_decls = f[2] == "true"
        if head == "check-sat":
            snap = [g for fr in frames for g in fr]
        elif head == "check-sat-assuming":
            lits = f[1] if len(f) > 1 and isinstance(f[1], list) else []
            snap = [g for fr in frames for g in fr] + [["assert", ["and", "true", *lits]]]
    return snap


def _rename(t: Term, m: dict[str, str], bound: frozenset = frozenset()) -> Term:
    """Free occurrences of symbols in ``m`` renamed; binders respected; annotations (``!``) dropped."""
    if isinstance(t, str):
        return m[t] if t in m and t not in bound else t
    if not t:
        return t
    h = t[0]
    if h == "let" and len(t) == 3 and isinstance(t[1], list):
        binds = [[b[0], _rename(b[1], m, bound)] if isinstance(b, list) and len(b) == 2 else b for b in t[1]]
        names = {b[0] for b in t[1] if isinstance(b, list) and b and isinstance(b[0], str)}
        return ["let", binds, _rename(t[2], m, bound | names)]
    if h in ("forall", "exists", "lambda") and len(t) >= 3 and isinstance(t[1], list):
        names = {v[0] for v in t[1] if isinstance(v, list) and v and isinstance(v[0], str)}
        return [h, t[1], *[_rename(x, m, bound | names) for x in t[2:]]]
    if h == "match" and len(t) == 3 and isinstance(t[2], list):
        cases = []
        for case in t[2]:
            if isinstance(case, list) and len(case) == 2:
                pat = case[0]
                names = {pat} if isinstance(pat, str) else {p for p in pat[1:] if isinstance(p, str)}
                cases.append([pat, _rename(case[1], m, bound | names)])
            else:
                cases.append(case)
        return ["match", _rename(t[1], m, bound), cases]
    if h == "_":
        return t
    if h == "!" and len(t) >= 2:
        return _rename(t[1], m, bound)
    if h == "as" and len(t) == 3:
        return ["as", _rename(t[1], m, bound), t[2]]
    return [_rename(x, m, bound) for x in t]


def _atoms(t: Term):
    if isinstance(t, str):
        yield t
    else:
        for x in t:
            yield from _atoms(x)


def _quote(prefix: str, name: str) -> str:
    return f"|{prefix}.{name[1:-1] if name.startswith('|') else name}|"


@dataclass
class _Side:
    """One program's snapshot sorted into the parts the check script needs."""
    sorts: dict[str, Term] = field(default_factory=dict)      # sort name -> its command
    sort_cmds: list = field(default_factory=list)
    aliases: dict[str, tuple[list, Term]] = field(default_factory=dict)  # define-sort
    decls: dict[str, tuple[tuple, Term]] = field(default_factory=dict)   # name -> (arg sorts, sort)
    defs: list = field(default_factory=list)
    asserts: list = field(default_factory=list)


def _sort_names(cmd: list) -> list[str]:
    head = cmd[0]
    if head in ("declare-sort", "define-sort", "declare-datatype"):
        return [cmd[1]] if len(cmd) > 1 and isinstance(cmd[1], str) else []
    return [d[0] for d in (cmd[1] if len(cmd) > 1 and isinstance(cmd[1], list) else [])
            if isinstance(d, list) and d and isinstance(d[0], str)]


def _split(snap: list) -> _Side | None:
    side = _Side()
    for f in snap:
        head = f[0]
        if head in _SORTS:
            names = _sort_names(f)
            if not names:
                return None
            for name in names:
                side.sorts[name] = f
            side.sort_cmds.append(f)
            if head == "define-sort" and len(f) == 4 and isinstance(f[2], list):
                side.aliases[f[1]] = (f[2], f[3])
        elif head == "declare-const" and len(f) == 3 and isinstance(f[1], str):
            side.decls[f[1]] = ((), f[2])
        elif head == "declare-fun" and len(f) == 4 and isinstance(f[1], str) and isinstance(f[2], list):
            side.decls[f[1]] = (tuple(_show(s) for s in f[2]), f[3])
        elif head in _DEFS:
            side.defs.append(f)
        elif head == "assert" and len(f) == 2:
            side.asserts.append(f[1])
        else:
            return None
    return side


def _expand_sort(s: Term, aliases: dict, depth: int = 0) -> str:
    if depth > 50:
        return "<deep>"
    if isinstance(s, str):
        if s in aliases and not aliases[s][0]:
            return _expand_sort(aliases[s][1], aliases, depth + 1)
        return s
    if s and isinstance(s[0], str) and s[0] in aliases and len(aliases[s[0]][0]) == len(s) - 1:
        params, body = aliases[s[0]]
        sub = dict(zip(params, s[1:]))
        return _expand_sort(_subst(body, sub), aliases, depth + 1)
    return "(" + " ".join(_expand_sort(x, aliases, depth + 1) for x in s) + ")"


def _subst(t: Term, sub: dict) -> Term:
    return sub.get(t, t) if isinstance(t, str) else [_subst(x, sub) for x in t]


def _def_name(f: list) -> list[str]:
    if f[0] == "define-funs-rec":
        return [d[0] for d in (f[1] if len(f) > 1 and isinstance(f[1], list) else []) if isinstance(d, list) and d]
    return [f[1]] if len(f) > 1 and isinstance(f[1], str) else []


def _build_checks(cand_forms: list, ref: _Side, timeout: float) -> str | None:
    """The two implication checks as one script (run after ``(reset)``), or ``None`` when the pair
    cannot be compared (sort mismatch, unsupported construct): fail closed."""
    snap = _snapshot(cand_forms)
    cand = _split(snap) if snap is not None else None
    if cand is None:
        return None
    # sorts and datatypes are shared by name and must be declared alike
    for name, cmd in cand.sorts.items():
        if name in ref.sorts and _show(cmd) != _show(ref.sorts[name]):
            return None
    ref_map: dict[str, str] = {n: _quote("s", n) for n in ref.decls}
    for f in ref.defs:
        for n in _def_name(f):
            ref_map[n] = _quote("r", n)
    cand_map: dict[str, str] = {}
    cand_only: dict[str, Term] = {}  # renamed name -> sort, the existentially quantified constants
    equalities: list[Term] = []
    for n, (args, sort) in cand.decls.items():
        if n in ref.decls:
            rargs, rsort = ref.decls[n]
            if len(args) != len(rargs) or _expand_sort(sort, cand.aliases) != _expand_sort(rsort, ref.aliases) \
                    or [_expand_sort(a, cand.aliases) for a in args] != [_expand_sort(a, ref.aliases) for a in rargs]:
                return None  # sort mismatch on a reference constant
            cand_map[n] = _quote("s", n)
        elif args:
            return None  # a candidate-only function would need a second-order exists
        else:
            cand_map[n] = _quote("c", n)
            cand_only[cand_map[n]] = sort
    kept_defs = []
    for f in cand.defs:
        names = _def_name(f)
        nullary = f[0] == "define-const" or (f[0] == "define-fun" and len(f) > 2 and f[2] == [])
        if nullary:
            n = names[0]
            if f[0] == "define-const" and len(f) == 4:
                sort, body = f[2], f[3]
            elif f[0] == "define-fun" and len(f) == 5:
                sort, body = f[3], f[4]
            else:
                return None
            if n in ref.decls:
                if ref.decls[n][0] or _expand_sort(sort, cand.aliases) != _expand_sort(ref.decls[n][1], ref.aliases):
                    return None
                cand_map[n] = _quote("s", n)
            else:
                cand_map[n] = _quote("c", n)
                cand_only[cand_map[n]] = sort
            equalities.append(("eq", cand_map[n], body))
        else:
            for n in names:
                if n in ref.decls:
                    return None
                cand_map[n] = _quote("c", n)
            kept_defs.append(f)
    lines = ["(set-option :print-success false)"]
    lines += [_show(c) for c in ref.sort_cmds]
    lines += [_show(c) for c in cand.sort_cmds if not all(n in ref.sorts for n in _sort_names(c))]
    for n, (args, sort) in ref.decls.items():
        lines.append(f"(declare-fun {ref_map[n]} ({' '.join(args)}) {_show(sort)})")
    for f in ref.defs:
        lines.append(_show(_rename_def(f, ref_map)))
    for name, sort in cand_only.items():
        lines.append(f"(declare-fun {name} () {_show(sort)})")
    for f in cand.defs:
        if f in kept_defs:
            renamed = _rename_def(f, cand_map)
            if any(a in cand_only for a in _atoms(renamed)):
                return None  # a function of candidate-only constants: not expressible under exists
            lines.append(_show(renamed))
    ca = [_show(_rename(a, cand_map)) for a in cand.asserts]
    ca += [f"(= {name} {_show(_rename(body, cand_map))})" for _, name, body in equalities]
    ra = [_show(_rename(a, ref_map)) for a in ref.asserts]
    conj_c = "(and true " + " ".join(ca) + ")"
    conj_r = "(and true " + " ".join(ra) + ")"
    lines += ["(push 1)", *[f"(assert {a})" for a in ca], f"(assert (not {conj_r}))", "(check-sat)",
              "(get-info :reason-unknown)", "(pop 1)", "(push 1)", *[f"(assert {a})" for a in ra]]
    if cand_only:
        binders = " ".join(f"({name} {_show(sort)})" for name, sort in cand_only.items())
        lines.append(f"(assert (not (exists ({binders}) {conj_c})))")
    else:
        lines.append(f"(assert (not {conj_c}))")
    lines += ["(check-sat)", "(get-info :reason-unknown)", "(pop 1)"]
    return "\n".join(lines) + "\n"


def _rename_def(f: list, m: dict[str, str]) -> list:
    """A definition with its name(s) and body renamed (parameters are bound)."""
    head = f[0]
    if head == "define-funs-rec" and len(f) == 3:
        decls = [[m.get(d[0], d[0]), *d[1:]] for d in f[1]]
        params = [frozenset(p[0] for p in d[1] if isinstance(p, list) and p) for d in f[1]]
        return [head, decls, [_rename(b, m, ps) for b, ps in zip(f[2], params)]]
    if head == "define-const" and len(f) == 4:
        return [head, m.get(f[1], f[1]), f[2], _rename(f[3], m)]
    if len(f) == 5 and isinstance(f[2], list):
        ps = frozenset(p[0] for p in f[2] if isinstance(p, list) and p and isinstance(p[0], str))
        return [head, m.get(f[1], f[1]), f[2], f[3], _rename(f[4], m, ps)]
    return f


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
