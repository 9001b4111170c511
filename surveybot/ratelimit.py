"""Pacing: calls spaced ``1/rate`` seconds apart (no bursts), shared by every coroutine that waits on it."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval
        if slot - now > 0.001:  # below a millisecond a sleep costs more than it spaces
            await asyncio.sleep(slot - now)
