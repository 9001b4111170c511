"""The dispatcher: sends what the outbox holds, at most ``rate`` a second over ``concurrency`` connections.

Each message is checked again just before it goes (the address may have been suppressed, the contact may
have finished the survey, the wave may have been closed or paused since it was queued). A temporary
failure is retried after ``retry_delay``, doubling each time, up to ``max_attempts``; a permanent one marks
the message failed, and a "no such mailbox" (5.1.x) suppresses the address as bounced. On stopping, the
messages already handed to a connection are finished; the others go back to the queue untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlite_utils import Database

from surveybot import outbox
from surveybot.clock import utcnow
from surveybot.errors import SurveybotError
from surveybot.mail.compose import Composer
from surveybot.mail.transports import PermanentFailure, TemporaryFailure
from surveybot.suppressions import is_suppressed, suppress

log = logging.getLogger("surveybot.dispatcher")


class RateLimiter:
    """Spaces sends ``1/rate`` seconds apart (no bursts), shared by all connections."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(self.next_slot, now)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Dispatcher:
    def __init__(self, db: Database, composer: Composer, transport, *, rate: float, concurrency: int = 4,
                 retry_delay: float = 30.0, max_attempts: int = 8, poll: float = 0.5,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.composer, self.transport = db, composer, transport
        self.limiter = RateLimiter(rate)
        self.concurrency, self.retry_delay, self.max_attempts = concurrency, retry_delay, max_attempts
        self.poll, self.clock = poll, clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._waves: dict[int, dict] = {}

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        recovered = outbox.recover(self.db)
        if recovered:
            log.warning("requeued %d messages interrupted by a stop while being sent", recovered)
        while not self._stopping:
            if not await self.send_due():
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except asyncio.TimeoutError:
                    pass

    async def send_due(self) -> int:
        """Send one batch of due messages; returns how many were taken."""
        self._waves.clear()  # states change between batches (paused, closed)
        batch = outbox.claim(self.db, self.clock(), self.concurrency * 8)
        if not batch:
            return 0
        queue: asyncio.Queue[dict] = asyncio.Queue()
        for row in batch:
            queue.put_nowait(row)
        await asyncio.gather(*(self._worker(queue) for _ in range(min(self.concurrency, len(batch)))))
        return len(batch)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while not queue.empty():
            row = queue.get_nowait()
            if self._stopping:
                outbox.release(self.db, row["id"])
                continue
            await self._deliver(row)

    async def _deliver(self, row: dict) -> None:
        now = self.clock()
        try:
            message = self._prepare(row, now)
        except SurveybotError as exc:  # a broken template fails this message, loudly, not the service
            outbox.mark_failed(self.db, row["id"], str(exc))
            log.error("message %s not sent: %s", row["id"], exc)
            return
        if message is None:
            return
        await self.limiter.wait()
        try:
            await self.transport.send(message)
        except TemporaryFailure as exc:
            if row["attempts"] >= self.max_attempts:
                outbox.mark_failed(self.db, row["id"], f"gave up after {row['attempts']} attempts: {exc}")
            else:
                delay = self.retry_delay * 2 ** (row["attempts"] - 1)
                outbox.mark_retry(self.db, row["id"], str(exc), self.clock() + timedelta(seconds=delay))
            return
        except PermanentFailure as exc:
            outbox.mark_failed(self.db, row["id"], str(exc))
            if exc.bounce:
                suppress(self.db, row["to_email"], "bounce", str(exc)[:200])
            return
        outbox.mark_sent(self.db, row["id"], message["Message-ID"], self.clock())

    def _prepare(self, row: dict, now: datetime):
        """The message to send, or None when it must not go (cancelled, or put back for a paused wave)."""
        if is_suppressed(self.db, row["to_email"]):
            outbox.mark_cancelled(self.db, row["id"], "address suppressed")
            return None
        wave = self._wave(row["wave_id"]) if row["wave_id"] else None
        contact = self.composer.contact(row["contact_id"]) if row["contact_id"] else None
        if row["kind"] in outbox.SURVEY_KINDS:
            if wave is None or wave["state"] == "closed":
                outbox.mark_cancelled(self.db, row["id"], "wave closed")
                return None
            if wave["paused"]:
                outbox.release(self.db, row["id"])
                return None
            if self._completed(row):
                outbox.mark_cancelled(self.db, row["id"], "completed the survey")
                return None
        if wave is None or contact is None:
            outbox.mark_failed(self.db, row["id"], "its wave or contact no longer exists")
            return None
        return self.composer.message(row["kind"], wave, contact, now, to_email=row["to_email"])

    def _wave(self, wave_id: int) -> dict | None:
        if wave_id not in self._waves:
            wave = next(self.db.query("SELECT * FROM waves WHERE id = ?", [wave_id]), None)
            if wave is not None:
                wave["networks"] = json.loads(wave["networks"])
            self._waves[wave_id] = wave
        return self._waves[wave_id]

    def _completed(self, row: dict) -> bool:
        found = self.db.execute("SELECT completed_at FROM recipients WHERE wave_id = ? AND contact_id = ?",
                                [row["wave_id"], row["contact_id"]]).fetchone()
        return bool(found and found[0])
