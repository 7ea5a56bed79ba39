"""OpenAI-compatible chat backend (OpenAI, vLLM, Ollama, llama.cpp, ...).

Uses ``openai.AsyncOpenAI`` with ``max_retries=0`` over one shared pooled HTTP client:
retries, backoff and timeouts belong to the engine so every backend behaves alike and the
summary counts every attempt. This module maps the SDK's exceptions onto the three
outcomes the engine understands: retry, fail this path, or stop the run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx2
import openai

from distill.errors import DistillError
from distill.prompting.backend import (
    EMPTY_AT_LIMIT, Completion, FatalBackendError, Request, RequestRejected, RequestTimedOut, RetryableError,
)
from distill.prompting.backends.url import check_base_url, check_host_resolves


class MissingAPIKeyError(DistillError):
    """No key in the environment: reported before any work is done."""


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (numeric form); None if absent or a date."""
    if headers is None:
        return None
    for name, div in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        val = headers.get(name)
        if val is None:
            continue
        try:
            return max(0.0, float(val) / div)
        except ValueError:
            continue
    return None


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:200]
    return str(exc)[:200]


def token_count(obj: Any, name: str) -> int:
    try:
        return max(0, int(getattr(obj, name, 0) or 0))
    except (TypeError, ValueError):
        return 0


def usage_of(resp: Any) -> Completion:
    """The response's ``usage`` as token counts (text empty): prompt, completion, and the cached part of
    the prompt (``usage.prompt_tokens_details.cached_tokens``; servers that do not send it count 0)."""
    usage = getattr(resp, "usage", None)
    cached = token_count(getattr(usage, "prompt_tokens_details", None), "cached_tokens")
    prompt = token_count(usage, "prompt_tokens")
    return Completion("", prompt, token_count(usage, "completion_tokens"), cached_tokens=min(cached, prompt))


def _timeout(seconds: float) -> httpx2.Timeout:
    """One attempt's HTTP time-out (the engine raises it for a retried time-out)."""
    return httpx2.Timeout(seconds, connect=min(10.0, seconds))


class OpenAIBackend:
    """Chat-completions teacher. ``api_key`` defaults to ``$OPENAI_API_KEY``; with a
    ``base_url`` (local server) a missing key is replaced by ``"EMPTY"``, as vLLM expects."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 request_timeout: float = 60.0, concurrency: int = 16, **_: Any):
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url is None:
                raise MissingAPIKeyError(
                    "OPENAI_API_KEY is not set; export it (keys are read from the environment only), "
                    "or pass --base-url for a local OpenAI-compatible server")
            key = "EMPTY"
        if base_url is not None:
            check_base_url(base_url)
            check_host_resolves(base_url)
        self.model = model
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = httpx2.Timeout(request_timeout, connect=min(10.0, request_timeout))
        self._http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)
        self.client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout,
                                         http_client=self._http)

    async def complete(self, request: Request) -> Completion:
        try:
            resp = await self.client.chat.completions.create(
                model=self.model,
                messages=request.chat_messages(),
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                **({"timeout": _timeout(request.timeout)} if request.timeout else {}),
            )
        except openai.APIStatusError as exc:
            code = exc.status_code
            msg = _server_message(exc)
            if code == 429 or code == 408 or code == 409 or code >= 500:
                raise RetryableError(f"http {code}: {msg}", retry_after=parse_retry_after(exc.response.headers)) from None
            if code in (401, 403, 404):
                raise FatalBackendError(f"the server answered {code} ({msg}); check the API key, "
                                        f"--model {self.model!r} and --base-url") from None
            raise RequestRejected(f"http {code}: {msg}") from None
        except openai.APITimeoutError:
            raise RequestTimedOut("timeout: the HTTP request timed out") from None
        except openai.APIConnectionError as exc:
            raise RetryableError(f"connection: {exc.__cause__ or exc}") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RetryableError(f"bad body: {type(exc).__name__}") from None
        if isinstance(resp, str):  # the SDK hands back text when the body was not JSON
            raise RetryableError("bad body: the 200 response was not JSON")
        choices = getattr(resp, "choices", None)
        if not choices:
            raise RetryableError("no choices: the 200 response had no choices")
        message = getattr(choices[0], "message", None)
        finish = getattr(choices[0], "finish_reason", None)
        text = getattr(message, "content", None)
        usage = usage_of(resp)
        if not text or not str(text).strip():
            if finish == "length":  # the limit ran out before any answer text: asking again gets the same
                raise RequestRejected(EMPTY_AT_LIMIT, usage=usage)
            raise RetryableError("empty: the 200 response had empty content", usage=usage)
        return Completion(str(text), usage.prompt_tokens, usage.completion_tokens,
                          finish_reason=str(finish) if finish else None, cached_tokens=usage.cached_tokens)

    async def aclose(self) -> None:
        await self.client.close()
