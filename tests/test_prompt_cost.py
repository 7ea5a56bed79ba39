"""Teacher cost control: token usage (incl. cached prompt tokens) per run and per file, kept in the cache;
cost from flags or the price table; ``--max-spend``. The real ``distill prompt``
command and the real ``openai`` / ``google-genai`` clients against the local HTTP server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.errors import ConfigError
from distill.prompting.backend import Request
from distill.prompting.backends import get_backend
from distill.prompting.cost import PRICE_TABLE, PRICES_AS_OF, Prices, SpendCap, Usage, resolve_prices, table_key
from distill.prompting.stats import RunStats, progress_text

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(6)]


def question_of(prompt: str) -> int:
    return int(prompt.split("Question: ", 1)[1].split("\n", 1)[0].split()[2])


def right(prompt: str, model: str) -> str:
    i = question_of(prompt)
    return f"{i} plus {i} is {2 * i}. So the answer is \\boxed{{{2 * i}}}."


def write_rows(root: Path, rows=ROWS) -> Path:
    path = root / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def prompt_cli(root: Path, url: str, *extra: str, backend: str = "openai", model: str = "m") -> int:
    return main(["prompt", "--root", str(root), "--dataset", "gsm8k", "--n", "3", "--styles", "cot,program,plain",
                 "--backend", backend, "--base-url", url, "--model", model, "--no-progress", "--max-tokens", "64",
                 "--summary-json", str(root / "summary.json"), *extra])


def served_usage(enriched_rows, cached_per_request: int, thoughts: int = 0) -> tuple[int, int, int]:
    """What the fake server billed: words of each prompt and answer (its token counts)."""
    pt = sum(len(p.split()) for r in enriched_rows for p in r["prompts"])
    ct = sum(len(a.split()) + thoughts for r in enriched_rows for a in r["responses"])
    cached = sum(min(cached_per_request, len(p.split())) for r in enriched_rows for p in r["prompts"])
    return pt, ct, cached


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_usage_and_cost_per_run_and_file_and_from_cache_on_rerun(tmp_path, capsys, monkeypatch, backend):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    src = write_rows(tmp_path)
    thoughts = 5 if backend == "gemini" else 0  # Gemini's thinking tokens are billed as output
    prices = ["--price-in", "1000", "--price-out", "2000", "--price-cached", "100"]
    with FakeTeacherServer(responder=right, cached_tokens=4, thoughts_tokens=thoughts or None) as srv:
        url = srv.url if backend == "openai" else srv.root_url
        assert prompt_cli(tmp_path, url, *prices, backend=backend) == 0
        assert srv.requests == 18
        out = capsys.readouterr().out
        enriched = read(src.with_name("test.enriched.jsonl"))
        pt, ct, cached = served_usage(enriched, 4, thoughts)
        cost = ((pt - cached) * 1000 + cached * 100 + ct * 2000) / 1e6
        s = json.loads((tmp_path / "summary.json").read_text())
        this_run = {"prompt_tokens": pt, "completion_tokens": ct, "cached_tokens": cached, "answers": 18,
                    "cost_usd": round(cost, 6)}
        assert s["usage"]["this_run"] == this_run
        assert s["usage"]["from_cache"]["answers"] == 0 and s["usage"]["from_cache"]["cost_usd"] == 0
        assert (s["prompt_tokens"], s["completion_tokens"], s["cached_tokens"]) == (pt, ct, cached)
        assert s["prices"]["source"] == "--price-in/--price-out" and s["prices"]["cached_per_mtok"] == 100
        assert s["file_usage"][str(src)]["this_run"] == this_run
        assert f"tokens this run: prompt {pt} (cached {cached}), completion {ct}" in out
        assert f"cost: ${cost:.4f} this run" in out
        records = read(src.with_name("test.cache.jsonl"))
        assert len(records) == 18 and all(r["cached_tokens"] == min(4, r["prompt_tokens"]) for r in records)

        # the rerun pays nothing and reports what its cached answers cost when they were asked
        assert prompt_cli(tmp_path, url, *prices, backend=backend) == 0
        assert srv.requests == 18
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["usage"]["this_run"] == {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "answers": 0,
                                      "cost_usd": 0.0}
    assert s["usage"]["from_cache"] == this_run
    assert s["file_usage"][str(src)]["from_cache"] == this_run
    assert f"the cached answers cost ${cost:.4f} when asked" in out


def test_price_table_for_known_models_and_tokens_only_otherwise(tmp_path, capsys):
    write_rows(tmp_path, ROWS[:2])
    with FakeTeacherServer(responder=right) as srv:
        assert prompt_cli(tmp_path, srv.url, model="gpt-4o-mini-2024-07-18") == 0
        s = json.loads((tmp_path / "summary.json").read_text())
        inp, cached, outp = PRICE_TABLE["gpt-4o-mini"]
        assert s["prices"]["input_per_mtok"] == inp and s["prices"]["output_per_mtok"] == outp
        assert PRICES_AS_OF in s["prices"]["source"] and "gpt-4o-mini" in s["prices"]["source"]
        u = s["usage"]["this_run"]
        assert u["cost_usd"] == round((u["prompt_tokens"] * inp + u["completion_tokens"] * outp) / 1e6, 6) > 0
        capsys.readouterr()
        assert prompt_cli(tmp_path, srv.url, model="my-local-model") == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["prices"] is None and s["usage"]["this_run"]["cost_usd"] is None
    assert s["usage"]["this_run"]["prompt_tokens"] > 0
    assert "cost: unknown" in out and "$" not in out


def test_price_resolution_rules():
    assert table_key("gpt-4o-mini") == "gpt-4o-mini" and table_key("gpt-4o-2024-08-06") == "gpt-4o"
    assert table_key("models/gemini-2.0-flash-001") == "gemini-2.0-flash"
    assert table_key("gpt-4o-mini-tts") is None and table_key("llama3") is None
    p = resolve_prices("llama3", 1.0, 3.0)
    assert (p.input, p.cached, p.output) == (1.0, 1.0, 3.0)  # no cached price: the full input price
    assert resolve_prices("gpt-4o", 5.0, 6.0).input == 5.0  # flags override the table
    assert resolve_prices("gpt-4o", price_cached=0.0).cached == 0.0
    assert resolve_prices("llama3") is None
    half = resolve_prices("gpt-4o", backend="openai-batch")  # the Batch API bills half the list price
    assert (half.input, half.cached, half.output) == (1.25, 0.625, 5.0) and "x0.5" in half.source
    assert resolve_prices("llama3", 1.0, 3.0, backend="openai-batch").input == 1.0  # flags are taken as given
    with pytest.raises(ConfigError, match="--price-in and --price-out go together"):
        resolve_prices("llama3", price_in=1.0)
    with pytest.raises(ConfigError, match="--price-cached needs"):
        resolve_prices("llama3", price_cached=1.0)
    with pytest.raises(ConfigError, match="--price-out must be a finite price"):
        resolve_prices("llama3", 1.0, -2.0)


@pytest.mark.parametrize("flags, message", [
    (["--max-spend", "1"], "--max-spend needs prices: model 'my-local-model'"),
    (["--max-spend", "0", "--price-in", "1", "--price-out", "1"], "--max-spend must be a finite amount > 0"),
    (["--price-in", "1"], "--price-in and --price-out go together"),
    (["--resample-styles", "cot"], "--resample-styles needs --resample-unsolved"),
    (["--resample-unsolved", "-1"], "--resample-unsolved must be >= 0"),
    (["--resample-unsolved", "1", "--resample-styles", "nosuch"], "nosuch"),
])
def test_bad_cost_flags_are_refused_before_any_request(tmp_path, capsys, flags, message):
    write_rows(tmp_path, ROWS[:2])
    with FakeTeacherServer(responder=right) as srv:
        assert prompt_cli(tmp_path, srv.url, *flags, model="my-local-model") == 2
        assert srv.requests == 0
    assert message in capsys.readouterr().err


def test_max_spend_stops_before_the_cap_and_keeps_what_was_paid(tmp_path, capsys):
    src = write_rows(tmp_path)
    prices = ["--price-in", "1000", "--price-out", "1000"]  # $0.001 a token
    cap = 0.5
    with FakeTeacherServer(responder=right) as srv:
        rc = prompt_cli(tmp_path, srv.url, *prices, "--max-spend", str(cap), "--concurrency", "1")
        out = capsys.readouterr().out
        asked = srv.requests
        assert rc == 1 and 0 < asked < 18, out
        s = json.loads((tmp_path / "summary.json").read_text())
        spend = s["max_spend"]
        assert spend["reached"] and spend["not_asked"] == s["not_asked"] == 18 - asked
        assert s["failed"] == 0 and s["failed_paths"] == []  # not asked is not failed
        assert spend["estimated_spend_usd"] == s["usage"]["this_run"]["cost_usd"] <= cap
        enriched = read(src.with_name("test.enriched.jsonl"))
        flat = [(r["prompts"][i], r["failed"][i]) for r in enriched for i in range(3)]
        assert sum(f for _, f in flat) == 18 - asked  # every path has its slot; the unasked are marked failed
        # one more (the first not asked) would have passed the cap at its worst case
        budget = SpendCap(cap, Prices(1000, 1000, 1000, "t"))
        next_prompt = next(p for p, f in flat if f)
        assert spend["reported_spend_usd"] + budget.worst_case(next_prompt, 64) > cap
        assert len(read(src.with_name("test.cache.jsonl"))) == asked  # everything paid for is kept
        assert src.with_name("test.correct.jsonl").exists()
        last = out.strip().splitlines()[-1]
        assert last.startswith("spend cap reached: --max-spend $0.5000")
        assert f"{18 - asked} path(s) were not asked" in last

        # a rerun with a higher cap asks only the rest
        assert prompt_cli(tmp_path, srv.url, *prices, "--max-spend", "100") == 0
        assert srv.requests == 18
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["cached"] == asked and s["max_spend"]["reached"] is False and s["not_asked"] == 0


def test_max_spend_holds_with_requests_in_flight(tmp_path, capsys):
    write_rows(tmp_path)
    cap = 0.8  # worst cases here are $0.16-0.30 a request: 2-3 fit in flight; all 18 cost $0.64
    with FakeTeacherServer(responder=right, latency=0.05) as srv:
        rc = prompt_cli(tmp_path, srv.url, "--price-in", "1000", "--price-out", "1000", "--max-spend", str(cap),
                        "--concurrency", "4")
        assert rc == 1 and srv.max_in_flight > 1
        asked = srv.requests
    s = json.loads((tmp_path / "summary.json").read_text())
    assert 0 < asked < 18 and s["not_asked"] == 18 - asked
    assert s["usage"]["this_run"]["cost_usd"] <= cap and s["usage"]["this_run"]["answers"] == asked


def test_spend_cap_reservations_and_timed_out_attempts():
    prices = Prices(1e6, 1e6, 0.0, "t")  # $1 a token: easy numbers
    budget = SpendCap(100.0, prices)
    worst = budget.worst_case("abc", 10)
    assert worst == 3 + 32 + 10

    async def go():
        r1 = await budget.reserve("abc", 10)
        r2 = await budget.reserve("abc", 10)
        assert r1 == r2 == worst and budget.estimate == 2 * worst and budget.in_flight == 2
        # a third fits only once one of them settles: it waits instead of being refused
        third = asyncio.create_task(budget.reserve("abc", 10))
        await asyncio.sleep(0.01)
        assert not third.done()
        await budget.settle(r1, Usage(5, 5, 2))  # reported: 3 prompt + 2 cached (free) + 5 completion
        assert await third == worst and budget.spent == 8
        await budget.settle(r2, None, timed_out=True)  # no usage: kept at its worst case
        assert budget.lost == worst and budget.lost_attempts == 1
        await budget.settle(worst, None)  # a refused (429) attempt: nothing spent
        assert budget.estimate == 8 + worst and budget.in_flight == 0
        assert await budget.reserve("abc", 60) is None and budget.reached  # 8 + 45 + 95 > 100, none in flight
        assert await budget.reserve("a", 1) is None and budget.not_asked == 2
        return budget

    b = asyncio.run(go())
    assert "2 path(s) were not asked" in b.stop_line() and "1 timed-out attempt(s)" in b.stop_line()


def test_progress_line_shows_tokens_cached_and_cost():
    stats = RunStats(cached=2, completed=3, prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
    text = progress_text(stats, 4, 4, Prices(1.0, 2.0, 0.5, "t"))
    assert "ok=5" in text and "tok=1000+500 cached=400" in text
    assert "$0.0018" in text  # (600 * 1 + 400 * 0.5 + 500 * 2) / 1e6
    budget = SpendCap(2.0, Prices(1.0, 2.0, 0.5, "t"))
    assert "spend~$0.00/$2.00" in progress_text(stats, 4, 4, None, budget)
    assert "$" not in progress_text(stats, 4, 4)


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_an_empty_answer_at_the_limit_is_billed(monkeypatch, backend):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    from distill.prompting.backend import RequestRejected

    with FakeTeacherServer(responder=right, truncate_at=0, cached_tokens=2,
                           finish_reasons=[("What is", "length")]) as srv:
        url = srv.url if backend == "openai" else srv.root_url
        b = get_backend(backend, model="m", base_url=url, request_timeout=5)

        async def go():
            try:
                await b.complete(Request("Question: What is 1 plus 1?\nthink", "cot", {}, "gsm8k", 0, 0.5, 8))
            finally:
                await b.aclose()

        with pytest.raises(RequestRejected) as exc:
            asyncio.run(go())
    assert exc.value.usage.prompt_tokens == 7 and exc.value.usage.cached_tokens == 2


def test_engine_counts_every_billed_attempt_and_cache_hits(tmp_path):
    """An empty 200 answer (retried) was billed: its tokens count in this run's usage and in the job's."""
    from distill.prompting.cache import ResponseCache
    from distill.prompting.engine import Job, run_jobs
    from distill.prompting.retry import RetryPolicy

    prompt = "Question: What is 2 plus 2?\n"
    words = len(prompt.split())

    def go(cache):
        job = Job("k", Request(prompt, "cot", {"id": "q"}, "gsm8k", 0, 0.5, 64), cache, meta={"id": "q"})
        backend = get_backend("openai", model="m", base_url=srv.url, request_timeout=5)

        async def run():
            try:
                return await run_jobs(backend, [job], concurrency=1, request_timeout=5, progress=False,
                                      policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
            finally:
                await backend.aclose()

        return job, asyncio.run(run())

    with FakeTeacherServer(responder=right, cached_tokens=2, faults=[("2 plus 2", ["empty"])]) as srv:
        with ResponseCache(tmp_path / "c.jsonl") as cache:
            job, stats = go(cache)
        assert srv.requests == 2 and stats.completed == 1 and stats.billed == 2
        answer_words = len(job.completion.text.split())
        assert (stats.prompt_tokens, stats.cached_tokens, stats.completion_tokens) == (2 * words, 4, answer_words)
        assert (job.spent.prompt_tokens, job.spent.answers) == (2 * words, 2)
        with ResponseCache(tmp_path / "c.jsonl") as cache:
            job, stats = go(cache)
        assert srv.requests == 2 and stats.billed == 0 and job.from_cache
    assert stats.from_cache.as_dict() == {"prompt_tokens": words, "completion_tokens": answer_words,
                                          "cached_tokens": 2, "answers": 1, "cost_usd": None}
