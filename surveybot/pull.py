"""Pulled responses: for teams whose platform sends no webhooks to them (Qualtrics without a brand administrator,
LimeSurvey), and as a safety net for webhooks that never came.

Each platform's ``pull(session, settings, wave, cursor)`` yields batches of response events with the cursor to
store once the batch is recorded (Qualtrics: the export's continuation token; LimeSurvey: the last id and the ids
still unfinished). A batch and its cursor are written in one transaction, so a pull interrupted anywhere repeats
from the last stored cursor and never skips; every event goes through the same rule as a webhook's
(``responses.record``, idempotent per response id), so a wave can switch between webhook and poll, or be synced
by hand, without counting anything twice.

``serve`` runs :class:`Puller`: a wave in poll mode is pulled every ``SURVEYBOT_POLL_EVERY`` from its start until
its in-progress timeout has passed after the close (a response still in progress at the close is recorded, as a
partial, only when that timeout ends it); a Qualtrics wave taking webhooks is pulled once a day. A platform that
refuses the credentials is said once, in one line and in the wave's status, and asked again only hourly.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from sqlite_utils import Database

from surveybot import recipients, responses
from surveybot.clock import LONGEST, iso, parse_stored, utcnow
from surveybot.db import is_busy, retry_busy, transaction
from surveybot.platforms import ApiError, ResponseEvent, limesurvey, qualtrics_export
from surveybot.supervise import Stoppable
from surveybot.waves import PULLED, waves_by_id

if TYPE_CHECKING:
    from surveybot.config import Settings

log = logging.getLogger("surveybot.pull")
SAFETY_NET_EVERY = timedelta(days=1)  # waves taking webhooks
PULLS_AT_ONCE = 4  # waves pulled at the same time by serve
STOP_GRACE_S = 5.0  # on stopping, how long pulls may take to finish the batch they are recording
REFUSED_EVERY = timedelta(hours=1)  # a platform refusing the credentials is asked again this seldom


class PullFunction(Protocol):
    def __call__(
        self, session: aiohttp.ClientSession, settings: Settings, wave: dict[str, Any], cursor: str | None
    ) -> AsyncGenerator[tuple[list[ResponseEvent], str | None], None]: ...


PULLERS: dict[str, PullFunction] = {"qualtrics": qualtrics_export.pull, "limesurvey": limesurvey.pull}


@dataclass
class PullResult:
    wave: str
    outcomes: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    error: str = ""
    refused: bool = False
    stopped: bool = False  # ended early by a stop: the next pull goes on from the cursor stored with the last batch

    def as_json(self) -> dict[str, Any]:
        return {
            "wave": self.wave,
            "read": sum(self.outcomes.values()),
            "outcomes": dict(self.outcomes),
            "error": self.error,
            "refused": self.refused,
        }


# --- wave_pulls: where each wave's pulls stand ---


def state(db: Database, wave_id: int) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM wave_pulls WHERE wave_id = ?", [wave_id]), None)


def _ensure(db: Database, wave_id: int) -> None:
    db.execute("INSERT OR IGNORE INTO wave_pulls (wave_id) VALUES (?)", [wave_id])


def _started(db: Database, wave_id: int, now: datetime) -> str | None:
    with transaction(db):
        _ensure(db, wave_id)
        db.execute("UPDATE wave_pulls SET last_started_at = ? WHERE wave_id = ?", [iso(now), wave_id])
        row = db.execute("SELECT cursor FROM wave_pulls WHERE wave_id = ?", [wave_id]).fetchone()
    return row[0] if row else None


def _record(
    db: Database, wave: dict[str, Any], events: list[ResponseEvent], cursor: str | None, now: datetime
) -> Counter[str]:
    """Record a batch and store its cursor, together."""
    outcomes: Counter[str] = Counter()
    with transaction(db):
        for event in events:
            outcomes[responses.record(db, wave, event, now)] += 1
        db.execute(
            "UPDATE wave_pulls SET cursor = ?, recorded = recorded + ? WHERE wave_id = ?",
            [cursor, len(events) - outcomes["repeat"] - outcomes["other_wave"], wave["id"]],
        )
    return outcomes


def _finished(db: Database, wave_id: int, now: datetime, next_at: datetime, error: str, refused: bool) -> None:
    with transaction(db):
        db.execute(
            "UPDATE wave_pulls SET next_at = ?, last_error = ?, refused = ?, "
            "last_done_at = CASE WHEN ? = '' THEN ? ELSE last_done_at END WHERE wave_id = ?",
            [iso(next_at), error[:500], int(refused), error, iso(now), wave_id],
        )


def due(db: Database, now: datetime) -> list[dict[str, Any]]:
    """The waves to pull now: launched, on a platform with an export API, not past their in-progress timeout
    after the close, and whose next pull has come (or was never set). A wave taking webhooks is first pulled a day
    after it is first seen open: its safety net, not a second intake."""
    unseen = [
        wave_id
        for (wave_id,) in db.execute(
            f"""SELECT w.id FROM waves w LEFT JOIN wave_pulls p ON p.wave_id = w.id
                WHERE p.wave_id IS NULL AND w.intake = 'webhook' AND w.state IN ('open', 'closed')
                AND w.platform IN ({",".join("?" * len(PULLED))})""",
            list(PULLED),
        )
    ]
    if unseen:  # written only then: this runs every few seconds, and must not take the write lock each time
        with transaction(db):
            db.conn.executemany(
                "INSERT OR IGNORE INTO wave_pulls (wave_id, next_at) VALUES (?, ?)",
                [(wave_id, iso(now + SAFETY_NET_EVERY)) for wave_id in unseen],
            )
    ids = [
        wave_id
        for wave_id, platform, closed, timeout, next_at in db.execute(
            f"""SELECT w.id, w.platform, COALESCE(w.closed_at, w.closes_at), w.in_progress_timeout, p.next_at
                FROM waves w LEFT JOIN wave_pulls p ON p.wave_id = w.id
                WHERE w.state IN ('open', 'closed') AND w.platform IN ({",".join("?" * len(PULLED))})""",
            list(PULLED),
        )
        # (a timeout stored before durations were bounded is read as the longest one: its date cannot overflow)
        if (closed is None or parse_stored(closed) + timedelta(seconds=min(timeout, LONGEST.total_seconds())) > now)
        and (next_at is None or parse_stored(next_at) <= now)
    ]
    return list(waves_by_id(db, ids).values())


def note_enrolled(db: Database, wave_id: int, count: int) -> None:
    """How many of the wave's people are participants of its LimeSurvey survey."""
    with transaction(db):
        _ensure(db, wave_id)
        db.execute("UPDATE wave_pulls SET enrolled = ? WHERE wave_id = ?", [count, wave_id])


def _unenrolled(db: Database, wave_id: int) -> int:
    """Recipients added since the last enrolment (contacts imported between the launch and the invitations)."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM recipients WHERE wave_id = ?) - "
        "COALESCE((SELECT enrolled FROM wave_pulls WHERE wave_id = ?), 0)",
        [wave_id, wave_id],
    ).fetchone()
    return int(row[0])


def _next(wave: dict[str, Any], settings: Settings, now: datetime) -> datetime:
    return now + (timedelta(seconds=settings.poll_every) if wave["intake"] == "poll" else SAFETY_NET_EVERY)


_WORDS = {
    "complete": "complete",
    "duplicate": "complete but flagged as a duplicate",
    "unmatched": "tied to nobody (kept aside)",
    "partial": "partial (thrown out)",
    "repeat": "already recorded",
    "other_wave": "another wave's (left to it)",
}


def describe(outcomes: Counter[str]) -> str:
    """``3 complete, 1 partial (thrown out), 5 already recorded``, or that nothing came back."""
    said = [f"{outcomes[key]:,} {words}" for key, words in _WORDS.items() if outcomes[key]]
    return ", ".join(said) if said else "no responses yet"


# --- pulling ---


async def pull_wave(
    db: Database,
    settings: Settings,
    session: aiohttp.ClientSession,
    wave: dict[str, Any],
    *,
    clock: Callable[[], datetime] = utcnow,
    stopping: Callable[[], bool] = lambda: False,
    on_batch: Callable[[PullResult], None] = lambda result: None,
) -> PullResult:
    """Pull the wave's new responses and record them; an API failure is returned in the result (and stored
    for ``wave status``), not raised. The next scheduled pull is set from the wave's intake."""
    result = PullResult(wave["slug"])
    puller = PULLERS.get(wave["platform"])
    if puller is None:
        result.error = f"{wave['platform']} responses cannot be pulled"
        return result
    cursor = await retry_busy(lambda: _started(db, wave["id"], clock()), what="starting a pull", stopping=stopping)
    next_at: datetime | None = None
    try:
        if wave["platform"] == "limesurvey" and _unenrolled(db, wave["id"]) > 0:
            await _enrol(db, settings, session, wave, result)
        batches = puller(session, settings, wave, cursor)
        try:
            while True:
                try:
                    events, next_cursor = await anext(batches)
                except StopAsyncIteration:
                    break
                except (ApiError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # whatever else reading the platform's answer raised: this wave, this time
                    log.exception("wave %s: the platform's answer could not be read", wave["slug"])
                    message = f"the platform's answer could not be read ({type(exc).__name__}: {exc})"
                    raise ApiError(message, True) from exc
                recorded = await retry_busy(
                    partial(_record, db, wave, events, next_cursor, clock()),
                    what="recording responses",
                    stopping=stopping,
                )
                result.outcomes.update(recorded)
                result.batches += 1
                on_batch(result)
                if stopping():  # what was recorded stays, with its cursor; the next start goes on from there
                    result.stopped = True
                    return result
        finally:
            await batches.aclose()  # its spooled export file goes now, however the pull ended
    except ApiError as exc:
        result.error, result.refused = str(exc), exc.refused
        # a failed pull is tried again at the polling pace (a daily safety net too), or as late as the platform asks
        wait = REFUSED_EVERY if exc.refused else timedelta(seconds=max(settings.poll_every, exc.retry_after or 0))
        next_at = clock() + wait
    except Exception as exc:
        if isinstance(exc, sqlite3.OperationalError) and stopping():
            raise  # stopping with the database locked: nothing more can be written
        # a fault met in this wave's data (a bug): this wave fails this time and is tried at the polling pace;
        # the other waves' pulls go on
        log.exception("wave %s: pulling failed", wave["slug"])
        result.error = f"internal error while pulling: {type(exc).__name__}: {exc}"
        next_at = clock() + timedelta(seconds=settings.poll_every)
    now = clock()
    await retry_busy(
        lambda: _finished(db, wave["id"], now, next_at or _next(wave, settings, now), result.error, result.refused),
        what="noting a pull",
        stopping=stopping,
    )
    return result


async def _enrol(
    db: Database, settings: Settings, session: aiohttp.ClientSession, wave: dict[str, Any], result: PullResult
) -> None:
    """Make the wave's newer recipients LimeSurvey participants (their links work only then); enrolling adds only
    those missing. People LimeSurvey refuses are said, not asked for again at every pull; a failure to reach it
    is said and tried at the next pull, and the pull goes on — unless LimeSurvey refused the login itself."""
    count = len(recipients.with_contacts(db, wave["id"]))
    try:
        await limesurvey.enrol(session, settings, db, wave)
    except limesurvey.EnrolIncomplete as exc:
        result.error = str(exc)
    except ApiError as exc:
        if exc.refused:  # the pull would be refused too: said once, tried again hourly
            raise
        result.error = str(exc)
        return
    await retry_busy(lambda: note_enrolled(db, wave["id"], count), what="noting participants")


class Puller(Stoppable):
    """``serve``'s pulling loop: every ``tick`` seconds, start a pull of each wave that is due and not already
    being pulled, up to ``PULLS_AT_ONCE`` at a time (an export Qualtrics takes half an hour to build holds back
    no other wave)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        tick: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__()
        self.db, self.settings, self.session = db, settings, session
        self.tick, self.clock = tick, clock
        self._said: dict[int, str] = {}  # the last error logged per wave: each said once, not every pull
        self._pulling: dict[int, asyncio.Task[None]] = {}  # wave id → its pull under way

    async def run(self) -> None:
        try:
            while not self._stopping:
                self._collect()  # a pull that raised ends the loop here (its supervisor restarts it)
                try:
                    waiting = due(self.db, self.clock())
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                    waiting = []  # another process holds the write lock: the waves are still due at the next turn
                for wave in waiting:
                    if self._stopping or len(self._pulling) >= PULLS_AT_ONCE:
                        break
                    if wave["id"] not in self._pulling:
                        self._pulling[wave["id"]] = asyncio.create_task(self._pull(wave))
                await self.nap(self.tick)
        finally:
            # stopping: each pull ends after the batch it is recording, or is cancelled after STOP_GRACE_S (an
            # export still being built); either way what was recorded stays with its cursor, so the next start
            # goes on from there. Failing: the others are cancelled, to be started again by the restarted loop.
            if self._stopping and self._pulling:
                await asyncio.wait(self._pulling.values(), timeout=STOP_GRACE_S)
            for task in self._pulling.values():
                task.cancel()
            await asyncio.gather(*self._pulling.values(), return_exceptions=True)
            self._pulling.clear()

    def _collect(self) -> None:
        for wave_id, task in list(self._pulling.items()):
            if task.done():
                del self._pulling[wave_id]
                task.result()

    async def _pull(self, wave: dict[str, Any]) -> None:
        result = await pull_wave(
            self.db, self.settings, self.session, wave, clock=self.clock, stopping=lambda: self._stopping
        )
        self._report(wave, result)
        self.wake()  # a free place: the next due wave need not wait for the tick

    def _report(self, wave: dict[str, Any], result: PullResult) -> None:
        if result.error:
            if self._said.get(wave["id"]) != result.error:
                self._said[wave["id"]] = result.error
                level = logging.ERROR if result.refused else logging.WARNING
                log.log(level, "wave %s: pulling responses failed: %s", wave["slug"], result.error)
            return
        if self._said.pop(wave["id"], None):
            log.info("wave %s: pulling responses works again", wave["slug"])
        if result.outcomes:
            counted = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result.outcomes.items()))
            log.info("wave %s: pulled %s", wave["slug"], counted)
