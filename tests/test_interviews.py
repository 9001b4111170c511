"""Interview scheduling against the real service: invitations through a real SMTP server, booking over HTTP,
calendar invitations parsed back with icalendar, races, expiry, forged links and the researcher's commands."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from surveybot import tokens
from surveybot.clock import iso, parse_stored, utcnow
from surveybot.db import open_db
from surveybot.interviews import queue
from surveybot.signing import service_secret
from tests import interview_field as f
from tests.service import running, settings_for, wait_until


@pytest.fixture
async def field(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    f.write_contacts(settings)
    db = open_db(settings.db_path)
    interviews = f.opt_in_everyone(db)
    mail_sink.handler.received.clear()
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        yield {
            "db": db,
            "settings": settings,
            "ids": interviews,
            "base": base,
            "session": session,
            "secret": service_secret(db, None),
        }
    db.close()


def mails_to(sink, address: str) -> list[f.Mail]:
    return [f.read(r.raw) for r in sink.to(address)]


async def post(field, link: str, **form) -> tuple[int, str]:
    local = link.replace("https://survey.example.org", field["base"])
    async with field["session"].post(local, data=form) as response:
        return response.status, await response.text()


async def test_invitation_in_each_language_then_booking_sends_both_sides_a_calendar_invitation(field, mail_sink):
    db = field["db"]
    slot_ids = f.publish(db, f.in_three_days_at(14), 4)
    f.invite_all(db, field["settings"])
    ana, joe, pat = "ana@bogota.example.org", "joe@leeds.example.org", "pat@lima.example.org"
    await wait_until(lambda: all(mail_sink.to(a) for a in (ana, joe, pat)), what="the invitations to book")
    invitation = mails_to(mail_sink, ana)[0]
    assert invitation.subject.startswith("Su entrevista de seguimiento") and invitation.languages == "es"
    assert "Elija el horario" in invitation.text
    assert mails_to(mail_sink, joe)[0].subject.startswith("Your follow-up interview")
    bilingual = mails_to(mail_sink, pat)[0]
    assert bilingual.languages == "es, en" and "Elija el horario" in bilingual.text and "Please pick" in bilingual.text

    link = f.booking_link(invitation.text)
    status, page = await post(field, link, action="book", slot=str(slot_ids[1]))
    assert status == 200 and "Su entrevista está reservada" in page
    await wait_until(lambda: len(mail_sink.to(ana)) == 2 and mail_sink.to(f.RESEARCHER), what="confirmations")
    mine, theirs = mails_to(mail_sink, ana)[1], mails_to(mail_sink, f.RESEARCHER)[0]
    assert mine.subject.startswith("Entrevista reservada") and theirs.subject.startswith("Interview booked")
    assert "Ana Pérez" in theirs.text and f.MEETING in mine.text
    # 14:30 UTC is 09:30 in Bogotá for her and 15:30 in Madrid, where the slot was published, for the researcher.
    assert "09:30 (hora de Colombia)" in mine.text and "15:30 (Central European" in theirs.text
    for mail in (mine, theirs):
        assert mail.method == "REQUEST" and mail.ics["METHOD"] == "REQUEST"
        event = f.event(mail)
        assert event.decoded("DTSTART") == f.in_three_days_at(14) + timedelta(minutes=30)
        assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=30)
        assert str(event["UID"]) == f"interview-{field['ids'][ana]}@example.org"
        assert event["SEQUENCE"] == 1 and str(event["ORGANIZER"]) == f"mailto:{f.RESEARCHER}"
        assert str(event["ATTENDEE"]) == f"mailto:{ana}" and str(event["LOCATION"]) == f.MEETING
    row = queue.get(db, field["ids"][ana])
    assert (row["state"], row["slot_id"]) == ("booked", slot_ids[1])
    # The nudge to book is withdrawn; the reminder the day before is queued for both, 24 hours before.
    kinds = dict(
        db.execute(
            "SELECT kind || ':' || to_email, state FROM outbox WHERE key LIKE ?", [f"interview:{row['id']}:%"]
        ).fetchall()
    )
    assert kinds[f"interview_nudge:{ana}"] == "cancelled"
    due = {r[0] for r in db.execute("SELECT due_at FROM outbox WHERE kind = 'interview_soon' AND state = 'queued'")}
    assert due == {iso(f.in_three_days_at(14) + timedelta(minutes=30) - timedelta(hours=24))}


async def test_reschedule_and_cancel_update_the_same_calendar_event(field, mail_sink):
    db = field["db"]
    slot_ids = f.publish(db, f.in_three_days_at(9), 3)
    f.invite_all(db, field["settings"])
    joe = "joe@leeds.example.org"
    await wait_until(lambda: mail_sink.to(joe), what="the invitation")
    link = f.booking_link(mails_to(mail_sink, joe)[0].text)
    assert (await post(field, link, action="book", slot=str(slot_ids[0])))[0] == 200
    status, page = await post(field, link, action="book", slot=str(slot_ids[2]))
    assert status == 200 and "Your interview is booked" in page
    await wait_until(lambda: len(mail_sink.to(joe)) == 3, what="the confirmation of the new time")
    moved = mails_to(mail_sink, joe)[2]
    assert moved.subject.startswith("Interview moved") and f.event(moved)["SEQUENCE"] == 2
    assert f.event(moved).decoded("DTSTART") == f.in_three_days_at(10)
    first = mails_to(mail_sink, joe)[1]
    assert str(f.event(first)["UID"]) == str(f.event(moved)["UID"])
    # The old slot is free again; the new one is taken.
    free = {
        r["id"]
        for r in db.query(
            "SELECT id FROM interview_slots WHERE id NOT IN "
            "(SELECT slot_id FROM interview_queue WHERE slot_id IS NOT NULL)"
        )
    }
    assert free == {slot_ids[0], slot_ids[1]}

    status, page = await post(field, link, action="cancel")
    assert status == 200 and "Your interview is cancelled" in page
    await wait_until(
        lambda: len(mail_sink.to(joe)) == 4 and len(mail_sink.to(f.RESEARCHER)) >= 3, what="the cancellations"
    )
    for mail in (mails_to(mail_sink, joe)[3], mails_to(mail_sink, f.RESEARCHER)[-1]):
        assert mail.method == "CANCEL" and mail.ics["METHOD"] == "CANCEL"
        event = f.event(mail)
        assert event["SEQUENCE"] == 3 and str(event["STATUS"]) == "CANCELLED"
        assert str(event["UID"]) == str(f.event(moved)["UID"])
        assert event.decoded("DTSTART") == f.in_three_days_at(10)
    row = queue.get(db, field["ids"][joe])
    assert row["state"] == "cancelled" and row["slot_id"] is None
    assert (
        db.execute("SELECT count(*) FROM outbox WHERE kind = 'interview_soon' AND state = 'queued'").fetchone()[0] == 0
    )


async def test_two_people_racing_for_one_slot_exactly_one_wins(field):
    db = field["db"]
    (slot_id,) = f.publish(db, f.in_three_days_at(12), 1)
    f.invite_all(db, field["settings"])
    links = [
        f"https://survey.example.org/interview/{queue.booking_token(field['secret'], i)}" for i in field["ids"].values()
    ]
    results = await asyncio.gather(*(post(field, link, action="book", slot=str(slot_id)) for link in links))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409]
    for status, page in results:
        if status == 409:
            assert ("just been taken" in page) or ("acaba de reservar" in page)
    assert db.execute("SELECT count(*) FROM interview_queue WHERE slot_id = ?", [slot_id]).fetchone()[0] == 1


async def test_forged_expired_and_finished_links_are_refused(field, mail_sink):
    db = field["db"]
    (slot_id,) = f.publish(db, f.in_three_days_at(15), 1)
    f.invite_all(db, field["settings"])
    ana_id = field["ids"]["ana@bogota.example.org"]
    good = queue.booking_token(field["secret"], ana_id)
    for forged in (f"{ana_id}.AAAAAAAAAAAAAAAAAAAAAA", f"{ana_id + 1}.{good.split('.')[1]}", "garbage", "1.2.3"):
        async with field["session"].get(f"{field['base']}/interview/{forged}") as response:
            assert response.status == 404 and "not valid" in (await response.text()).replace(
                "no es válido", "not valid"
            )
        status, _ = await post(
            field, f"https://survey.example.org/interview/{forged}", action="book", slot=str(slot_id)
        )
        assert status == 404
    # Expired: the link's time is up (the service also marks it expired within a tick).
    db.execute("UPDATE interview_queue SET expires_at = ? WHERE id = ?", [iso(utcnow() - timedelta(seconds=1)), ana_id])
    db.conn.commit()
    status, page = await post(field, f"https://survey.example.org/interview/{good}", action="book", slot=str(slot_id))
    assert status == 409 and "ha caducado" in page
    assert db.execute("SELECT count(*) FROM interview_queue WHERE slot_id IS NOT NULL").fetchone()[0] == 0
    # An expired link declines nothing either: the respondent is not recorded as having said no.
    status, page = await post(field, f"https://survey.example.org/interview/{good}", action="decline")
    assert status == 409 and "ha caducado" in page
    assert queue.get(db, ana_id)["state"] in ("invited", "expired")
    await wait_until(lambda: queue.get(db, ana_id)["state"] == "expired", what="the expiry")
    assert (
        db.execute("SELECT state FROM outbox WHERE key = ?", [f"interview:{ana_id}:nudge"]).fetchone()[0] == "cancelled"
    )
    # A slot that does not exist, or no slot chosen.
    joe = queue.booking_token(field["secret"], field["ids"]["joe@leeds.example.org"])
    assert (await post(field, f"https://survey.example.org/interview/{joe}", action="book", slot="99999"))[0] == 409
    assert (await post(field, f"https://survey.example.org/interview/{joe}", action="book", slot="x"))[0] == 400
    assert (await post(field, f"https://survey.example.org/interview/{joe}", action="dance"))[0] == 400


async def test_nudge_goes_only_to_those_who_have_not_booked(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    f.write_contacts(settings)
    db = open_db(settings.db_path)
    ids = f.opt_in_everyone(db)
    (slot_id,) = f.publish(db, f.in_three_days_at(8), 1)
    queue.invite(db, 1, utcnow(), nudge_after=2.5, expire_after=3600)
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 3, what="the invitations")
        from surveybot.interviews import booking

        booking.book(db, ids["ana@bogota.example.org"], slot_id, utcnow())
        await wait_until(
            lambda: any(
                "Recordatorio" in str(r.message["Subject"]) or "Reminder" in str(r.message["Subject"])
                for r in mail_sink.received
            ),
            what="the nudges",
        )
        await asyncio.sleep(0.5)
    nudged = {
        r.rcpt_tos[0]
        for r in mail_sink.received
        if "choose a time" in str(r.message["Subject"]) or "elija un horario" in str(r.message["Subject"])
    }
    assert nudged == {"joe@leeds.example.org", "pat@lima.example.org"}
    db.close()


async def test_reminder_the_day_before_carries_the_invitation(field, mail_sink):
    db = field["db"]
    (slot_id,) = f.publish(db, f.in_three_days_at(11), 1)
    f.invite_all(db, field["settings"])
    from surveybot.interviews import booking

    iid = field["ids"]["ana@bogota.example.org"]
    booking.book(db, iid, slot_id, utcnow())
    db.execute("UPDATE outbox SET due_at = ? WHERE kind = 'interview_soon'", [iso(utcnow())])
    db.conn.commit()
    await wait_until(lambda: any("Mañana" in str(r.message["Subject"]) for r in mail_sink.received), what="reminder")
    soon = next(f.read(r.raw) for r in mail_sink.to("ana@bogota.example.org") if "Mañana" in str(r.message["Subject"]))
    assert soon.method == "REQUEST" and f.event(soon)["SEQUENCE"] == 1 and f.MEETING in soon.text


def test_slots_split_in_real_time_across_daylight_saving_changes(run_cli, tmp_path):
    run = lambda *a: run_cli("interviews", "slots", *a)  # noqa: E731
    # Madrid, 29 March 2026: clocks go from 02:00 to 03:00. 00:30-04:00 local is 2.5 hours: five slots.
    result = run(
        "add",
        "--researcher",
        "Marta <marta@lab.example.org>",
        "--from",
        "2026-03-29T00:30",
        "--to",
        "2026-03-29T04:00",
        "--tz",
        "Europe/Madrid",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 5
    # 25 October 2026: 03:00 goes back to 02:00. The same window is 4.5 hours: nine slots.
    result = run(
        "add",
        "--researcher",
        "marta@lab.example.org",
        "--from",
        "2026-10-25T00:30",
        "--to",
        "2026-10-25T04:00",
        "--tz",
        "Europe/Madrid",
        "--json",
    )
    assert json.loads(result.stdout)["added"] == 9
    listed = json.loads(run("list", "--all", "--json").stdout)["slots"]
    starts = [parse_stored(s["starts_at"]) for s in listed]
    assert starts[:5] == [datetime(2026, 3, 28, 23, 30, tzinfo=UTC) + timedelta(minutes=30 * n) for n in range(5)]
    assert starts[5] == datetime(2026, 10, 24, 22, 30, tzinfo=UTC) and len(starts) == 14
    assert all(b - a >= timedelta(minutes=30) for a, b in itertools.pairwise(starts))
    assert {s["researcher"] for s in listed} == {"marta@lab.example.org"}
    # Publishing the same window again adds nothing; bad input names the option.
    again = json.loads(
        run(
            "add",
            "--researcher",
            "marta@lab.example.org",
            "--from",
            "2026-03-29T00:30",
            "--to",
            "2026-03-29T04:00",
            "--tz",
            "Europe/Madrid",
            "--json",
        ).stdout
    )
    assert (again["added"], again["skipped_overlapping"]) == (0, 5)
    for args, words in (
        (("--tz", "Mars/Olympus"), "--tz 'Mars/Olympus'"),
        (("--length", "ten"), "--length"),
        (("--to", "2026-03-28T00:00"), "later than --from"),
        (("--from", "yesterday"), "--from"),
    ):
        base = {"--researcher": "marta@lab.example.org", "--from": "2026-03-29T00:30", "--to": "2026-03-29T04:00"}
        base.update(dict([args]))
        result = run("add", *[x for kv in base.items() for x in kv])
        assert result.returncode == 1 and words in result.stderr, result.stderr
    bad = run("add", "--researcher", "nobody", "--from", "2026-03-29T00:30", "--to", "2026-03-29T04:00")
    assert bad.returncode == 1 and "--researcher 'nobody'" in bad.stderr


def test_list_mark_notes_and_remove_from_the_command_line(run_cli, tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    f.write_contacts(settings)
    db = open_db(settings.db_path)
    ids = f.opt_in_everyone(db)
    slot_ids = f.publish(db, f.in_three_days_at(13), 2)
    env = {"SURVEYBOT_BASE_URL": "https://survey.example.org"}
    result = run_cli("interviews", "invite", "city", "--limit", "2", "--json", extra_env=env)
    assert json.loads(result.stdout)["invited"] == 2
    from surveybot.interviews import booking

    booking.book(db, ids["ana@bogota.example.org"], slot_ids[0], utcnow())
    listed = json.loads(run_cli("interviews", "list", "--json").stdout)["interviews"]
    assert next((i["email"], i["state"]) for i in listed) == ("ana@bogota.example.org", "booked")
    assert sorted(i["state"] for i in listed) == ["booked", "invited", "queued"]
    assert set(listed[0]) >= {"id", "state", "email", "researcher", "starts_at", "notes"}
    ana = ids["ana@bogota.example.org"]
    refused = run_cli("interviews", "slots", "remove", str(slot_ids[0]))
    assert refused.returncode == 1 and f"interviews mark {ana} cancelled" in refused.stderr
    assert run_cli("interviews", "slots", "remove", str(slot_ids[1])).returncode == 0
    wrong = run_cli("interviews", "mark", str(ids["pat@lima.example.org"]), "completed")
    assert wrong.returncode == 1 and "can be marked completed only when booked" in wrong.stderr
    done = run_cli("interviews", "mark", str(ana), "completed", "--notes", "Great on twinning; send the report")
    assert done.returncode == 0, done.stderr
    assert run_cli("interviews", "note", str(ana), "Follow up in March").returncode == 0
    row = queue.get(db, ana)
    assert (row["state"], row["notes"]) == ("completed", "Follow up in March")
    assert (
        json.loads(run_cli("interviews", "list", "--state", "completed", "--json").stdout)["interviews"][0]["id"] == ana
    )
    assert run_cli("interviews", "mark", "999", "completed").returncode == 1
    db.close()


async def test_researchers_see_upcoming_interviews_with_their_token_only(field):
    db = field["db"]
    (slot_id,) = f.publish(db, f.in_three_days_at(16), 1)
    f.invite_all(db, field["settings"])
    from surveybot.interviews import booking

    booking.book(db, field["ids"]["joe@leeds.example.org"], slot_id, utcnow())
    now = utcnow()
    researcher = tokens.create(db, "researcher", None, now)[1]
    network = tokens.create(db, "network", "Metropolis", now)[1]
    url = f"{field['base']}/api/interviews"
    for header, status in ((None, 401), ("Bearer wrong", 401), (f"Bearer {network}", 403)):
        async with field["session"].get(url, headers={"Authorization": header} if header else {}) as response:
            assert response.status == status and "error" in await response.json()
    async with field["session"].get(url, headers={"Authorization": f"Bearer {researcher}"}) as response:
        body = await response.json()
    assert [(i["email"], i["researcher"]) for i in body["interviews"]] == [("joe@leeds.example.org", f.RESEARCHER)]
    async with field["session"].post(f"{field['base']}/researchers", data={"token": researcher}) as response:
        page = await response.text()
    assert response.status == 200 and "Joe Bloggs" in page and "Leeds" in page
    async with field["session"].post(f"{field['base']}/researchers", data={"token": network}) as response:
        assert response.status == 403


async def test_unreadable_forms_get_a_clear_400_and_change_nothing(field):
    db = field["db"]
    (slot_id,) = f.publish(db, f.in_three_days_at(10), 1)
    f.invite_all(db, field["settings"])
    link = f"{field['base']}/interview/{queue.booking_token(field['secret'], field['ids']['joe@leeds.example.org'])}"
    bodies = [
        (b"action=book&slot=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"--x\r\nbroken header\r\n\r\nbook\r\n--x--\r\n", "multipart/form-data; boundary=x"),
        (b"\x00\x01\x02", "application/x-www-form-urlencoded"),
    ]
    for body, content_type in bodies:
        async with field["session"].post(link, data=body, headers={"Content-Type": content_type}) as response:
            page = await response.text()
        assert response.status == 400 and ("could not be read" in page or "Choose a time" in page), page[:300]
        async with field["session"].post(
            f"{field['base']}/researchers", data=body, headers={"Content-Type": content_type}
        ) as response:
            assert response.status in (400, 401) and "Traceback" not in await response.text()
    assert queue.get(db, field["ids"]["joe@leeds.example.org"])["state"] == "invited"
    assert db.execute("SELECT count(*) FROM interview_queue WHERE slot_id = ?", [slot_id]).fetchone()[0] == 0
