"""Capped, jittered exponential backoff for reconnecting to devices that vanish.

The clock and the randomness are injected so tests run instantly and deterministically.
Limits: `delay_ms_cap` (no wait is ever longer).
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        delay_ms_first: int = 100,
        delay_ms_cap: int = 5000,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < delay_ms_first <= delay_ms_cap <= 600_000:
            raise ValueError("backoff needs 0 < first delay <= cap <= 600000 ms")
        self.delay_ms_first = delay_ms_first
        self.delay_ms_cap = delay_ms_cap
        self.rand = rand
        self.failures = 0

    def next_delay_s(self) -> float:
        """The next wait: doubling from the first delay up to the cap, with 50–100 % jitter.

        Jitter keeps a row of kiosks that lost power together from hammering a shared hub
        in lockstep when it comes back.
        """
        ceiling = min(self.delay_ms_cap, self.delay_ms_first << min(self.failures, 30))
        self.failures += 1
        return ceiling * (0.5 + self.rand() / 2) / 1000

    def reset(self) -> None:
        self.failures = 0
