"""``--base-url`` is checked before anything is sent: a malformed URL or a host that does not
resolve is one line and exit 2, with no retries, no request and no output file."""

from __future__ import annotations

import json
import time

import pytest
from fake_openai_server import FakeTeacherServer

from distill.commands import main
from distill.prompting.backends import get_backend
from distill.prompting.backends.url import BaseURLError, check_base_url


def write_source(tmp_path):
    src = tmp_path / "gsm8k" / "test.jsonl"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(json.dumps({"id": "a", "question": "What is 1 plus 1?", "gold_answer": "2"}) + "\n")
    return src


def prompt(tmp_path, url, *extra):
    return main(["prompt", "--root", str(tmp_path), "--dataset", "gsm8k", "--n", "2", "--model", "m",
                 "--base-url", url, "--no-progress", *extra])


@pytest.fixture
def server():
    with FakeTeacherServer() as srv:
        yield srv


@pytest.mark.parametrize("url_of", [
    lambda s: "not-a-url",
    lambda s: f"ftp://127.0.0.1:{s.port}/v1",  # a live server behind it: not one request may reach it
    lambda s: f"127.0.0.1:{s.port}/v1",  # scheme forgotten
    lambda s: "http:///v1",  # no host
    lambda s: "http://[::1/v1",  # raised httpx InvalidURL from inside the run (a traceback) on HEAD
    lambda s: f"http://127.0.0.1:{s.port} /v1",
    lambda s: "http://127.0.0.1:99999/v1",  # port out of range
    lambda s: "http://no-such-host.invalid/v1",  # RFC 6761: never resolves
])
def test_bad_base_url_is_one_line_exit_2_without_requests(tmp_path, capsys, server, url_of):
    src = write_source(tmp_path)
    url = url_of(server)
    t0 = time.perf_counter()
    # generous retry settings: on HEAD these URLs were retried as connection faults
    rc = prompt(tmp_path, url, "--max-attempts", "6", "--retry-base", "1")
    elapsed = time.perf_counter() - t0
    cap = capsys.readouterr()
    assert rc == 2, (cap.out, cap.err)
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill prompt: error: --base-url"), cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    assert elapsed < 12  # no backoff (HEAD: 1+2+4+8+16 s of retries per path for a malformed URL)
    assert server.requests == 0
    assert sorted(p.name for p in src.parent.iterdir()) == ["test.jsonl"]  # nothing written


def test_judge_checks_the_url_too(tmp_path, capsys):
    write_source(tmp_path)
    rc = main(["judge", "--root", str(tmp_path), "--dataset", "gsm8k", "--model", "m", "--base-url", "ftp://x/v1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--base-url" in err and "scheme 'ftp'" in err and len(err.strip().splitlines()) == 1


def test_good_urls_pass_and_backends_check_themselves(server, monkeypatch):
    for url in ("http://localhost:8000/v1", "https://api.example.com/v1", "http://[::1]:8000/v1",
                "HTTP://127.0.0.1/v1", server.url):
        assert check_base_url(url) == url
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    for name in ("openai", "gemini"):
        with pytest.raises(BaseURLError, match="http:// or https://"):
            get_backend(name, model="m", base_url="not-a-url")
        with pytest.raises(BaseURLError, match="cannot resolve host 'no-such-host.invalid'"):
            get_backend(name, model="m", base_url="http://no-such-host.invalid/v1")


def test_a_good_url_still_works(tmp_path, capsys, server):
    write_source(tmp_path)
    assert prompt(tmp_path, server.url) == 0
    assert server.requests == 2
