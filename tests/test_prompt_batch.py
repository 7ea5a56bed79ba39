"""``distill prompt --backend openai-batch``: the real CLI and ``openai`` client against a local Batch API
server (tests/fake_batch_server.py): same outputs as the chat backend, a killed run resumes its batch
instead of paying again, failed lines are retried through the engine, and bad set-ups are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_batch_server import FakeBatchServer
from fake_openai_server import FakeTeacherServer

from distill.commands import main

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(4)]
FAST = ["--batch-poll", "0.05", "--retry-base", "0.01", "--no-progress"]  # retries group in one batch


def responder(prompt: str, model: str) -> str:
    """Right answers, except the 'program' style is off by one (so correct.jsonl is a real filter)."""
    i = int(prompt.split("Question: What is ", 1)[1].split()[0])
    ans = 2 * i + (1 if "Python program" in prompt else 0)
    return f"{i} plus {i} is {ans}. So the answer is \\boxed{{{ans}}}."


def write_rows(root: Path, rows=ROWS) -> Path:
    path = root / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prompt_args(root: Path, url: str, *extra: str) -> list[str]:
    return ["prompt", "--root", str(root), "--dataset", "gsm8k", "--n", "2", "--styles", "cot,program",
            "--base-url", url, "--model", "teacher-x", "--max-tokens", "300", "--temperature", "0.5", *extra]


def enriched(src: Path) -> list[dict]:
    return [json.loads(x) for x in src.with_name("test.enriched.jsonl").read_text().splitlines()]


def test_batch_writes_the_same_outputs_as_the_chat_backend(tmp_path):
    chat_src, batch_src = write_rows(tmp_path / "chat"), write_rows(tmp_path / "batch")
    with FakeTeacherServer(responder=responder) as chat:
        assert main(prompt_args(tmp_path / "chat", chat.url, "--no-progress",
                                "--summary-json", str(tmp_path / "chat.json"))) == 0
    with FakeBatchServer(responder=responder) as srv:
        assert main(prompt_args(tmp_path / "batch", srv.url, "--backend", "openai-batch", *FAST,
                                "--summary-json", str(tmp_path / "batch.json"))) == 0
        assert (srv.uploads, srv.batches_created) == (1, 1)  # all 8 paths in one batch
        assert len(srv.bodies) == 8
        for body in srv.bodies:  # the request shape inside the batch file
            assert body["model"] == "teacher-x" and body["max_tokens"] == 300 and body["temperature"] == 0.5
            assert [m["role"] for m in body["messages"]] == ["user"] and "Question: What is" in \
                body["messages"][0]["content"]
    for name in ("test.enriched.jsonl", "test.correct.jsonl"):
        assert batch_src.with_name(name).read_bytes() == chat_src.with_name(name).read_bytes(), name
    rows = enriched(batch_src)
    assert [r["correct_flags"] for r in rows] == [[True, False]] * 4
    chat_sum, batch_sum = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("chat", "batch"))
    for key in ("prompt_tokens", "completion_tokens"):  # usage of every line reaches the report
        assert batch_sum[key] == chat_sum[key] > 0, key
    state = [json.loads(p.read_text()) for p in (tmp_path / "batch" / ".openai-batch").glob("*.json")]
    assert len(state) == 1 and state[0]["status"] == "completed" and len(state[0]["custom_ids"]) == 8
    assert set(state[0]["custom_ids"]) == {k for r in rows for k in r["cache_keys"]}  # custom_id = cache key


def test_a_run_killed_while_its_batch_runs_resumes_that_batch(tmp_path):
    src = write_rows(tmp_path)
    with FakeBatchServer(responder=responder) as srv:
        srv.hold.set()  # the batch stays in_progress until released
        cmd = [sys.executable, "-m", "distill.commands", *prompt_args(tmp_path, srv.url, "--backend", "openai-batch",
                                                                       *FAST)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while srv.retrieves < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        assert srv.batches_created == 1 and not src.with_name("test.enriched.jsonl").exists()
        state = [json.loads(p.read_text()) for p in (tmp_path / ".openai-batch").glob("*.json")]
        assert [s["status"] for s in state] == ["submitted"]
        srv.hold.clear()
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST)) == 0
        assert (srv.uploads, srv.batches_created) == (1, 1)  # picked up, not paid for again
        assert all(all(r["responses"]) and not any(r["failed"]) for r in enriched(src))
        # without the cache, a rerun re-reads the finished batch's output file: still nothing paid twice
        src.with_name("test.cache.jsonl").unlink()
        downloads = srv.downloads
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST)) == 0
        assert (srv.uploads, srv.batches_created) == (1, 1) and srv.downloads == downloads + 1
        assert len(enriched(src)) == 4


def test_failed_lines_and_batches_are_retried_through_the_engine(tmp_path, capsys):
    src = write_rows(tmp_path)
    faults = [("What is 1 plus", ["500"]), ("What is 2 plus", ["missing"]), ("What is 3 plus", ["429"])]
    # batch 1 fails validation as a whole; batch 2 has three bad lines; batch 3 answers those three
    with FakeBatchServer(responder=responder, batch_faults=["failed"], line_faults=faults) as srv:
        rc = main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST,
                              "--summary-json", str(tmp_path / "s.json")))
        assert rc == 0, capsys.readouterr().out
        assert srv.batches_created == 3
    rows = enriched(src)
    assert all(all(r["responses"]) and not any(r["failed"]) for r in rows)
    assert [r["correct_flags"] for r in rows] == [[True, False]] * 4
    errors = json.loads((tmp_path / "s.json").read_text())["errors"]
    assert errors == {"batch failed": 8, "http 500": 1, "batch missing line": 1, "http 429": 1}
    records = [json.loads(p.read_text()) for p in (tmp_path / ".openai-batch").glob("*.json")]
    assert sorted(len(r["failed_ids"]) for r in records) == [0, 3, 8]
    assert any("injected: the batch failed validation" in (r["note"] or "") for r in records)


def test_an_expired_batch_keeps_its_answers_and_retries_the_rest(tmp_path):
    src = write_rows(tmp_path)
    with FakeBatchServer(responder=responder, batch_faults=["expired"]) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST,
                                "--summary-json", str(tmp_path / "s.json"))) == 0
        assert srv.batches_created == 2 and len(srv.bodies) == 8 + 4  # only the expired half asked again
    assert json.loads((tmp_path / "s.json").read_text())["errors"] == {"batch batch_expired": 4}
    assert all(all(r["responses"]) and not any(r["failed"]) for r in enriched(src))


def test_a_batch_created_but_unanswered_is_found_not_created_twice(tmp_path):
    src = write_rows(tmp_path, ROWS[:2])
    with FakeBatchServer(responder=responder, create_faults=["lost"]) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST)) == 0
        assert (srv.uploads, srv.batches_created) == (1, 1)  # the retry found it by its metadata
    assert all(all(r["responses"]) for r in enriched(src))


def test_a_rejected_line_fails_only_its_path(tmp_path, capsys):
    src = write_rows(tmp_path, ROWS[:2])
    with FakeBatchServer(responder=responder, line_faults=[("What is 1 plus", ["400"])]) as srv:
        rc = main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST))
        assert srv.batches_created == 1  # a 400 is not retried
    out = capsys.readouterr().out
    assert rc == 1 and "http 400: injected 400" in out
    rows = enriched(src)
    assert rows[0]["failed"] == [False, False] and rows[1]["failed"].count(True) == 1


@pytest.mark.parametrize("extra, needle", [
    (["--batch-size", "0"], "--batch-size must be in 1..50000"),
    (["--batch-poll", "0"], "--batch-poll must be > 0"),
])
def test_bad_batch_flags_are_one_line(tmp_path, capsys, extra, needle):
    write_rows(tmp_path)
    assert main(prompt_args(tmp_path, "http://127.0.0.1:9/v1", "--backend", "openai-batch", *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_a_damaged_state_file_is_named(tmp_path, capsys):
    write_rows(tmp_path)
    (tmp_path / ".openai-batch").mkdir()
    (tmp_path / ".openai-batch" / "x.json").write_text("{not json")
    assert main(prompt_args(tmp_path, "http://127.0.0.1:9/v1", "--backend", "openai-batch")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.json: cannot read this batch state file" in err
    assert not (tmp_path / "gsm8k" / "test.cache.jsonl").exists()  # before any file or request


def test_a_batch_the_server_lost_is_sent_again(tmp_path):
    src = write_rows(tmp_path, ROWS[:2])
    with FakeBatchServer(responder=responder) as srv:
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST)) == 0
        src.with_name("test.cache.jsonl").unlink()
        for fid in [f for f, (_, purpose, _) in srv.files.items() if purpose == "batch_output"]:
            del srv.files[fid]  # the results expired on the server
        assert main(prompt_args(tmp_path, srv.url, "--backend", "openai-batch", *FAST)) == 0
        assert (srv.uploads, srv.batches_created) == (2, 2)
    states = sorted((json.loads(p.read_text()) for p in (tmp_path / ".openai-batch").glob("*.json")),
                    key=lambda r: r["created"])
    assert [s["status"] for s in states] == ["lost", "completed"] and "is gone" in states[0]["note"]
    assert all(all(r["responses"]) for r in enriched(src))
