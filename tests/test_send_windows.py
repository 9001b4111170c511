"""Working hours: invitations and reminders wait for each officer's own window, from Seoul to Mexico City."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from surveybot import plan, waves
from surveybot.clock import iso, parse_stored
from surveybot.db import open_db
from surveybot.errors import InvalidInput
from surveybot.mail.compose import Composer
from surveybot.outbox import OUTSIDE_WINDOW
from surveybot.windows import parse_days, parse_window
from tests.service import settings_for, wave_create_args

HEADER = "name,email,city,country,region,language,timezone\n"
OFFICERS = [
    "Min-jun Kim,seoul@city.example.org,Seoul,South Korea,Asia,en,",  # city → Asia/Seoul
    "Lupe Díaz,cdmx@city.example.org,Ciudad de México,México,Latin America,es,",  # America/Mexico_City
    "Priya Rao,mumbai@city.example.org,Mumbai,India,Asia,en,",  # Asia/Kolkata, a half-hour offset
    "Tom Hale,london@city.example.org,London,United Kingdom,Europe,en,Europe/London",  # DST ends 25 October
    "Ana Pérez,bogota@city.example.org,Bogotá,Colombia,Latin America,es,",  # America/Bogota
    "Nadie,nowhere@city.example.org,,,,en,",  # unknown: the wave's zone (America/Chicago)
]
LAUNCH = datetime(2026, 10, 20, 15, 0, tzinfo=UTC)  # a Tuesday


def field(tmp_path, **spec):
    settings = settings_for(tmp_path, "maildir://" + str(tmp_path / "mail"))
    (tmp_path / "list.csv").write_text(HEADER + "\n".join(OFFICERS) + "\n", encoding="utf-8")
    db = open_db(settings.db_path)
    from surveybot.contacts.importer import import_contacts

    import_contacts(db, tmp_path / "list.csv", "Metropolis")
    defaults = dict(
        slug="w",
        title="City diplomacy 2026",
        platform="signed",
        survey_id="S1",
        survey_url="https://survey.example.org/s",
        reminders=(timedelta(days=7),),
        close_after=timedelta(days=14),
        timezone="America/Chicago",
        send_window="09:00-17:00",
        send_days="mon-fri",
    )
    waves.create_wave(db, waves.WaveSpec(**{**defaults, **spec}), LAUNCH)
    waves.launch(db, "w", LAUNCH)
    return settings, db


def due_by_address(db, kind: str) -> dict[str, str]:
    return {
        email: due
        for email, due in db.execute("SELECT to_email, due_at FROM outbox WHERE kind = ? AND state = 'queued'", [kind])
    }


def test_each_message_waits_for_the_recipients_own_working_hours(tmp_path):
    settings, db = field(tmp_path)
    plan.run_due(db, "s" * 32, LAUNCH)
    due = due_by_address(db, "invitation")
    from surveybot.reports import wave_status

    status = wave_status(db, waves.get_wave(db, "w"), "s" * 32, "https://survey.example.org")
    assert [slot["messages"] for slot in status["release_times"]] == [4, 1, 1]  # now, Seoul, Mumbai
    assert due == {
        "seoul@city.example.org": iso(datetime(2026, 10, 21, 0, 0, tzinfo=UTC)),  # Wed 09:00 KST
        "cdmx@city.example.org": iso(LAUNCH),  # 09:00 there: at once
        "mumbai@city.example.org": iso(datetime(2026, 10, 21, 3, 30, tzinfo=UTC)),  # Wed 09:00 IST
        "london@city.example.org": iso(LAUNCH),  # 16:00 BST: still in the window
        "bogota@city.example.org": iso(LAUNCH),  # 10:00 there
        "nowhere@city.example.org": iso(LAUNCH),  # 10:00 in Chicago, the wave's zone
    }
    # the reminder, a week later: London has left summer time (15:00 UTC is 15:00 there now, in the window)
    reminder_at = LAUNCH + timedelta(days=7)
    plan.run_due(db, "s" * 32, reminder_at)
    due = due_by_address(db, "reminder")
    assert due["london@city.example.org"] == iso(reminder_at)
    assert due["seoul@city.example.org"] == iso(datetime(2026, 10, 28, 0, 0, tzinfo=UTC))

    # the text states the closing moment as each reader's calendar shows it
    wave = waves.get_wave(db, "w")
    composer = Composer(db, settings, "s" * 32)
    seoul = next(
        db.query(
            "SELECT id, email, name, city, country, language, timezone FROM contacts "
            "WHERE email = 'seoul@city.example.org'"
        )
    )
    message = composer.message(
        "invitation", wave, seoul, parse_stored(due_by_address(db, "reminder")["seoul@city.example.org"])
    )
    text = message_from_bytes(message.data, policy=policy.default).get_body(("plain",)).get_content()
    assert (
        "closes in 7 days, on 4 November at 00:00 (Korean Time)" in text
    )  # 3 November 15:00 UTC is past midnight there


def test_a_friday_evening_waits_for_monday_and_a_window_after_the_close_is_skipped_and_counted(tmp_path):
    friday = datetime(2026, 10, 23, 23, 0, tzinfo=UTC)  # Fri 18:00 in Bogotá, Sat 08:00 in Seoul
    settings, db = field(tmp_path, close_after=timedelta(hours=40), reminders=())
    db.execute("UPDATE wave_steps SET due_at = ? WHERE kind = 'invitation'", [iso(friday)])
    closes = iso(friday + timedelta(hours=40))  # Sunday 15:00 UTC
    db.execute("UPDATE waves SET closes_at = ?", [closes])
    db.execute("UPDATE wave_steps SET due_at = ? WHERE kind = 'close'", [closes])
    db.conn.commit()
    plan.run_due(db, "s" * 32, friday)
    states = {
        email: (state, error)
        for email, state, error in db.execute(
            "SELECT to_email, state, last_error FROM outbox WHERE kind = 'invitation'"
        )
    }
    # everyone's next window is on Monday, after the Sunday close: nothing goes, each one counted
    assert {state for state, _ in states.values()} == {"cancelled"}
    assert {error for _, error in states.values()} == {OUTSIDE_WINDOW}
    from surveybot.reports import wave_status

    status = wave_status(db, waves.get_wave(db, "w"), "s" * 32, "https://survey.example.org")
    assert status["skipped_outside_window"] == len(OFFICERS) and status["release_times"] == []


def test_a_wave_without_a_window_sends_at_the_steps_time(tmp_path):
    _, db = field(tmp_path, send_window="", send_days="")
    plan.run_due(db, "s" * 32, LAUNCH)
    assert set(due_by_address(db, "invitation").values()) == {iso(LAUNCH)}


def test_windows_days_and_zones_are_checked_with_clear_errors(tmp_path, run_cli):
    assert parse_window("9:00-17:30") == (datetime(2000, 1, 1, 9).time(), datetime(2000, 1, 1, 17, 30).time())
    assert parse_days("Mon-Fri") == frozenset(range(5)) and parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    for bad in ("9-17", "17:00-09:00", "25:00-26:00"):
        with pytest.raises(InvalidInput, match="window"):
            parse_window(bad)
    with pytest.raises(InvalidInput, match="days"):
        parse_days("weekdays")
    made = run_cli(
        *wave_create_args("w"),
        "--timezone",
        "Mars/Olympus",
    )
    assert made.returncode == 1 and "Mars/Olympus" in made.stderr and "time zone" in made.stderr
    made = run_cli(
        *wave_create_args("w"),
        extra_env={"TZ": "Asia/Kathmandu"},
        check=True,
    )
    assert "Time zone of the wave: Asia/Kathmandu" in made.stdout
