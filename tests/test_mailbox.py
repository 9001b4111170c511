"""Bounces and replies that come back later, read from a real IMAP server (Dovecot on loopback, IMAPS and
STARTTLS with a throw-away certificate) and from a Maildir folder: the wave's e-mail is really composed and
sent (to a Maildir), and the reports that come back are shaped like real Postfix, Gmail and Exchange Online
ones."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlite_utils import Database

from surveybot import plan, waves
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.db import open_db
from surveybot.dispatcher import Dispatcher
from surveybot.mail import verp
from surveybot.mail.compose import Composer
from surveybot.mail.transports import MaildirTransport
from surveybot.mailbox.reader import MailboxReader
from surveybot.reports import wave_status
from tests import dovecot
from tests.service import import_rows, settings_for, signed_wave, wait_until

SECRET = "mailbox-test-secret-0123456789"
BOUNCES = "bounces@example.org"
ANA, JOE, PAT = "ana@bogota.example.org", "joe@leeds.example.org", "pat@lima.example.org"
RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def imap() -> Iterator[dovecot.Dovecot]:
    if not os.path.exists(dovecot.BINARY):
        pytest.skip("the dovecot binary is not installed (Debian: apt-get install dovecot-imapd)")
    server = dovecot.start()
    yield server
    server.stop()


@pytest.fixture
def user(imap: dovecot.Dovecot) -> str:
    """A mailbox of its own for each test."""
    return imap.new_user()


# --- the service's side: a wave whose e-mail really goes out ------------------------------------------------


def field_setup(tmp_path: Path, bounce_url: str, **extra: str) -> tuple[Settings, Database]:
    settings = settings_for(
        tmp_path,
        f"maildir://{tmp_path / 'sent'}",
        SURVEYBOT_SECRET=SECRET,
        SURVEYBOT_BOUNCE_ADDRESS=BOUNCES,
        SURVEYBOT_BOUNCE_MAILBOX=bounce_url,
        **extra,
    )
    import_rows(
        settings,
        [
            f"Ana Pérez,{ANA},Bogotá,Colombia,Latin America,es",
            f"Joe Bloggs,{JOE},Leeds,UK,Europe,en",
            f"Pat Doe,{PAT},Lima,Peru,Latin America,en",
        ],
    )
    db = open_db(settings.db_path)
    hours = (timedelta(hours=1), timedelta(hours=2), timedelta(hours=3))
    signed_wave(db, "w", reminders=hours, close_after=timedelta(hours=4))
    return settings, db


async def send_due(settings: Settings, db: Database, at: datetime) -> None:
    """Run the plan at ``at`` and send what it queued."""
    plan.run_due(db, SECRET, at)
    assert settings.mail.path is not None
    dispatcher = Dispatcher(
        db, Composer(db, settings, SECRET), MaildirTransport(settings.mail.path), rate=1000, clock=lambda: at
    )
    while await dispatcher.send_due():
        pass


def sent(db: Database, email: str, slug: str = "w") -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT o.* FROM outbox o JOIN waves w ON w.id = o.wave_id WHERE o.to_email = ? AND w.slug = ? "
            "ORDER BY o.id",
            [email, slug],
        )
    )


def status(db: Database, slug: str = "w") -> dict[str, Any]:
    return wave_status(db, waves.get_wave(db, slug), SECRET, "https://survey.example.org")


def suppression(db: Database, email: str) -> tuple[str, str] | None:
    row = db.execute("SELECT kind, reason FROM suppressions WHERE email = ?", [email]).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def suppressed_as(db: Database, email: str) -> str | None:
    found = suppression(db, email)
    return found[0] if found else None


def reader(settings: Settings, db: Database) -> MailboxReader:
    return MailboxReader(db, settings, SECRET)


# --- what comes back, shaped like the real thing (see the README's "Bounces and replies") ---------------------


def postfix_dsn(
    row: dict[str, Any], status: str = "5.1.1", action: str = "failed", *, return_path: str | None = None
) -> bytes:
    """Postfix's report, delivered to the message's own return path; the original's headers quoted."""
    to = return_path or verp.return_path(SECRET, BOUNCES, row["id"])
    address = row["to_email"]
    why = {
        "5.1.1": "Recipient address rejected: User unknown in virtual mailbox table",
        "5.7.1": "Message rejected due to local policy",
        "4.4.1": "Connection timed out",
    }.get(status, "Mailbox unavailable")
    return f"""Return-Path: <>
X-Original-To: {to}
Delivered-To: {to}
Date: Thu,  1 Apr 2026 23:34:45 +0000 (UTC)
From: MAILER-DAEMON@mx1.example.org (Mail Delivery System)
Subject: {"Delayed Mail (still being retried)" if action == "delayed" else "Undelivered Mail Returned to Sender"}
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="2vK5npVrJQzj589p.1087617357/mx1.example.org"
Message-Id: <20260401233445.2vK5npVrJQzj589p@mx1.example.org>

This is a MIME-encapsulated message.

--2vK5npVrJQzj589p.1087617357/mx1.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{address}>: host mx.city.example[192.0.2.25] said: 550 {status}
    <{address}>: {why} (in reply to RCPT TO command)

--2vK5npVrJQzj589p.1087617357/mx1.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.org
X-Postfix-Queue-ID: 2vK5npVrJQzj589p
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Thu,  1 Apr 2026 23:34:40 +0000 (UTC)

Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.city.example
Diagnostic-Code: smtp; 550 {status} <{address}>: {why}
    (in reply to RCPT TO command)

--2vK5npVrJQzj589p.1087617357/mx1.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: City Diplomacy Lab <lab@example.org>
To: {address}
Subject: Invitation: City diplomacy 2026
Message-ID: {row["message_id"]}

--2vK5npVrJQzj589p.1087617357/mx1.example.org--
""".replace("\n", "\r\n").encode()


def gmail_dsn(row: dict[str, Any], status: str = "5.7.1", action: str = "failed", message_id: str = "") -> bytes:
    """Gmail's report, as it reaches the account's own address (Gmail rewrote the return path): tied by the
    quoted Message-ID only."""
    message_id = message_id or row["message_id"]
    address = row["to_email"]
    title = "Delay" if action == "delayed" else "Failure"
    return f"""Content-Type: multipart/report; boundary="000000000000ad2c6c059fee8fad"; report-type=delivery-status
To: lab@example.org
Return-Path: <>
Auto-Submitted: auto-replied
Message-ID: <5e5e0c55.1c69fb81.a8edb.8c4e.GMR@mx.google.com>
Date: Mon, 02 Mar 2026 23:50:45 -0800 (PST)
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
Subject: Delivery Status Notification ({title})
References: {message_id}
In-Reply-To: {message_id}
X-Failed-Recipients: {address}

--000000000000ad2c6c059fee8fad
Content-Type: multipart/related; boundary="000000000000ad35a1059fee8fb3"

--000000000000ad35a1059fee8fb3
Content-Type: text/plain; charset="UTF-8"

** Message blocked **

Your message to {address} has been blocked. See technical details below for more information.

--000000000000ad35a1059fee8fb3--

--000000000000ad2c6c059fee8fad
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; lab@example.org
Arrival-Date: Mon, 02 Mar 2026 23:50:44 -0800 (PST)
X-Original-Message-ID: {message_id}

Final-Recipient: rfc822; {address}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.city.example. (192.0.2.25, the server
 for the domain city.example.)
Diagnostic-Code: smtp; 550-{status} [192.0.2.1] The IP you're using to send mail is not authorized
 550 {status} to send email directly to our servers. - gsmtp
Last-Attempt-Date: Mon, 02 Mar 2026 23:50:45 -0800 (PST)

--000000000000ad2c6c059fee8fad
Content-Type: message/rfc822

Date: Tue, 3 Mar 2026 16:50:36 +0900
From: City Diplomacy Lab <lab@example.org>
To: {address}
Message-ID: {message_id}
Subject: Reminder: City diplomacy 2026

Please answer the survey.
--000000000000ad2c6c059fee8fad--
""".replace("\n", "\r\n").encode()


def o365_dsn(row: dict[str, Any], to: str = "lab@example.org") -> bytes:
    """Exchange Online's NDR (note the empty trailing block in the delivery-status part)."""
    address = row["to_email"]
    return f"""From: Microsoft Outlook <postmaster@outlook.com>
To: <{to}>
Date: Wed, 17 Apr 2026 05:44:52 +0000
Content-Type: multipart/report; report-type=delivery-status;
    boundary="2fb4ff5c-630f-4679-9586-796f089a00fe"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <49d8ee10-9bed-415f-8b7f-cbe31fde7fbb@PU1APC01HT176.mail.protection.outlook.com>
In-Reply-To: {row["message_id"]}
References: {row["message_id"]}
Subject: Undeliverable: Invitation: City diplomacy 2026
Auto-Submitted: auto-replied
Return-Path: <>
MIME-Version: 1.0

--2fb4ff5c-630f-4679-9586-796f089a00fe
Content-Type: text/plain; charset="us-ascii"

Your message to {address} couldn't be delivered.
Remote Server returned '550 5.1.1 <{address}>... User Unknown'

--2fb4ff5c-630f-4679-9586-796f089a00fe
Content-Type: message/delivery-status

Reporting-MTA: dns;PU1APC01HT176.mail.protection.outlook.com
Received-From-MTA: dns;SLXP216MB0381.KORP216.PROD.OUTLOOK.COM
Arrival-Date: Wed, 17 Apr 2026 05:44:50 +0000

Final-Recipient: rfc822;{address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp;550 5.1.1 <{address}>... User Unknown
Remote-MTA: dns;mx.city.example
X-Display-Name: {address}


--2fb4ff5c-630f-4679-9586-796f089a00fe
Content-Type: message/rfc822

From: City Diplomacy Lab <lab@example.org>
To: {address}
Subject: Invitation: City diplomacy 2026
Date: Wed, 17 Apr 2026 05:44:50 +0000
Message-ID: {row["message_id"]}

Please answer the survey.
--2fb4ff5c-630f-4679-9586-796f089a00fe--
""".replace("\n", "\r\n").encode()


def written(
    sender: str, subject: str, body: str, in_reply_to: str = "", to: str = "lab@example.org", **headers: str
) -> bytes:
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    answer = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 07 Apr 2026 10:00:00 -0500\r\n"
        f"Message-ID: <{abs(hash((sender, subject, body)))}@mail.example.net>\r\n{answer}{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    ).encode()


# --- the tests ------------------------------------------------------------------------------------------------


async def test_hard_bounce_over_imaps_suppresses_the_address_and_stops_its_reminders(
    tmp_path: Path, imap: dovecot.Dovecot, user: str
) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    start = utcnow()
    await send_due(settings, db, start)
    invitation = sent(db, ANA)[0]
    assert invitation["state"] == "sent" and invitation["message_id"]
    before = status(db)
    imap.deliver(user, postfix_dsn(invitation, "5.1.1"))

    counts = await reader(settings, db).read_once()

    assert counts == {"hard": 1}
    found = suppression(db, ANA)
    assert found is not None
    kind, reason = found
    assert kind == "bounce" and "5.1.1" in reason and "User unknown" in reason
    assert sent(db, ANA)[0]["state"] == "failed"
    after = status(db)
    assert (after["bounced"], after["delivered"]) == (1, before["delivered"] - 1) == (1, 2)
    assert after["soft_bounced"] == 0
    await send_due(settings, db, start + timedelta(minutes=61))  # the first reminder
    assert [r["kind"] for r in sent(db, ANA)] == ["invitation"]
    assert [r["kind"] for r in sent(db, JOE)] == ["invitation", "reminder"]
    assert (imap.count(user, "INBOX"), imap.count(user, "surveybot-processed")) == (0, 1)


async def test_other_failures_fail_one_message_and_three_stop_the_wave_without_suppressing(
    tmp_path: Path, imap: dovecot.Dovecot, user: str, run_cli: RunCli
) -> None:
    settings, db = field_setup(tmp_path, imap.url(user, starttls=True))  # imap:// upgraded with STARTTLS
    start = utcnow()
    await send_due(settings, db, start)
    await send_due(settings, db, start + timedelta(minutes=61))
    await send_due(settings, db, start + timedelta(minutes=121))
    invitation, reminder, second = sent(db, JOE)
    imap.deliver(user, gmail_dsn(invitation, "5.7.1"))  # tied by its quoted Message-ID only
    assert await reader(settings, db).read_once() == {"failed": 1}

    assert suppression(db, JOE) is None
    assert [r["state"] for r in sent(db, JOE)] == ["failed", "sent", "sent"]
    assert "5.7.1" in sent(db, JOE)[0]["last_error"]
    one = status(db)
    assert (one["soft_bounced"], one["bounced"], one["delivered"]) == (1, 0, 3)  # Joe's reminders got through

    imap.deliver(user, postfix_dsn(reminder, "5.7.1"))
    imap.deliver(user, gmail_dsn(second, "5.2.2"))  # mailbox full: this message only
    assert await reader(settings, db).read_once() == {"failed": 2}
    assert suppression(db, JOE) is None
    three = status(db)
    assert (three["soft_bounced"], three["bounced"], three["delivered"]) == (3, 0, 2)
    shown = run_cli("wave", "status", "w", extra_env=cli_env(settings), check=True).stdout
    assert [line.split() for line in shown.splitlines() if "soft bounced" in line or "delivered" in line] == [
        ["soft", "bounced", "3"],
        ["delivered", "2"],
    ]
    await send_due(settings, db, start + timedelta(minutes=181))  # the final reminder: not to Joe any more
    assert [r["state"] for r in sent(db, JOE)][3:] == ["cancelled"]
    assert "held" in sent(db, JOE)[3]["last_error"]
    assert [r["state"] for r in sent(db, ANA)] == ["sent"] * 4
    # no suppression: another wave still writes to Joe
    signed_wave(db, "next", reminders=())
    await send_due(settings, db, utcnow())
    assert [r["state"] for r in sent(db, JOE, "next")] == ["sent"]


async def test_a_delay_warning_changes_nothing(tmp_path: Path, imap: dovecot.Dovecot, user: str) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    await send_due(settings, db, utcnow())
    before = status(db)
    imap.deliver(user, gmail_dsn(sent(db, PAT)[0], "4.4.1", action="delayed"))
    imap.deliver(user, postfix_dsn(sent(db, ANA)[0], "4.4.1", action="delayed"))

    assert await reader(settings, db).read_once() == {"delayed": 2}

    assert status(db) == before
    assert suppression(db, PAT) is None and suppression(db, ANA) is None
    assert {r["state"] for r in db.query("SELECT state FROM outbox")} == {"sent"}
    assert imap.count(user, "surveybot-processed") == 2


async def test_out_of_office_is_recorded_on_the_contact_and_changes_nothing_else(
    tmp_path: Path, imap: dovecot.Dovecot, user: str, run_cli: RunCli
) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    await send_due(settings, db, utcnow())
    before = status(db)
    ana, joe, pat = sent(db, ANA)[0], sent(db, JOE)[0], sent(db, PAT)[0]
    # Exchange: no Auto-Submitted, a Spanish subject, back to the return path (RFC 3834)
    imap.deliver(
        user,
        written(
            f"Ana Pérez <{ANA}>",
            "Respuesta automática: Invitación: City diplomacy 2026",
            "Estoy fuera de la oficina hasta el lunes.",
            ana["message_id"],
            to=verp.return_path(SECRET, BOUNCES, ana["id"]),
            X_Auto_Response_Suppress="All",
            X_MS_Exchange_Inbox_Rules_Loop=ANA,
        ),
    )
    imap.deliver(user, written(JOE, "Away", "On leave.", joe["message_id"], Auto_Submitted="auto-replied"))
    imap.deliver(user, written(PAT, "Re: Invitation", "Out until May.", pat["message_id"], X_Autoreply="yes"))

    assert await reader(settings, db).read_once() == {"auto_reply": 3}

    assert status(db) == before
    assert db.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0
    listed = json.loads(run_cli("replies", "list", "w", "--json", extra_env=cli_env(settings), check=True).stdout)
    assert listed["replies"] == []
    assert sorted(r["contact"] for r in listed["auto_replies"]) == [ANA, JOE, PAT]
    spanish = next(r for r in listed["auto_replies"] if r["contact"] == ANA)
    assert spanish["subject"].startswith("Respuesta automática") and spanish["excerpt"].startswith("Estoy fuera")


async def test_forged_and_foreign_reports_change_nothing(tmp_path: Path, imap: dovecot.Dovecot, user: str) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    await send_due(settings, db, utcnow())
    ana = sent(db, ANA)[0]
    genuine = verp.return_path(SECRET, BOUNCES, ana["id"])
    local, domain = genuine.split("@")
    forged_key = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    other_db = verp.return_path("another-database-secret-xyz", BOUNCES, ana["id"])
    unknown = {**ana, "message_id": "<no-such-message@example.org>"}
    imap.deliver(user, postfix_dsn(unknown, "5.1.1", return_path=forged_key))  # bad signature, unknown id
    imap.deliver(user, postfix_dsn(unknown, "5.1.1", return_path=other_db))  # signed by another database
    imap.deliver(user, gmail_dsn(unknown, "5.1.1"))  # Message-ID we never sent
    imap.deliver(user, postfix_dsn({**ana, "id": 99999}, "5.1.1"))  # well signed, but no such row here
    before = status(db)

    assert await reader(settings, db).read_once() == {"unmatched": 4}

    assert status(db) == before
    assert db.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0
    assert {r["state"] for r in db.query("SELECT state FROM outbox")} == {"sent"}


async def test_a_report_counts_in_its_own_wave_and_a_hard_bounce_suppresses_everywhere(
    tmp_path: Path, imap: dovecot.Dovecot, user: str
) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    await send_due(settings, db, utcnow())
    signed_wave(db, "next", reminders=(timedelta(hours=1),), close_after=timedelta(hours=2))
    await send_due(settings, db, utcnow())
    imap.deliver(user, gmail_dsn(sent(db, JOE, "next")[0], "5.7.1"))
    imap.deliver(user, o365_dsn(sent(db, PAT, "w")[0]))

    assert await reader(settings, db).read_once() == {"failed": 1, "hard": 1}

    first, second = status(db, "w"), status(db, "next")
    assert (first["soft_bounced"], second["soft_bounced"]) == (0, 1)
    assert [r["state"] for r in sent(db, JOE, "w")] == ["sent"]
    assert [r["state"] for r in sent(db, PAT, "w")] == ["failed"]
    assert [r["state"] for r in sent(db, PAT, "next")] == ["sent"]
    assert suppressed_as(db, PAT) == "bounce"  # suppressed everywhere: both waves count Pat as bounced
    assert (first["bounced"], second["bounced"]) == (1, 1)
    await send_due(settings, db, utcnow() + timedelta(minutes=61))
    assert [r["kind"] for r in sent(db, PAT, "next")] == ["invitation"]


def cli_env(settings: Settings) -> dict[str, str]:
    return {"SURVEYBOT_DB": str(settings.db_path), "SURVEYBOT_SECRET": SECRET}


async def test_a_person_writing_back_shows_in_replies_list(
    tmp_path: Path, imap: dovecot.Dovecot, user: str, run_cli: RunCli
) -> None:
    reply_user = imap.new_user()
    settings, db = field_setup(tmp_path, imap.url(user), SURVEYBOT_REPLY_MAILBOX=imap.url(reply_user))
    await send_due(settings, db, utcnow())
    joe = sent(db, JOE)[0]
    imap.deliver(
        reply_user,
        written(
            f"Joe Bloggs <{JOE}>",
            "Re: Invitation: City diplomacy 2026",
            "Our mayor's office will answer next week.\n\nOn Tue, Lab wrote:\n> Please answer the survey.",
            joe["message_id"],
        ),
    )
    imap.deliver(reply_user, written(f"Pat <{PAT}>", "A question", "Which department should answer?"))
    imap.deliver(reply_user, written("someone@else.example", "Hello", "Who are you?"))

    assert await reader(settings, db).read_once() == {"reply": 3}

    listed = json.loads(run_cli("replies", "list", "w", "--json", extra_env=cli_env(settings), check=True).stdout)
    assert listed["auto_replies"] == []
    by_contact = {r["contact"]: r for r in listed["replies"]}
    assert set(by_contact) == {JOE, PAT}  # the stranger is tied to no wave
    assert by_contact[JOE]["excerpt"] == "Our mayor's office will answer next week."
    assert by_contact[JOE]["name"] == "Joe Bloggs" and by_contact[JOE]["subject"].startswith("Re: Invitation")
    assert by_contact[PAT]["from"] == f"Pat <{PAT}>" and by_contact[PAT]["date"].startswith("Tue, 07 Apr 2026")
    human = run_cli("replies", "list", "w", extra_env=cli_env(settings), check=True).stdout
    assert "Our mayor's office" in human and "Which department" in human and "Who are you" not in human
    assert status(db)["delivered"] == 3
    missing = run_cli("replies", "list", "nope", extra_env=cli_env(settings))
    assert missing.returncode == 1 and "nope" in missing.stderr


async def test_a_restart_reads_nothing_twice(tmp_path: Path, imap: dovecot.Dovecot, user: str) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    await send_due(settings, db, utcnow())
    dsn = gmail_dsn(sent(db, JOE)[0], "5.7.1")
    imap.deliver(user, dsn)
    imap.deliver(user, written(PAT, "Re: Invitation", "Thanks, will do."))
    assert await reader(settings, db).read_once() == {"failed": 1, "reply": 1}

    assert await reader(settings, db).read_once() == {}  # a new reader: a restarted service
    # a crash after the work was recorded but before the message was moved: it is seen again, only moved
    imap.deliver(user, dsn)
    assert await reader(settings, db).read_once() == {"already_read": 1}
    assert status(db)["soft_bounced"] == 1
    assert db.execute("SELECT count(*) FROM mail_replies").fetchone()[0] == 1
    assert (imap.count(user, "INBOX"), imap.count(user, "surveybot-processed")) == (0, 3)


def deeply_nested() -> bytes:
    """A message the e-mail parser cannot read (it recurses past Python's limit)."""
    depth = 3000
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(depth))
    closing = "".join(f"--b{n}--\r\n" for n in reversed(range(depth)))
    return f"From: x@example.net\r\nSubject: deep\r\n{opening}Content-Type: text/plain\r\n\r\nhi\r\n{closing}".encode()


def maildir(path: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def drop(folder: Path, name: str, raw: bytes) -> None:
    (folder / "new" / name).write_bytes(raw)


async def test_maildir_folder_bounces_replies_and_an_unreadable_message_set_aside(
    tmp_path: Path, run_cli: RunCli
) -> None:
    box = maildir(tmp_path / "bounces")
    settings, db = field_setup(tmp_path, f"maildir://{box}")
    await send_due(settings, db, utcnow())
    drop(box, "1.a", deeply_nested())
    drop(box, "2.b", o365_dsn(sent(db, ANA)[0], to=verp.return_path(SECRET, BOUNCES, sent(db, ANA)[0]["id"])))
    drop(box, "3.c", written(JOE, "Re: Invitation", "We will answer.", sent(db, JOE)[0]["message_id"]))

    assert await reader(settings, db).read_once() == {"unreadable": 1, "hard": 1, "reply": 1}

    assert suppressed_as(db, ANA) == "bounce"
    assert os.listdir(box / "new") == [] and os.listdir(box / "cur") == []
    assert os.listdir(box / ".surveybot-unreadable" / "cur") == ["1.a:2,S"]
    assert sorted(os.listdir(box / ".surveybot-processed" / "cur")) == ["2.b:2,S", "3.c:2,S"]
    assert await reader(settings, db).read_once() == {}
    listed = json.loads(run_cli("replies", "list", "w", "--json", extra_env=cli_env(settings), check=True).stdout)
    assert [r["contact"] for r in listed["replies"]] == [JOE]


async def test_an_unreachable_mailbox_is_tried_again_and_the_wrong_password_is_named(
    tmp_path: Path, imap: dovecot.Dovecot, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = imap.url(user).replace(dovecot.PASSWORD, "pw-Zq81x-wrong")
    settings, db = field_setup(tmp_path, wrong, SURVEYBOT_REPLY_MAILBOX=f"maildir://{maildir(tmp_path / 'replies')}")
    drop(tmp_path / "replies", "1.a", written(JOE, "Re: Invitation", "Yes."))

    once = reader(settings, db)
    assert await once.read_once() == {"reply": 1}  # the other mailbox is still read
    assert "cannot read the bounce mailbox" in caplog.text and "pw-Zq81x" not in caplog.text
    assert "AUTHENTICATIONFAILED" in caplog.text or "Authentication failed" in caplog.text
    # the password put right, the bounce mailbox is read (nothing in it): the failure was the password's alone
    fixed = settings_for(
        tmp_path,
        f"maildir://{tmp_path / 'sent'}",
        SURVEYBOT_SECRET=SECRET,
        SURVEYBOT_BOUNCE_ADDRESS=BOUNCES,
        SURVEYBOT_BOUNCE_MAILBOX=imap.url(user),
    )
    caplog.clear()
    assert await reader(fixed, db).read_once() == {}
    assert "cannot read" not in caplog.text


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[web.Application]:
    from surveybot.web.app import create_app

    app = create_app(settings, check_every=0.2, poll=0.05, mailbox_every=0.1)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def test_serve_reads_the_bounce_mailbox_by_itself(tmp_path: Path, imap: dovecot.Dovecot, user: str) -> None:
    settings, db = field_setup(tmp_path, imap.url(user))
    async with serving(settings):
        await wait_until(lambda: len(sent(db, ANA)) == 1 and sent(db, ANA)[0]["state"] == "sent", what="the invitation")
        imap.deliver(user, postfix_dsn(sent(db, ANA)[0], "5.1.1"))
        await wait_until(lambda: suppression(db, ANA) is not None, what="the bounce to be read")
        await asyncio.sleep(0)
    assert suppressed_as(db, ANA) == "bounce"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("SURVEYBOT_BOUNCE_ADDRESS", "Lab <bounces@example.org>", "bare address"),
        ("SURVEYBOT_BOUNCE_ADDRESS", "bounces+x@example.org", "no '+'"),
        ("SURVEYBOT_BOUNCE_ADDRESS", "bounces", "e-mail address"),
        ("SURVEYBOT_BOUNCE_MAILBOX", "pop3://u:topsecret@mail.example.org/INBOX", "imaps://"),
        ("SURVEYBOT_REPLY_MAILBOX", "imaps://u:topsecret@mail.example.org/INBOX?cafile=/no/such.pem", "cafile"),
        ("SURVEYBOT_REPLY_MAILBOX", "imaps://mail.example.org/INBOX", "user and password"),
    ],
)
def test_a_bad_bounce_or_mailbox_setting_stops_with_one_line_naming_it(
    run_cli: RunCli, key: str, value: str, problem: str
) -> None:
    result = run_cli("replies", "list", "w", extra_env={key: value})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and key in result.stderr and problem in result.stderr
    assert "topsecret" not in result.stderr
