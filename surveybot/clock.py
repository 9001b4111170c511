"""Time, injected: stages take ``now`` so tests can run a two-week wave in seconds."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """The one text form of a moment stored in the database (UTC, so text order is time order)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
