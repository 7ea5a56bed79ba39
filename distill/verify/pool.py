"""The pool of worker interpreters behind :func:`distill.verify.batch.score_batch`.

Starts workers (:mod:`distill.verify.worker`) in their own sessions, hands them chunks of items,
and kills and replaces a worker past its item's deadline or that died; see
:mod:`distill.verify.batch` for the design.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from distill.data.tasks import FORMAL_KINDS
from distill.verify.formal import FORMAL_TIMEOUT_S
from distill.verify.types import NA, Verdict

#: Seconds a fresh worker may take to report ready before we give up (never hang the caller).
START_TIMEOUT_S = 120.0
#: Solver calls one formal verification may make, at most (candidate, reference, equivalence checks).
FORMAL_CALLS = 4
_PKG_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; from distill.verify.worker import _worker_entry; "
         "_worker_entry(int(sys.argv[1]), int(sys.argv[2]))")


def formal_solver_timeout(hard_timeout: float) -> float:
    """Per-call solver limit that lets :data:`FORMAL_CALLS` calls (plus a second of overhead) finish
    inside the hard per-item timeout; never above :data:`distill.verify.formal.FORMAL_TIMEOUT_S`."""
    return min(FORMAL_TIMEOUT_S, max(0.2, (hard_timeout - 1.0) / FORMAL_CALLS))


@dataclass
class _Worker:
    proc: Any
    conn: Any
    pending: deque = field(default_factory=deque)
    deadline: float = 0.0


class _Pool:
    def __init__(self, size: int):
        self.size = size
        self.pid = os.getpid()
        self.workers: list[_Worker] = []
        for _ in range(size):
            self.workers.append(self._start())
        for w in self.workers:
            self._await_ready(w)

    def _start(self) -> _Worker:
        # A fresh interpreter, not multiprocessing: no re-import of the caller's __main__, no fork of
        # a threaded (torch) parent. Its own session, so a kill also takes down solver children;
        # it watches our pid and dies with us (_die_with_parent).
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PKG_ROOT, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        theirs.close()
        return _Worker(proc, Connection(ours.detach()))
    def _await_ready(self, w: _Worker) -> None:
        if not w.conn.poll(START_TIMEOUT_S):
            self._kill(w)
            raise RuntimeError(f"verifier worker did not start within {START_TIMEOUT_S:g}s")
        try:
            msg = w.conn.recv()
        except EOFError:
            self._kill(w)
            raise RuntimeError(f"verifier worker exited at start-up (code {w.proc.returncode}); "
                               "see its traceback above") from None
        if not (isinstance(msg, tuple) and msg[0] == "ready"):
            raise RuntimeError(f"verifier worker sent {msg!r} instead of ready")

    @staticmethod
    def _kill(w: _Worker) -> None:
        if w.proc.poll() is None:
            try:
                os.killpg(w.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already exited between poll() and killpg(): nothing to kill
        try:
            w.proc.wait(5)
        except subprocess.TimeoutExpired:  # SIGKILLed but not yet reaped; the OS reaps it later
            pass
        w.conn.close()

    def _replace(self, w: _Worker) -> _Worker:
        self._kill(w)
        new = self._start()
        self._await_ready(new)
        self.workers[self.workers.index(w)] = new
        return new

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass  # the worker is already gone; _kill below reaps it
        for w in self.workers:
            try:
                w.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass  # did not exit on request: _kill force-stops it
            self._kill(w)
        self.workers = []

    def run(self, task: str, items: list[tuple[int, str, dict]], timeout: float, progress=None):
        verdicts: dict[int, Verdict] = {}
        timeouts = errors = solver_timeouts = 0
        n = len(items)
        chunk = max(1, min(64, n // (self.size * 8) or 1))
        queue = deque(items[i : i + chunk] for i in range(0, n, chunk))
        formal = task in FORMAL_KINDS
        solver_timeout = formal_solver_timeout(timeout) if formal else None

        def abandon_current(w, killed: bool) -> None:
            """Score the worker's current item False, requeue the rest of its chunk, replace it."""
            if formal:
                why = (f"verification killed after {timeout:g} s (hard timeout)" if killed
                       else "verifier worker died (solver crash or out of memory)")
                lost = Verdict(NA, False, valid=False, diagnostic=why, timed_out=killed)
            else:
                lost = Verdict(NA, False)
            verdicts[w.pending.popleft()[0]] = lost
            if progress is not None:
                progress.update(1)
            rest = list(w.pending)
            w.pending = deque()
            if rest:
                queue.appendleft(rest)
            self._replace(w)

        while len(verdicts) < n:
            for w in self.workers:
                if not w.pending and queue:
                    part = queue.popleft()
                    w.conn.send((task, part, solver_timeout))
                    w.pending = deque(part)
                    w.deadline = time.monotonic() + timeout
            busy = [w for w in self.workers if w.pending]
            if not busy:
                break
            wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=wait_s)
            for w in busy:
                if w.conn not in ready:
                    continue
                try:
                    while w.pending and w.conn.poll():
                        idx, pred, correct, err, valid, diagnostic, timed_out = w.conn.recv()
                        head = w.pending.popleft()
                        assert head[0] == idx, (head[0], idx)
                        verdicts[idx] = Verdict(pred, bool(correct) and valid is not False, valid, diagnostic,
                                                bool(timed_out))
                        errors += err is not None
                        solver_timeouts += bool(timed_out)
                        w.deadline = time.monotonic() + timeout
                        if progress is not None:
                            progress.update(1)
                except (EOFError, OSError):  # the worker died: lose only its current item
                    abandon_current(w, killed=False)
                    errors += 1
            now = time.monotonic()
            for w in list(self.workers):
                if w.pending and now >= w.deadline:
                    abandon_current(w, killed=True)
                    timeouts += 1
        return [verdicts[i] for i in range(n)], timeouts, errors, solver_timeouts


