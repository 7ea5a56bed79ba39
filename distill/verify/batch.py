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
import sys
import threading
import time
from dataclasses import dataclass

from distill.data.tasks import FORMAL_KINDS
from distill.verify.formal import FORMAL_TIMEOUT_S
from distill.verify.pool import FORMAL_CALLS, _Pool, formal_solver_timeout  # noqa: F401
from distill.verify.types import Verdict

#: Row fields the verifiers read; only these cross the process boundary.
ROW_FIELDS = ("gold_answer", "choices", "facts")
#: Default hard per-item timeout, seconds: answer kinds, and formal kinds (several solver calls each).
DEFAULT_TIMEOUT_S = 5.0
FORMAL_ITEM_TIMEOUT_S = FORMAL_CALLS * FORMAL_TIMEOUT_S + 2.0


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
        from distill.progress import progress_bar

        bar = progress_bar(len(items), f"verify {task}", unit="path")
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
    result = BatchResult(verdicts, timeouts, time.perf_counter() - start, errors, solver_timeouts)
    if progress:  # the stage's one line, also when bars are off (--no-progress)
        print(summary_line(task, result), file=sys.stderr)
    return result


def summary_line(task: str, result: BatchResult) -> str:
    """``verify TASK: N paths in S s (R paths/s); C correct, T timeouts, E worker errors``."""
    n = len(result.verdicts)
    return (f"verify {task}: {n} paths in {result.seconds:.1f} s ({n / max(result.seconds, 1e-9):.1f} paths/s); "
            f"{result.correct} correct, {result.timeouts} timeouts, {result.errors} worker errors")
