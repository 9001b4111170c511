"""``wave preview`` shows each message as it will be sent: a reminder as of its step's time, a wave that
starts later as of its start, a named contact's closing time in their own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from surveybot.clock import iso
from surveybot.db import open_db

CONTACTS = (
    "name,email,city,country,language,timezone\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,en,\n"
    "Ken Sato,ken@tokyo.example.org,Tokyo,Japan,en,\n"
)
CREATE = (
    "wave",
    "create",
    "w",
    "--title",
    "City diplomacy 2026",
    "--platform",
    "signed",
    "--survey-id",
    "S1",
    "--survey-url",
    "https://survey.example.org/s1",
    "--reminders",
    "7d,12d",
    "--close-after",
    "14d",
    "--timezone",
    "UTC",
)


def setup(tmp_path, run_cli, *extra: str) -> None:
    (tmp_path / "list.csv").write_text(CONTACTS, encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    run_cli(*CREATE, *extra, check=True)


def preview(run_cli, kind: str, *extra: str) -> str:
    return run_cli("wave", "preview", "w", "--kind", kind, "--language", "en", *extra, check=True).stdout


def test_each_kind_states_the_time_left_as_of_its_own_step(tmp_path, run_cli):
    setup(tmp_path, run_cli)
    assert "closes in 14 days" in preview(run_cli, "invitation")
    assert "closes in 7 days" in preview(run_cli, "reminder")  # sent 7 days in
    assert "closes in 2 days" in preview(run_cli, "final_reminder")  # sent 12 days in

    run_cli("wave", "launch", "w", "--yes", check=True)  # the same once launched: the plan's steps
    assert "closes in 7 days" in preview(run_cli, "reminder")
    assert "closes in 2 days" in preview(run_cli, "final_reminder")


def test_a_wave_starting_later_is_previewed_as_of_its_start(tmp_path, run_cli):
    start = (datetime.now(UTC) + timedelta(days=30)).replace(hour=12, minute=0, second=0, microsecond=0)
    setup(tmp_path, run_cli, "--start", start.isoformat())
    closes = start + timedelta(days=14)
    text = preview(run_cli, "invitation")  # the sample contact is in Bogotá: 12:00 UTC is 07:00 there
    assert "closes in 14 days" in text
    assert f"on {closes.day} {closes:%B} at 07:00 (Colombia Time)" in text  # not 14 days from today
    assert "closes in 7 days" in preview(run_cli, "reminder")
    assert f"on {closes.day} {closes:%B} at 07:00 (Colombia Time)" in preview(run_cli, "reminder")


def test_a_named_contact_sees_the_closing_time_in_their_zone(tmp_path, run_cli):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    start = start.replace(hour=20, minute=30, second=0)  # 20:30 UTC is 15:30 in Bogotá, 05:30 next day in Tokyo
    setup(tmp_path, run_cli, "--start", start.isoformat())
    closes = start + timedelta(days=14)
    bogota = preview(run_cli, "invitation", "--contact", "ana@bogota.example.org")
    tokyo = preview(run_cli, "invitation", "--contact", "ken@tokyo.example.org")
    assert f"on {closes.day} {closes:%B} at 15:30 (Colombia Time)" in bogota
    following = closes + timedelta(days=1)
    assert f"on {following.day} {following:%B} at 05:30 (Japan Time)" in tokyo
    assert "closes in 14 days" in bogota and "closes in 14 days" in tokyo


def test_a_reminder_still_to_come_of_a_running_wave_counts_from_its_own_time(tmp_path, run_cli):
    setup(tmp_path, run_cli)
    run_cli("wave", "launch", "w", "--yes", check=True)
    db = open_db(tmp_path / "surveybot.db")
    # the invitation went three days ago: the wave closes in eleven days, the first reminder is due in four
    now = datetime.now(UTC)
    db.execute(
        "UPDATE wave_steps SET due_at = CASE kind WHEN 'invitation' THEN ? WHEN 'reminder' THEN ? "
        "WHEN 'final_reminder' THEN ? ELSE ? END, state = CASE kind WHEN 'invitation' THEN 'done' ELSE state END, "
        "done_at = CASE kind WHEN 'invitation' THEN ? ELSE done_at END",
        [
            iso(now - timedelta(days=3)),
            iso(now + timedelta(days=4)),
            iso(now + timedelta(days=9)),
            iso(now + timedelta(days=11)),
            iso(now - timedelta(days=3)),
        ],
    )
    db.execute("UPDATE waves SET closes_at = ?", [iso(now + timedelta(days=11))])
    db.conn.commit()
    db.close()
    assert "closes in 7 days" in preview(run_cli, "reminder")
    assert "closes in 2 days" in preview(run_cli, "final_reminder")
    assert "closes in 14 days" in preview(run_cli, "invitation")  # what was sent three days ago
