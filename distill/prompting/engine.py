"""The async request engine shared by ``distill prompt`` and ``distill judge``.

One global in-flight limit across all files: ``concurrency`` worker coroutines pull
jobs from one queue, so a slow file never starves the others and a retry waiting out its
backoff does not hold a slot (it is put back on the queue by a timer). Every completed
answer goes to its file's :class:`~distill.prompting.cache.ResponseCache` before anything
else happens to it, so nothing paid for is lost if the process dies.

The in-flight limit adapts (:class:`~distill.prompting.limit.AdaptiveLimit`, AIMD as TCP and rate
limiters do; see :mod:`distill.prompting.limit` for why): a time-out (or an answer that took most of
the time-out) halves the limit, each prompt answer adds one back up to ``concurrency``, and a request
that timed out is retried with twice its time-out (up to ``max_request_timeout``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.errors import ConfigError
from distill.prompting.backend import (
    Backend, Completion, FatalBackendError, Request, RequestRejected, RequestTimedOut, RetryableError,
)
from distill.prompting.cache import ResponseCache
from distill.prompting.limit import AdaptiveLimit
from distill.prompting.retry import RetryPolicy

__all__ = ["AdaptiveLimit", "Job", "RunStats", "run_jobs"]


@dataclass
class Job:
    """One path to obtain: its request, cache slot and (after the run) its outcome."""

    key: str
    request: Request
    cache: ResponseCache
    meta: dict[str, Any] = field(default_factory=dict)  # stored with the cached answer (id, style, ...)
    completion: Completion | None = None
    error: str | None = None
    attempts: int = 0
    from_cache: bool = False
    timeout: float | None = None  # this job's current per-attempt time-out (None: the run's base)

    @property
    def ok(self) -> bool:
        return self.completion is not None


@dataclass
class RunStats:
    """What the run cost and how it went (printed as the summary)."""

    jobs: int = 0
    cached: int = 0
    requests: int = 0  # HTTP attempts actually sent
    retries: int = 0
    completed: int = 0  # answered in this run
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_wall_s: float = 0.0  # first dispatch -> last answer (start-up and verification excluded)
    errors: Counter = field(default_factory=Counter)  # fault kind -> count (all attempts)
    timeouts: int = 0  # attempts that got no answer within their time-out
    concurrency: int = 0  # the in-flight limit asked for (--concurrency)
    min_limit: int = 0  # the lowest the adaptive in-flight limit went
    final_limit: int = 0
    max_timeout_used: float = 0.0  # the longest per-attempt time-out given (raised for retried time-outs)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("jobs", "cached", "requests", "retries", "completed", "failed",
                                             "prompt_tokens", "completion_tokens", "timeouts")}
        d["request_wall_s"] = round(self.request_wall_s, 3)
        d["errors"] = dict(self.errors)
        d["in_flight_limit"] = {"max": self.concurrency, "min": self.min_limit, "final": self.final_limit}
        d["max_request_timeout_s"] = round(self.max_timeout_used, 3)
        return d

    def adaptation_note(self) -> str | None:
        """One summary line when the engine had to slow down (None when it never did)."""
        if not self.timeouts and self.min_limit >= self.concurrency:
            return None
        return (f"slow teacher: {self.timeouts} time-outs; in-flight limit went down to {self.min_limit} "
                f"(of --concurrency {self.concurrency}, {self.final_limit} at the end), retried time-outs waited "
                f"up to {self.max_timeout_used:g} s; a server that answers one request at a time wants a lower "
                "--concurrency or a higher --request-timeout")


def _fault_kind(exc: BaseException) -> str:
    msg = str(exc)
    return msg.split(":", 1)[0][:40] if msg else type(exc).__name__


async def run_jobs(
    backend: Backend,
    jobs: list[Job],
    *,
    concurrency: int,
    request_timeout: float,
    policy: RetryPolicy,
    progress: bool = True,
    desc: str = "teacher",
    seed: int | None = None,
    adaptive: bool = True,
    max_request_timeout: float | None = None,
) -> RunStats:
    """Fill every job from the cache or the backend. Failed jobs keep ``error`` set.

    ``adaptive`` (the default) lets :class:`AdaptiveLimit` lower the in-flight limit below
    ``concurrency`` and doubles a timed-out request's time-out for its retry, up to
    ``max_request_timeout`` (default 8 x ``request_timeout``); ``adaptive=False`` keeps both fixed.
    Raises :class:`FatalBackendError` (after stopping all workers) if the backend says
    every request will fail.
    """
    if max_request_timeout is None:
        max_request_timeout = 8 * request_timeout
    if max_request_timeout < request_timeout:
        raise ConfigError(f"max_request_timeout ({max_request_timeout:g} s) must be >= request_timeout "
                          f"({request_timeout:g} s)")
    stats = RunStats(jobs=len(jobs), concurrency=concurrency, min_limit=concurrency, final_limit=concurrency)
    todo: list[Job] = []
    for job in jobs:
        rec = job.cache.get(job.key)
        if rec is not None:
            job.completion = Completion(rec["text"], rec.get("prompt_tokens", 0), rec.get("completion_tokens", 0),
                                        finish_reason=rec.get("finish_reason"))  # absent in old records
            job.from_cache = True
            stats.cached += 1
        else:
            todo.append(job)
    if not todo:
        return stats

    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)
    remaining = len(todo)
    all_done = asyncio.Event()
    fatal: list[BaseException] = []
    timers: list[asyncio.TimerHandle] = []

    limiter = AdaptiveLimit(max(1, concurrency), request_timeout)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=stats.cached, desc=desc, unit="path", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5)

    def postfix(refresh: bool = False) -> None:
        if bar is not None:
            slow = (f" in-flight<={limiter.limit}/{concurrency} timeouts={stats.timeouts}"
                    if stats.timeouts or limiter.limit < concurrency else "")
            bar.set_postfix_str(
                f"ok={stats.cached + stats.completed} failed={stats.failed} retries={stats.retries} "
                f"tok={stats.prompt_tokens}+{stats.completion_tokens}{slow}", refresh=refresh)

    def finish(job: Job) -> None:
        nonlocal remaining
        remaining -= 1
        if bar is not None:
            bar.update(1)
            postfix()
        if remaining == 0:
            all_done.set()

    async def worker() -> None:
        while True:
            job = await queue.get()
            job.attempts += 1
            if job.timeout is None:
                job.timeout = request_timeout
            job.request.timeout = job.timeout
            stats.max_timeout_used = max(stats.max_timeout_used, job.timeout)
            sent_at = await limiter.acquire()
            stats.requests += 1
            try:
                try:
                    async with asyncio.timeout(job.timeout):
                        comp = await backend.complete(job.request)
                finally:
                    await limiter.release()
                if not isinstance(comp, Completion) or not comp.text or not comp.text.strip():
                    raise RetryableError("empty: the backend returned no text")
            except (RetryableError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    exc = RequestTimedOut(f"timeout: no answer within {job.timeout:g} s")
                if isinstance(exc, RequestTimedOut):
                    stats.timeouts += 1
                    if adaptive:
                        limiter.on_timeout(sent_at)
                        stats.min_limit = min(stats.min_limit, limiter.limit)
                        # the abandoned attempt is likely still queued on the server: give the retry longer
                        job.timeout = min(max_request_timeout, job.timeout * 2)
                    postfix(refresh=True)
                kind = _fault_kind(exc)
                stats.errors[kind] += 1
                if job.attempts < policy.max_attempts:
                    stats.retries += 1
                    delay = policy.delay(job.attempts, exc.retry_after, rng)
                    timers.append(loop.call_later(delay, queue.put_nowait, job))
                else:
                    job.error = f"gave up after {job.attempts} attempts; last: {exc}"
                    stats.failed += 1
                    finish(job)
                continue
            except RequestRejected as exc:
                stats.errors[_fault_kind(exc)] += 1
                job.error = f"rejected: {exc}"
                stats.failed += 1
                finish(job)
                continue
            except FatalBackendError as exc:
                fatal.append(exc)
                all_done.set()
                return
            if adaptive:
                limiter.on_success(sent_at, time.monotonic() - sent_at)
                stats.min_limit = min(stats.min_limit, limiter.limit)
            # Durable first: the answer is on disk before it is counted.
            job.cache.add(job.key, {**job.meta, "text": comp.text, "prompt_tokens": comp.prompt_tokens,
                                    "completion_tokens": comp.completion_tokens,
                                    "finish_reason": comp.finish_reason})
            job.completion = comp
            stats.completed += 1
            stats.prompt_tokens += comp.prompt_tokens
            stats.completion_tokens += comp.completion_tokens
            finish(job)

    t0 = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(todo))))]
    waiter = asyncio.create_task(all_done.wait())
    try:
        # a worker that dies of a bug must not leave us waiting forever
        done, _ = await asyncio.wait([waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
        for w in workers:
            if w in done and not w.cancelled() and w.exception() is not None:
                raise w.exception()
        if not waiter.done():
            await waiter
    finally:
        stats.request_wall_s = time.perf_counter() - t0
        stats.final_limit = limiter.limit
        waiter.cancel()
        for t in timers:
            t.cancel()
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if bar is not None:
            bar.close()
    if fatal:
        raise fatal[0]
    return stats
