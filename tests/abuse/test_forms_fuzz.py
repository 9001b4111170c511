"""Whatever is typed into, or forged against, any form or API of the real service — the booking page,
unsubscribe, /login, /upload, the uploads API, the dashboard's action forms, the researchers' page, the
webhook of a partial — the answer is never a 500, and no partial response's answers are ever stored.

The service runs in a thread of its own for the whole module (a real aiohttp server on loopback, real
SQLite); Hypothesis drives it over HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surveybot import plan, responses
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.interviews.queue import booking_token
from surveybot.platforms import ResponseEvent, signed
from surveybot.platforms.urls import webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from surveybot.suppressions import unsubscribe_token
from tests import dashboard_field as field
from tests import interview_field
from tests.service import running, settings_for, signed_wave

TEXT = st.text(max_size=40) | st.sampled_from(
    ["", "=1+1", "<script>alert(1)</script>", "\r\nBcc: x@evil.example", "\x00", "sbt_", "../../etc/passwd",
     "%00", "ñ" * 300, "1e309", "-1", "99999999999999999999", "{{7*7}}", "'; DROP TABLE contacts; --"]
)  # fmt: skip
FIELDS = st.dictionaries(
    st.sampled_from(["token", "next", "lang", "action", "slot", "csrf", "email", "file", "network", "x"]) | TEXT,
    TEXT,
    max_size=5,
)


class Served:
    """The field of the dashboard tests plus a wave whose respondents may book interviews, served from a
    thread; ``request`` is a plain blocking HTTP client."""

    def __init__(self, tmp: Any) -> None:
        self.settings = settings_for(tmp, f"maildir://{tmp / 'mail'}")
        field.import_networks(self.settings)
        db = open_db(self.settings.db_path)
        field.create_wave(db)
        self.tokens = field.make_tokens(db)
        self.secret = service_secret(db, None)
        self.wave = signed_wave(db, "talks", interview_question="Q9", interview_yes="1")
        plan.run_due(db, self.secret, utcnow())  # the invitations: their recipients carry the survey tokens
        self.contact = db.execute("SELECT id FROM contacts ORDER BY id").fetchone()[0]
        token = survey_token(self.secret, self.wave["id"], self.contact)
        event = ResponseEvent("signed", "opt-in", True, token, answers={"Q1": "x", "Q9": "1"})
        assert responses.record(db, self.wave, event, utcnow()) == "complete"
        interview_field.publish(db, interview_field.in_three_days_at(9), 3)
        (interview,) = interview_field.invite_all(db, self.settings, "talks")
        self.booking = booking_token(self.secret, interview)
        self.unsubscribe = unsubscribe_token(self.secret, self.contact, self.wave["id"])
        db.close()
        self.port = 0
        self.cookie, self.csrf = "", ""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async with running(self.settings) as (_, base):
            self.port = int(base.rsplit(":", 1)[1])
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(20)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def signed_in(self, role: str) -> tuple[str, str]:
        """A session cookie for ``role`` and its CSRF token (read from a page's form)."""
        status, headers, _ = self.request(
            "POST",
            "/login",
            urllib.parse.urlencode({"token": self.tokens[role]}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 303, status
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        _, _, html = self.request("GET", "/logout", headers={"Cookie": cookie})  # a page with a form
        csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return cookie, csrf


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("forms")) as running_service:
        running_service.cookie, running_service.csrf = running_service.signed_in("coordinator")
        yield running_service


def form(values: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(values).encode("utf-8", "surrogatepass")


def no_500(status: int, body: str, where: str) -> None:
    assert status < 500 or status == 503, f"{where}: {status} {body[:300]}"


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@given(values=FIELDS, raw=st.binary(max_size=200), as_form=st.booleans())
def test_the_public_forms_never_answer_500(served: Served, values: dict[str, str], raw: bytes, as_form: bool) -> None:
    body, headers = (form(values), FORM) if as_form else (raw, {"Content-Type": "application/octet-stream"})
    for path in (
        f"/interview/{served.booking}",
        f"/unsubscribe/{served.unsubscribe}",
        "/researchers",
        "/upload",
        f"/interview/{urllib.parse.quote(values.get('x', 'nope'), safe='')}",
    ):
        status, _, text = served.request("POST", path, body, headers)
        no_500(status, text, path)
    # /login with a wrong token, always from a fresh client (the sign-in limit is not what is tested here)
    status, _, text = served.request("POST", "/login", body, {**headers, "X-Forwarded-For": "192.0.2.1"})
    no_500(status, text, "/login")


@given(values=FIELDS, action=st.sampled_from(["pause", "resume", "close", "retry", "x", "%2e%2e"]), csrf=st.booleans())
def test_the_dashboard_forms_never_answer_500(served: Served, values: dict[str, str], action: str, csrf: bool) -> None:
    headers = {**FORM, "Cookie": served.cookie}
    fields = {**values, "csrf": served.csrf} if csrf else values
    for path in (
        f"/waves/{field.SLUG}/{action}",
        f"/waves/{field.SLUG}/unmatched/{urllib.parse.quote(values.get('x', '1'), safe='')}",
        f"/waves/{urllib.parse.quote(values.get('x', 'nope'), safe='')}/pause",
    ):
        if path.endswith(("/close", "/pause", "/resume")) and csrf:
            continue  # a real action: the field must stay as it is for the other examples
        status, _, text = served.request("POST", path, form(fields), headers)
        no_500(status, text, path)
    status, _, text = served.request("GET", f"/waves/{field.SLUG}?" + urllib.parse.urlencode(values), headers=headers)
    no_500(status, text, "wave page")


@given(body=st.binary(max_size=400) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), network=TEXT)
def test_the_uploads_api_never_answers_500(served: Served, body: bytes, network: str) -> None:
    path = f"/api/networks/{urllib.parse.quote(network or 'Metropolis', safe='')}/contacts"
    for token in (served.tokens["metropolis"], "sbt_wrong", ""):
        status, _, text = served.request(
            "POST", path, body, {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
        )
        no_500(status, text, path)


@given(answers=st.dictionaries(TEXT, TEXT, max_size=4), progress=st.integers(-5, 99), number=st.integers(0, 10**6))
def test_no_webhook_stores_the_answers_of_a_partial(
    served: Served, answers: dict[str, str], progress: int, number: int
) -> None:
    wave = served.wave
    body = json.dumps(
        {
            "type": "response.partial",
            "data": {
                "response_id": f"partial-{number}",
                "token": survey_token(served.secret, wave["id"], served.contact),
                "progress": progress,
                "answers": answers,
                "embedded": {},
            },
        }
    ).encode()
    stamp, message_id = int(time.time()), f"msg_{number}_{time.monotonic_ns()}"
    whsec = signed.whsec(webhook_signing_secret(served.secret, wave))
    url = urllib.parse.urlsplit(webhook_url("http://x", served.secret, wave)).path
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signed.sign(whsec, message_id, stamp, body),
    }
    status, _, text = served.request("POST", url, body, headers)
    no_500(status, text, "webhook")
    db = open_db(served.settings.db_path)
    try:
        kept = db.execute("SELECT answers FROM responses WHERE response_id = ?", [f"partial-{number}"]).fetchall()
    finally:
        db.close()
    assert all(row[0] in (None, "", "{}", "null") for row in kept), kept
