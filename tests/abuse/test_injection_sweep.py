"""Header, formula and HTML injection through every field a contact, a partner or a respondent controls —
name, organisation, city, country, network name, upload file name, free-text answers, unmatched response
fields — swept across every page (dashboard, partner view, booking page) and every export (responses CSV,
report csv/md/html): markup is served escaped, no message carries an injected header, and no CSV cell
starts with a formula character (= + - @, their full-width forms, or after spaces and tabs) unneutralised."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from surveybot import tokens
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.interviews import queue
from surveybot.platforms import signed
from surveybot.platforms.urls import webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from tests import interview_field
from tests.mailsink import MailSink
from tests.service import running, settings_for, signed_wave, wait_until

MARKUP = ['<script>alert("x")</script>', "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>']
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "＝1+1", " =1+1", "\t=1+1", "\r=1+1"]  # fmt: skip
NETWORK = "Net<b onmouseover=alert(1)>=1+1"
# (name, email, city, country, organisation); the name tries to add a header to the invitation
PEOPLE = [
    ('Eve<script>alert("x")</script>', "eve@lyon.example.org", "=HYPERLINK(\"http://evil.example\",\"x\")",
     "<img src=x onerror=alert(1)>", "@SUM(A1)"),
    ("Mal\r\nBcc: spy@evil.example", "mal@porto.example.org", "+1+cmd|' /C calc'!A0", "＝1+1",
     '"><svg onload=alert(1)>'),
    ("Tab\tName =1+1", "tab@riga.example.org", " =1+1", "-2+3", "\t=1+1"),
]  # fmt: skip
DANGEROUS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
UNESCAPED = re.compile(r"<script>alert|<img src=x|<svg onload|<b onmouseover", re.IGNORECASE)


def csv_text(rows: Sequence[tuple[str, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", "city", "country", "organisation", "language"])
    for row in rows:
        writer.writerow([*row, "en"])
    return out.getvalue()


def unneutralised(text: str) -> list[str]:
    """CSV cells a spreadsheet would run as a formula."""
    found = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            stripped = cell.lstrip(" \t\r\n")
            if stripped[:1] in DANGEROUS and not re.fullmatch(r"[-+]?\d+(\.\d+)?( ?%)?", stripped):
                found.append(cell)
    return found


def assert_escaped(html: str, where: str) -> None:
    hit = UNESCAPED.search(html)
    assert hit is None, f"{where}: {html[max(0, hit.start() - 200) : hit.end() + 100]}"


async def signed_post(session: aiohttp.ClientSession, url: str, whsec: str, data: dict[str, Any]) -> int:
    body = json.dumps({"type": "response.completed", "data": data}).encode()
    stamp, message_id = int(time.time()), f"msg_{data['response_id']}"
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signed.sign(whsec, message_id, stamp, body),
    }
    async with session.post(url, data=body, headers=headers) as answer:
        return answer.status


async def test_no_field_a_stranger_controls_breaks_out_of_a_page_a_header_or_a_csv_cell(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    sink = MailSink().start()
    settings = settings_for(tmp_path, sink.url)
    db = open_db(settings.db_path)
    coordinator = tokens.create(db, "coordinator", None, utcnow())[1]
    partner = tokens.create(db, "network", NETWORK, utcnow())[1]
    env = {"SURVEYBOT_DB": str(settings.db_path)}
    try:
        async with running(settings) as (_, base), aiohttp.ClientSession() as session:
            # a partner uploads its list through /upload, under a file name of its choosing
            upload = aiohttp.FormData()
            upload.add_field("token", partner)
            upload.add_field("network", NETWORK)
            upload.add_field(
                "file", csv_text(PEOPLE).encode(), filename=f"{MARKUP[1]}=1+1.csv", content_type="text/csv"
            )
            async with session.post(f"{base}/upload", data=upload) as answer:
                page = await answer.text()
                assert answer.status < 500, page
                assert_escaped(page, "upload report")
            assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] >= 2, page

            wave = signed_wave(
                db, reminders=(), close_after=timedelta(hours=1), interview_question="Q9", interview_yes="1"
            )
            contacts = db.execute("SELECT id, email FROM contacts").fetchall()
            await wait_until(lambda: len(sink.received) == len(contacts), timeout=20, what="the invitations")
            for received in sink.received:  # a CR/LF in a name never becomes a header of its own
                headers = received.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
                assert not re.search(r"^bcc:", headers, re.IGNORECASE | re.MULTILINE), headers
                assert len(received.message["To"].addresses) == 1 and received.rcpt_tos == [
                    received.message["To"].addresses[0].addr_spec
                ]

            secret = service_secret(db, None)
            url = webhook_url(base, secret, wave)
            whsec = signed.whsec(webhook_signing_secret(secret, wave))
            for n, (contact_id, _) in enumerate(contacts):
                answers = {"Q1": FORMULAS[n % len(FORMULAS)], "Q2": MARKUP[n % len(MARKUP)], "Q9": "1"}
                data = {"response_id": f"R{n}", "token": survey_token(secret, wave["id"], contact_id), "progress": 100,
                        "answers": answers, "embedded": {"org": FORMULAS[(n + 3) % len(FORMULAS)]}}  # fmt: skip
                assert await signed_post(session, url, whsec, data) == 200
            stranger = {"response_id": MARKUP[0], "token": MARKUP[2], "progress": 100,
                        "answers": {MARKUP[1]: FORMULAS[0], "Q2": MARKUP[0]},
                        "embedded": {MARKUP[2]: FORMULAS[4]}}  # fmt: skip
            assert await signed_post(session, url, whsec, stranger) == 200

            # the booking page of a respondent named with markup
            interview_field.publish(db, interview_field.in_three_days_at(9), 2)
            invited = queue.invite(db, wave["id"], utcnow(), nudge_after=3600, expire_after=86400)
            for interview in invited:
                async with session.get(f"{base}/interview/{queue.booking_token(secret, interview)}") as answer:
                    assert answer.status == 200
                    assert_escaped(await answer.text(), "booking page")

            # every page, signed in as the coordinator and as the partner
            for token, paths in (
                (coordinator, ["/waves", "/waves/w", "/interviews"]),
                (partner, ["/waves", "/waves/w"]),
            ):
                async with aiohttp.ClientSession() as person:
                    async with person.post(f"{base}/login", data={"token": token}) as answer:
                        assert answer.status == 200
                    for path in paths:
                        async with person.get(f"{base}{path}") as answer:
                            html = await answer.text()
                            assert answer.status in (200, 403), (path, answer.status)
                            assert_escaped(html, path)
            async with session.get(
                f"{base}/api/waves/w/report", headers={"Authorization": f"Bearer {coordinator}"}
            ) as answer:
                assert answer.status == 200
                assert "json" in answer.content_type  # markup in JSON is data, served as JSON only

        exported = run_cli("responses", "export", "w", extra_env=env)
        assert exported.returncode == 0, exported.stderr
        assert "'" + FORMULAS[0] in {cell for row in csv.reader(io.StringIO(exported.stdout)) for cell in row}
        assert unneutralised(exported.stdout) == []  # every answer is there, as text
        for fmt in ("csv", "md", "html"):
            report = run_cli("report", "w", "--format", fmt, extra_env=env)
            assert report.returncode == 0, report.stderr
            if fmt == "csv":
                assert unneutralised(report.stdout) == []
            else:
                assert_escaped(report.stdout, f"report --format {fmt}")
    finally:
        db.close()
        sink.stop()
