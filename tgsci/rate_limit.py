"""Requests- and tokens-per-minute limits on one model, shared by every caller of that model.

The book keeps, per model, the earliest time its next request may start. A request costs
``max(60/rpm, tokens*60/tpm)`` seconds of the model's capacity: a leaky bucket with no burst,
so requests go out evenly spaced and no one-minute window of the provider's sees more than its
limit. A 429's ``Retry-After`` pushes that time back for every caller at once.

In one process the book lives in memory (``LocalLimiter``). In a sweep it lives on the Dask
scheduler (``SchedulerLimiter``): every worker asks the one book, so 32 workers calling one
hosted model keep to its limit together instead of each retrying its own 429s. The scheduler
computes the wait on its own clock, so the workers' clocks need not agree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Optional

CHARS_PER_TOKEN = 4  # the estimate of a prompt's tokens before it is sent (no tokenizer download needed)


@dataclass(frozen=True)
class RateLimits:
    """A model's limits; None = no limit on that count."""

    requests_per_minute: Optional[float] = None
    tokens_per_minute: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
                raise ValueError(f"{name} must be a number > 0, not {value!r}")

    @property
    def active(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute)

    def cost_s(self, tokens: float) -> float:
        """Seconds of the model's capacity one request of ``tokens`` tokens uses."""
        cost = 0.0
        if self.requests_per_minute:
            cost = 60.0 / self.requests_per_minute
        if self.tokens_per_minute:
            cost = max(cost, max(0.0, tokens) * 60.0 / self.tokens_per_minute)
        return cost

    def tokens_s(self, tokens: float) -> float:
        """Seconds of capacity ``tokens`` tokens use on the token limit alone (to settle an estimate)."""
        return tokens * 60.0 / self.tokens_per_minute if self.tokens_per_minute else 0.0

    def to_dict(self) -> dict:
        return {"requests_per_minute": self.requests_per_minute, "tokens_per_minute": self.tokens_per_minute}


def estimate_tokens(messages: list[dict], max_tokens: Optional[int]) -> int:
    """Prompt characters / 4 plus the reply's cap: what a request may use before its usage is known."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return chars // CHARS_PER_TOKEN + int(max_tokens or 0)


class SlotBook:
    """The shared state: per key, the time its next request may start. Pure; callers pass ``now``."""

    def __init__(self) -> None:
        self.next_start: dict[str, float] = {}

    def reserve(self, key: str, cost_s: float, now: float) -> float:
        """Book the next slot for a request costing ``cost_s``; returns how long to wait for it."""
        start = max(now, self.next_start.get(key, now))
        self.next_start[key] = start + cost_s
        return start - now

    def hold(self, key: str, seconds: float, now: float) -> None:
        """Nobody starts a request on ``key`` for ``seconds`` (a 429's Retry-After)."""
        self.next_start[key] = max(self.next_start.get(key, now), now + seconds)

    def settle(self, key: str, seconds: float, now: float) -> None:
        """Correct a booking by ``seconds`` (negative: an estimate that was too high gives time back)."""
        self.next_start[key] = max(now, self.next_start.get(key, now) + seconds)


class LocalLimiter:
    """The book in this process's memory (threads share it)."""

    _books: dict[str, "SlotBook"] = {}
    _lock = threading.Lock()

    def __init__(self, key: str, limits: RateLimits) -> None:
        self.key, self.limits = key, limits
        with self._lock:
            self.book = self._books.setdefault(key, SlotBook())

    def _do(self, action: str, value: float) -> float:
        with self._lock:
            return getattr(self.book, action)(self.key, value, time.monotonic()) or 0.0

    def reserve(self, tokens: float) -> float:
        return self._do("reserve", self.limits.cost_s(tokens))

    def hold(self, seconds: float) -> None:
        self._do("hold", seconds)

    def settle(self, extra_tokens: float) -> None:
        if self.limits.tokens_per_minute and extra_tokens:
            self._do("settle", self.limits.tokens_s(extra_tokens))


def _on_scheduler(dask_scheduler=None, key: str = "", action: str = "reserve", value: float = 0.0) -> float:
    """Runs inside the Dask scheduler (``Client.run_on_scheduler``): one book for the whole cluster."""
    book = getattr(dask_scheduler, "_tgsci_rate_book", None)
    if book is None:
        book = SlotBook()
        dask_scheduler._tgsci_rate_book = book
    return getattr(book, action)(key, value, time.monotonic()) or 0.0


class SchedulerLimiter(LocalLimiter):
    """The book on the Dask scheduler: one limit per model for every worker of the cluster."""

    def __init__(self, key: str, limits: RateLimits, client) -> None:
        self.key, self.limits, self.client = key, limits, client

    def _do(self, action: str, value: float) -> float:
        return float(self.client.run_on_scheduler(_on_scheduler, key=self.key, action=action, value=value))


def limiter_key(model: str, api_base: Optional[str]) -> str:
    """One limit per model and endpoint (the same model name on two servers has two limits)."""
    return f"{model}@{api_base or ''}"
