"""What a run of the request engine did and cost: :class:`RunStats`, and the progress line it draws."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.prompting.cost import Prices, SpendCap, Usage, usd


@dataclass
class RunStats:
    """What the run cost and how it went (printed as the summary)."""

    jobs: int = 0
    cached: int = 0
    requests: int = 0  # HTTP attempts actually sent
    retries: int = 0
    completed: int = 0  # answered in this run
    failed: int = 0
    prompt_tokens: int = 0  # billed in this run (every attempt that reported usage)
    completion_tokens: int = 0
    cached_tokens: int = 0  # the part of prompt_tokens served from the provider's prompt cache
    billed: int = 0  # attempts that reported usage (answers, and unusable answers the server billed)
    not_asked: int = 0  # paths the --max-spend cap kept from being asked
    from_cache: Usage = field(default_factory=Usage)  # what the answers served from our cache cost when asked
    request_wall_s: float = 0.0  # first dispatch -> last answer (start-up and verification excluded)
    errors: Counter = field(default_factory=Counter)  # fault kind -> count (all attempts)
    timeouts: int = 0  # attempts that got no answer within their time-out
    concurrency: int = 0  # the in-flight limit asked for (--concurrency)
    min_limit: int = 0  # the lowest the adaptive in-flight limit went
    final_limit: int = 0
    max_timeout_used: float = 0.0  # the longest per-attempt time-out given (raised for retried time-outs)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("jobs", "cached", "requests", "retries", "completed", "failed",
                                             "prompt_tokens", "completion_tokens", "cached_tokens", "timeouts",
                                             "not_asked")}
        d["from_cache"] = self.from_cache.as_dict()
        d["request_wall_s"] = round(self.request_wall_s, 3)
        d["errors"] = dict(self.errors)
        d["in_flight_limit"] = {"max": self.concurrency, "min": self.min_limit, "final": self.final_limit}
        d["max_request_timeout_s"] = round(self.max_timeout_used, 3)
        return d

    @property
    def paid(self) -> Usage:
        """This run's billed tokens as a :class:`Usage` (``answers``: the attempts billed)."""
        return Usage(self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.billed)

    def merge(self, other: "RunStats") -> None:
        """Add another pass over other jobs (a resampling round) into this one."""
        for k in ("jobs", "cached", "requests", "retries", "completed", "failed", "prompt_tokens",
                  "completion_tokens", "cached_tokens", "billed", "not_asked", "timeouts", "request_wall_s"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.from_cache += other.from_cache
        self.errors.update(other.errors)
        self.min_limit = min(self.min_limit, other.min_limit)
        self.final_limit = other.final_limit
        self.max_timeout_used = max(self.max_timeout_used, other.max_timeout_used)

    def adaptation_note(self) -> str | None:
        """One summary line when the engine had to slow down (None when it never did)."""
        if not self.timeouts and self.min_limit >= self.concurrency:
            return None
        return (f"slow teacher: {self.timeouts} time-outs; in-flight limit went down to {self.min_limit} "
                f"(of --concurrency {self.concurrency}, {self.final_limit} at the end), retried time-outs waited "
                f"up to {self.max_timeout_used:g} s; a server that answers one request at a time wants a lower "
                "--concurrency or a higher --request-timeout")


def progress_text(stats: RunStats, limit: int, concurrency: int, prices: Prices | None = None,
                  budget: SpendCap | None = None) -> str:
    """The progress bar's postfix: answers, faults, tokens billed now (and cached), cost so far."""
    slow = (f" in-flight<={limit}/{concurrency} timeouts={stats.timeouts}"
            if stats.timeouts or limit < concurrency else "")
    cost = ""
    if budget is not None:
        cost = f" spend~{usd(budget.estimate)}/{usd(budget.cap)}"
    elif prices is not None:
        cost = f" {usd(stats.paid.cost(prices))}"
    return (f"ok={stats.cached + stats.completed} failed={stats.failed} retries={stats.retries} "
            f"tok={stats.prompt_tokens}+{stats.completion_tokens} cached={stats.cached_tokens}{cost}{slow}")


def cost_lines(stats: RunStats, prices: Prices | None, budget: SpendCap | None = None) -> list[str]:
    """The summary's token and cost lines (``distill prompt`` and ``distill judge``): billed in this run,
    what the answers served from the cache cost when asked, and the ``--max-spend`` estimate."""
    s, p = stats, prices
    lines = [f"tokens this run: {s.paid.format(p)}; from cache ({s.cached} answers): {s.from_cache.format(p)}"]
    if p is None:
        lines.append("cost: unknown (no price for this model: pass --price-in/--price-out USD per million tokens)")
    elif p.input == p.output == p.cached == 0:
        lines.append(f"cost: $0 (no price needed: {p.source})")
    else:
        lines.append(f"cost: {usd(s.paid.cost(p))} this run; the cached answers cost {usd(s.from_cache.cost(p))} "
                     f"when asked (prices: in {p.input:g} / cached {p.cached:g} / out {p.output:g} USD per "
                     f"million tokens, {p.source})")
    if budget is not None:
        b = budget
        lines.append(f"--max-spend {usd(b.cap)}: estimated spend {usd(b.spent + b.lost)}"
                     + (f" ({b.lost_attempts} timed-out attempt(s) charged at their worst case)"
                        if b.lost_attempts else ""))
    return lines
