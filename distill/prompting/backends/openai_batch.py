"""``--backend openai-batch``: the OpenAI Batch API (about half the price of the chat endpoint).

It fits the one-request :class:`~distill.prompting.backend.Backend` protocol: :meth:`complete` puts
the request on a queue and awaits a future. A flusher sends the queue as one batch once it holds
``batch_size`` requests or no request has joined it for ``batch_idle`` seconds: it uploads a JSONL
of ``/v1/chat/completions`` requests to ``/v1/files``, creates the batch at ``/v1/batches``, polls it
every ``batch_poll`` seconds and, when it ends, downloads the output and error files and resolves
each request's future. The engine's cache, verification and outputs are the same as for ``openai``.

Resumable: each request's ``custom_id`` is the path's cache key, and every batch started is recorded
in the batch folder (:mod:`distill.prompting.backends.batch_state`) before it can cost anything. A
rerun asks only what the cache lacks; a request found in a recorded batch waits for (or re-reads) that
batch instead of being sent again, so a run killed while its batch is running pays once.

Partial failures go back through the engine's normal retry path: a failed line (error file, a non-200
status, a batch that expired, failed or was cancelled, a line missing from the output) is raised as
:class:`RetryableError` (4xx as :class:`RequestRejected`, 401/403/404 as :class:`FatalBackendError`,
exactly as the chat backend maps them), and the engine's retry puts the request into the next batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx2
import openai

from distill.errors import ConfigError
from distill.prompting.backend import Completion, Request, RequestRejected, RetryableError
from distill.prompting.backends.batch_lines import Outcome, api_error, read_result_file
from distill.prompting.backends.batch_state import BatchRecord, BatchStore
from distill.prompting.backends.openai_backend import MissingAPIKeyError
from distill.prompting.backends.url import check_base_url, check_host_resolves
from distill.prompting.cache import cache_key

ENDPOINT = "/v1/chat/completions"
MAX_BATCH = 50_000  # OpenAI's limit of requests per batch file
#: How long a path may wait for its batch: the 24 h completion window plus time to finalise.
BATCH_WAIT_S = 25 * 3600.0
_POLL_FAULTS = 20  # consecutive failed status polls before the waiting requests are failed (and retried)


class OpenAIBatchBackend:
    """Batch-API teacher. ``api_key`` defaults to ``$OPENAI_API_KEY`` (``"EMPTY"`` with a ``base_url``)."""

    name = "openai-batch"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 batch_dir: str | os.PathLike | None = None, batch_poll: float = 30.0, batch_size: int = MAX_BATCH,
                 batch_idle: float | None = None, **_: Any):
        if not batch_poll > 0:
            raise ConfigError(f"--batch-poll must be > 0 seconds (got {batch_poll})")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ConfigError(f"--batch-size must be in 1..{MAX_BATCH} requests (got {batch_size})")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url is None:
                raise MissingAPIKeyError("OPENAI_API_KEY is not set; export it (keys are read from the environment "
                                         "only), or pass --base-url for a server with the Batch API")
            key = "EMPTY"
        if base_url is not None:
            check_base_url(base_url)
            check_host_resolves(base_url)
        self.model, self.base_url = model, base_url
        self.poll, self.batch_size = float(batch_poll), int(batch_size)
        self.idle = min(1.0, self.poll) if batch_idle is None else float(batch_idle)
        self.store = BatchStore(Path(batch_dir) if batch_dir is not None else Path(".openai-batch"))
        self.store.check_writable()
        self.records: dict[str, BatchRecord] = {}
        self._index: dict[str, str] = {}  # custom_id -> key of the newest record that can still answer it
        self._unsure: set[str] = set()  # records whose batch may exist though we hold no id (killed, lost answer)
        for rec in self.store.load(model, base_url):
            if rec.input_file_id is None:  # never saved so (the first save follows the upload); nothing to resume
                continue
            self.records[rec.key] = rec
            if rec.batch_id is None:
                self._unsure.add(rec.key)
            for cid in rec.custom_ids:
                if cid not in rec.failed_ids:
                    self._index[cid] = rec.key
        self._futures: dict[str, asyncio.Future] = {}
        self._attached: dict[str, str | None] = {}  # custom_id -> record its future waits on (None: queued)
        self._queue: dict[str, dict[str, Any]] = {}
        self._last_put = 0.0
        self._flusher: asyncio.Task | None = None
        self._pollers: dict[str, asyncio.Task] = {}
        timeout = httpx2.Timeout(300.0, connect=10.0)
        self._http = openai.DefaultAsyncHttpxClient(timeout=timeout)
        self.client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=2, timeout=timeout,
                                         http_client=self._http)

    def custom_id(self, r: Request) -> str:
        return cache_key(model=self.model, prompt=r.prompt, style=r.style, sample_index=r.sample_index,
                         temperature=r.temperature, max_tokens=r.max_tokens)

    async def complete(self, request: Request) -> Completion:
        cid = self.custom_id(request)
        fut = self._futures.get(cid)
        if fut is None:
            fut = self._futures[cid] = asyncio.get_running_loop().create_future()
            key = self._index.get(cid)
            if key is not None:
                self._attached[cid] = key
                self._ensure_poller(key)
            else:
                self._attached[cid] = None
                self._enqueue(cid, {"model": self.model, "messages": request.chat_messages(),
                                    "temperature": request.temperature, "max_tokens": request.max_tokens})
        try:
            # shielded: an engine time-out abandons the wait, not the request; its retry finds the same future
            return await asyncio.shield(fut)
        finally:
            if fut.done() and self._futures.get(cid) is fut:
                del self._futures[cid]

    async def aclose(self) -> None:
        tasks = [t for t in [self._flusher, *self._pollers.values()] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._futures.values():
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: an abandoned failure is not an error to log
            else:
                fut.cancel()
        await self.client.close()

    def _enqueue(self, cid: str, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self._queue[cid] = body
        self._last_put = loop.time()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            while len(self._queue) < self.batch_size:
                wait = self._last_put + self.idle - loop.time()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            items = list(self._queue.items())[:self.batch_size]
            for cid, _ in items:
                del self._queue[cid]
            try:
                await self._submit(items)
            except Exception as exc:  # a bug or an unwritable state file: the waiting requests must hear of it
                self._fail([cid for cid, _ in items], exc, None)

    async def _submit(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        rec = BatchRecord(key=uuid.uuid4().hex, model=self.model, base_url=self.base_url,
                          custom_ids=[cid for cid, _ in items])
        data = "".join(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body},
                                  ensure_ascii=False) + "\n" for cid, body in items).encode("utf-8")
        try:
            f = await self.client.files.create(file=(f"distill-{rec.key}.jsonl", data, "application/jsonl"),
                                               purpose="batch")
        except Exception as exc:
            self._fail(rec.custom_ids, api_error(exc, "uploading the batch input"), None)
            return
        rec.input_file_id, rec.status = f.id, "uploaded"
        self.store.save(rec)
        self.records[rec.key] = rec
        for cid in rec.custom_ids:
            self._index[cid] = rec.key
            if cid in self._futures and self._attached.get(cid) is None:
                self._attached[cid] = rec.key
        self._ensure_poller(rec.key)

    def _ensure_poller(self, key: str) -> None:
        task = self._pollers.get(key)
        if task is None or task.done():
            self._pollers[key] = asyncio.create_task(self._follow(self.records[key]))

    async def _follow(self, rec: BatchRecord) -> None:
        try:
            if rec.batch_id is None:
                await self._create(rec)
            outcomes, default = await self._results(rec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(rec.custom_ids, exc, rec.key, forget=isinstance(exc, RequestRejected))
            return
        failed = [cid for cid in rec.custom_ids if not isinstance(outcomes.get(cid, default), Completion)]
        if failed != rec.failed_ids:
            rec.failed_ids = failed
            self.store.save(rec)
        self._forget(rec.key, failed)  # never answer these requests from this batch again
        for cid in rec.custom_ids:
            self._resolve(cid, rec.key, outcomes.get(cid, default))

    async def _create(self, rec: BatchRecord) -> None:
        """Create the batch of an uploaded file, unless a killed run (or a create whose answer was lost)
        already did: then it is found with ``GET /v1/batches`` by its metadata, and not paid for twice."""
        try:
            seen = 0
            if rec.key in self._unsure:  # a create may have reached the server: look before paying twice
                async for b in self.client.batches.list(limit=100):  # newest first; ours is recent
                    seen += 1
                    if (b.metadata or {}).get("distill_batch") == rec.key or b.input_file_id == rec.input_file_id:
                        rec.batch_id = b.id
                    if rec.batch_id or seen >= 1000:
                        break
            if rec.batch_id is None:
                b = await self.client.with_options(max_retries=0).batches.create(
                    input_file_id=rec.input_file_id, endpoint=ENDPOINT, completion_window="24h",
                    metadata={"distill_batch": rec.key})
                rec.batch_id = b.id
        except Exception as exc:
            err = api_error(exc, "creating the batch")
            self._unsure.add(rec.key)
            if not isinstance(err, RetryableError):  # refused for good: forget it, a retry uploads anew
                self.store.drop(rec)
                self.records.pop(rec.key, None)
                self._forget(rec.key, rec.custom_ids)
            raise err from None
        rec.status = "submitted"
        self.store.save(rec)

    async def _results(self, rec: BatchRecord) -> tuple[dict[str, Outcome], Outcome]:
        """Wait for the batch to end; each request's outcome, and the one of a request with no line."""
        if not rec.done:
            faults = 0
            while True:
                try:
                    b = await self.client.batches.retrieve(rec.batch_id)
                except openai.NotFoundError:
                    raise self._lost(rec, f"the server does not know batch {rec.batch_id}") from None
                except Exception as exc:
                    err = api_error(exc, f"polling batch {rec.batch_id}")
                    faults += 1
                    if not isinstance(err, RetryableError) or faults >= _POLL_FAULTS:
                        raise err from None
                else:
                    faults = 0
                    if b.status in ("completed", "failed", "expired", "cancelled"):
                        break
                await asyncio.sleep(self.poll)
            rec.status, rec.output_file_id, rec.error_file_id = b.status, b.output_file_id, b.error_file_id
            errors = [e.message or e.code for e in (b.errors.data or [])] if b.errors else []
            rec.note = "; ".join(str(e) for e in errors if e)[:300] or None
            self.store.save(rec)
        outcomes: dict[str, Outcome] = {}
        for file_id in (rec.output_file_id, rec.error_file_id):
            if not file_id:
                continue
            try:
                content = await self.client.files.content(file_id)
            except openai.NotFoundError:
                raise self._lost(rec, f"batch {rec.batch_id}'s result file {file_id} is gone") from None
            except Exception as exc:
                raise api_error(exc, f"downloading batch file {file_id}") from None
            read_result_file(content.text, outcomes)
        if rec.status == "completed":
            missing = RetryableError(f"batch missing line: batch {rec.batch_id} completed without this request")
        else:
            missing = RetryableError(f"batch {rec.status}: batch {rec.batch_id} did not answer this request"
                                     + (f" ({rec.note})" if rec.note else ""))
        return outcomes, missing

    def _lost(self, rec: BatchRecord, why: str) -> RetryableError:
        """The server no longer has this batch (or its results): never use the record again; its requests
        are retried, so they go into a new batch."""
        rec.status, rec.failed_ids, rec.note = "lost", list(rec.custom_ids), why
        self.store.save(rec)
        self._forget(rec.key, rec.custom_ids)
        return RetryableError(f"batch lost: {why}")

    def _resolve(self, cid: str, key: str | None, out: Outcome) -> None:
        fut = self._futures.get(cid)
        if fut is None or fut.done() or self._attached.get(cid) != key:
            return
        if isinstance(out, BaseException):
            fut.set_exception(out)
        else:
            fut.set_result(out)

    def _forget(self, key: str, cids: list[str]) -> None:
        for cid in cids:
            if self._index.get(cid) == key:
                del self._index[cid]

    def _fail(self, cids: list[str], exc: BaseException, key: str | None, *, forget: bool = False) -> None:
        if forget and key is not None:
            self._forget(key, cids)
        for cid in cids:
            self._resolve(cid, key, exc)
