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

Token usage is counted per attempt (an unusable answer the server billed counts too) and, for answers
served from the cache, as the cache recorded it (:class:`RunStats` ``from_cache``). With a
:class:`~distill.prompting.cost.SpendCap` every attempt first reserves its worst-case cost; once one no
longer fits, nothing more is sent: the requests in flight finish and the rest are marked not asked.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from distill.errors import ConfigError
from distill.progress import progress_bar
from distill.prompting.backend import (
    Backend, Completion, FatalBackendError, Request, RequestRejected, RequestTimedOut, RetryableError,
)
from distill.prompting.cache import ResponseCache
from distill.prompting.cost import Prices, SpendCap, Usage
from distill.prompting.limit import AdaptiveLimit
from distill.prompting.retry import RetryPolicy
from distill.prompting.stats import RunStats, progress_text

__all__ = ["AdaptiveLimit", "Job", "RunStats", "run_jobs"]

#: the error of a path the ``--max-spend`` cap kept from being asked
NOT_ASKED = "not asked: the --max-spend cap was reached"


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
    spent: Usage = field(default_factory=Usage)  # tokens this run's attempts were billed (cache hits: none)
    skipped: bool = False  # never answered because the --max-spend cap was reached (``error`` says so)
    verdict: Any = None  # the verifier's Verdict once scored (set by the prompt pipeline)
    repairs: list["Job"] = field(default_factory=list)  # --repair-rounds: this path's repair requests, in order

    @property
    def ok(self) -> bool:
        return self.completion is not None

    @property
    def final(self) -> "Job":
        """The path's answer that counts: its last answered repair, else itself."""
        return next((r for r in reversed(self.repairs) if r.ok), self)


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
    prices: Prices | None = None,
    budget: SpendCap | None = None,
) -> RunStats:
    """Fill every job from the cache or the backend. Failed jobs keep ``error`` set.

    ``adaptive`` (the default) lets :class:`AdaptiveLimit` lower the in-flight limit below
    ``concurrency`` and doubles a timed-out request's time-out for its retry, up to
    ``max_request_timeout`` (default 8 x ``request_timeout``); ``adaptive=False`` keeps both fixed.
    Raises :class:`FatalBackendError` (after stopping all workers) if the backend says
    every request will fail. ``prices`` (or the ``budget``'s) put the cost in the progress line;
    ``budget`` caps the spend (paths it keeps from being asked get ``skipped`` and ``NOT_ASKED``).
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
                                        finish_reason=rec.get("finish_reason"),  # absent in old records
                                        cached_tokens=rec.get("cached_tokens", 0))
            job.from_cache = True
            stats.cached += 1
            stats.from_cache.add(job.completion.prompt_tokens, job.completion.completion_tokens,
                                 job.completion.cached_tokens)
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

    bar = progress_bar(len(jobs), desc, unit="path", enabled=progress, initial=stats.cached)
    if budget is not None:
        prices = budget.prices

    def postfix(refresh: bool = False) -> None:
        bar.set_postfix_str(progress_text(stats, limiter.limit, concurrency, prices, budget), refresh=refresh)

    def finish(job: Job) -> None:
        nonlocal remaining
        remaining -= 1
        bar.update(1)
        postfix()
        if remaining == 0:
            all_done.set()

    def skip(job: Job) -> None:
        job.skipped, job.error = True, NOT_ASKED
        stats.not_asked += 1
        finish(job)

    def bill(job: Job, usage: Completion | None) -> None:
        if usage is not None:
            job.spent.add(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            stats.prompt_tokens += usage.prompt_tokens
            stats.completion_tokens += usage.completion_tokens
            stats.cached_tokens += usage.cached_tokens
            stats.billed += 1

    async def worker() -> None:
        while True:
            job = await queue.get()
            reservation = None
            if budget is not None:
                reservation = await budget.reserve(job.request.prompt, job.request.max_tokens)
                if reservation is None:
                    skip(job)
                    continue
            usage: Completion | None = None
            timed_out = False
            try:
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
                        raise RetryableError("empty: the backend returned no text",
                                             usage=comp if isinstance(comp, Completion) else None)
                except (RetryableError, TimeoutError) as exc:
                    if isinstance(exc, TimeoutError):
                        exc = RequestTimedOut(f"timeout: no answer within {job.timeout:g} s")
                    usage = exc.usage
                    bill(job, usage)
                    if isinstance(exc, RequestTimedOut):
                        timed_out = True
                        stats.timeouts += 1
                        if adaptive:
                            limiter.on_timeout(sent_at)
                            stats.min_limit = min(stats.min_limit, limiter.limit)
                            # the abandoned attempt is likely still queued on the server: give the retry longer
                            job.timeout = min(max_request_timeout, job.timeout * 2)
                        postfix(refresh=True)
                    stats.errors[_fault_kind(exc)] += 1
                    if job.attempts >= policy.max_attempts:
                        job.error = f"gave up after {job.attempts} attempts; last: {exc}"
                        stats.failed += 1
                        finish(job)
                    elif budget is not None and budget.reached:
                        skip(job)  # no retry once the cap is reached
                    else:
                        stats.retries += 1
                        delay = policy.delay(job.attempts, exc.retry_after, rng)
                        timers.append(loop.call_later(delay, queue.put_nowait, job))
                    continue
                except RequestRejected as exc:
                    usage = exc.usage
                    bill(job, usage)
                    stats.errors[_fault_kind(exc)] += 1
                    job.error = f"rejected: {exc}"
                    stats.failed += 1
                    finish(job)
                    continue
                except FatalBackendError as exc:
                    fatal.append(exc)
                    all_done.set()
                    return
                usage = comp
                if adaptive:
                    limiter.on_success(sent_at, time.monotonic() - sent_at)
                    stats.min_limit = min(stats.min_limit, limiter.limit)
                # Durable first: the answer is on disk before it is counted.
                job.cache.add(job.key, {**job.meta, "text": comp.text, "prompt_tokens": comp.prompt_tokens,
                                        "completion_tokens": comp.completion_tokens,
                                        "cached_tokens": comp.cached_tokens, "finish_reason": comp.finish_reason})
                job.completion = comp
                stats.completed += 1
                bill(job, comp)
                finish(job)
            finally:
                if reservation is not None:
                    await budget.settle(reservation, usage, timed_out=timed_out)

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
        bar.close()
    if fatal:
        raise fatal[0]
    return stats

