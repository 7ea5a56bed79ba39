"""Gemini backend (google-genai), with the SDK's own retries off: the engine retries.

``base_url`` points the SDK at another endpoint (a proxy, or the tests' local server);
the key comes from ``$GOOGLE_API_KEY`` or ``$GEMINI_API_KEY`` only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from distill.prompting.backend import (
    EMPTY_AT_LIMIT, Completion, FatalBackendError, Request, RequestRejected, RequestTimedOut, RetryableError,
)
from distill.prompting.backends.openai_backend import MissingAPIKeyError, parse_retry_after, token_count
from distill.prompting.backends.url import check_base_url, check_host_resolves

#: Gemini's finish reasons in the OpenAI vocabulary (what ``finish_reasons`` records); others are lower-cased.
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                  "PROHIBITED_CONTENT": "content_filter", "BLOCKLIST": "content_filter", "SPII": "content_filter",
                  "IMAGE_SAFETY": "content_filter", "RECITATION": "recitation",
                  "FINISH_REASON_UNSPECIFIED": None}


def map_finish_reason(reason: Any) -> str | None:
    """``FinishReason.MAX_TOKENS`` (or the string) -> ``"length"``, ``STOP`` -> ``"stop"``, ..."""
    if reason is None:
        return None
    name = str(getattr(reason, "value", reason)).rsplit(".", 1)[-1].upper()
    return FINISH_REASONS.get(name, name.lower() or None)


def usage_of(resp: Any) -> Completion:
    """``usage_metadata`` as token counts (text empty). ``prompt_token_count`` includes the cached part
    (``cached_content_token_count``); thinking tokens (``thoughts_token_count``) are billed as output, so
    they count as completion tokens beside ``candidates_token_count``."""
    um = getattr(resp, "usage_metadata", None)
    prompt = token_count(um, "prompt_token_count")
    return Completion("", prompt, token_count(um, "candidates_token_count") + token_count(um, "thoughts_token_count"),
                      cached_tokens=min(prompt, token_count(um, "cached_content_token_count")))


class GeminiBackend:
    name = "gemini"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 request_timeout: float = 60.0, concurrency: int = 16, **_: Any):
        key = api_key or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        if not key:
            raise MissingAPIKeyError("GOOGLE_API_KEY (or GEMINI_API_KEY) is not set; export it "
                                     "(keys are read from the environment only)")
        if base_url:
            check_base_url(base_url)
            check_host_resolves(base_url)
        from google import genai
        from google.genai import types

        self._types = types
        self.model = model
        opts: dict[str, Any] = {
            "timeout": int(request_timeout * 1000),  # milliseconds
            "retry_options": types.HttpRetryOptions(attempts=1),
        }
        if base_url:
            opts["base_url"] = base_url
        self.client = genai.Client(api_key=key, http_options=types.HttpOptions(**opts))

    async def complete(self, request: Request) -> Completion:
        from google.genai import errors

        extra: dict[str, Any] = {}
        if request.timeout:  # this attempt's time-out (the engine raises it for a retried time-out)
            extra["http_options"] = self._types.HttpOptions(timeout=int(request.timeout * 1000),
                                                            retry_options=self._types.HttpRetryOptions(attempts=1))
        cfg = self._types.GenerateContentConfig(temperature=request.temperature,
                                                max_output_tokens=request.max_tokens, **extra)
        try:
            resp = await self.client.aio.models.generate_content(model=self.model,
                                                                  contents=gemini_contents(request),
                                                                  config=cfg)
        except errors.APIError as exc:
            code = int(getattr(exc, "code", 0) or 0)
            resp_obj = getattr(exc, "response", None)
            headers = getattr(resp_obj, "headers", None)
            if code in (408, 409, 429) or code >= 500:
                raise RetryableError(f"http {code}: {str(exc)[:200]}", retry_after=parse_retry_after(headers)) from None
            if code in (401, 403, 404):
                raise FatalBackendError(f"the Gemini server answered {code} ({str(exc)[:200]}); check the API key, "
                                        f"--model {self.model!r} and --base-url") from None
            raise RequestRejected(f"http {code}: {str(exc)[:200]}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise RetryableError(f"bad body: {type(exc).__name__}") from None
        except Exception as exc:  # transport faults of httpx/httpx2/aiohttp (timeouts, resets)
            if _is_timeout(exc):
                raise RequestTimedOut(f"timeout: {type(exc).__name__}"[:200]) from None
            if _is_transport_error(exc):
                raise RetryableError(f"connection: {type(exc).__name__}: {exc}"[:200]) from None
            raise
        try:
            text = resp.text
        except ValueError:
            text = None
        usage = usage_of(resp)
        if not resp.candidates:
            raise RetryableError("no choices: the response had no candidates", usage=usage)
        if not text or not text.strip():
            if map_finish_reason(getattr(resp.candidates[0], "finish_reason", None)) == "length":
                raise RequestRejected(EMPTY_AT_LIMIT, usage=usage)
            raise RetryableError("empty: the response had empty content", usage=usage)
        return Completion(text, usage.prompt_tokens, usage.completion_tokens,
                          finish_reason=map_finish_reason(getattr(resp.candidates[0], "finish_reason", None)),
                          cached_tokens=usage.cached_tokens)

    async def aclose(self) -> None:
        close = getattr(self.client.aio, "aclose", None)
        if close is not None:
            await close()


def gemini_contents(request: Request) -> Any:
    """The prompt text, or for a multi-turn request its turns as Gemini contents (``assistant`` -> ``model``)."""
    if not request.messages:
        return request.prompt
    return [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
            for m in request.messages]


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


def _is_transport_error(exc: BaseException) -> bool:
    mods = ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "ssl")
    return isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.split(".")[0] in mods
