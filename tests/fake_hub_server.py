"""A local stand-in for the Hugging Face Hub: the few endpoints ``datasets.load_dataset("owner/name")`` and
``huggingface_hub.DatasetCard.load`` use (file resolve with HEAD/GET, repo info, tree listing), serving
dataset repositories held in memory. Point ``HF_ENDPOINT`` at :attr:`FakeHub.url` in a child process.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse

COMMIT = "a" * 40


class FakeHub:
    """``FakeHub({"owner/name": {"README.md": b"...", "main/test-00000-of-00001.parquet": b"..."}})``."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.log: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes = b"", headers=()) -> None:
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, obj) -> None:
                self._send(200, json.dumps(obj).encode(), [("Content-Type", "application/json")])

            def _tree(self, files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
                prefix = prefix.strip("/")
                out, dirs = [], set()
                for path, data in sorted(files.items()):
                    if prefix and not path.startswith(prefix + "/"):
                        continue
                    rest = path[len(prefix) + 1:] if prefix else path
                    if "/" in rest and not recursive:
                        dirs.add(f"{prefix}/{rest.split('/')[0]}" if prefix else rest.split("/")[0])
                        continue
                    out.append({"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()})
                return [{"type": "directory", "path": d, "oid": COMMIT} for d in sorted(dirs)] + out

            def _route(self) -> None:
                url = urllib.parse.urlparse(self.path)
                parts = url.path.strip("/").split("/")
                hub.log.append(f"{self.command} {url.path}")
                if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                    repo, rest = "/".join(parts[2:4]), parts[4:]
                    files = hub.repos.get(repo)
                    if files is None:
                        return self._send(404, b'{"error": "Repository not found"}', [("X-Error-Code", "RepoNotFound")])
                    if not rest or rest[0] == "revision":
                        return self._json({"id": repo, "_id": repo, "sha": COMMIT, "private": False, "disabled": False,
                                           "gated": False, "downloads": 0, "likes": 0, "tags": [],
                                           "lastModified": "2024-01-01T00:00:00.000Z",
                                           "siblings": [{"rfilename": p} for p in sorted(files)]})
                    if rest[0] == "tree":
                        recursive = urllib.parse.parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                        return self._json(self._tree(files, "/".join(rest[2:]), recursive))
                if len(parts) >= 5 and parts[0] == "datasets" and parts[3] == "resolve":
                    files = hub.repos.get("/".join(parts[1:3]), {})
                    path = urllib.parse.unquote("/".join(parts[5:]))
                    if path not in files:
                        return self._send(404, b"", [("X-Error-Code", "EntryNotFound"), ("X-Repo-Commit", COMMIT)])
                    data = files[path]
                    return self._send(200, data, [("X-Repo-Commit", COMMIT),
                                                  ("ETag", f'"{hashlib.sha1(data).hexdigest()}"')])
                return self._send(404)

            do_GET = do_HEAD = do_POST = _route

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
