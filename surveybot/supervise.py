"""Background loops that cannot die silently: each runs under a supervisor that logs what stopped it,
restarts it with growing pauses, and keeps the state ``/healthz`` reports.

    Health ── one LoopState per loop (dispatcher, inbox, scheduler)
    supervise(name, run, health, stopping) ── runs ``run()`` again after an unexpected error
    Stoppable ── a loop's stop and wake-up, for the loops that wait between rounds
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from surveybot.db import storage_problem

log = logging.getLogger("surveybot.supervise")
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before each restart; the last one repeats
STEADY_S = 300.0  # a loop that ran this long before failing starts the backoff again from its first step
# A restarted loop counts as working only once it has run this long without failing again: one that fails
# at once after each restart is reported all the time, not only during the pauses between restarts.
PROBATION_S = 5.0
# A full or read-only database is said once by the database layer (no traceback per restart); the loop is
# tried again at this steady pace so it resumes soon after the disk has room again.
STORAGE_RETRY_S = 1.0


class Stoppable:
    """A background loop's stop and wake-up: ``stop()`` ends it at its next turn, ``wake()`` cuts its nap short."""

    def __init__(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def nap(self, seconds: float) -> None:
        """Wait ``seconds``, or until woken or stopped."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass


@dataclass
class LoopState:
    alive: bool = False
    restarts: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.monotonic)


class Health:
    """What the service's background work is doing, as ``/healthz`` reports it."""

    def __init__(self) -> None:
        self.loops: dict[str, LoopState] = {}

    def loop(self, name: str) -> LoopState:
        return self.loops.setdefault(name, LoopState())

    def problems(self) -> dict[str, str]:
        now, found = time.monotonic(), {}
        for name, state in self.loops.items():
            if not state.alive:
                found[name] = f"not running (restarted {state.restarts} times; last error: {state.last_error})"
            elif state.restarts and now - state.since < PROBATION_S:
                found[name] = f"restarting (restarted {state.restarts} times; last error: {state.last_error})"
        return found


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    health: Health,
    stopping: Callable[[], bool],
    backoff: tuple[float, ...] = BACKOFF,
) -> None:
    """Run ``run()`` until it returns (it returns when asked to stop); restart it after any error."""
    state = health.loop(name)
    failures = 0  # in a row: sets the pause before the next restart
    while True:
        state.alive, state.since = True, time.monotonic()
        try:
            await run()
            state.alive = False
            return
        except asyncio.CancelledError:
            state.alive = False
            raise
        except Exception as exc:
            state.alive = False
            state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if stopping():
                log.exception("%s stopped by an error while the service was stopping", name)
                return
            if time.monotonic() - state.since > STEADY_S:
                failures = 0
            state.restarts += 1
            if storage_problem(exc) is not None:
                delay = STORAGE_RETRY_S
                log.debug("%s waits for the database to take writes again (restart %d)", name, state.restarts)
            else:
                delay = backoff[min(failures, len(backoff) - 1)]
                failures += 1
                log.exception(
                    "%s stopped by an unexpected error; restarting it in %.0f s (restart %d)",
                    name,
                    delay,
                    state.restarts,
                )
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:  # a stop during the pause ends it at once
                if stopping():
                    return
                await asyncio.sleep(min(0.2, deadline - time.monotonic()))
