"""The clock of the service: APScheduler wakes the process when the next plan step falls due.

The plan lives in SQLite, not in the scheduler: there is one in-memory job, "run the plan at the next due
time", rebuilt from the database at start (which also runs, once, whatever fell due while the service was
down) and whenever the plan version changes — a command such as ``wave launch`` or ``wave pause`` in
another process only writes the database and bumps that version, which a cheap check notices within
``check_every`` seconds.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlite_utils import Database

from surveybot import plan
from surveybot.clock import parse_stored, utcnow
from surveybot.db import is_busy, storage_problem
from surveybot.waves import plan_version

log = logging.getLogger("surveybot.schedule")


def _in_loop(job: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """Run a job on the event loop, not in APScheduler's thread pool: every job uses the service's one
    database connection, whose transactions must not interleave with the handlers' or with each other.

    A job that fails is logged with its traceback and runs again at its next time; the database being locked
    by another process is only a warning (what was due is still due at the next run)."""
    name = getattr(job, "__name__", "job")
    busy = False  # said once per spell of a locked database, not every second it lasts

    async def run() -> None:
        nonlocal busy
        try:
            job()
        except sqlite3.OperationalError as exc:
            if storage_problem(exc) is not None:  # a full or read-only disk: said once by the database layer
                return
            if not is_busy(exc):
                log.exception("scheduled job %s failed; it runs again at its next time", name)
            elif not busy:
                busy = True
                log.warning("scheduled job %s: database busy (%s); it runs again at its next times", name, exc)
            return
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next time", name)
            return
        if busy:
            busy = False
            log.info("scheduled job %s ran again: the database is free", name)

    run.__name__ = name
    return run


class Planner:
    def __init__(
        self,
        db: Database,
        secret: str,
        *,
        on_queued: Callable[[], None] = lambda: None,
        check_every: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db, self.secret, self.on_queued = db, secret, on_queued
        self.check_every, self.clock = check_every, clock
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._version = -1
        self.last_tick = time.monotonic()

    def start(self) -> None:
        """Start inside the running event loop; the first check (at once) catches up and schedules the next
        step."""
        self.scheduler.start()
        self.scheduler.add_job(
            _in_loop(self._check),
            "interval",
            seconds=self.check_every,
            id="plan-check",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )

    def alive(self) -> bool:
        """Whether the clock ticks: the scheduler runs and its plan check ran lately (even if the database was
        busy then)."""
        return self.scheduler.running and time.monotonic() - self.last_tick < max(10.0, 5 * self.check_every)

    def every(self, seconds: float, job: Callable[[], None], name: str) -> None:
        """Run ``job`` every ``seconds`` (one at a time, late runs merged)."""
        self.scheduler.add_job(
            _in_loop(job), "interval", seconds=seconds, id=name, coalesce=True, max_instances=1, misfire_grace_time=None
        )

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def run_now(self) -> list[dict[str, Any]]:
        """Carry out what is due, then set the wake-up for the next step."""
        version = plan_version(self.db)
        done = plan.run_due(self.db, self.secret, self.clock())
        self._version = version  # only once done: a run that failed (database busy) is tried again
        for step in done:
            log.info("wave %s: %s step done, %d messages queued", step["wave"], step["step"], step["queued"])
        if any(step["queued"] for step in done):
            self.on_queued()
        self._schedule_next()
        return done

    def _schedule_next(self) -> None:
        due = plan.next_wakeup(self.db)
        if due is None:
            if self.scheduler.get_job("plan-step"):
                self.scheduler.remove_job("plan-step")
            return
        self.scheduler.add_job(
            _in_loop(self.run_now),
            DateTrigger(run_date=parse_stored(due)),
            id="plan-step",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _check(self) -> None:
        self.last_tick = time.monotonic()
        if plan_version(self.db) != self._version or self._overdue():
            self.run_now()

    def _overdue(self) -> bool:
        """A step whose time has passed is still pending (its run failed, e.g. the database was busy)."""
        due = plan.next_wakeup(self.db)
        return due is not None and parse_stored(due) <= self.clock()
