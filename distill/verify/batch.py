"""Score many paths in worker processes with a hard per-item timeout.

Why processes and not threads: math-verify's timeout is SIGALRM (main thread only), SymPy can
spin for minutes on adversarial LaTeX, and clingo's grounding ignores signals. The only bound
that always works is killing the process, so:

- a persistent pool (module-level, reused across calls) of worker interpreters started with
  ``subprocess`` (not multiprocessing: nothing of the caller's ``__main__`` is re-run and no
  threaded torch parent is forked). Each pre-imports the verifiers and math-verify once, then
  serves chunks over a socket; start-up is paid once per pool, not per call;
- items go out in chunks (few pipe round-trips), but every result comes back on its own, so the
  parent knows which item each worker is on and since when: item k starts when item k-1's
  result arrives. A worker past its item's deadline is SIGKILLed and replaced; that item scores
  False and is counted in ``timeouts``; the rest of its chunk is re-queued;
- a worker that dies (segfault in a native solver, OOM) costs only its current item
  (counted in ``errors``) in the same way.

The caller never waits longer than ``timeout`` per item (plus worker start-up, itself bounded).

Formal kinds (``smt``, ``asp``, ``dot``): each result also carries ``valid``, ``diagnostic`` and
``timed_out`` (a solver call hit its own limit; counted in ``solver_timeouts``). A verification
makes a few solver calls, so these kinds get a longer default hard timeout
(:data:`FORMAL_ITEM_TIMEOUT_S`) and each solver call is capped so that all of them fit inside the
hard timeout (:func:`formal_solver_timeout`): a slow program then gets the solver's own verdict
(with its diagnostic) rather than a kill. A killed formal item is invalid, ``timed_out``, with
the kill as its diagnostic.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
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
#: Row fields the verifiers read; only these cross the process boundary.
ROW_FIELDS = ("gold_answer", "choices", "facts")
#: Default hard per-item timeout, seconds: answer kinds, and formal kinds (several solver calls each).
DEFAULT_TIMEOUT_S = 5.0
#: Solver calls one formal verification may make, at most (candidate, reference, equivalence checks).
FORMAL_CALLS = 4
FORMAL_ITEM_TIMEOUT_S = FORMAL_CALLS * FORMAL_TIMEOUT_S + 2.0
_PKG_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; from distill.verify.batch import _worker_entry; "
         "_worker_entry(int(sys.argv[1]), int(sys.argv[2]))")
#: How often a worker checks that its parent is still alive (the fallback to the parent-death signal).
WATCHDOG_S = 0.25


@dataclass
class BatchResult:
    """Verdicts in input order, how many items hit the hard timeout, wall seconds, worker crashes."""

    verdicts: list[Verdict]
    timeouts: int
    seconds: float
    errors: int = 0
    solver_timeouts: int = 0  # formal kinds: verdicts whose solver hit its own limit (not killed)

    @property
    def correct(self) -> int:
        return sum(v.correct for v in self.verdicts)

    @property
    def invalid(self) -> int:
        """Formal kinds: programs the solver rejected (or that had none); 0 for answer kinds."""
        return sum(v.valid is False for v in self.verdicts)


def formal_solver_timeout(hard_timeout: float) -> float:
    """Per-call solver limit that lets :data:`FORMAL_CALLS` calls (plus a second of overhead) finish
    inside the hard per-item timeout; never above :data:`distill.verify.formal.FORMAL_TIMEOUT_S`."""
    return min(FORMAL_TIMEOUT_S, max(0.2, (hard_timeout - 1.0) / FORMAL_CALLS))


def _worker_entry(fd: int, parent: int = 0) -> None:
    """Entry point of a worker interpreter: serve on the inherited socket ``fd``."""
    if parent:
        _die_with_parent(parent)
    _worker_main(Connection(fd))


def _kill_own_group() -> None:
    """SIGKILL this worker and everything in its process group (its clingo / dot children)."""
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def _die_with_parent(parent: int) -> None:
    """Make this worker (and its solver children) die when the scoring process dies.

    Workers run in their own session so that a timeout kill also takes down their solver children;
    that also means nothing kills them when the parent is SIGKILLed, and a worker stuck on a
    hopeless item would keep a core busy. Two mechanisms:

    - Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel signals the worker the moment its
      parent dies; the handler kills the worker's whole group. (The signal also fires when the
      parent *thread* that started the worker exits while the parent lives on, so the handler
      checks the parent pid and ignores that case.)
    - a watchdog thread that polls ``os.getppid()`` every :data:`WATCHDOG_S` seconds: the
      fallback off Linux, and while the main thread is busy in native code.
    """
    def on_term(signum, frame) -> None:
        if os.getppid() != parent:
            _kill_own_group()

    signal.signal(signal.SIGTERM, on_term)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog below still applies
    if os.getppid() != parent:  # the parent died before the signal was armed
        _kill_own_group()

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_S)
            if os.getppid() != parent:
                _kill_own_group()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_main(conn) -> None:  # runs in the child
    from distill.verify.core import score

    import math_verify  # noqa: F401  (pre-import: its first-use cost must not count against an item)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        task, items, solver_timeout = msg
        formal = task in FORMAL_KINDS
        for idx, response, row in items:
            try:
                v = score(task, response, row, solver_timeout=solver_timeout)
                conn.send((idx, v.pred, v.correct, None, v.valid, v.diagnostic, v.timed_out))
            except Exception as exc:  # a verifier bug must not take the batch down; reported as an error
                err = f"{type(exc).__name__}: {exc}"
                conn.send((idx, NA, False, err, False if formal else None,
                           f"verifier error: {err}" if formal else None, False))


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


_POOL: _Pool | None = None
_LOCK = threading.RLock()  # one batch at a time per process: the pool's pipes are not shareable


def _get_pool(size: int) -> _Pool:
    global _POOL
    if _POOL is not None and (_POOL.size != size or _POOL.pid != os.getpid()):
        if _POOL.pid == os.getpid():
            _POOL.close()
        _POOL = None
    if _POOL is None:
        _POOL = _Pool(size)
    return _POOL


def shutdown() -> None:
    """Stop the persistent worker pool (also done at interpreter exit)."""
    global _POOL
    with _LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.close()
        _POOL = None


atexit.register(shutdown)


def score_batch(task: str, items: list[tuple[str, dict]], *, workers: int | None = None,
                timeout: float | None = None, progress: bool = False) -> BatchResult:
    """Score ``(response, row)`` pairs of one task; verdicts come back in input order.

    ``workers`` defaults to the CPU count; ``timeout`` is the hard per-item limit in seconds
    (default :data:`DEFAULT_TIMEOUT_S`, :data:`FORMAL_ITEM_TIMEOUT_S` for formal kinds).
    """
    from distill.verify.core import kind_of

    # Resolved here, in the caller: the workers receive the verifier kind, so a task registered
    # in this process only (``register_task``) scores like any other, and unknown tasks fail fast.
    kind = kind_of(task)
    if timeout is None:
        timeout = FORMAL_ITEM_TIMEOUT_S if kind in FORMAL_KINDS else DEFAULT_TIMEOUT_S
    if timeout <= 0:
        from distill.errors import ConfigError

        raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
    start = time.perf_counter()
    if not items:
        return BatchResult([], 0, 0.0)
    size = max(1, workers if workers is not None else (os.cpu_count() or 1))
    payload = [
        (i, resp, {k: row[k] for k in ROW_FIELDS if k in row})
        for i, (resp, row) in enumerate(items)
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=f"verify {task}", unit="path")
    try:
        with _LOCK:
            pool = _get_pool(size)
            try:
                verdicts, timeouts, errors, solver_timeouts = pool.run(kind, payload, timeout, bar)
            except BaseException:
                shutdown()  # pipes may hold stale results; never reuse a pool after an interruption
                raise
    finally:
        if bar is not None:
            bar.close()
    return BatchResult(verdicts, timeouts, time.perf_counter() - start, errors, solver_timeouts)
