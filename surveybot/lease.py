"""One ``serve`` per database: a lease row that the running service renews every few seconds.

Two services on one file would claim the same queued messages and send at twice the rate. So ``serve``
takes the lease before it sends anything and gives it back when it stops; a second one is refused and told
who holds it. A holder that stopped renewing for ``STALE_AFTER`` (it crashed, or its machine did) can be
taken over, and so can one whose process is gone from this same host (a restart after a crash need not
wait). Only after taking the lease may a service recover the messages the old holder left ``sending``.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from surveybot.clock import iso, parse_stored
from surveybot.db import transaction
from surveybot.errors import SurveybotError

NAME = "serve"
STALE_AFTER = timedelta(seconds=60)
BEAT_EVERY = 5.0  # seconds


class LeaseHeld(SurveybotError):
    """Another ``serve`` is running on this database."""


def new_holder() -> dict[str, Any]:
    return {"holder": secrets.token_hex(8), "pid": os.getpid(), "host": socket.gethostname()}


def _gone(row: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether the process that holds ``row`` is known to be gone: same host, and no such process (or the
    pid is ours now, as for the first process of a restarted container)."""
    if row["host"] != me["host"]:
        return False
    if row["pid"] == me["pid"]:
        return True
    try:
        os.kill(row["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by someone else
        return False
    return False


def check(db: Database, me: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Raise :class:`LeaseHeld` naming the holder if a live ``serve`` other than ``me`` holds the lease;
    otherwise return the row of a holder that may be taken over (or None)."""
    row = current(db)
    if row is not None and row["holder"] != me["holder"]:
        fresh = now - parse_stored(row["heartbeat_at"]) < STALE_AFTER
        if fresh and not _gone(row, me):
            raise LeaseHeld(
                f"another 'surveybot serve' is running on this database (pid {row['pid']} on {row['host']}, "
                f"since {row['started_at'][:19]} UTC, last seen {row['heartbeat_at'][:19]} UTC); stop it "
                f"first — if it has crashed, its lease lapses {int(STALE_AFTER.total_seconds())} s after it "
                f"was last seen"
            )
        return row
    return None


def acquire(db: Database, me: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Take the lease for ``me`` or raise :class:`LeaseHeld` naming the holder. Returns the previous
    holder's row when one was taken over (it stopped without giving the lease back), else None."""
    with transaction(db):
        row = check(db, me, now)
        db.execute(
            """INSERT INTO service_lease (name, holder, pid, host, started_at, heartbeat_at)
                      VALUES (?, ?, ?, ?, ?, ?)
                      ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,
                          host = excluded.host, started_at = excluded.started_at,
                          heartbeat_at = excluded.heartbeat_at""",
            [NAME, me["holder"], me["pid"], me["host"], iso(now), iso(now)],
        )
    return row


def beat(db: Database, me: dict[str, Any], now: datetime) -> bool:
    """Renew the lease; False if it was taken over meanwhile (this service must stop sending)."""
    with transaction(db):
        cursor = db.execute(
            "UPDATE service_lease SET heartbeat_at = ? WHERE name = ? AND holder = ?", [iso(now), NAME, me["holder"]]
        )
    return cursor.rowcount == 1


def release(db: Database, me: dict[str, Any]) -> None:
    with transaction(db):
        db.execute("DELETE FROM service_lease WHERE name = ? AND holder = ?", [NAME, me["holder"]])


def current(db: Database) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM service_lease WHERE name = ?", [NAME]), None)


def seen_since(db: Database, since: datetime) -> bool:
    """Whether a ``serve`` has renewed its lease on this database since ``since``."""
    row = current(db)
    return row is not None and parse_stored(row["heartbeat_at"]) >= since
