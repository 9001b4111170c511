"""The dashboard's figures, computed in a worker process and kept for a moment.

Every figure of a page is computed in one worker process (spawned at the first page, so the event loop's
interpreter never runs a dashboard query: webhooks and e-mail never wait for a dashboard) on its own
read-only connection, inside one read transaction (a consistent snapshot). A result is reused for
``FRESH_FOR`` seconds, or twice as long as it took to compute if that is longer (so an open dashboard of a
large wave keeps the worker busy a third of the time at most). After that the next request computes it again
and waits for it — unless the last computation took longer than ``SLOW`` seconds (a large wave): then the
page is served from the figures it has while new ones are computed, so a page never waits long and is at most
a few seconds behind. Nothing is computed again while the database has not changed (SQLite's
``data_version``: any other connection's commit, this service's own included, changes it).

A computation is a module-level function ``compute(db, *args)`` (it crosses to the worker by name).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from surveybot.db import open_db

FRESH_FOR = 1.5  # seconds
SLOW = 0.15  # seconds
log = logging.getLogger("surveybot.web")


@dataclass(frozen=True)
class _Kept:
    at: float  # when its computation started, or when the data was last found unchanged (monotonic)
    took: float
    value: Any
    version: int  # the database's data_version it was computed at


class Figures:
    def __init__(self, db_path: Path, *, fresh_for: float = FRESH_FOR, slow: float = SLOW) -> None:
        self.db_path, self.fresh_for, self.slow = db_path, fresh_for, slow
        self._worker: ProcessPoolExecutor | None = None  # started at the first page
        self._kept: dict[Hashable, _Kept] = {}
        self._pending: dict[Hashable, asyncio.Future[_Kept]] = {}

    async def get(self, key: Hashable, compute: Callable[..., Any], *args: Any) -> Any:
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept.at < max(self.fresh_for, 2 * kept.took):
            return kept.value
        pending = self._pending.get(key) or self._start(key, compute, args, kept)
        if kept is not None and kept.took > self.slow:
            return kept.value  # a large wave: these figures now, fresh ones on the next look
        return (await asyncio.shield(pending)).value

    def forget(self) -> None:
        """After a change made from a page (pause, assign …): the next page shows it."""
        self._kept.clear()

    def _start(
        self, key: Hashable, compute: Callable[..., Any], args: tuple[Any, ...], kept: _Kept | None
    ) -> asyncio.Future[_Kept]:
        if self._worker is None:
            self._worker = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_leave_interrupts_to_the_service
            )
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        known = kept.version if kept is not None else None
        done_in_worker = loop.run_in_executor(self._worker, _compute, str(self.db_path), compute, args, known)
        future: asyncio.Future[_Kept] = loop.create_future()
        self._pending[key] = future

        def done(finished: asyncio.Future[tuple[int, float, Any, bool]]) -> None:
            self._pending.pop(key, None)
            error = None if finished.cancelled() else finished.exception()
            if finished.cancelled() or error is not None:
                if isinstance(error, BrokenProcessPool):  # the worker died: the next page starts another
                    self._worker = None
                if not future.done():
                    future.set_exception(error or asyncio.CancelledError())
                    future.exception()  # a background refresh nobody awaits: retried on the next look
                return
            version, took, value, same = finished.result()
            if same and kept is not None:
                took, value = kept.took, kept.value
            result = _Kept(started, took, value, version)
            self._kept[key] = result
            if not future.done():
                future.set_result(result)

        done_in_worker.add_done_callback(done)
        return future

    async def close(self) -> None:
        """Wait for computations under way, then stop the worker."""
        for future in list(self._pending.values()):
            try:
                await future
            except Exception as exc:
                log.debug("dashboard figures not computed at shutdown: %s", exc)
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None


# --- in the worker process ----------------------------------------------------------------------------------

_db: Database | None = None


def _leave_interrupts_to_the_service() -> None:
    """Ctrl-C at a terminal reaches the whole process group: the service stops this worker itself, after
    the computations under way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _compute(
    path: str, compute: Callable[..., Any], args: tuple[Any, ...], known: int | None
) -> tuple[int, float, Any, bool]:
    """(data_version, seconds it took, the figures, whether they are unchanged since ``known``)."""
    global _db
    if _db is None:
        _db = open_db(path, migrate=False)
        _db.execute("PRAGMA query_only = 1")
    conn = _db.conn
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    if version == known:
        return version, 0.0, None, True  # nothing changed: the figures it has are still right
    started = time.monotonic()
    conn.execute("BEGIN")  # one snapshot for all of a page's figures
    try:
        value = compute(_db, *args)
    finally:
        conn.execute("COMMIT")
    return version, time.monotonic() - started, value, False
