"""The async request engine shared by ``distill prompt`` and ``distill judge``.

One global in-flight limit across all files: ``concurrency`` worker coroutines pull
jobs from one queue, so a slow file never starves the others and a retry waiting out its
backoff does not hold a slot (it is put back on the queue by a timer). Every completed
answer goes to its file's :class:`~distill.prompting.cache.ResponseCache` before anything
else happens to it, so nothing paid for is lost if the process dies.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.prompting.backend import (
    Backend, Completion, FatalBackendError, Request, RequestRejected, RetryableError,
)
from distill.prompting.cache import ResponseCache
from distill.prompting.retry import RetryPolicy


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

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("jobs", "cached", "requests", "retries", "completed", "failed",
                                             "prompt_tokens", "completion_tokens")}
        d["request_wall_s"] = round(self.request_wall_s, 3)
        d["errors"] = dict(self.errors)
        return d


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
) -> RunStats:
    """Fill every job from the cache or the backend. Failed jobs keep ``error`` set.

    Raises :class:`FatalBackendError` (after stopping all workers) if the backend says
    every request will fail.
    """
    stats = RunStats(jobs=len(jobs))
    todo: list[Job] = []
    for job in jobs:
        rec = job.cache.get(job.key)
        if rec is not None:
            job.completion = Completion(rec["text"], rec.get("prompt_tokens", 0), rec.get("completion_tokens", 0))
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

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=stats.cached, desc=desc, unit="path", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5)

    def finish(job: Job) -> None:
        nonlocal remaining
        remaining -= 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(
                f"ok={stats.cached + stats.completed} failed={stats.failed} retries={stats.retries} "
                f"tok={stats.prompt_tokens}+{stats.completion_tokens}", refresh=False)
        if remaining == 0:
            all_done.set()

    async def worker() -> None:
        while True:
            job = await queue.get()
            job.attempts += 1
            stats.requests += 1
            try:
                async with asyncio.timeout(request_timeout):
                    comp = await backend.complete(job.request)
                if not isinstance(comp, Completion) or not comp.text or not comp.text.strip():
                    raise RetryableError("empty: the backend returned no text")
            except (RetryableError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    exc = RetryableError(f"timeout: no answer within {request_timeout:g} s")
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
            # Durable first: the answer is on disk before it is counted.
            job.cache.add(job.key, {**job.meta, "text": comp.text, "prompt_tokens": comp.prompt_tokens,
                                    "completion_tokens": comp.completion_tokens})
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
