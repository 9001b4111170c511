"""A consistent copy of the live database, taken while ``serve`` runs (SQLite's online backup API).

The copy is written to a temporary file beside the target and renamed into place only when complete, so a
backup interrupted half-way never leaves a file that looks whole. In the copy the service lease is cleared
(a service started on a restored copy must not wait for the one that was running when it was taken) and
the moment of the backup is recorded, so that a restored service can say which messages may have gone out
after it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from surveybot.clock import iso
from surveybot.errors import InvalidInput

PAGES_PER_STEP = 1024  # copied between pauses, so the service keeps writing meanwhile


def backup(
    source: Path, target: Path, now: datetime, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Copy the database at ``source`` to ``target``; returns its size and what it holds."""
    if target.exists() and target.is_dir():
        raise InvalidInput(f"{target} is a folder; name the backup file", field="file")
    if target.resolve() == source.resolve():
        raise InvalidInput("the backup cannot overwrite the database itself", field="file")
    if not target.parent.is_dir():
        raise InvalidInput(f"folder {target.parent} does not exist", field="file")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    live = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(partial)
    try:

        def step(status: int, remaining: int, total: int) -> None:
            if progress:
                progress(total - remaining, total)

        live.backup(copy, pages=PAGES_PER_STEP, progress=step, sleep=0.005)
        copy.execute("DELETE FROM service_lease")
        copy.execute(
            "INSERT INTO meta (key, value) VALUES ('backup_taken_at', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [iso(now)],
        )
        copy.commit()
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        (messages,) = copy.execute("SELECT count(*) FROM outbox").fetchone()
        (waves,) = copy.execute("SELECT count(*) FROM waves").fetchone()
    finally:
        copy.close()
        live.close()
    os.replace(partial, target)
    return {
        "file": str(target),
        "bytes": target.stat().st_size,
        "waves": waves,
        "messages": messages,
        "taken_at": iso(now),
    }
