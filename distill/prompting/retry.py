"""Retry policy: exponential backoff with full jitter, honouring the server's Retry-After.

Why full jitter: when a rate limit trips, 64 requests fail together; un-jittered
exponential backoff would send them back together and trip it again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distill.errors import ConfigError


@dataclass
class RetryPolicy:
    """``max_attempts`` counts the first try; delays grow as ``base_delay * 2**retry``."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    #: Retry-After values above this are clipped (a server asking for an hour is not waited on).
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1 (got {self.max_attempts}); 1 means no retries")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ConfigError(f"need 0 <= base_delay <= max_delay (got {self.base_delay}, {self.max_delay})")

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        rng = rng or random
        cap = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        wait = rng.uniform(cap / 2, cap)  # "equal jitter": never ~0, still spread out
        if retry_after is not None and retry_after > 0:
            # the server said when; add a little jitter so the herd does not return in lockstep
            wait = min(retry_after, self.max_retry_after) + rng.uniform(0, min(1.0, self.base_delay))
        return wait
