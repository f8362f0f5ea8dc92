"""Exponential backoff with full jitter for retryable market-data errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from stockpred.market.errors import MarketDataError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `attempts` tries; before try n+1 sleep a random time in [0, min(cap, base·2ⁿ)]."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int) -> float:
        return float(self.rng() * min(self.cap, self.base * 2**attempt))

    def run(self, call: Callable[[], T]) -> T:
        """Run `call`, retrying errors marked `retryable`; re-raise the last one."""
        for attempt in range(self.attempts):
            try:
                return call()
            except MarketDataError as exc:
                if not exc.retryable or attempt == self.attempts - 1:
                    raise
                pause = self.delay(attempt)
                log.warning("%s; retry %d/%d in %.2fs", exc, attempt + 1, self.attempts - 1, pause)
                self.sleep(pause)
        raise AssertionError("unreachable")
