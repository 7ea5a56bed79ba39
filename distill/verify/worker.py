"""The worker interpreter of batch scoring: serve chunks of items, die with the scoring process.

Started by :class:`distill.verify.pool._Pool` as ``python -c`` running :func:`_worker_entry`
(by name, see ``pool._BOOT``); nothing of the caller's ``__main__`` is re-run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from distill.data.tasks import FORMAL_KINDS
from distill.verify.types import NA

#: How often a worker checks that its parent is still alive (the fallback to the parent-death signal).
WATCHDOG_S = 0.25


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
