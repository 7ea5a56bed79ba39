"""The engine with the real ``openai`` / ``google-genai`` clients against a real local HTTP server:
every fault kind is retried, persistent faults become recorded failures, the in-flight limit holds."""

from __future__ import annotations

import asyncio
import time

import pytest
from fake_openai_server import FakeTeacherServer

from distill.prompting.backend import FatalBackendError, Request
from distill.prompting.backends import get_backend
from distill.prompting.cache import ResponseCache
from distill.prompting.engine import Job, run_jobs
from distill.prompting.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=0.1)


def make_jobs(tmp_path, prompts):
    cache = ResponseCache(tmp_path / "t.cache.jsonl")
    jobs = [Job(f"k{i}", Request(p, "cot", {"id": str(i)}, "gsm8k", 0, 0.5, 64), cache, meta={"id": str(i)})
            for i, p in enumerate(prompts)]
    return cache, jobs


def run(backend, jobs, **kw):
    async def go():
        try:
            return await run_jobs(backend, jobs, progress=False, **{"concurrency": 4, "request_timeout": 2.0,
                                                                     "policy": FAST, **kw})
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("backend_name", ["openai", "gemini"])
def test_every_fault_kind_is_retried_until_answered(tmp_path, monkeypatch, backend_name):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    faults = [("Q-429", ["429"]), ("Q-500", ["500", "503"]), ("Q-hang", ["hang"]), ("Q-bad", ["badjson"]),
              ("Q-none", ["nochoices"]), ("Q-empty", ["empty"]), ("Q-mix", ["429", "hang", "badjson"])]
    prompts = ["Question: Q-ok\n"] + [f"Question: {s}\n" for s, _ in faults]
    with FakeTeacherServer(faults=faults, retry_after=0.05, hang_s=5) as srv:
        url = srv.url if backend_name == "openai" else srv.root_url
        backend = get_backend(backend_name, model="m", base_url=url, request_timeout=0.5, concurrency=4)
        cache, jobs = make_jobs(tmp_path, prompts)
        stats = run(backend, jobs, request_timeout=0.5)
        cache.close()
        n_faults = sum(len(kinds) for _, kinds in faults)  # the server copies the scripts
        assert all(j.ok for j in jobs), [j.error for j in jobs if not j.ok]
        assert stats.failed == 0 and stats.completed == len(prompts)
        assert stats.retries == n_faults and stats.requests == len(prompts) + n_faults == srv.requests
        assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
        assert "\\boxed{42}" in jobs[0].completion.text
        assert len(ResponseCache(tmp_path / "t.cache.jsonl")) == len(prompts)  # every answer durable


def test_persistent_fault_is_a_recorded_failure_and_not_cached(tmp_path):
    with FakeTeacherServer(faults=[("Q-dead", ["500"] * 10), ("Q-reject", ["400"])]) as srv:
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=2)
        cache, jobs = make_jobs(tmp_path, ["Question: Q-ok\n", "Question: Q-dead\n", "Question: Q-reject\n"])
        stats = run(backend, jobs)
        cache.close()
    ok, dead, rejected = jobs
    assert ok.ok and not dead.ok and not rejected.ok
    assert dead.attempts == FAST.max_attempts and "gave up after 4 attempts" in dead.error and "500" in dead.error
    assert rejected.attempts == 1 and "400" in rejected.error  # a 4xx for this prompt is not retried
    assert stats.failed == 2 and stats.completed == 1
    assert set(ResponseCache(tmp_path / "t.cache.jsonl").records) == {"k0"}  # failures are re-asked next run


def test_retry_after_is_honoured(tmp_path):
    with FakeTeacherServer(faults=[("Q-rl", ["429"])], retry_after=0.6) as srv:
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=2)
        cache, jobs = make_jobs(tmp_path, ["Question: Q-rl\n"])
        t0 = time.perf_counter()
        stats = run(backend, jobs, policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
        assert time.perf_counter() - t0 >= 0.6  # backoff alone would have waited ~0.01 s
        assert stats.retries == 1 and jobs[0].ok


def test_bad_api_key_stops_the_run(tmp_path):
    with FakeTeacherServer(faults=[("Question", ["401"] * 100)]) as srv:
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=2)
        cache, jobs = make_jobs(tmp_path, [f"Question: {i}\n" for i in range(20)])
        with pytest.raises(FatalBackendError, match="401"):
            run(backend, jobs, concurrency=2)
        assert srv.requests < 20  # stopped early, did not hammer the server with a bad key


def test_global_in_flight_limit(tmp_path):
    with FakeTeacherServer(latency=0.15) as srv:
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=5, concurrency=5)
        cache, jobs = make_jobs(tmp_path, [f"Question: {i}\n" for i in range(30)])
        stats = run(backend, jobs, concurrency=5)
    # the server saw at most (and, with 30 slow requests, exactly) 5 requests at once: the limit really limited
    assert stats.completed == 30 and srv.max_in_flight == 5


def test_a_refused_run_leaves_no_empty_cache_file(tmp_path, capsys):
    """Issue 12: the scripted teacher refuses rows it did not generate (an error raised at request time);
    the run stops with one line and must not leave the empty ``test.cache.jsonl`` it created behind."""
    import json

    from distill.commands import main

    src = tmp_path / "smt" / "test.jsonl"
    src.parent.mkdir()
    src.write_text(json.dumps({"id": "a", "question": "Find x > 2.",
                               "gold_answer": "(declare-const x Int)\n(assert (> x 2))\n(check-sat)"}) + "\n")
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "smt", "--backend", "scripted", "--model", "scripted",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no 'spec'" in err
    assert sorted(p.name for p in src.parent.iterdir()) == ["test.jsonl"]


def test_cache_removes_only_an_empty_file_it_created(tmp_path):
    fresh = ResponseCache(tmp_path / "new.cache.jsonl")
    fresh.open_for_append()
    assert fresh.path.exists()  # created up front: an unwritable cache fails before any request
    fresh.close()
    assert not fresh.path.exists()
    theirs = tmp_path / "theirs.cache.jsonl"
    theirs.write_bytes(b"")  # an empty file this run did not create stays
    c = ResponseCache(theirs)
    c.open_for_append()
    c.close()
    assert theirs.exists()
    used = ResponseCache(tmp_path / "used.cache.jsonl")
    used.add("k", {"text": "answer"})
    used.close()
    assert len(ResponseCache(used.path)) == 1
