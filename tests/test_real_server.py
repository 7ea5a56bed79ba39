"""``distill prompt`` against a real OpenAI-compatible server that is not ours: ``transformers serve``.

The server runs offline (``HF_HUB_OFFLINE=1``) on a tiny local Qwen2 built by the test, pinned with
the folder as its ``FORCE_MODEL`` argument, so ``--model`` must be that folder's path (the server
answers 400 to any other name). A recording proxy between ``distill`` and the server keeps every
request and answer, so the test checks what really went over the wire: the model name, one user
message holding the prompt, ``max_tokens`` and ``temperature``, no ``n`` (one request per path), and
that the usage the server reported is what the summary counts. The server's ``prompt_tokens`` must
equal the length of the model's own chat template applied to the message.

Slow (about 30-60 s on CPU: the server's start-up imports torch and FastAPI, then loads the model).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "gold_answer": str(2 * i)} for i in range(3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingProxy:
    """Forwards every request to ``target`` and records (path, request JSON, status, answer JSON)."""

    def __init__(self, target: str):
        self.records: list[tuple[str, dict, int, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = urllib.request.Request(target + self.path, data=raw, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        code, body = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    code, body = exc.code, exc.read()
                outer.records.append((self.path, json.loads(raw), code, json.loads(body or b"{}")))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served_model(tmp_path):
    """A tiny Qwen2 folder served by ``transformers serve`` on a free port: (folder, base URL, start-up s)."""
    pytest.importorskip("fastapi", reason="transformers serve needs the serving extra: pip install transformers[serving]")
    pytest.importorskip("uvicorn", reason="transformers serve needs the serving extra: pip install transformers[serving]")
    from transformers import GenerationConfig

    from distill.models.tiny import make_tiny_student

    folder = make_tiny_student(tmp_path / "tiny-qwen2", "qwen2")
    # greedy decoding of a random model repeats one token (here "\n": an empty answer); sampling writes text
    gen = GenerationConfig.from_pretrained(folder)
    gen.do_sample = True
    gen.save_pretrained(folder)
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.skip(f"no transformers command beside {sys.executable}")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp_path / "serve.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(exe), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--default-seed", "0", "--log-level", "info"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited {proc.returncode}: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            if time.monotonic() - t0 > 150:
                pytest.fail(f"transformers serve not up in 150 s: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as resp:
                    models = json.loads(resp.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert [m["id"] for m in models["data"]] == [str(folder)]
        yield folder, url, time.monotonic() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_distill_prompt_against_transformers_serve(tmp_path, served_model, capsys):
    from transformers import AutoTokenizer

    from distill.commands import main

    folder, url, startup_s = served_model
    proxy = RecordingProxy(url)
    src = tmp_path / "data" / "gsm8k" / "test.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    summary = tmp_path / "summary.json"
    t0 = time.monotonic()
    try:
        rc = main(["prompt", "--root", str(tmp_path / "data"), "--dataset", "gsm8k", "--n", "2", "--styles", "cot,plain",
                   "--base-url", proxy.url, "--model", str(folder), "--max-tokens", "12", "--temperature", "0.7",
                   "--concurrency", "2", "--retry-base", "0.1", "--no-progress", "--summary-json", str(summary)])
    finally:
        proxy.stop()
    out = capsys.readouterr().out
    assert rc == 0, out
    enriched = [json.loads(x) for x in src.with_name("test.enriched.jsonl").read_text().splitlines()]
    prompts = {p for r in enriched for p in r["prompts"]}
    assert len(prompts) == 6 and all(all(r["responses"]) for r in enriched)
    tok = AutoTokenizer.from_pretrained(folder)
    answered = [rec for rec in proxy.records if rec[2] == 200 and rec[3]["choices"][0]["message"]["content"].strip()]
    assert len(answered) == 6  # one request per path; an empty answer (rare) would have been asked again
    for path, body, _, resp in proxy.records:
        assert path == "/v1/chat/completions"
        assert body["model"] == str(folder) and body["max_tokens"] == 12 and body["temperature"] == 0.7
        assert body.get("n", 1) == 1  # paths are separate requests (transformers serve ignores n anyway)
        assert [m["role"] for m in body["messages"]] == ["user"] and body["messages"][0]["content"] in prompts
        assert resp["model"] == str(folder)
        ids = tok.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert resp["usage"]["prompt_tokens"] == len(ids)
        assert 0 < resp["usage"]["completion_tokens"] <= 12
    s = json.loads(summary.read_text())
    assert s["prompt_tokens"] == sum(r[3]["usage"]["prompt_tokens"] for r in proxy.records)
    assert s["completion_tokens"] == sum(r[3]["usage"]["completion_tokens"] for r in proxy.records)
    got = {r["id"]: r["finish_reasons"] for r in enriched}
    assert all(f in ("stop", "length") for fs in got.values() for f in fs)
    print(f"transformers serve: up in {startup_s:.1f} s; distill prompt (6 paths) {time.monotonic() - t0:.1f} s")
