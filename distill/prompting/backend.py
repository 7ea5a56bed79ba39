"""The teacher backend protocol shared by every backend (OpenAI-compatible, Gemini, scripted).

A backend turns one prompt into one completion. Everything else (styles, caching,
concurrency, retries, verification, output files) is the prompting engine's job and
is identical for every backend, so the offline scripted teacher of the demo exercises
the same code path as a paid API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from distill.errors import DistillError


@dataclass
class Completion:
    """One teacher answer with the token counts the server reported (0 if unknown).

    ``cached_tokens`` is the part of ``prompt_tokens`` the provider served from its prompt cache
    (OpenAI ``usage.prompt_tokens_details.cached_tokens``, Gemini ``cached_content_token_count``),
    billed at the cached-input price; ``completion_tokens`` includes reasoning/thinking tokens.

    ``finish_reason`` is the API's reason for stopping, normalised to the OpenAI names
    (``stop``, ``length`` = cut by the token limit, ``content_filter``, ...; None if unknown).
    A ``length`` answer is kept for analysis but never counted correct: its last number is
    whatever the model was writing when the limit hit.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached_tokens: int = 0


@dataclass
class Request:
    """Everything a backend needs to answer one path.

    ``row`` and ``style`` are passed for backends that need them (the scripted
    teacher answers from the row; API backends only send ``prompt``).

    ``messages`` is set for a multi-turn request (``--repair-rounds``: the original prompt, the teacher's
    answer, then the solver's error): chat backends send it as the conversation. ``prompt`` then holds
    the same conversation as one text, for backends that take a single prompt (and ignore ``messages``).
    """

    prompt: str
    style: str
    row: dict[str, Any]
    task: str
    sample_index: int
    temperature: float
    max_tokens: int
    #: seconds this attempt may take; set by the engine per attempt (a retried time-out gets more)
    timeout: float | None = None
    #: the whole conversation as OpenAI-style ``{"role", "content"}`` turns, or None (one user turn: ``prompt``)
    messages: list[dict[str, str]] | None = None

    def chat_messages(self) -> list[dict[str, str]]:
        """The turns to send: ``messages``, or ``prompt`` as the one user turn."""
        return list(self.messages) if self.messages else [{"role": "user", "content": self.prompt}]


@runtime_checkable
class Backend(Protocol):
    """An async teacher. Raise :class:`RetryableError` for faults worth retrying."""

    name: str

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


class RetryableError(Exception):
    """A transient fault (429, 5xx, timeout, malformed/empty body): retry with backoff.

    ``retry_after`` is the server's requested wait in seconds, if it sent one; ``usage`` the token
    counts of an answer that came back but is unusable (it was paid for all the same).
    """

    def __init__(self, message: str, retry_after: float | None = None, usage: Completion | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.usage = usage


class RequestTimedOut(RetryableError):
    """No answer within the request's time-out. Retried like any transient fault, but it is also
    the engine's congestion signal: it lowers the in-flight limit and the retry gets a longer
    time-out (a slow server that queues requests is still working on the abandoned one)."""


class RequestRejected(Exception):
    """The server refused this one request for good (e.g. 400: prompt too long): no retry,
    the path is recorded as failed with this message. ``usage``: tokens it was billed anyway
    (an empty answer cut at the token limit)."""

    def __init__(self, message: str, usage: Completion | None = None):
        super().__init__(message)
        self.usage = usage


#: Why a path failed when the token limit ran out before the model wrote any answer text (a model
#: that thinks at length): retrying with the same --max-tokens would pay for the same empty answer.
EMPTY_AT_LIMIT = ("length: the token limit was reached before any answer text (finish_reason 'length'); "
                  "raise --max-tokens")


class FatalBackendError(DistillError):
    """A fault that will hit every request (bad API key, unknown model, 401/403/404):
    the engine stops at once (completed answers are already cached) and the CLI prints
    the message as a one-line error."""
