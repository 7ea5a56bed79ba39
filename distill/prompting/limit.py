"""The adaptive in-flight limit of the request engine (:mod:`distill.prompting.engine`).

The in-flight limit adapts (:class:`AdaptiveLimit`, AIMD as TCP and rate limiters do): a slow
server that answers one request at a time, asked 16 at once with a 60 s time-out, lets most of
them time out while it keeps generating the abandoned ones; re-sending them at the same time-out
only lengthens its queue, and nothing finishes. So a time-out (or an answer that took most of the
time-out) halves the limit, each prompt answer adds one back up to ``concurrency``, and a request
that timed out is retried with twice its time-out (up to ``max_request_timeout``), long enough to
get past the abandoned work still queued ahead of it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from distill.errors import ConfigError


@dataclass
class AdaptiveLimit:
    """AIMD on the number of requests in flight: halve on congestion, add one per good answer.

    Congestion is a time-out, or an answer slower than ``latency_high`` of the base time-out that
    is also ``latency_ratio`` times the fastest answer seen (both, so a teacher that is simply slow
    for long answers is not throttled). Only one cut per "window": a signal from a request sent
    before the last cut reflects the old limit and is ignored, otherwise 16 requests timing out
    together would cut 16 times.
    """

    maximum: int
    base_timeout: float
    latency_high: float = 0.5
    latency_ratio: float = 2.0
    limit: int = field(init=False)
    lowest: int = field(init=False)
    in_flight: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ConfigError(f"concurrency must be >= 1 (got {self.maximum})")
        self.limit = self.lowest = self.maximum
        self._last_cut = -math.inf
        self._fastest = math.inf
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self) -> float:
        """Wait for a free slot; returns the send time (pass it to :meth:`release`)."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        return time.monotonic()

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            cond.notify_all()

    def _cut(self, sent_at: float) -> bool:
        if sent_at < self._last_cut:
            return False
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        self._last_cut = time.monotonic()
        return True

    def on_timeout(self, sent_at: float) -> bool:
        """A request sent at ``sent_at`` timed out; True if the limit was cut."""
        return self._cut(sent_at)

    def on_success(self, sent_at: float, latency: float) -> None:
        self._fastest = min(self._fastest, latency)
        if latency > self.latency_high * self.base_timeout and latency > self.latency_ratio * self._fastest:
            self._cut(sent_at)  # (no change for a slow answer sent before the last cut)
        else:
            self.limit = min(self.maximum, self.limit + 1)

