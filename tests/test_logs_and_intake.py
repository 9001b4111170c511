"""Batched log lines and the group-committed webhook inbox: faster, and nothing lost or said too early."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import time

from surveybot import inbox, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.logs import BatchedStreamHandler
from surveybot.platforms import FetchNeeded


def _logger(stream, interval=60.0, batch=256):
    handler = BatchedStreamHandler(stream, interval=interval, batch=batch)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.Logger("batched-test")
    logger.addHandler(handler)
    return logger, handler


def test_lines_wait_for_the_batch_but_a_warning_writes_everything_at_once():
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("first %s", "line")
    logger.info("second")
    assert stream.getvalue() == ""
    logger.warning("disk %d%% full", 93)
    assert stream.getvalue().splitlines() == ["INFO first line", "INFO second", "WARNING disk 93% full"]


def test_a_full_batch_and_the_timer_write_lines_out():
    stream = io.StringIO()
    logger, _ = _logger(stream, batch=3)
    for n in range(4):
        logger.info("line %d", n)
    assert stream.getvalue().splitlines() == ["INFO line 0", "INFO line 1", "INFO line 2"]
    timed = io.StringIO()
    logger, _ = _logger(timed, interval=0.05)
    logger.info("soon")
    for _ in range(100):
        if timed.getvalue():
            break
        time.sleep(0.02)
    assert timed.getvalue() == "INFO soon\n"


def test_arguments_are_captured_when_logged_not_when_written():
    stream = io.StringIO()
    logger, handler = _logger(stream)
    answers = ["before"]
    logger.info("value %s", answers)
    answers[0] = "after"
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    handler.flush()
    text = stream.getvalue()
    assert "INFO value ['before']" in text and "Traceback" in text and "ValueError: boom" in text


def _wave(db):
    spec = waves.WaveSpec(
        slug="w",
        title="W",
        platform="qualtrics",
        survey_id="SV_1",
        survey_url="https://example.qualtrics.com/jfe/form/SV_1",
    )
    waves.create_wave(db, spec, utcnow())
    return waves.get_wave(db, "w")


async def test_concurrent_notifications_share_a_commit_and_each_learns_if_it_was_new(tmp_path):
    db = open_db(tmp_path / "s.db")
    wave = _wave(db)
    intake = inbox.Intake(db)
    needs = [FetchNeeded("qualtrics", "SV_1", f"R_{n % 30}", "completed") for n in range(40)]
    before = db.conn.total_changes
    added = await asyncio.gather(*(intake.add(wave["id"], need) for need in needs))
    assert added == [True] * 30 + [False] * 10  # the last ten repeat ids already queued
    # Stored by the time each answer came: another connection sees every row.
    other = sqlite3.connect(tmp_path / "s.db")
    assert other.execute("SELECT count(*) FROM webhook_inbox").fetchone()[0] == 30
    assert db.conn.total_changes - before == 30
    assert await intake.add(wave["id"], needs[0]) is False


async def test_a_failed_commit_fails_every_waiting_handler_and_keeps_nothing(tmp_path):
    db = open_db(tmp_path / "s.db")
    intake = inbox.Intake(db)
    # Wave 999 does not exist: the foreign key fails the batch.
    results = await asyncio.gather(
        *(intake.add(999, FetchNeeded("qualtrics", "SV_1", f"R_{n}", "completed")) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert db.execute("SELECT count(*) FROM webhook_inbox").fetchone()[0] == 0
