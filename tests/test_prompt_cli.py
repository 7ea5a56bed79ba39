"""``distill prompt`` end to end: the real CLI and ``openai`` client against a local server,
bad input, scanning rules, output schemas, and a kill -9 / resume run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(6)]


def responder(prompt: str, model: str) -> str:
    """Right answers, except: the 'program' style is off by one, and q5 gets no answer at all."""
    q = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
    i = int(q.split()[2])
    if i == 5:
        return "I am not sure how to approach this."
    ans = 2 * i + (1 if "Python program" in prompt else 0)
    return f"{i} plus {i} is {ans}. So the answer is \\boxed{{{ans}}}."


def write_rows(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def server():
    with FakeTeacherServer(responder=responder) as srv:
        yield srv


def test_prompt_writes_enriched_and_correct_logs(tmp_path, server, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS)
    summary = tmp_path / "summary.json"
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--n", "3", "--styles", "cot,program,plain",
               "--base-url", server.url, "--model", "teacher-x", "--concurrency", "4", "--no-progress",
               "--summary-json", str(summary)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert server.requests == 18
    enriched = read(src.with_name("test.enriched.jsonl"))
    assert [r["id"] for r in enriched] == [r["id"] for r in ROWS]
    r1 = enriched[1]
    assert r1["question"] == ROWS[1]["question"]  # input row kept
    assert r1["styles"] == ["cot", "program", "plain"]
    assert "Python program" in r1["prompts"][1] and "Python program" not in r1["prompts"][0]
    assert r1["preds"] == ["2", "3", "2"] and r1["correct_flags"] == [True, False, True]
    assert r1["failed"] == [False, False, False]
    r5 = enriched[5]  # no extractable answer -> N/A, flag false
    assert r5["preds"] == ["N/A"] * 3 and r5["correct_flags"] == [False] * 3
    correct = read(src.with_name("test.correct.jsonl"))
    assert correct[1]["styles"] == ["cot", "plain"] and correct[1]["path_idx"] == [0, 2]
    assert "q5" not in [c["id"] for c in correct]  # no verified path: no row (the research format)
    s = json.loads(summary.read_text())
    assert s["requests"] == 18 and s["failed"] == 0 and s["completion_tokens"] > 0
    assert s["correct_per_style"] == {"cot": [5, 6], "program": [0, 6], "plain": [5, 6]}
    assert "correct per style: cot 5/6, program 0/6, plain 5/6" in out
    # a rerun with more paths re-asks only the new ones
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--n", "4", "--styles", "cot,program,plain",
               "--base-url", server.url, "--model", "teacher-x", "--no-progress"])
    assert rc == 0 and server.requests == 18 + 6
    assert "24 (18 from cache, 6 asked now, 0 failed)" in capsys.readouterr().out


def test_failed_paths_are_recorded_reported_and_retried_next_run(tmp_path, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS[:2])
    with FakeTeacherServer(responder=responder, faults=[("What is 1 plus", ["500"] * 3)]) as srv:
        args = ["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--n", "1", "--styles", "cot",
                "--base-url", srv.url, "--max-attempts", "3", "--retry-base", "0.01", "--no-progress"]
        assert main(args) == 1  # partial failure: outputs written, exit status says so
        out = capsys.readouterr().out
        assert "FAILED paths (1" in out and "q1#0 (cot): gave up after 3 attempts" in out
        row = read(src.with_name("test.enriched.jsonl"))[1]
        assert row["failed"] == [True] and row["responses"] == [""] and row["preds"] == ["N/A"]
        assert row["correct_flags"] == [False]
        assert main(args) == 0  # the fault is over: only the failed path is asked again
        assert srv.requests == 2 + 2 + 1
        assert read(src.with_name("test.enriched.jsonl"))[1]["correct_flags"] == [True]


def test_scanning_rules_and_input_flag(tmp_path, server, capsys):
    write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS[:1])
    write_rows(tmp_path / "gsm8k" / "sub" / "dev.jsonl", ROWS[1:2])
    write_rows(tmp_path / "gsm8k" / "train.jsonl", ROWS[2:3])
    write_rows(tmp_path / "gsm8k" / "train" / "more.jsonl", ROWS[3:4])
    write_rows(tmp_path / "gsm8k" / "old.correct.jsonl", [{"id": "x"}])  # an output, never a source
    write_rows(tmp_path / "math" / "test.jsonl", ROWS[4:5])
    base = ["prompt", "--root", str(tmp_path), "--n", "1", "--styles", "cot", "--base-url", server.url,
            "--no-progress"]
    assert main(base + ["--dataset", "gsm8k"]) == 0
    assert server.requests == 2
    assert (tmp_path / "gsm8k" / "sub" / "dev.enriched.jsonl").exists()
    assert not (tmp_path / "gsm8k" / "train.enriched.jsonl").exists()
    assert main(base + ["--dataset", "all", "--include-train"]) == 0  # + train, train/, math
    assert server.requests == 2 + 3
    assert (tmp_path / "gsm8k" / "train" / "more.correct.jsonl").exists()
    assert (tmp_path / "math" / "test.correct.jsonl").exists()
    other = write_rows(tmp_path / "elsewhere" / "mine.jsonl", ROWS[5:6])
    assert main(base + ["--dataset", "gsm8k", "--input", str(other)]) == 0
    assert read(other.with_name("mine.enriched.jsonl"))[0]["id"] == "q5"


def test_bad_input_fails_before_any_request(tmp_path, server, monkeypatch, capsys):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS[:2])
    base = ["prompt", "--root", str(tmp_path), "--base-url", server.url, "--no-progress"]

    assert main(base + ["--dataset", "gsm9k"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'gsm9k'" in err and "gsm8k" in err and "table_mwp" in err

    assert main(base + ["--dataset", "gsm8k", "--styles", "cot,rhyme"]) == 2
    err = capsys.readouterr().err
    assert "unknown style 'rhyme'" in err and "fwd_bwd" in err

    with open(src, "a") as fh:
        fh.write('{"id": "q9", "question": "broken\n')
    assert main(base + ["--dataset", "gsm8k"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3: malformed JSON" in err
    write_rows(src, [ROWS[0], {"id": "q1", "question": "no gold"}])
    assert main(base + ["--dataset", "gsm8k"]) == 2
    assert f"{src}:2: missing required field 'gold_answer'" in capsys.readouterr().err
    assert server.requests == 0

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    for backend, var in (("openai", "OPENAI_API_KEY"), ("gemini", "GOOGLE_API_KEY")):
        assert main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--backend", backend]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and var in err and err.startswith("distill prompt: error:")
    assert not (tmp_path / "gsm8k" / "test.cache.jsonl").exists()


def test_kill_dash_nine_then_resume_reasks_only_unfinished(tmp_path):
    """Kill the real CLI process mid-run; the rerun must re-ask exactly what was not cached."""
    rows = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(5)]
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", rows)
    cache = src.with_name("test.cache.jsonl")
    total = 5 * 4
    with FakeTeacherServer(responder=responder, latency=0.25) as srv:
        cmd = [sys.executable, "-m", "distill.commands", "prompt", "--root", str(tmp_path), "--dataset", "gsm8k",
               "--n", "4", "--base-url", srv.url, "--concurrency", "2", "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while srv.answered < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        asked_first = srv.requests
        assert asked_first < total, "the first run finished before it was killed"
        assert not src.with_name("test.enriched.jsonl").exists()  # outputs are written at the end only
        cached = len(cache.read_text().splitlines())
        assert 6 <= cached < total
        rc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rc.returncode == 0, rc.stderr
        reasked = srv.requests - asked_first
        assert reasked == total - cached  # nothing cached was paid for twice
        assert f"{total} ({cached} from cache, {total - cached} asked now, 0 failed)" in rc.stdout
    enriched = read(src.with_name("test.enriched.jsonl"))
    assert sum(len(r["responses"]) for r in enriched) == total
    assert all(all(r["responses"]) and not any(r["failed"]) for r in enriched)
    print(f"kill/resume: first run sent {asked_first}, cached {cached}, rerun re-asked {reasked} of {total}")


def test_styles_file_adds_a_style(tmp_path, server):
    src = write_rows(tmp_path / "gsm8k" / "test.jsonl", ROWS[:2])
    sf = tmp_path / "styles.yaml"
    sf.write_text('backwards_check: "{core}\\nWork it out, then verify by working backwards."\n')
    from distill.prompting.styles import STYLES

    try:
        assert main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--styles-file", str(sf),
                     "--styles", "cot,backwards_check", "--n", "2", "--base-url", server.url, "--no-progress"]) == 0
    finally:
        STYLES.pop("backwards_check", None)
    row = read(src.with_name("test.enriched.jsonl"))[0]
    assert row["styles"] == ["cot", "backwards_check"] and "working backwards" in row["prompts"][1]


def test_scripted_backend_runs_offline(tmp_path, capsys):
    """The demo's scripted teacher goes through the same engine, cache and files (no network)."""
    from distill.demo.synthetic import ArithConfig, write_splits

    paths = write_splits(tmp_path, ArithConfig(n_train=4, n_test=6))
    rc = main(["prompt", "--root", str(tmp_path), "--dataset", "arith", "--backend", "scripted",
               "--wrong-rate", "0.5", "--no-progress"])
    assert rc == 0
    rows = read(paths["test"].with_name("test.enriched.jsonl"))
    assert len(rows) == 6 and all(r["styles"] == ["cot", "program", "knowledge", "tot", "fwd_bwd", "plain"]
                                  for r in rows)
    flags = [f for r in rows for f in r["correct_flags"]]
    assert 0 < sum(flags) < len(flags)  # verification really ran: some right, some wrong
    assert not paths["train"].with_name("train.enriched.jsonl").exists()  # train/ skipped by default
