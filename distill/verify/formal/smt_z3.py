"""Running Z3 for :mod:`distill.verify.formal.smt`: a one-shot child process killed at the deadline,
or a pooled long-lived ``z3 -in`` (killed at the deadline, on a crash, on any doubt; never shared
across ``fork``); Z3's ``(error ...)`` messages and their normalisation."""

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
from dataclasses import dataclass
from functools import lru_cache

#: environment variable naming the Z3 binary (default: ``z3`` on PATH)
Z3_ENV = "DISTILL_Z3"
#: longest diagnostic kept (Z3's sort-mismatch messages print whole declarations)
MAX_DIAGNOSTIC = 300
STATUSES = ("sat", "unsat", "unknown")


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
