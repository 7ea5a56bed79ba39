"""A slow local teacher (one request at a time, abandoned requests still generated): the engine's
adaptive in-flight limit (AIMD) and growing time-outs finish the run where fixed ones cannot.

Real ``openai`` client, real local HTTP server (``FakeTeacherServer(serial=True)``). Behaviour only;
how fast it finishes is the benchmark's business (bench/bench_prompt_concurrency.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_openai_server import FakeTeacherServer

from distill.prompting.backend import Request
from distill.prompting.backends import get_backend
from distill.prompting.cache import ResponseCache
from distill.prompting.engine import AdaptiveLimit, Job, run_jobs
from distill.prompting.retry import RetryPolicy

LATENCY, TIMEOUT, N, BOUND_S = 0.2, 1.0, 16, 25.0
POLICY = RetryPolicy(max_attempts=6, base_delay=0.05, max_delay=0.2)


def slow_teacher_run(tmp_path, *, adaptive: bool, progress: bool = False):
    """16 paths at --concurrency 16 against a server that needs 0.2 s per answer, one at a time,
    with a 1 s time-out: 16 at once means the 6th and later time out and stay queued on the server."""
    with FakeTeacherServer(latency=LATENCY, serial=True) as srv:
        cache = ResponseCache(tmp_path / f"c{int(adaptive)}.cache.jsonl")
        jobs = [Job(f"k{i}", Request(f"Question: {i}\n", "cot", {"id": str(i)}, "gsm8k", 0, 0.5, 64), cache)
                for i in range(N)]
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=TIMEOUT, concurrency=N)

        async def go():
            try:
                return await asyncio.wait_for(
                    run_jobs(backend, jobs, concurrency=N, request_timeout=TIMEOUT, policy=POLICY,
                             progress=progress, adaptive=adaptive), BOUND_S)
            finally:
                await backend.aclose()

        try:
            stats = asyncio.run(go())
        except TimeoutError:
            stats = None  # the bound ran out
        cache.close()
        return stats, jobs, srv.stats()


def test_slow_serial_teacher_finishes_with_adaptive_limit(tmp_path, capsys):
    t0 = time.perf_counter()
    stats, jobs, server = slow_teacher_run(tmp_path, adaptive=True, progress=True)
    assert stats is not None and time.perf_counter() - t0 < BOUND_S
    assert all(j.ok for j in jobs), [j.error for j in jobs if not j.ok]
    assert stats.completed == N and stats.failed == 0
    assert stats.timeouts > 0  # the first burst did time out ...
    assert stats.min_limit < N // 2  # ... and the in-flight limit went down
    assert stats.max_timeout_used > TIMEOUT  # ... and retried requests were given longer
    assert len(ResponseCache(tmp_path / "c1.cache.jsonl")) == N
    err = capsys.readouterr().err
    assert "in-flight<=" in err and "timeouts=" in err  # the progress line says what is happening
    note = stats.adaptation_note()
    assert note and "time-outs" in note and "in-flight limit went down to" in note
    d = stats.as_dict()
    assert d["timeouts"] == stats.timeouts and d["in_flight_limit"]["min"] == stats.min_limit


def test_slow_serial_teacher_does_not_finish_with_fixed_limit_and_timeout(tmp_path):
    """The old behaviour (what HEAD did): each retry joins the back of a queue of abandoned requests
    at the same time-out, so it times out again; most paths fail."""
    stats, jobs, server = slow_teacher_run(tmp_path, adaptive=False)
    assert stats is None or stats.failed > 0
    assert sum(j.ok for j in jobs) < N
    assert server["generated"] > sum(j.ok for j in jobs)  # the server generated answers nobody waited for


def test_aimd_rules():
    lim = AdaptiveLimit(16, base_timeout=10.0)
    assert lim.limit == 16
    t_sent = time.monotonic()
    assert lim.on_timeout(sent_at=t_sent) is True
    assert lim.limit == 8
    # requests sent before that cut timing out too are the same congestion event: no second cut
    assert lim.on_timeout(sent_at=t_sent) is False and lim.limit == 8
    # a request sent after the cut that times out cuts again; never below 1
    for _ in range(6):
        lim.on_timeout(sent_at=time.monotonic() + 1)
    assert lim.limit == 1 and lim.lowest == 1
    # each good answer adds one, up to the maximum
    now = time.monotonic() + 2
    for _ in range(30):
        lim.on_success(sent_at=now, latency=0.5)
    assert lim.limit == 16
    # an answer that took most of the time-out and far longer than the fastest is congestion
    lim.on_success(sent_at=time.monotonic() + 3, latency=8.0)
    assert lim.limit == 8
    # a slow answer that is not much slower than the fastest seen is a slow model, not a queue
    slow = AdaptiveLimit(4, base_timeout=10.0)
    slow.on_success(sent_at=time.monotonic(), latency=6.0)
    slow.on_success(sent_at=time.monotonic(), latency=7.0)
    assert slow.limit == 4


@pytest.mark.parametrize("adaptive", [True, False])
def test_fast_teacher_keeps_the_full_limit(tmp_path, adaptive):
    """No time-outs, steady latency: the adaptive limit never throttles (the concurrency bench's case)."""
    with FakeTeacherServer(latency=0.1) as srv:
        cache = ResponseCache(tmp_path / "t.cache.jsonl")
        jobs = [Job(f"k{i}", Request(f"Question: {i}\n", "cot", {"id": str(i)}, "gsm8k", 0, 0.5, 64), cache)
                for i in range(24)]
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=5, concurrency=6)

        async def go():
            try:
                return await run_jobs(backend, jobs, concurrency=6, request_timeout=5, policy=POLICY,
                                      progress=False, adaptive=adaptive)
            finally:
                await backend.aclose()

        stats = asyncio.run(go())
        cache.close()
    assert stats.completed == 24 and stats.timeouts == 0
    assert stats.min_limit == 6 and srv.max_in_flight == 6 and stats.adaptation_note() is None
