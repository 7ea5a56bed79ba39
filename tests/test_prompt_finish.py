"""Finish reasons: every path records the API's ``finish_reason`` (``finish_reasons`` in the enriched
rows and the cache); a path cut by the token limit is kept but never counted correct, and the
summary counts such paths per style. Real ``openai`` / ``google-genai`` clients, real local server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.prompting.backend import Request
from distill.prompting.backends import get_backend

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(4)]


def responder(prompt: str, model: str) -> str:
    q = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
    i = int(q.split()[2])
    return f"{i} plus {i} is {2 * i}. Let me double-check this by counting again. So the answer is \\boxed{{{2 * i}}}."


def write_rows(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_prompt(tmp_path, url, backend="openai", *extra):
    return main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--n", "2", "--styles", "cot,plain",
                 "--backend", backend, "--base-url", url, "--model", "m", "--no-progress",
                 "--summary-json", str(tmp_path / "summary.json"), *extra])


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_length_cut_paths_are_recorded_and_never_correct(tmp_path, capsys, monkeypatch, backend):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl")
    # q1's answers stop at the token limit mid-sentence, after the right number ("1 plus 1 is 2. Let me ...")
    with FakeTeacherServer(responder=responder, truncate_at=24,
                           finish_reasons=[("What is 1 plus", "length")]) as srv:
        url = srv.url if backend == "openai" else srv.root_url
        rc = run_prompt(tmp_path, url, backend)
        assert srv.requests == 8
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}
    q1 = rows["q1"]
    assert q1["finish_reasons"] == ["length", "length"]
    assert q1["responses"][0] == "1 plus 1 is 2. Let me do"  # kept for analysis, as cut
    assert q1["correct_flags"] == [False, False]
    assert rows["q0"]["finish_reasons"] == ["stop", "stop"] and rows["q0"]["correct_flags"] == [True, True]
    assert len(q1["finish_reasons"]) == len(q1["responses"]) == len(q1["styles"])
    correct = {r["id"]: r for r in read(src.with_name("test.correct.jsonl"))}
    assert "q1" not in correct or correct["q1"]["responses"] == []
    # the cache holds the finish reason too
    recs = [json.loads(x) for x in src.with_name("test.cache.jsonl").read_text().splitlines()]
    assert sorted(r["finish_reason"] for r in recs) == ["length"] * 2 + ["stop"] * 6
    # summary: per style counts and the hint, on stdout and in --summary-json
    assert "CUT at the token limit" in out and "cot 1/4" in out and "--max-tokens is too small" in out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["truncated_per_style"] == {"cot": [1, 4], "plain": [1, 4]}
    assert "--max-tokens" in s["truncated_hint"]
    assert s["correct_per_style"] == {"cot": [3, 4], "plain": [3, 4]}


def test_a_complete_looking_answer_that_says_length_is_not_correct(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl")
    with FakeTeacherServer(responder=responder, finish_reasons=[("What is 2 plus", "length")]) as srv:
        assert run_prompt(tmp_path, srv.url) == 0
    q2 = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}["q2"]
    assert q2["preds"] == ["4", "4"]  # the verifier still extracts its answer, for analysis ...
    assert q2["correct_flags"] == [False, False]  # ... but a path cut by the limit is never correct
    assert q2["finish_reasons"] == ["length", "length"]


def test_old_cache_records_without_finish_reason_still_load(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl")
    with FakeTeacherServer(responder=responder) as srv:
        assert run_prompt(tmp_path, srv.url) == 0
        cache = src.with_name("test.cache.jsonl")
        old = []
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            rec.pop("finish_reason", None)  # as HEAD's engine wrote them
            old.append(json.dumps(rec))
        cache.write_text("\n".join(old) + "\n")
        src.with_name("test.enriched.jsonl").unlink()
        assert run_prompt(tmp_path, srv.url) == 0
        assert srv.requests == 8  # all 8 answers came from the old records
    out = capsys.readouterr().out
    assert "8 (8 from cache, 0 asked now, 0 failed)" in out and "CUT at" not in out
    rows = read(src.with_name("test.enriched.jsonl"))
    assert all(r["finish_reasons"] == [None, None] for r in rows)  # unknown, not "length"
    assert all(r["correct_flags"] == [True, True] for r in rows)


@pytest.mark.parametrize("reason,expected", [("length", "length"), ("stop", "stop"), ("content_filter", "content_filter")])
def test_gemini_finish_reason_is_mapped(monkeypatch, reason, expected):
    """Gemini says MAX_TOKENS / STOP / SAFETY; the backend reports them in the OpenAI vocabulary."""
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    gem = {"length": "length", "stop": "stop", "content_filter": "SAFETY"}[reason]
    with FakeTeacherServer(finish_reasons=[("Q", gem)]) as srv:
        backend = get_backend("gemini", model="m", base_url=srv.root_url, request_timeout=5)

        async def go():
            try:
                return await backend.complete(Request("Question: Q\n", "cot", {}, "gsm8k", 0, 0.5, 64))
            finally:
                await backend.aclose()

        comp = asyncio.run(go())
    assert comp.finish_reason == expected and comp.text


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_empty_answer_at_the_token_limit_is_not_retried(tmp_path, capsys, monkeypatch, backend):
    """A model that spends the whole limit before writing any answer text (finish 'length', empty
    content) would give the same nothing again: one request, a failed path that names --max-tokens."""
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl")
    with FakeTeacherServer(responder=responder, truncate_at=0, finish_reasons=[("What is 3 plus", "length")]) as srv:
        url = srv.url if backend == "openai" else srv.root_url
        rc = run_prompt(tmp_path, url, backend, "--max-attempts", "4", "--retry-base", "0.01")
        assert srv.prompts and max(n for p, n in srv.prompts.items() if "What is 3 plus" in p) == 1
        assert srv.requests == 8
    out = capsys.readouterr().out
    assert rc == 1 and "raise --max-tokens" in out
    q3 = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}["q3"]
    assert q3["failed"] == [True, True] and q3["correct_flags"] == [False, False]
