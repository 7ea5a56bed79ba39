"""Reading the Batch API's answers: result lines, and the files/batches calls' errors, as the engine's outcomes.

Mapped exactly as the chat backend maps an HTTP answer: 429/408/409/5xx and transport faults are
:class:`RetryableError`, 401/403/404 :class:`FatalBackendError` (the same for every request), other 4xx
:class:`RequestRejected` (this request only). A line's ``error`` (``batch_expired``,
``batch_cancelled``, ``request_timeout``) is retryable: the request was never answered.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from distill.prompting.backend import (
    EMPTY_AT_LIMIT, Completion, FatalBackendError, RequestRejected, RetryableError,
)
from distill.prompting.backends.openai_backend import _server_message

Outcome = Completion | BaseException


def _status_error(exc: openai.APIStatusError, what: str) -> BaseException:
    code, msg = exc.status_code, _server_message(exc)
    if code in (401, 403):
        return FatalBackendError(f"the server answered {code} to {what} ({msg}); check the API key and --base-url")
    if code == 404:
        return FatalBackendError(f"the server answered 404 to {what} ({msg}); does --base-url serve the Batch API "
                                 "(/v1/files, /v1/batches)? vLLM, Ollama and llama.cpp do not: use --backend openai")
    if code in (408, 409, 429) or code >= 500:
        return RetryableError(f"http {code}: {what}: {msg}")
    return RequestRejected(f"http {code}: {what}: {msg}")


def api_error(exc: Exception, what: str) -> BaseException:
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, what)
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError, ValueError)):
        return RetryableError(f"connection: {what}: {exc.__cause__ or exc}")
    raise exc


def _count(d: Any, name: str) -> int:
    v = d.get(name) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def completion_of(body: Any) -> Outcome:
    """A chat-completion body (a dict from the output file) as a Completion or the error to raise."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        return RetryableError("no choices: the batch result had no choices")
    choice = body["choices"][0] if isinstance(body["choices"][0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text, finish = message.get("content"), choice.get("finish_reason")
    u = body.get("usage")
    prompt = _count(u, "prompt_tokens")
    usage = Completion("", prompt, _count(u, "completion_tokens"),
                       cached_tokens=min(prompt, _count(u.get("prompt_tokens_details") if isinstance(u, dict)
                                                        else None, "cached_tokens")))
    if not isinstance(text, str) or not text.strip():
        if finish == "length":
            return RequestRejected(EMPTY_AT_LIMIT, usage=usage)
        return RetryableError("empty: the batch result had empty content", usage=usage)
    return Completion(text, usage.prompt_tokens, usage.completion_tokens,
                      finish_reason=str(finish) if finish else None, cached_tokens=usage.cached_tokens)


def line_outcome(line: Any) -> tuple[str | None, Outcome]:
    """``(custom_id, outcome)`` of one line of a batch's output or error file."""
    if not isinstance(line, dict):
        return None, RetryableError("batch: a result line is not a JSON object")
    cid = line.get("custom_id") if isinstance(line.get("custom_id"), str) else None
    err, resp = line.get("error"), line.get("response")
    if isinstance(err, dict) and (err.get("code") or err.get("message")):
        return cid, RetryableError(f"batch {err.get('code') or 'error'}: {str(err.get('message') or '')[:200]}")
    if not isinstance(resp, dict):
        return cid, RetryableError("batch: the result line has no response")
    status, body = resp.get("status_code"), resp.get("body")
    if status == 200:
        return cid, completion_of(body)
    inner = body.get("error") if isinstance(body, dict) else None
    msg = str(inner.get("message") if isinstance(inner, dict) else inner or body)[:200]
    if not isinstance(status, int) or status in (408, 409, 429) or status >= 500:
        return cid, RetryableError(f"http {status}: {msg}")
    if status in (401, 403, 404):
        return cid, FatalBackendError(f"the batch answered {status} for a request ({msg}); check --model and the key")
    return cid, RequestRejected(f"http {status}: {msg}")


def read_result_file(text: str, outcomes: dict[str, Outcome]) -> None:
    """Add each line of an output or error file to ``outcomes`` (an answer is never replaced by an error;
    a line that is not JSON or names no request is skipped: its request then counts as unanswered)."""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            cid, out = line_outcome(json.loads(raw))
        except ValueError:
            continue
        if cid is not None and not isinstance(outcomes.get(cid), Completion):
            outcomes[cid] = out
