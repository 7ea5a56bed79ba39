"""How to reach the teacher: backend, model, concurrency, time-outs and retries.

One settings object shared by ``distill prompt`` and ``distill judge`` (their transport flags are
the same), so both build their backend and retry policy the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.prompting.backend import Backend
from distill.prompting.retry import RetryPolicy


@dataclass
class TeacherOptions:
    """Backend choice and transport settings (``seed`` and ``wrong_rate`` are the scripted backend's)."""

    backend: str = "openai"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    concurrency: int = 16
    request_timeout: float = 60.0
    max_attempts: int = 6
    retry_base: float = 1.0
    max_retry_delay: float = 60.0
    seed: int = 0
    wrong_rate: float = 0.2
    batch_dir: str | None = None  # openai-batch: where batch state lives (default ./.openai-batch)
    batch_poll: float = 30.0  # openai-batch: seconds between status polls
    batch_size: int = 50_000  # openai-batch: most requests per batch

    def __post_init__(self) -> None:
        if self.backend == "openai-batch":  # every queued path is "in flight" and waits for its whole batch
            from distill.prompting.backends.openai_batch import BATCH_WAIT_S

            self.concurrency = max(self.concurrency, self.batch_size)
            self.request_timeout = max(self.request_timeout, BATCH_WAIT_S)
        # The built-in backends speak HTTP: a URL that cannot work is one line now, not half a minute
        # of retried "connection" faults (plug-in backends may give base_url another meaning).
        if self.base_url is not None and self.backend in ("openai", "gemini", "openai-batch"):
            from distill.prompting.backends.url import check_base_url

            check_base_url(self.base_url)

    def retry_policy(self) -> RetryPolicy:
        """The backoff policy (validates ``max_attempts`` and the delays)."""
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.retry_base, max_delay=self.max_retry_delay)

    def make_backend(self) -> Backend:
        """Build the backend (a missing API key or a ``base_url`` whose host does not resolve fails
        here, before any file is read)."""
        from distill.prompting.backends import get_backend

        return get_backend(self.backend, model=self.model, base_url=self.base_url,
                           request_timeout=self.request_timeout, concurrency=self.concurrency, seed=self.seed,
                           wrong_rate=self.wrong_rate, batch_dir=self.batch_dir, batch_poll=self.batch_poll,
                           batch_size=self.batch_size)
