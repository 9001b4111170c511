"""The dispatcher: sends what the outbox holds, at most ``rate`` a second over ``concurrency`` connections.

Each message is checked again just before it goes (the address may have been suppressed, the contact may
have finished the survey, the wave may have been closed or paused since it was queued). A temporary
failure is retried after ``retry_delay``, doubling each time, up to ``max_attempts``; a permanent one marks
the message failed, and a "no such mailbox" (5.1.x) suppresses the address as bounced.

Work goes in batches: one claim and one query each for the checks per batch. A message's outcome is
written before its connection hands over the next message: once the relay has taken the next envelope (MAIL,
RCPT), before DATA, so the relay reads the envelope while the commit is made; the outcomes of connections
that are ready together share a transaction, and a failure is written at once. A crash can therefore leave
at most one message per connection sent but not marked;
such rows are still ``sending`` at the next start, are sent again with the same ``Message-ID`` and counted
as recovered (the in-flight window bounds the duplicates). On stopping,
messages already handed to a connection are finished; the others go back to the queue untouched.

Nothing one message does can stop the others: an unexpected error while building or sending it fails (or
retries) that message, with its traceback in the log. While another process holds the database's write
lock, the dispatcher waits without blocking the event loop, and outcomes of messages already sent are kept
until they can be written. A ``wave pause`` or ``close`` from another process reaches messages already
claimed: the wave's state is read again (when the plan version changes) just before each message goes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from surveybot import outbox, recipients
from surveybot.clock import utcnow
from surveybot.contacts import store
from surveybot.db import is_busy, retry_busy, storage_trouble
from surveybot.errors import SurveybotError
from surveybot.interviews.messages import InterviewMessages
from surveybot.mail import verp
from surveybot.mail.compose import Composer
from surveybot.mail.message import Outgoing
from surveybot.mail.render import INTERVIEW_KINDS
from surveybot.mail.transports import PermanentFailure, TemporaryFailure, Transport, Withdrawn
from surveybot.ratelimit import RateLimiter
from surveybot.suppressions import suppress, suppressed_among
from surveybot.waves import plan_version, waves_by_id

log = logging.getLogger("surveybot.dispatcher")
BATCH_PER_CONNECTION = 32  # messages claimed per connection at once (a crash resends at most one per connection)
# After a stop, how long outcomes of messages already sent may wait for a busy database before they are given
# up (and those messages, still ``sending``, go out again at the next start).
RECORD_GRACE_S = 60.0
CHECK_EVERY_S = 0.02  # how often a batch looks for a pause or close made by another process


class Batch:
    """What one claimed batch needs to decide each message: fetched once, not per message."""

    def __init__(self, db: Database, rows: list[dict[str, Any]]) -> None:
        self.db, self.rows = db, rows
        self.outcomes: list[tuple[Any, ...]] = []
        self.bounces: list[tuple[str, str]] = []
        self.writing: asyncio.Future[None] | None = None  # the write the connections' next messages wait for
        self.contact_ids = list({r["contact_id"] for r in rows if r["contact_id"]})
        self.wave_ids = list({r["wave_id"] for r in rows if r["wave_id"]})
        self.contacts = store.contacts_by_id(db, self.contact_ids)
        self._checked = time.monotonic()
        self.refresh()

    def refresh(self) -> None:
        """Read again what another process may change while the batch is sent: waves paused or closed,
        addresses suppressed, respondents who finished."""
        self.plan_version = plan_version(self.db)
        self.suppressed = set(suppressed_among(self.db, list({r["to_email"] for r in self.rows})))
        self.waves = waves_by_id(self.db, self.wave_ids)
        self.completed = recipients.completed_pairs(self.db, self.wave_ids, self.contact_ids)

    def refresh_if_changed(self) -> None:
        # Looked at most every CHECK_EVERY_S, not before each message: at full speed that is most of a lookup
        # per message saved, and a pause or close from another process still holds the batch within 20 ms.
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        if plan_version(self.db) != self.plan_version:
            self.refresh()


class Dispatcher:
    def __init__(
        self,
        db: Database,
        composer: Composer,
        transport: Transport,
        *,
        rate: float,
        concurrency: int = 4,
        retry_delay: float = 30.0,
        max_attempts: int = 8,
        poll: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db, self.composer, self.transport = db, composer, transport
        self.limiter = RateLimiter(rate)
        self.interviews = InterviewMessages(db, composer)
        self.concurrency, self.retry_delay, self.max_attempts = concurrency, retry_delay, max_attempts
        self.poll, self.clock = poll, clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped_at: float | None = None
        self._recovered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.waiting_for_db = False
        self.bounce_address = composer.settings.bounce_address

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll. Safe from the scheduler's threads."""
        if self._loop is None:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        self._stopping = True
        self._stopped_at = self._stopped_at or time.monotonic()
        self._wake.set()

    def _give_up_recording(self) -> bool:
        return self._stopped_at is not None and time.monotonic() - self._stopped_at > RECORD_GRACE_S

    def _waiting(self, waiting: bool) -> None:
        self.waiting_for_db = waiting

    async def run(self) -> None:
        """The sending loop (run under a supervisor: an error that escapes it restarts it)."""
        self._loop = asyncio.get_running_loop()
        if not self._recovered:  # once per service: only the lease holder gets here (see lease.py)
            recovered = await retry_busy(
                lambda: outbox.recover(self.db),
                what="the dispatcher",
                stopping=lambda: self._stopping,
                on_wait=self._waiting,
            )
            self._recovered = True
            if recovered:
                log.warning("requeued %d messages interrupted by a stop while being sent", recovered)
        while not self._stopping:
            try:
                taken = await self.send_due()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if not self.waiting_for_db:
                    log.warning("database busy (another process holds the write lock); the dispatcher waits")
                self.waiting_for_db = True
                await asyncio.sleep(min(1.0, self.poll * 4))
                continue
            if self.waiting_for_db:
                log.info("database free again; the dispatcher goes on")
                self.waiting_for_db = False
            if not taken:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except TimeoutError:
                    pass

    async def send_due(self) -> int:
        """Send one batch of due messages; returns how many were taken."""
        if storage_trouble(self.db):  # the disk is full or read-only: claim nothing until it takes writes
            return 0
        rows = outbox.claim(self.db, self.clock(), self.concurrency * BATCH_PER_CONNECTION)
        if not rows:
            return 0
        try:
            batch = Batch(self.db, rows)
        except Exception:  # nothing was sent: put the batch back (the supervisor logs and restarts the loop)
            await retry_busy(
                lambda: outbox.record(self.db, [("release", row["id"]) for row in rows]),
                what="the dispatcher",
                stopping=self._give_up_recording,
                on_wait=self._waiting,
            )
            raise
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        try:
            await asyncio.gather(*(self._worker(queue, batch) for _ in range(min(self.concurrency, len(rows)))))
        finally:
            # What was sent must be written down, however long the database stays locked (and for a while
            # after a stop): a message recorded as still sending would go out again after a restart.
            try:
                await retry_busy(
                    lambda: self._record(batch),
                    what="recording sent messages",
                    stopping=self._give_up_recording,
                    on_wait=self._waiting,
                )
            except sqlite3.OperationalError:
                sent = [outcome[1] for outcome in batch.outcomes if outcome[0] == "sent"]
                log.critical(
                    "stopping with the database still locked: outbox rows %s were sent but could not be "
                    "recorded; they will be sent again at the next start",
                    sent,
                )
                raise
        return len(rows)

    async def _written(self, batch: Batch) -> None:
        """Return once every outcome noted so far is written. The connections whose answers came in together
        share one transaction: the first to ask lets the others that are ready note theirs before it writes
        (one commit per message would be a fifth of the time spent per message)."""
        if batch.writing is None:
            batch.writing = asyncio.ensure_future(self._write_soon(batch))
        # shielded: a connection cancelled while it waits does not cancel the others' write
        await asyncio.shield(batch.writing)

    async def _write_soon(self, batch: Batch) -> None:
        await asyncio.sleep(0)  # the connections that are ready run first
        batch.writing = None  # an outcome noted from here on is written by this write if in time, else the next
        await retry_busy(
            lambda: self._record(batch),
            what="recording sent messages",
            stopping=self._give_up_recording,
            on_wait=self._waiting,
        )

    def _record(self, batch: Batch) -> None:
        """Write the outcomes gathered so far (all or none: a busy database leaves them to the next try)."""
        outcomes = batch.outcomes[:]
        if outcomes:
            outbox.record(self.db, outcomes)
            del batch.outcomes[: len(outcomes)]
        while batch.bounces:
            address, reason = batch.bounces[-1]
            suppress(self.db, address, "bounce", reason)
            batch.bounces.pop()

    async def _worker(self, queue: asyncio.Queue[dict[str, Any]], batch: Batch) -> None:
        """One connection's share of the batch. The next message is built while the current one is on the
        wire (building costs about as much as the SMTP exchange: done in turn, the connection would idle)."""
        ahead: tuple[dict[str, Any], Outgoing] | None = None
        while ahead is not None or not queue.empty():
            if ahead is None:
                row = queue.get_nowait()
                if self._stopping:
                    batch.outcomes.append(("release", row["id"]))
                    continue
                message = self._build(row, batch)
                if message is None:
                    continue
            else:
                (row, message), ahead = ahead, None
                if self._stopping:
                    batch.outcomes.append(("release", row["id"]))
                    continue
            sending = asyncio.ensure_future(self._deliver(row, message, batch))
            await asyncio.sleep(0)  # the send starts (its first command goes out) before the build below
            while ahead is None and not queue.empty() and not self._stopping and not sending.done():
                following = queue.get_nowait()
                built = self._build(following, batch)
                if built is not None:
                    ahead = (following, built)
            try:
                await sending
            except BaseException:
                if ahead is not None:  # built but not sent: back to the queue, not left "sending"
                    batch.outcomes.append(("release", ahead[0]["id"]))
                raise

    def _build(self, row: dict[str, Any], batch: Batch) -> Outgoing | None:
        """The message of ``row``, or None when it is not to be sent (its outcome is then noted)."""
        try:
            batch.refresh_if_changed()  # a pause or close from another process stops what is claimed
            return self._prepare(row, batch)
        except SurveybotError as exc:  # a broken template fails this message, loudly, not the service
            batch.outcomes.append(("failed", row["id"], str(exc)))
            log.error("message %s not sent: %s", row["id"], exc)
        except Exception as exc:  # a bug met by one message fails that message, never the others
            batch.outcomes.append(
                ("failed", row["id"], f"internal error while building it: {type(exc).__name__}: {exc}")
            )
            log.exception("message %s not sent: unexpected error while building it", row["id"])
        return None

    async def _deliver(self, row: dict[str, Any], message: Outgoing, batch: Batch) -> None:
        await self.limiter.wait()
        if (held := self._held(row, batch)) is not None:
            batch.outcomes.append(held)
            return
        try:
            await self.transport.send(message, before_data=lambda: self._before_data(row, batch))
        except Withdrawn as exc:
            batch.outcomes.append(exc.outcome)
        except TemporaryFailure as exc:
            self._retry_or_fail(row, batch, str(exc))
        except PermanentFailure as exc:
            batch.outcomes.append(("failed", row["id"], str(exc)))
            if exc.bounce:
                batch.bounces.append((row["to_email"], str(exc)[:200]))
        except sqlite3.OperationalError:  # what was sent could not be written: send_due says which, and stops
            raise
        except Exception as exc:  # not a known failure: try again later, a bounded number of times
            log.exception("message %s: unexpected error while sending it", row["id"])
            self._retry_or_fail(row, batch, f"internal error while sending: {type(exc).__name__}: {exc}")
        else:  # written before this connection's next message goes (see _before_data)
            batch.outcomes.append(("sent", row["id"], message.message_id, self.clock()))
            return
        # a failure is written at once: nothing else may write it soon (a relay that keeps timing out never
        # reaches DATA), and status shows what went wrong while it lasts
        await self._written(batch)

    async def _before_data(self, row: dict[str, Any], batch: Batch) -> None:
        """Called by the transport once the relay has taken the envelope, before the message itself goes.
        What this connection sent before is written first: a crash can leave at most one message per connection
        sent but not marked (the in-flight window), and that one goes again with the same Message-ID. Written
        here rather than before the envelope, so the relay reads MAIL and RCPT while the commit is made."""
        if batch.outcomes or batch.bounces:  # (none when another connection has just written them)
            await self._written(batch)
        batch.refresh_if_changed()  # the waits may have been long enough for a pause or close
        if storage_trouble(self.db):  # what is sent now might never be recorded as sent: back to the queue
            raise Withdrawn(("release", row["id"]))
        if (held := self._held(row, batch)) is not None:
            raise Withdrawn(held)

    def _retry_or_fail(self, row: dict[str, Any], batch: Batch, error: str) -> None:
        if row["attempts"] >= self.max_attempts:
            batch.outcomes.append(("failed", row["id"], f"gave up after {row['attempts']} attempts: {error}"))
        else:
            delay = self.retry_delay * 2 ** (row["attempts"] - 1)
            batch.outcomes.append(("retry", row["id"], error, self.clock() + timedelta(seconds=delay)))

    @staticmethod
    def _held(row: dict[str, Any], batch: Batch) -> tuple[Any, ...] | None:
        """The outcome for a survey message whose wave was closed (cancelled) or paused (back to the queue)."""
        if row["kind"] not in outbox.SURVEY_KINDS:
            return None
        wave = batch.waves.get(row["wave_id"])
        if wave is None or wave["state"] == "closed":
            return ("cancelled", row["id"], "wave closed")
        if wave["paused"]:
            return ("release", row["id"])
        return None

    def _prepare(self, row: dict[str, Any], batch: Batch) -> Outgoing | None:
        """The message to send, or None when it must not go (cancelled, or put back for a paused wave)."""
        if row["to_email"] in batch.suppressed:
            batch.outcomes.append(("cancelled", row["id"], "address suppressed"))
            return None
        wave = batch.waves.get(row["wave_id"])
        contact = batch.contacts.get(row["contact_id"])
        if row["kind"] in outbox.SURVEY_KINDS:
            if (held := self._held(row, batch)) is not None:
                batch.outcomes.append(held)
                return None
            if (row["wave_id"], row["contact_id"]) in batch.completed:
                batch.outcomes.append(("cancelled", row["id"], "completed the survey"))
                return None
        if wave is None or contact is None:
            batch.outcomes.append(("failed", row["id"], "its wave or contact no longer exists"))
            return None
        if row["kind"] in INTERVIEW_KINDS:
            message, reason = self.interviews.build(row, wave, contact, self.clock())
            if message is None:
                batch.outcomes.append(("cancelled", row["id"], reason))
                return None
        else:
            message = self.composer.message(
                row["kind"], wave, contact, self.clock(), to_email=row["to_email"], key=row["key"]
            )
        if self.bounce_address:  # VERP: the return path names this row, so a late bounce says which message
            message = replace(message, sender=verp.return_path(self.composer.secret, self.bounce_address, row["id"]))
        return message
