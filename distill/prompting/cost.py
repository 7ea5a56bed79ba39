"""What the teacher costs: token usage, prices, and the ``--max-spend`` cap.

Prices are USD per million tokens, from ``--price-in`` / ``--price-out`` (and ``--price-cached`` for
prompt tokens the provider served from its prompt cache; without it they cost ``--price-in``, the
conservative choice), or else from :data:`PRICE_TABLE` for a few common models. A model that is in
neither gets token counts only, no cost.

The cap (:class:`SpendCap`) is conservative: before a request is sent it *reserves* that request's
worst case, every prompt byte a token (no tokenizer makes more tokens than UTF-8 bytes) plus
:data:`PROMPT_OVERHEAD` tokens for the chat template, at the full input price, plus ``max_tokens``
completion tokens at the output price. A request is sent only if what was spent plus every
reservation in flight plus its own stays within the cap; an answer replaces its reservation with its
reported cost, and an attempt that timed out keeps its reservation (the server may still have
generated and billed it). So the estimate never passes the cap, and what is left unspent at the end
is at most the worst case of the requests that no longer fit.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from distill.errors import ConfigError

#: When :data:`PRICE_TABLE` was checked. Prices change: check the provider's pricing page, and pass
#: ``--price-in/--price-out/--price-cached`` to use other prices.
PRICES_AS_OF = "2025-08"

#: model -> (input, cached input, output) USD per million tokens: standard (not batch) list prices for
#: text of OpenAI and Google as published at :data:`PRICES_AS_OF` (Gemini 2.5 Pro: prompts up to 200k tokens).
PRICE_TABLE: dict[str, tuple[float, float, float]] = {
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "o3": (2.00, 0.50, 8.00),
    "o3-mini": (1.10, 0.55, 4.40),
    "o4-mini": (1.10, 0.275, 4.40),
    "gemini-2.0-flash": (0.10, 0.025, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.075, 0.30),
    "gemini-2.5-flash": (0.30, 0.075, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.025, 0.40),
    "gemini-2.5-pro": (1.25, 0.31, 10.00),
}

#: backends whose provider bills the table's models at a share of the list price (OpenAI's Batch API: half)
BATCH_DISCOUNT = {"openai-batch": 0.5}

#: tokens added to a prompt's byte count for the chat template around it (OpenAI: a few per message)
PROMPT_OVERHEAD = 32

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{3,4}|latest|preview(-\d{2}-\d{2})?|exp(-\d{2}-\d{2})?)$")


def table_key(model: str) -> str | None:
    """The :data:`PRICE_TABLE` entry of ``model``: exact, or without a ``models/`` / ``openai/`` prefix and a
    snapshot suffix (``gpt-4o-mini-2024-07-18``, ``gemini-2.0-flash-001``); None if it has none."""
    name = model.strip().lower()
    for prefix in ("models/", "openai/", "google/"):
        name = name.removeprefix(prefix)
    if name in PRICE_TABLE:
        return name
    base = _SNAPSHOT.sub("", name)
    return base if base in PRICE_TABLE else None


@dataclass(frozen=True)
class Prices:
    """USD per million tokens; ``cached`` prices the cached part of the prompt."""

    input: float
    output: float
    cached: float
    source: str  # "--price-in/--price-out" or "table: gpt-4o-mini (list prices as of 2025-08)"

    def __post_init__(self) -> None:
        for name, v in (("--price-in", self.input), ("--price-out", self.output), ("--price-cached", self.cached)):
            if not v >= 0 or v == float("inf"):
                raise ConfigError(f"{name} must be a finite price >= 0 USD per million tokens (got {v})")

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached = min(cached_tokens, prompt_tokens)
        return ((prompt_tokens - cached) * self.input + cached * self.cached
                + completion_tokens * self.output) / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {"input_per_mtok": self.input, "cached_per_mtok": self.cached, "output_per_mtok": self.output,
                "source": self.source}


#: backends that cost nothing whatever the model name (``reference``: the dataset's own solutions)
FREE_BACKENDS = {"reference": "--backend reference: the dataset's own solutions, nothing is paid"}


def resolve_prices(model: str, price_in: float | None = None, price_out: float | None = None,
                   price_cached: float | None = None, backend: str | None = None) -> Prices | None:
    """Prices from the flags (both ``--price-in`` and ``--price-out``, taken as given), else zero for a
    :data:`FREE_BACKENDS` backend, else from the table (times :data:`BATCH_DISCOUNT` for a batch
    ``backend``), else None."""
    if (price_in is None) != (price_out is None):
        raise ConfigError("--price-in and --price-out go together (USD per million prompt / completion tokens)")
    if price_in is not None:
        return Prices(price_in, price_out, price_in if price_cached is None else price_cached,
                      "--price-in/--price-out")
    if backend in FREE_BACKENDS:
        return Prices(0.0, 0.0, 0.0, FREE_BACKENDS[backend])
    key = table_key(model)
    if key is None:
        if price_cached is not None:
            raise ConfigError(f"--price-cached needs --price-in and --price-out: model {model!r} is not in the "
                              "price table")
        return None
    inp, cached, out = PRICE_TABLE[key]
    share = BATCH_DISCOUNT.get(backend or "", 1.0)
    note = f", x{share:g} for --backend {backend}" if share != 1.0 else ""
    return Prices(inp * share, out * share, cached * share if price_cached is None else price_cached,
                  f"table: {key} (list prices as of {PRICES_AS_OF}{note}; they change, --price-in/--price-out "
                  "override)")


def check_max_spend(max_spend: float | None, prices: Prices | None, model: str) -> None:
    """``--max-spend`` needs a price and a finite amount > 0 (checked before anything is sent)."""
    if max_spend is None:
        return
    if prices is None:
        raise ConfigError(f"--max-spend needs prices: model {model!r} is not in the price table "
                          "(distill.prompting.cost.PRICE_TABLE); pass --price-in and --price-out "
                          "(USD per million tokens)")
    if not 0 < max_spend < float("inf"):
        raise ConfigError(f"--max-spend must be a finite amount > 0 USD (got {max_spend})")


@dataclass
class Usage:
    """Token counts summed over answers (``cached_tokens`` is part of ``prompt_tokens``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    answers: int = 0  # responses counted: answers, and (this run) unusable answers the server billed

    def add(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cached_tokens += cached_tokens
        self.answers += 1

    def __iadd__(self, other: "Usage") -> "Usage":
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.answers += other.answers
        return self

    def cost(self, prices: Prices | None) -> float | None:
        return None if prices is None else prices.cost(self.prompt_tokens, self.completion_tokens, self.cached_tokens)

    def as_dict(self, prices: Prices | None = None) -> dict[str, Any]:
        cost = self.cost(prices)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "answers": self.answers,
                "cost_usd": None if cost is None else round(cost, 6)}

    def format(self, prices: Prices | None = None) -> str:
        cost = self.cost(prices)
        return (f"prompt {self.prompt_tokens} (cached {self.cached_tokens}), completion {self.completion_tokens}"
                + ("" if cost is None else f", {usd(cost)}"))


def usd(amount: float) -> str:
    """``$12.34``, ``$0.0123``, ``$0.000033`` (small amounts keep their digits), ``$0.00`` for nothing."""
    if amount == 0:
        return "$0.00"
    return f"${amount:.2f}" if amount >= 1 else f"${amount:.4f}" if amount >= 0.01 else f"${amount:.6f}"


class SpendCap:
    """``--max-spend``: reserve a request's worst case before it is sent (see the module docstring)."""

    def __init__(self, cap_usd: float, prices: Prices):
        if not cap_usd > 0 or cap_usd == float("inf"):
            raise ConfigError(f"--max-spend must be a finite amount > 0 USD (got {cap_usd})")
        self.cap = cap_usd
        self.prices = prices
        self.spent = 0.0  # reported cost of this run's answered (or billed) attempts
        self.lost = 0.0  # timed-out attempts, charged at their reservation
        self.lost_attempts = 0
        self.reserved = 0.0  # worst cases of the attempts in flight
        self.in_flight = 0
        self.reached = False
        self.not_asked = 0
        self._cond: asyncio.Condition | None = None

    def worst_case(self, prompt: str, max_tokens: int) -> float:
        """The most one request can cost: every prompt byte a token, plus the template, plus ``max_tokens``."""
        return self.prices.cost(len(prompt.encode("utf-8")) + PROMPT_OVERHEAD, max_tokens)

    @property
    def estimate(self) -> float:
        """Spent so far, timed-out attempts at their worst case, and the worst case of those in flight."""
        return self.spent + self.lost + self.reserved

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def reserve(self, prompt: str, max_tokens: int) -> float | None:
        """The reservation to pass to :meth:`settle`, or None: the cap is reached, send nothing more.
        A request that fits only once the requests in flight have settled waits for them."""
        need = self.worst_case(prompt, max_tokens)
        cond = self._condition()
        async with cond:
            while not self.reached:
                if self.estimate + need <= self.cap:
                    self.reserved += need
                    self.in_flight += 1
                    return need
                if self.in_flight == 0:
                    self.reached = True
                    cond.notify_all()
                    break
                await cond.wait()
            self.not_asked += 1
            return None

    async def settle(self, reservation: float, usage: Any = None, *, timed_out: bool = False) -> None:
        """One attempt is over: ``usage`` (token counts it reported) replaces its reservation; a time-out
        without usage keeps it as spent."""
        cond = self._condition()
        async with cond:
            self.reserved -= reservation
            self.in_flight -= 1
            if usage is not None:
                self.spent += self.prices.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            elif timed_out:
                self.lost += reservation
                self.lost_attempts += 1
            cond.notify_all()

    def as_dict(self) -> dict[str, Any]:
        return {"cap_usd": self.cap, "estimated_spend_usd": round(self.spent + self.lost, 6),
                "reported_spend_usd": round(self.spent, 6), "timed_out_attempts_charged": self.lost_attempts,
                "reached": self.reached, "not_asked": self.not_asked}

    def stop_line(self) -> str | None:
        """The one line saying the cap stopped the run (None if it did not)."""
        if not self.reached:
            return None
        lost = (f", incl. {self.lost_attempts} timed-out attempt(s) charged at their worst case"
                if self.lost_attempts else "")
        return (f"spend cap reached: --max-spend {usd(self.cap)}, estimated spend {usd(self.spent + self.lost)}"
                f"{lost}; {self.not_asked} path(s) were not asked (everything answered is cached and written; "
                "rerun with a higher --max-spend to ask the rest)")
