"""A real HTTP server of the OpenAI Batch API on 127.0.0.1 for tests (stdlib only).

Implements ``POST /v1/files`` (multipart upload, purpose ``batch``), ``GET /v1/files/<id>/content``,
``POST /v1/batches``, ``GET /v1/batches/<id>`` and ``GET /v1/batches`` (list, newest first). A batch is
``validating`` when created, ``in_progress`` while polled, and is run on the ``polls_to_finish``-th
retrieve (never while :attr:`hold` is set): each input line is answered like the chat fake answers
(``responder(prompt, model)``, usage = word counts) and written to the output file; failed lines go
to the error file in the API's shapes.

Faults: ``line_faults=[("substring", ["500", "expired", ...])]`` serves the listed outcomes to
successive lines whose prompt contains the substring, then answers normally. Line kinds: ``500`` /
``429`` / ``400`` (a non-200 response in the error file), ``expired`` (``error.code`` ``batch_expired``),
``missing`` (no line in either file). ``batch_faults=["failed", "expired", "ok", ...]`` is popped per
batch created: ``failed`` ends the batch as ``failed`` (no files), ``expired`` answers only the first
half of its lines and marks the rest ``batch_expired``. ``create_faults=["lost", ...]`` is popped per
create call: ``lost`` creates the batch but answers 500, as when the answer is lost on the way.

Counters: ``uploads``, ``batches_created``, ``retrieves``, ``downloads``; ``bodies`` holds every
request body of every input file (to check the request shape).
"""

from __future__ import annotations

import json
import threading
import time
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fake_openai_server import Responder, boxed_responder

TERMINAL = ("completed", "failed", "expired", "cancelled")


class FakeBatchServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is the OpenAI base URL."""

    def __init__(self, *, responder: Responder | None = None, polls_to_finish: int = 2,
                 line_faults: list[tuple[str, list[str]]] | None = None, batch_faults: list[str] | None = None,
                 create_faults: list[str] | None = None):
        self.responder = responder or boxed_responder()
        self.polls_to_finish = polls_to_finish
        self.line_faults = [(sub, list(kinds)) for sub, kinds in (line_faults or [])]
        self.batch_faults = list(batch_faults or [])
        self.create_faults = list(create_faults or [])
        self.hold = threading.Event()  # set: batches stay in_progress
        self.lock = threading.Lock()
        self.files: dict[str, tuple[str, str, bytes]] = {}  # id -> (filename, purpose, bytes)
        self.batches: dict[str, dict[str, Any]] = {}
        self._fault_of: dict[str, str] = {}  # batch id -> its scripted batch fault
        self._polls: dict[str, int] = {}
        self.uploads = self.batches_created = self.retrieves = self.downloads = 0
        self.bodies: list[dict[str, Any]] = []
        self._n = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with outer.lock:
                    if path.startswith("/v1/files/") and path.endswith("/content"):
                        f = outer.files.get(path.split("/")[3])
                        if f is None:
                            return self._error(404, "no such file")
                        outer.downloads += 1
                        return self._send(200, f[2], "application/octet-stream")
                    if path == "/v1/batches":
                        data = sorted(outer.batches.values(), key=lambda b: b["_n"], reverse=True)
                        return self._json({"object": "list", "data": [outer._public(b) for b in data],
                                           "has_more": False})
                    if path.startswith("/v1/batches/"):
                        b = outer.batches.get(path.split("/")[3])
                        if b is None:
                            return self._error(404, "no such batch")
                        outer.retrieves += 1
                        outer._advance(b)
                        return self._json(outer._public(b))
                self._error(404, "no such endpoint")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with outer.lock:
                    if self.path == "/v1/files":
                        return self._upload(raw)
                    if self.path == "/v1/batches":
                        return self._create(json.loads(raw or b"{}"))
                self._error(404, "no such endpoint")

            def _upload(self, raw: bytes):
                msg = BytesParser(policy=email_policy).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
                fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                if "file" not in fields or "purpose" not in fields:
                    return self._error(400, "multipart upload needs 'file' and 'purpose'")
                data = fields["file"].get_payload(decode=True)
                purpose = fields["purpose"].get_payload(decode=True).decode()
                fid = outer._id("file")
                outer.files[fid] = (fields["file"].get_filename() or "upload", purpose, data)
                outer.uploads += 1
                self._json({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                            "filename": outer.files[fid][0], "purpose": purpose, "status": "processed"})

            def _create(self, req: dict):
                fid = req.get("input_file_id")
                if fid not in outer.files or outer.files[fid][1] != "batch":
                    return self._error(400, f"input_file_id {fid!r} is not an uploaded batch file")
                if req.get("endpoint") != "/v1/chat/completions" or req.get("completion_window") != "24h":
                    return self._error(400, "endpoint must be /v1/chat/completions and completion_window 24h")
                bid = outer._id("batch")
                outer.batches_created += 1
                outer._fault_of[bid] = outer.batch_faults.pop(0) if outer.batch_faults else "ok"
                outer.batches[bid] = {
                    "id": bid, "object": "batch", "endpoint": req["endpoint"], "input_file_id": fid,
                    "completion_window": "24h", "status": "validating", "created_at": int(time.time()),
                    "output_file_id": None, "error_file_id": None, "errors": None,
                    "metadata": req.get("metadata"), "request_counts": {"total": 0, "completed": 0, "failed": 0},
                    "_n": outer._n}
                if outer.create_faults and outer.create_faults.pop(0) == "lost":
                    return self._error(500, "injected: the batch was created but the answer was lost")
                self._json(outer._public(outer.batches[bid]))

            def _json(self, obj):
                self._send(200, json.dumps(obj).encode(), "application/json")

            def _error(self, code, msg):
                self._send(code, json.dumps({"error": {"message": msg, "code": code}}).encode(), "application/json")

            def _send(self, code, data, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self._n:04d}"

    @staticmethod
    def _public(b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def _advance(self, b: dict) -> None:
        if b["status"] in TERMINAL:
            return
        self._polls[b["id"]] = self._polls.get(b["id"], 0) + 1
        b["status"] = "in_progress"
        if not self.hold.is_set() and self._polls[b["id"]] >= self.polls_to_finish:
            self._run(b)

    def _line_fault(self, prompt: str) -> str:
        for sub, kinds in self.line_faults:
            if sub in prompt and kinds:
                return kinds.pop(0)
        return "ok"

    def _run(self, b: dict) -> None:
        fault = self._fault_of[b["id"]]
        if fault == "failed":
            b.update(status="failed", errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "injected: the batch failed validation", "line": None}]})
            return
        lines = [json.loads(x) for x in self.files[b["input_file_id"]][2].decode().splitlines() if x.strip()]
        out, err = [], []
        for i, line in enumerate(lines):
            body = line["body"]
            self.bodies.append(body)
            prompt = body["messages"][-1]["content"]
            kind = "expired" if fault == "expired" and i >= len(lines) // 2 else self._line_fault(prompt)
            rid = {"id": f"batch_req_{self._n}_{i}", "custom_id": line["custom_id"]}
            if kind == "missing":
                continue
            if kind == "expired":
                err.append({**rid, "response": None, "error": {
                    "code": "batch_expired", "message": "This request could not be executed before the "
                                                        "completion window expired."}})
            elif kind in ("500", "429", "400"):
                err.append({**rid, "error": None, "response": {"status_code": int(kind), "request_id": "req",
                                                               "body": {"error": {"message": f"injected {kind}"}}}})
            else:
                text = self.responder(prompt, body["model"])
                pt, ct = len(prompt.split()), len(text.split())
                completion = {"id": "chatcmpl-batch", "object": "chat.completion", "created": int(time.time()),
                              "model": body["model"],
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": text}}],
                              "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}
                out.append({**rid, "error": None,
                            "response": {"status_code": 200, "request_id": "req", "body": completion}})
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = self._id("file")
                self.files[fid] = (f"{b['id']}_{name}.jsonl", "batch_output",
                                   "".join(json.dumps(r) + "\n" for r in rows).encode())
                b[name] = fid
        b["status"] = "expired" if fault == "expired" else "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(lines) - len(out)}

    def start(self) -> "FakeBatchServer":
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeBatchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
