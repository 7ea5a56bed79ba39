"""One program run for :mod:`distill.verify.formal.smt`: the program with an ``(echo "<nonce>:<i>")``
marker after each top-level command, run by Z3, its output attributed to the commands (validity,
the last ``check-sat`` status, the first error mapped back to the program's own positions)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from distill.verify.formal.smt_parse import _ParseError, _commands, _line_col
from distill.verify.formal.smt_z3 import STATUSES, _ERROR, _POS, _normalise, _run_z3

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
