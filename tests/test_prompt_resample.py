"""``--resample-unsolved K``: questions with no verified path are asked again in rounds until one verifies;
the report counts what each round solved, and a rerun finds every round in the cache (0 requests).
The real ``distill prompt`` command and ``openai`` client against the local HTTP server."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

from fake_openai_server import FakeTeacherServer

from distill.commands import main

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(6)]


def question_of(prompt: str) -> int:
    return int(prompt.split("Question: ", 1)[1].split("\n", 1)[0].split()[2])


def write_rows(root: Path) -> Path:
    path = root / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def prompt_cli(root: Path, url: str, *extra: str) -> int:
    return main(["prompt", "--root", str(root), "--dataset", "gsm8k", "--base-url", url, "--model", "m",
                 "--no-progress", "--max-tokens", "64", "--summary-json", str(root / "summary.json"), *extra])


def counting_responder(right_on: dict[int, int]):
    """Question ``i`` is answered wrongly until its ``right_on[i]``-th request (1-based), then rightly;
    questions not listed are always right."""
    calls: Counter = Counter()
    lock = threading.Lock()

    def respond(prompt: str, model: str) -> str:
        i = question_of(prompt)
        with lock:
            calls[i] += 1
            n = calls[i]
        ans = 2 * i if n >= right_on.get(i, 1) else 2 * i + 1
        return f"So the answer is \\boxed{{{ans}}}."

    return respond


def test_resample_unsolved_rounds_until_verified_and_the_rerun_pays_nothing(tmp_path, capsys):
    src = write_rows(tmp_path)
    # q3: right on its 3rd request (round 1); q5: right on its 4th (round 2); n=2 -> the first pass asks 2 each
    extra = ["--n", "2", "--styles", "cot,plain", "--resample-unsolved", "3", "--resample-styles", "cot",
             "--price-in", "1", "--price-out", "1"]
    with FakeTeacherServer(responder=counting_responder({3: 3, 5: 4})) as srv:
        assert prompt_cli(tmp_path, srv.url, *extra) == 0
        assert srv.requests == 12 + 2 + 1  # first pass, round 1 (q3, q5), round 2 (q5); no round 3
        out = capsys.readouterr().out
        assert "resampled unsolved questions: round 1: 1/2 solved, round 2: 1/1 solved" in out
        s = json.loads((tmp_path / "summary.json").read_text())
        assert [(r["round"], r["questions"], r["paths"], r["solved"]) for r in s["resample"]] == [
            (1, 2, 2, 1), (2, 1, 1, 1)]
        rows = {r["id"]: r for r in read(src.with_name("test.enriched.jsonl"))}
        assert rows["q3"]["styles"] == ["cot", "plain", "cot"] and rows["q3"]["correct_flags"] == [False, False, True]
        assert rows["q5"]["correct_flags"] == [False, False, False, True]
        assert len(rows["q0"]["responses"]) == 2
        correct = {r["id"]: r for r in read(src.with_name("test.correct.jsonl"))}
        assert set(correct) == {f"q{i}" for i in range(6)} and correct["q5"]["path_idx"] == [3]
        records = read(src.with_name("test.cache.jsonl"))
        assert sorted((r["id"], r["sample_index"], r.get("resample_round")) for r in records
                      if r.get("resample_round")) == [("q3", 2, 1), ("q5", 2, 1), ("q5", 3, 2)]

        # the rerun finds every round's answers in the cache: 0 requests, the same report
        assert prompt_cli(tmp_path, srv.url, *extra) == 0
        assert srv.requests == 15
    out = capsys.readouterr().out
    assert "resampled unsolved questions: round 1: 1/2 solved, round 2: 1/1 solved" in out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["requests"] == 0 and s["cached"] == 15 and s["usage"]["this_run"]["cost_usd"] == 0
