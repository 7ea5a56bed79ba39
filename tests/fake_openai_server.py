"""A real HTTP teacher server on 127.0.0.1 for tests and benchmarks (stdlib only).

Speaks the OpenAI chat-completions API (``POST /v1/chat/completions``) and the Gemini
``generateContent`` API (``POST /v1beta/models/<model>:generateContent``), with
configurable latency and scripted fault injection, and counts every request so tests
can assert how many were (re-)asked.

Faults are scripted per prompt: ``faults=[("substring", ["429", "500", "ok"])]`` serves
the listed outcomes to successive requests whose prompt contains the substring, then
answers normally. Kinds: ``429`` (with Retry-After), ``500``, ``503``, ``hang``
(sleeps past the client's timeout), ``badjson`` (200, body not JSON), ``nochoices``,
``empty`` (200, empty content), ``400``, ``401``.

``serial=True`` models a slow local teacher (a CPU server generating one answer at a time):
requests are served strictly one after another in arrival order, each taking ``latency``, and a
request whose client has given up is still generated (the server does not notice), so abandoned
requests form a backlog that delays every later one. ``generated`` counts answers generated.

``finish_reasons=[("substring", "length")]`` makes answers to matching prompts report that finish
reason (OpenAI ``finish_reason``; for Gemini ``length`` is sent as ``MAX_TOKENS``), and
``truncate_at`` cuts their text to that many characters, as a token limit would.

Multi-turn requests (``--repair-rounds``): the responder gets the *last* user turn as its prompt
(OpenAI ``messages[-1]``, Gemini ``contents[-1]``), and every OpenAI request with more than one message
is kept as sent in ``conversations``.

Usage: ``prompt_tokens`` is the prompt's word count and ``completion_tokens`` the answer's.
``cached_tokens=K`` also reports ``min(K, prompt_tokens)`` of the prompt as served from the
provider's prompt cache (OpenAI ``usage.prompt_tokens_details.cached_tokens``, Gemini
``cachedContentTokenCount``); ``thoughts_tokens=T`` adds Gemini's ``thoughtsTokenCount``.
Without them the usage is sent as before (no details).

Standalone: ``python tests/fake_openai_server.py --latency 1.0`` prints ``PORT <n>``
and serves until killed; ``GET /stats`` returns the counters as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Responder = Callable[[str, str], str]  # (prompt, model) -> text


def boxed_responder(answers: dict[str, str] | None = None, default: str = "42") -> Responder:
    """Answer ``\\boxed{answers[question]}`` for the question found in the prompt."""
    answers = answers or {}

    def respond(prompt: str, model: str) -> str:
        m = re.search(r"Question: (.*?)\n", prompt)
        q = m.group(1).strip() if m else ""
        return f"Reasoning about it step by step. So the result is \\boxed{{{answers.get(q, default)}}}."

    return respond


class FakeTeacherServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is the OpenAI base URL."""

    def __init__(self, *, latency: float = 0.0, responder: Responder | None = None,
                 faults: list[tuple[str, list[str]]] | None = None, retry_after: float = 0.2,
                 hang_s: float = 30.0, port: int = 0, serial: bool = False,
                 finish_reasons: list[tuple[str, str]] | None = None, truncate_at: int | None = None,
                 cached_tokens: int | None = None, thoughts_tokens: int | None = None):
        self.latency = latency
        self.cached_tokens = cached_tokens
        self.thoughts_tokens = thoughts_tokens
        self.serial = serial
        self.finish_reasons = list(finish_reasons or [])
        self.truncate_at = truncate_at
        self.generated = 0
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self.responder = responder or boxed_responder()
        self.faults = [(sub, list(kinds)) for sub, kinds in (faults or [])]
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.lock = threading.Lock()
        self.requests = 0  # every request received
        self.answered = 0  # 200 with a good answer
        self.by_kind: Counter = Counter()
        self.prompts: Counter = Counter()  # prompt -> requests received
        self.auth_headers: list[str] = []
        self.conversations: list[list[dict]] = []  # OpenAI requests with more than one message, as sent
        self.in_flight = 0
        self.max_in_flight = 0
        self.stop_event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path == "/stats":
                    self._send(200, json.dumps(outer.stats()).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                gemini = ":generateContent" in self.path
                if gemini:
                    model = self.path.split("/models/", 1)[-1].split(":", 1)[0]
                    prompt = body["contents"][-1]["parts"][0]["text"]
                    auth = self.headers.get("x-goog-api-key", "")
                elif self.path.endswith("/chat/completions"):
                    model = body.get("model", "")
                    prompt = body["messages"][-1]["content"]
                    auth = self.headers.get("Authorization", "")
                    if len(body["messages"]) > 1:
                        with outer.lock:
                            outer.conversations.append(body["messages"])
                else:
                    self._send(404, b'{"error": {"message": "no such endpoint"}}')
                    return
                kind = outer._next_fault(prompt, auth)
                with outer.lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer.serial:
                        outer._generate_in_turn()
                    elif outer.latency:
                        outer.stop_event.wait(outer.latency)
                    self._respond(kind, prompt, model, gemini)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def _respond(self, kind, prompt, model, gemini):
                err = lambda code, msg: json.dumps({"error": {"code": code, "message": msg}}).encode()
                if kind == "429":
                    self._send(429, err(429, "rate limited"), {"Retry-After": f"{outer.retry_after:g}"})
                elif kind in ("500", "503", "400", "401"):
                    self._send(int(kind), err(int(kind), f"injected {kind}"))
                elif kind == "hang":
                    outer.stop_event.wait(outer.hang_s)
                    self._send(500, err(500, "hung"))
                elif kind == "badjson":
                    self._send(200, b"<html>502 Bad Gateway from a proxy</html>", ctype="application/json")
                elif kind == "nochoices":
                    self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                                "model": model, "choices": []}).encode())
                else:
                    text = "" if kind == "empty" else outer.responder(prompt, model)
                    finish = next((r for sub, r in outer.finish_reasons if sub in prompt), "stop")
                    if finish == "length" and outer.truncate_at is not None:
                        text = text[:outer.truncate_at]
                    pt, ct = len(prompt.split()), len(text.split())
                    cached = None if outer.cached_tokens is None else min(outer.cached_tokens, pt)
                    if gemini:
                        g_finish = {"stop": "STOP", "length": "MAX_TOKENS"}.get(finish, finish.upper())
                        um = {"promptTokenCount": pt, "candidatesTokenCount": ct,
                              "totalTokenCount": pt + ct + (outer.thoughts_tokens or 0)}
                        if cached is not None:
                            um["cachedContentTokenCount"] = cached
                        if outer.thoughts_tokens is not None:
                            um["thoughtsTokenCount"] = outer.thoughts_tokens
                        payload = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                                   "finishReason": g_finish, "index": 0}],
                                   "usageMetadata": um}
                    else:
                        payload = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                                   "model": model,
                                   "choices": [{"index": 0, "finish_reason": finish,
                                                "message": {"role": "assistant", "content": text}}],
                                   "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}
                        if cached is not None:
                            payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
                    self._send(200, json.dumps(payload).encode())
                    if kind != "empty":
                        with outer.lock:
                            outer.answered += 1

            def _send(self, code, data, headers=None, ctype="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # 64+ clients connect at once; the default backlog of 5 drops SYNs

        self.httpd = Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.root_url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def _next_fault(self, prompt: str, auth: str) -> str:
        with self.lock:
            self.requests += 1
            self.prompts[prompt] += 1
            self.auth_headers.append(auth)
            kind = "ok"
            for sub, kinds in self.faults:
                if sub in prompt and kinds:
                    kind = kinds.pop(0)
                    break
            self.by_kind[kind] += 1
            return kind

    def _generate_in_turn(self) -> None:
        """Wait for this request's turn (arrival order), then take ``latency`` to "generate" it,
        whether or not its client is still waiting."""
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket and not self.stop_event.is_set():
                self._turn.wait(0.05)
        try:
            self.stop_event.wait(self.latency)
            with self.lock:
                self.generated += 1
        finally:
            with self._turn:
                self._serving += 1
                self._turn.notify_all()

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "answered": self.answered, "by_kind": dict(self.by_kind),
                    "max_in_flight": self.max_in_flight, "distinct_prompts": len(self.prompts),
                    "generated": self.generated}

    def start(self) -> "FakeTeacherServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeTeacherServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--serial", action="store_true", help="one request at a time, abandoned ones still generated")
    args = ap.parse_args(argv)
    server = FakeTeacherServer(latency=args.latency, port=args.port, serial=args.serial)
    print(f"PORT {server.port}", flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
