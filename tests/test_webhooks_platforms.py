"""Typeform, SurveyMonkey and signed (Standard Webhooks) webhooks against the real server over HTTP.

Each wave runs on the real aiohttp service in the test's event loop, with a real SQLite file, a real SMTP
sink and, for SurveyMonkey, a local stand-in for its response details API. Signatures are computed here
from the platforms' documented schemes (hmac/base64), not with the package's own helpers, which are only
used as a cross-check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.platforms import signed as signed_platform
from surveybot.platforms import surveymonkey as surveymonkey_platform
from surveybot.platforms import typeform as typeform_platform
from surveybot.platforms.urls import webhook_secret, webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from tests import fake_platforms
from tests.service import import_rows, running, settings_for, wait_until

CONTACTS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Luis Gómez,luis@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,",
]
ANA, LUIS, JOE, PAT = (c.split(",")[1] for c in CONTACTS)

SM_API_KEY = "sm-app-key-0f3a"
SM_API_SECRET = "sm-app-secret-77b1"
SM_SURVEY = "412345678"
TYPEFORM_FORM = "TFcity01"
SIGNED_FORM = "city-form"

WAVES = {
    "typeform": dict(survey_id=TYPEFORM_FORM, survey_url="https://lab.typeform.com/to/TFcity01", required=("q1",)),
    "surveymonkey": dict(survey_id=SM_SURVEY, survey_url="https://www.surveymonkey.com/r/CITY26", required=("101",)),
    "signed": dict(survey_id=SIGNED_FORM, survey_url="https://forms.example.org/city", required=("q1",)),
}


# --- the platforms' signing schemes, written out from their documentation --------------------------------


def typeform_sig(key: str, body: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def surveymonkey_sig(api_key: str, api_secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(f"{api_key}&{api_secret}".encode(), body, hashlib.sha1).digest()).decode()


def standard_sig(whsec: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    assert whsec.startswith("whsec_")
    key = base64.b64decode(whsec[len("whsec_") :])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --- bodies ------------------------------------------------------------------------------------------------


def typeform_body(
    response_id: str,
    token: str | None,
    *,
    text: str = "Redes de ciudades",
    choice: str = "Yes",
    event_type: str = "form_response",
    form_id: str = TYPEFORM_FORM,
    hidden: dict | None = None,
    answers: list | None = None,
) -> dict:
    if answers is None:
        answers = [
            {"type": "text", "text": text, "field": {"id": "Fx1", "ref": "q1", "type": "short_text"}},
            {
                "type": "choice",
                "choice": {"label": choice},
                "field": {"id": "Fx2", "ref": "q2", "type": "multiple_choice"},
            },
            {"type": "number", "number": 4, "field": {"id": "Fx3", "ref": "q3", "type": "number"}},
        ]
    return {
        "event_id": f"01EV{response_id}",
        "event_type": event_type,
        "form_response": {
            "form_id": form_id,
            "token": response_id,
            "landed_at": "2026-11-25T09:55:00Z",
            "submitted_at": "2026-11-25T10:00:00Z",
            "hidden": {**({"token": token} if token is not None else {}), **(hidden or {})},
            "definition": {"id": form_id, "title": "City diplomacy"},
            "answers": answers,
        },
    }


def surveymonkey_body(response_id: str, event_type: str = "response_completed", survey_id: str = SM_SURVEY) -> dict:
    return {
        "name": "city wave",
        "filter_type": "survey",
        "filter_id": survey_id,
        "event_type": event_type,
        "event_id": f"ev{response_id}{event_type}",
        "object_type": "response",
        "object_id": response_id,
        "event_datetime": "2026-11-25T10:00:00.000000+00:00",
        "resources": {
            "respondent_id": response_id,
            "recipient_id": "0",
            "user_id": "99",
            "collector_id": "55",
            "survey_id": survey_id,
        },
    }


def surveymonkey_details(
    response_id: str,
    token: str | None,
    *,
    status: str = "completed",
    text: str = "Hermanamientos",
    extra_variables: dict | None = None,
) -> dict:
    variables = {**({"token": token} if token is not None else {}), **(extra_variables or {})}
    return {
        "id": response_id,
        "survey_id": SM_SURVEY,
        "response_status": status,
        "custom_variables": variables,
        "date_modified": "2026-11-25T10:00:00+00:00",
        "pages": [
            {
                "id": "p1",
                "questions": [
                    {"id": "101", "answers": [{"text": text}]},
                    {"id": "102", "answers": [{"choice_id": "9001"}]},
                ],
            }
        ],
    }


def signed_body(
    response_id: str,
    token: str | None,
    *,
    kind: str = "response.completed",
    text: str = "Ciudades",
    embedded: dict | None = None,
    progress=100,
) -> dict:
    return {
        "type": kind,
        "data": {
            "response_id": response_id,
            "token": token,
            "progress": progress,
            "answers": {"q1": text, "q2": "Yes"},
            "embedded": embedded or {},
            "recorded_at": "2026-11-25T10:00:00Z",
        },
    }


def raw(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


# --- the running service -----------------------------------------------------------------------------------


@dataclass
class Field:
    platform: str
    db: object
    wave: dict
    url: str
    base: str
    fake: fake_platforms.FakePlatform
    tokens: dict  # e-mail → personal survey token
    contact_ids: dict  # e-mail → contact id
    secret: str
    signing_secret: str
    session: aiohttp.ClientSession
    tmp_path: Path

    async def post(self, body, headers: dict, url: str | None = None):
        data = io.BytesIO(body) if len(body) > 64 * 1024 else body
        async with self.session.post(url or self.url, data=data, headers=headers) as response:
            text = await response.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
            return response.status, response.content_type, payload

    # one signed delivery per platform, the way the platform would send it
    async def typeform(
        self,
        data: dict | bytes,
        *,
        signature: str | None = "auto",
        content_type: str = "application/json",
        url: str | None = None,
    ):
        body = data if isinstance(data, bytes) else raw(data)
        headers = {"Content-Type": content_type, "User-Agent": "Typeform Webhooks"}
        if signature == "auto":
            signature = typeform_sig(self.signing_secret, body)
        if signature is not None:
            headers["Typeform-Signature"] = signature
        return await self.post(body, headers, url)

    async def surveymonkey(
        self,
        data: dict | bytes,
        *,
        api_key: str = SM_API_KEY,
        signature: str | None = "auto",
        content_type: str = "application/json",
        url: str | None = None,
    ):
        body = data if isinstance(data, bytes) else raw(data)
        headers = {"Content-Type": content_type}
        if api_key is not None:
            headers["Sm-Apikey"] = api_key
        if signature == "auto":
            signature = surveymonkey_sig(SM_API_KEY, SM_API_SECRET, body)
        if signature is not None:
            headers["Sm-Signature"] = signature
        return await self.post(body, headers, url)

    @property
    def whsec(self) -> str:
        return signed_platform.whsec(self.signing_secret)

    async def signed(
        self,
        data: dict | bytes,
        *,
        msg_id: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
        content_type: str = "application/json",
        url: str | None = None,
    ):
        body = data if isinstance(data, bytes) else raw(data)
        msg_id = msg_id or f"msg_{hashlib.sha1(body).hexdigest()[:20]}"
        timestamp = int(time.time()) if timestamp is None else timestamp
        if signature is None:
            signature = standard_sig(self.whsec, msg_id, timestamp, body)
        headers = {
            "Content-Type": content_type,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        return await self.post(body, headers, url)

    async def deliver(self, data: dict | bytes, **kwargs):
        return await getattr(self, self.platform)(data, **kwargs)

    def count(self, sql: str, *params) -> int:
        return self.db.execute(sql, params).fetchone()[0]

    def snapshot(self) -> tuple:
        return tuple(
            self.count(f"SELECT count(*) FROM {table}")
            for table in ("responses", "partial_audit", "interview_queue", "webhook_inbox", "outbox")
        )

    def completed(self) -> set[str]:
        return {
            r[0]
            for r in self.db.execute(
                "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id "
                "WHERE r.completed_at IS NOT NULL"
            )
        }

    def database_bytes(self) -> bytes:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return b"".join(p.read_bytes() for p in sorted(self.tmp_path.glob("surveybot.db*")))

    async def healthy(self) -> bool:
        async with self.session.get(f"{self.base}/healthz") as health:
            return health.status == 200 and (await health.json())["status"] == "ok"


@asynccontextmanager
async def field_for(platform: str, tmp_path: Path, mail_sink):
    fake = fake_platforms.FakePlatform()
    runner = await fake_platforms.start(fake)
    try:
        settings = settings_for(
            tmp_path,
            mail_sink.url,
            SURVEYMONKEY_API_KEY=SM_API_KEY,
            SURVEYMONKEY_API_SECRET=SM_API_SECRET,
            SURVEYMONKEY_ACCESS_TOKEN=fake_platforms.SURVEYMONKEY_TOKEN,
            SURVEYMONKEY_BASE_URL=fake.url,
            SURVEYBOT_FETCH_GRACE="1s",
        )
        import_rows(settings, CONTACTS)
        db = open_db(settings.db_path)
        spec = WAVES[platform]
        waves.create_wave(
            db,
            waves.WaveSpec(
                slug="city",
                title="City diplomacy 2026",
                platform=platform,
                survey_id=spec["survey_id"],
                survey_url=spec["survey_url"],
                reminders=(timedelta(hours=1),),
                close_after=timedelta(hours=2),
                required=spec["required"],
            ),
            utcnow(),
        )
        waves.launch(db, "city", utcnow())
        secret = service_secret(db, None)
        async with running(settings) as (app, base), aiohttp.ClientSession() as session:
            await wait_until(lambda: len(mail_sink.received) == 4, what="the invitations")
            wave = waves.get_wave(db, "city")
            ids = {email: cid for cid, email in db.execute("SELECT id, email FROM contacts")}
            tokens = {email: survey_token(secret, wave["id"], cid) for email, cid in ids.items()}
            url = webhook_url(base, secret, wave)
            assert url == f"{base}/webhooks/{platform}/city/{webhook_secret(secret, wave)}"
            yield Field(
                platform,
                db,
                wave,
                url,
                base,
                fake,
                tokens,
                ids,
                secret,
                webhook_signing_secret(secret, wave),
                session,
                tmp_path,
            )
        db.close()
    finally:
        await runner.cleanup()


@pytest.fixture
async def tf(tmp_path, mail_sink):
    async with field_for("typeform", tmp_path, mail_sink) as f:
        yield f


@pytest.fixture
async def sm(tmp_path, mail_sink):
    async with field_for("surveymonkey", tmp_path, mail_sink) as f:
        yield f


@pytest.fixture
async def sg(tmp_path, mail_sink):
    async with field_for("signed", tmp_path, mail_sink) as f:
        yield f


@pytest.fixture(params=["typeform", "surveymonkey", "signed"])
async def any_field(request, tmp_path, mail_sink):
    async with field_for(request.param, tmp_path, mail_sink) as f:
        yield f


def complete_body(
    f: Field, response_id: str, email: str, *, text: str = "Redes de ciudades", opt_in: str | None = None
) -> dict:
    """A complete response from ``email`` in the field's platform (for SurveyMonkey: registers the details
    with the fake API and returns the notification)."""
    extra = {"interview_opt_in": opt_in} if opt_in is not None else {}
    if f.platform == "typeform":
        return typeform_body(response_id, f.tokens[email], text=text, hidden=extra)
    if f.platform == "surveymonkey":
        f.fake.surveymonkey[response_id] = surveymonkey_details(
            response_id, f.tokens[email], text=text, extra_variables=extra
        )
        return surveymonkey_body(response_id)
    return signed_body(response_id, f.tokens[email], text=text, embedded=extra)


def partial_body(f: Field, response_id: str, email: str, text: str) -> dict:
    if f.platform == "typeform":
        return typeform_body(response_id, f.tokens[email], text=text, event_type="form_response_partial")
    if f.platform == "surveymonkey":
        f.fake.surveymonkey[response_id] = surveymonkey_details(
            response_id, f.tokens[email], text=text, status="partial"
        )
        return surveymonkey_body(response_id, event_type="response_updated")
    return signed_body(response_id, f.tokens[email], kind="response.partial", text=text, progress=40)


async def settled(f: Field) -> None:
    """For SurveyMonkey, wait until the inbox has processed every notification; the others record at once."""
    if f.platform == "surveymonkey":
        await wait_until(
            lambda: f.count("SELECT count(*) FROM webhook_inbox WHERE state = 'pending'") == 0, what="the inbox drained"
        )


def sm_id(n: int) -> str:
    return str(118_000_000_000 + n)


# --- every platform ----------------------------------------------------------------------------------------


async def test_complete_response_is_stored_recipient_completed_and_thanked_once(any_field, mail_sink):
    f = any_field
    rid = sm_id(1) if f.platform == "surveymonkey" else f"{f.platform}-r1"
    status, _, payload = await f.deliver(complete_body(f, rid, ANA, text="Diplomacia urbana en red"))
    assert status == 200
    assert payload == {"status": "queued" if f.platform == "surveymonkey" else "complete"}
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 1, what="the response")
    row = f.db.execute(
        "SELECT wave_id, platform, response_id, contact_id, status, duplicate, answers FROM responses"
    ).fetchone()
    assert row[:6] == (f.wave["id"], f.platform, rid, f.contact_ids[ANA], "complete", "")
    answers = json.loads(row[6])
    if f.platform == "typeform":
        assert answers == {"q1": "Diplomacia urbana en red", "q2": "Yes", "q3": 4}  # keyed by field ref
    elif f.platform == "surveymonkey":
        assert answers == {"101": "Diplomacia urbana en red", "102": "9001"}
    else:
        assert answers == {"q1": "Diplomacia urbana en red", "q2": "Yes"}
    assert f.completed() == {ANA}
    await wait_until(lambda: len(mail_sink.to(ANA)) == 2, what="the thank-you")
    assert str(mail_sink.to(ANA)[1].message["Subject"]).startswith("Gracias")
    assert f.count("SELECT count(*) FROM partial_audit") == 0
    assert f.count("SELECT count(*) FROM interview_queue") == 0

    # the platform retries the same delivery: still one response, no second thank-you
    again = await f.deliver(complete_body(f, rid, ANA, text="Diplomacia urbana en red"))
    expected = {"surveymonkey": "already queued", "signed": "repeat", "typeform": "repeat"}[f.platform]
    assert again[:1] == (200,) and again[2] == {"status": expected}
    await settled(f)
    await asyncio.sleep(0.4)
    assert f.count("SELECT count(*) FROM responses") == 1
    assert len(mail_sink.to(ANA)) == 2
    assert f.count("SELECT count(*) FROM outbox WHERE kind = 'thank_you'") == 1


async def test_partial_response_leaves_only_an_audit_row_and_its_answers_nowhere_on_disk(any_field, mail_sink):
    f = any_field
    pid = sm_id(2) if f.platform == "surveymonkey" else f"{f.platform}-partial"
    cid = sm_id(3) if f.platform == "surveymonkey" else f"{f.platform}-complete"
    secret_text = f"PARTIAL-{f.platform}-never-stored-4417"
    kept_text = f"COMPLETE-{f.platform}-kept-9023"
    status, _, payload = await f.deliver(partial_body(f, pid, JOE, secret_text))
    assert status == 200
    assert payload == {"status": "queued" if f.platform == "surveymonkey" else "partial"}
    assert (await f.deliver(complete_body(f, cid, PAT, text=kept_text)))[0] == 200
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 1, what="the complete response")
    await settled(f)
    audit = f.db.execute("SELECT wave_id, platform, response_id, reason FROM partial_audit").fetchall()
    assert audit == [(f.wave["id"], f.platform, pid, "not finished")]
    if f.platform == "signed":
        assert f.count("SELECT progress FROM partial_audit") == 40
    assert f.db.execute("SELECT response_id FROM responses").fetchall() == [(cid,)]
    assert f.completed() == {PAT}  # the partial respondent is not marked done
    await wait_until(lambda: len(mail_sink.to(PAT)) == 2, what="Pat's thank-you")
    await asyncio.sleep(0.3)
    assert len(mail_sink.to(JOE)) == 1  # only the invitation
    contents = f.database_bytes()
    assert kept_text.encode() in contents  # the search does find what is stored
    assert secret_text.encode() not in contents


async def test_interview_opt_in_queues_an_interview(any_field):
    f = any_field
    yes_id = sm_id(4) if f.platform == "surveymonkey" else f"{f.platform}-yes"
    no_id = sm_id(5) if f.platform == "surveymonkey" else f"{f.platform}-no"
    assert (await f.deliver(complete_body(f, yes_id, LUIS, opt_in="yes")))[0] == 200
    assert (await f.deliver(complete_body(f, no_id, JOE, opt_in="no")))[0] == 200
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 2, what="both responses")
    rows = f.db.execute("SELECT wave_id, contact_id, response_id, state FROM interview_queue").fetchall()
    assert rows == [(f.wave["id"], f.contact_ids[LUIS], yes_id, "queued")]


async def test_unknown_token_is_kept_aside_as_unmatched_without_thanks(any_field, mail_sink):
    f = any_field
    rid = sm_id(6) if f.platform == "surveymonkey" else f"{f.platform}-stranger"
    body = complete_body(f, rid, ANA)
    forged = "x" * 22
    if f.platform == "typeform":
        body["form_response"]["hidden"]["token"] = forged
    elif f.platform == "surveymonkey":
        f.fake.surveymonkey[rid]["custom_variables"]["token"] = forged
    else:
        body["data"]["token"] = forged
    assert (await f.deliver(body))[0] == 200
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 1, what="the response")
    assert f.db.execute("SELECT status, contact_id FROM responses").fetchone() == ("unmatched", None)
    assert f.completed() == set()
    await asyncio.sleep(0.3)
    assert len(mail_sink.received) == 4


@pytest.mark.parametrize(
    "mutate, status",
    [
        (lambda url: url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB"), 401),  # forged secret
        (lambda url: url.rsplit("/", 1)[0] + "/", 404),  # no secret at all: no such route
        (lambda url: url.replace("/city/", "/nowave/"), 401),
        (lambda url: re.sub(r"/webhooks/[^/]+/", "/webhooks/nosuch/", url), 404),  # unknown platform
    ],
)
async def test_wrong_urls_are_refused_with_json_errors(any_field, mutate, status):
    f = any_field
    rid = sm_id(7) if f.platform == "surveymonkey" else "r-url"
    before = f.snapshot()
    got_status, content_type, payload = await f.deliver(complete_body(f, rid, ANA), url=mutate(f.url))
    assert got_status == status
    assert content_type == "application/json" and isinstance(payload["error"], str)
    await asyncio.sleep(0.2)
    assert f.snapshot() == before


async def test_right_secret_for_another_platform_is_refused(any_field):
    """The wave's own secret on another platform's path: the adapter must not be chosen by the URL alone."""
    f = any_field
    for other in {"typeform", "surveymonkey", "signed", "qualtrics"} - {f.platform}:
        url = f.url.replace(f"/webhooks/{f.platform}/", f"/webhooks/{other}/")
        status, content_type, payload = await f.deliver(complete_body(f, "999", ANA), url=url)
        assert (status, content_type) == (401, "application/json") and "error" in payload
    assert f.count("SELECT count(*) FROM responses") == 0


async def test_garbage_and_oversized_bodies_are_refused_and_the_server_lives_on(any_field):
    f = any_field
    before = f.snapshot()
    garbage = b"\x00\xff\xfe\x89PNG\r\n\x1a\n garbage {"
    status, content_type, payload = await f.deliver(garbage)  # correctly signed garbage
    assert (status, content_type) == (400, "application/json") and "error" in payload
    status, content_type, payload = await f.deliver(b"[1, 2, 3]")  # signed JSON, not an object
    assert (status, content_type) == (400, "application/json") and "error" in payload
    big = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    status, content_type, payload = await f.deliver(big)
    assert (status, content_type) == (413, "application/json") and "error" in payload
    assert await f.healthy()
    assert f.snapshot() == before
    # and a normal delivery still works afterwards
    rid = sm_id(8) if f.platform == "surveymonkey" else "after-garbage"
    assert (await f.deliver(complete_body(f, rid, JOE)))[0] == 200
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 1, what="the response after garbage")


async def test_a_large_valid_body_under_the_limit_is_read_whole(any_field):
    """~700 KB, under the 1 MB limit the handler enforces: the whole body must be read and verified (a body
    read short would fail its signature or its JSON parsing)."""
    f = any_field
    rid = sm_id(9) if f.platform == "surveymonkey" else "big-but-fine"
    body = complete_body(f, rid, JOE)
    body["padding"] = "p" * 700_000
    status, _, payload = await f.deliver(body)
    assert (status, payload) == (200, {"status": "queued" if f.platform == "surveymonkey" else "complete"})
    await wait_until(lambda: f.count("SELECT count(*) FROM responses") == 1, what="the response")


async def test_get_on_the_webhook_url_answers_ready(any_field):
    async with any_field.session.get(any_field.url) as response:
        assert response.status == 200 and await response.json() == {"status": "ready"}


# --- Typeform ----------------------------------------------------------------------------------------------


async def test_typeform_signature_scheme_matches_the_documented_one(tf):
    body = raw(typeform_body("tf-x", tf.tokens[ANA]))
    mine = typeform_sig(tf.signing_secret, body)
    assert typeform_platform.signature(tf.signing_secret, body) == mine
    assert mine.startswith("sha256=") and len(base64.b64decode(mine[7:])) == 32


@pytest.mark.parametrize(
    "case, status",
    [
        ("missing", 401),
        ("other key", 401),
        ("other body", 401),
        ("hex digest", 401),
        ("no prefix", 401),
        ("not json", 400),
        ("text/plain", 415),
        ("other form", 400),
        ("other event", 400),
        ("no token", 400),
    ],
)
async def test_typeform_refusals(tf, case, status):
    data = typeform_body("tf-bad", tf.tokens[ANA])
    body = raw(data)
    kwargs = {}
    if case == "missing":
        kwargs["signature"] = None
    elif case == "other key":
        kwargs["signature"] = typeform_sig(tf.secret, body)  # the URL secret is not the signing key
    elif case == "other body":
        kwargs["signature"] = typeform_sig(tf.signing_secret, raw(typeform_body("tf-other", tf.tokens[ANA])))
    elif case == "hex digest":
        kwargs["signature"] = "sha256=" + hmac.new(tf.signing_secret.encode(), body, hashlib.sha256).hexdigest()
    elif case == "no prefix":
        kwargs["signature"] = typeform_sig(tf.signing_secret, body).removeprefix("sha256=")
    elif case == "not json":
        body = b"form_response=yes&token=abc"
    elif case == "text/plain":
        kwargs["content_type"] = "text/plain"
    elif case == "other form":
        body = raw(typeform_body("tf-bad", tf.tokens[ANA], form_id="TFother99"))
    elif case == "other event":
        data["event_type"] = "form_created"
        body = raw(data)
    elif case == "no token":
        data["form_response"].pop("token")
        body = raw(data)
    got, content_type, payload = await tf.typeform(body, **kwargs)
    assert (got, content_type) == (status, "application/json") and isinstance(payload["error"], str)
    assert tf.snapshot()[:3] == (0, 0, 0)
    assert tf.completed() == set()


async def test_typeform_partial_then_complete_of_the_same_response(tf, mail_sink):
    assert (
        await tf.typeform(typeform_body("tf-pc", tf.tokens[LUIS], text="draft", event_type="form_response_partial"))
    )[2] == {"status": "partial"}
    assert (await tf.typeform(typeform_body("tf-pc", tf.tokens[LUIS], text="final answer")))[2] == {
        "status": "complete"
    }
    # a late partial for a response already complete changes nothing
    assert (
        await tf.typeform(
            typeform_body("tf-pc", tf.tokens[LUIS], text="late draft", event_type="form_response_partial")
        )
    )[2] == {"status": "repeat"}
    assert json.loads(tf.db.execute("SELECT answers FROM responses").fetchone()[0])["q1"] == "final answer"
    assert tf.count("SELECT count(*) FROM partial_audit") == 1
    assert tf.completed() == {LUIS}


async def test_typeform_missing_required_answer_is_partial(tf):
    body = typeform_body(
        "tf-req",
        tf.tokens[ANA],
        answers=[
            {
                "type": "choice",
                "choice": {"label": "Yes"},
                "field": {"id": "Fx2", "ref": "q2", "type": "multiple_choice"},
            }
        ],
    )
    assert (await tf.typeform(body))[:3] == (200, "application/json", {"status": "partial"})
    assert tf.db.execute("SELECT reason FROM partial_audit").fetchone() == ("unanswered required: q1",)
    assert tf.count("SELECT count(*) FROM responses") == 0 and tf.completed() == set()


@pytest.mark.parametrize(
    "answers",
    [
        [{"type": "choice", "choice": "Yes", "field": {"id": "Fx2", "ref": "q2", "type": "multiple_choice"}}],
        [{"type": "choices", "choices": ["a", "b"], "field": {"id": "Fx4", "ref": "q4", "type": "multiple_choice"}}],
        [{"type": ["text"], "text": "x", "field": {"id": "Fx1", "ref": "q1", "type": "short_text"}}],
        7,
    ],
)
async def test_typeform_oddly_shaped_signed_body_is_never_a_server_error(tf, answers):
    """A correctly signed body with answers of an unexpected shape: a 2xx or a 4xx JSON answer, never a 500."""
    body = typeform_body("tf-odd", tf.tokens[ANA], answers=answers)
    status, content_type, payload = await tf.typeform(body)
    assert status < 500 and content_type == "application/json", (status, payload)
    assert await tf.healthy()


# --- SurveyMonkey ------------------------------------------------------------------------------------------


async def test_surveymonkey_signature_scheme_matches_the_documented_one(sm):
    body = raw(surveymonkey_body(sm_id(10)))
    mine = surveymonkey_sig(SM_API_KEY, SM_API_SECRET, body)
    assert surveymonkey_platform.signature(SM_API_KEY, SM_API_SECRET, body) == mine
    assert len(base64.b64decode(mine)) == 20  # SHA-1


@pytest.mark.parametrize(
    "case, status",
    [
        ("wrong key", 401),
        ("no key", 401),
        ("no signature", 401),
        ("sha256", 401),
        ("secret only", 401),
        ("other body", 401),
        ("text/plain", 415),
        ("other survey", 400),
        ("not a response", 400),
        ("unknown event", 400),
        ("path in id", 400),
    ],
)
async def test_surveymonkey_refusals(sm, case, status):
    rid = sm_id(11)
    sm.fake.surveymonkey[rid] = surveymonkey_details(rid, sm.tokens[ANA])
    data = surveymonkey_body(rid)
    body = raw(data)
    kwargs = {}
    if case == "wrong key":
        kwargs["api_key"] = "someone-elses-key"
    elif case == "no key":
        kwargs["api_key"] = None
    elif case == "no signature":
        kwargs["signature"] = None
    elif case == "sha256":
        kwargs["signature"] = base64.b64encode(
            hmac.new(f"{SM_API_KEY}&{SM_API_SECRET}".encode(), body, hashlib.sha256).digest()
        ).decode()
    elif case == "secret only":
        kwargs["signature"] = base64.b64encode(hmac.new(SM_API_SECRET.encode(), body, hashlib.sha1).digest()).decode()
    elif case == "other body":
        kwargs["signature"] = surveymonkey_sig(SM_API_KEY, SM_API_SECRET, raw(surveymonkey_body(sm_id(12))))
    elif case == "text/plain":
        kwargs["content_type"] = "text/plain"
    elif case == "other survey":
        body = raw(surveymonkey_body(rid, survey_id="999999"))
    elif case == "not a response":
        data["object_type"] = "collector"
        body = raw(data)
    elif case == "unknown event":
        data["event_type"] = "collector_created"
        body = raw(data)
    elif case == "path in id":
        data["object_id"] = "../../surveys"
        body = raw(data)
    got, content_type, payload = await sm.surveymonkey(body, **kwargs)
    assert (got, content_type) == (status, "application/json") and isinstance(payload["error"], str)
    await asyncio.sleep(0.2)
    assert sm.snapshot()[:4] == (0, 0, 0, 0)
    assert sm.fake.requests == []  # nothing was fetched for a refused notification


async def test_surveymonkey_fetches_details_with_the_access_token(sm):
    rid = sm_id(13)
    complete_body(sm, rid, JOE)
    assert (await sm.surveymonkey(surveymonkey_body(rid)))[2] == {"status": "queued"}
    await wait_until(lambda: sm.count("SELECT count(*) FROM responses") == 1, what="the response")
    assert [(m, p) for m, p, _ in sm.fake.requests] == [("GET", f"/v3/surveys/{SM_SURVEY}/responses/{rid}/details")]
    assert sm.db.execute("SELECT state, attempts FROM webhook_inbox").fetchall() == [("done", 1)]


async def test_surveymonkey_response_unknown_to_the_api_fails_and_stores_nothing(sm, mail_sink):
    rid = sm_id(14)  # never registered with the fake API: a forged or deleted id
    assert (await sm.surveymonkey(surveymonkey_body(rid)))[:3] == (200, "application/json", {"status": "queued"})
    await wait_until(
        lambda: sm.count("SELECT count(*) FROM webhook_inbox WHERE state = 'failed'") == 1,
        what="the notification given up",
    )
    # asked for again while the grace after the event lasted (it might not have been readable yet), then given up
    [(response_id, attempts)] = sm.db.execute("SELECT response_id, attempts FROM webhook_inbox").fetchall()
    assert response_id == rid and attempts >= 2
    assert sm.snapshot()[:3] == (0, 0, 0)
    assert sm.completed() == set()
    await asyncio.sleep(0.3)
    assert len(mail_sink.received) == 4


async def test_surveymonkey_updated_then_completed_events_of_one_response(sm):
    rid = sm_id(15)
    sm.fake.surveymonkey[rid] = surveymonkey_details(rid, sm.tokens[ANA], status="partial", text="draft")
    assert (await sm.surveymonkey(surveymonkey_body(rid, "response_updated")))[2] == {"status": "queued"}
    await wait_until(lambda: sm.count("SELECT count(*) FROM partial_audit") == 1, what="the partial")
    sm.fake.surveymonkey[rid] = surveymonkey_details(rid, sm.tokens[ANA], text="final")
    assert (await sm.surveymonkey(surveymonkey_body(rid)))[2] == {"status": "queued"}
    await wait_until(lambda: sm.count("SELECT count(*) FROM responses") == 1, what="the completion")
    assert sm.completed() == {ANA}
    assert json.loads(sm.db.execute("SELECT answers FROM responses").fetchone()[0])["101"] == "final"


async def test_surveymonkey_odd_details_do_not_stop_the_inbox(sm):
    """One odd details object from the API must fail (or be skipped) on its own; later notifications are
    still processed."""
    odd, good = sm_id(16), sm_id(17)
    sm.fake.surveymonkey[odd] = {
        "id": odd,
        "response_status": "completed",
        "custom_variables": {"token": "t"},
        "pages": [{"id": "p1", "questions": [None]}],
    }
    complete_body(sm, good, PAT)
    await sm.surveymonkey(surveymonkey_body(odd))
    await wait_until(lambda: len(sm.fake.requests) == 1, what="the odd response fetched")
    await asyncio.sleep(0.3)
    await sm.surveymonkey(surveymonkey_body(good))
    await wait_until(
        lambda: sm.count("SELECT count(*) FROM responses") == 1,
        timeout=5,
        what="the next response processed after the odd one",
    )
    assert sm.db.execute("SELECT state FROM webhook_inbox WHERE response_id = ?", [odd]).fetchone()[0] != "pending"


# --- signed (Standard Webhooks) ----------------------------------------------------------------------------


async def test_signed_scheme_matches_the_standard_webhooks_spec(sg):
    # the spec's own example: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert standard_sig(whsec, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert signed_platform.sign(whsec, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    # the wave's secret in whsec_ form decodes back to the signing secret itself
    assert base64.b64decode(sg.whsec.removeprefix("whsec_")) == sg.signing_secret.encode()


async def test_signed_repeat_message_id_changes_nothing(sg, mail_sink):
    body = signed_body("sg-1", sg.tokens[ANA])
    ts = int(time.time())
    first = await sg.signed(body, msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp=ts)
    assert first[:3] == (200, "application/json", {"status": "complete"})
    await wait_until(lambda: len(mail_sink.to(ANA)) == 2, what="the thank-you")
    before = sg.snapshot()
    # the same message again, even with a changed body that is correctly signed: a repeat, not processed
    changed = signed_body("sg-2", sg.tokens[LUIS])
    for again in (body, changed):
        assert (await sg.signed(again, msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"))[2] == {"status": "repeat"}
    # a new message id for a response already kept: recorded as a repeat by response id
    assert (await sg.signed(body, msg_id="msg_other"))[2] == {"status": "repeat"}
    await asyncio.sleep(0.3)
    assert sg.snapshot() == before
    assert sg.completed() == {ANA} and len(mail_sink.to(ANA)) == 2
    assert sg.count("SELECT count(*) FROM webhook_seen") == 2


@pytest.mark.parametrize("offset, status", [(-400, 401), (400, 401), (-3600, 401), (-200, 200), (200, 200)])
async def test_signed_timestamp_tolerance(sg, offset, status):
    ts = int(time.time()) + offset
    got, content_type, payload = await sg.signed(signed_body("sg-ts", sg.tokens[JOE]), msg_id="msg_ts", timestamp=ts)
    assert (got, content_type) == (status, "application/json")
    if status == 200:
        assert payload == {"status": "complete"} and sg.completed() == {JOE}
    else:
        assert "error" in payload and sg.snapshot()[:3] == (0, 0, 0)


async def test_signed_replayed_old_message_is_refused_even_with_its_valid_signature(sg):
    body = raw(signed_body("sg-old", sg.tokens[JOE]))
    old = int(time.time()) - 3600
    signature = standard_sig(sg.whsec, "msg_old", old, body)  # captured an hour ago
    assert (await sg.signed(body, msg_id="msg_old", timestamp=old, signature=signature))[0] == 401
    # re-stamping it breaks the signature
    assert (await sg.signed(body, msg_id="msg_old", timestamp=int(time.time()), signature=signature))[0] == 401
    assert sg.snapshot()[:3] == (0, 0, 0) and sg.count("SELECT count(*) FROM webhook_seen") == 0


@pytest.mark.parametrize(
    "case, status",
    [
        ("wrong key", 401),
        ("raw whsec string as key", 401),
        ("other id", 401),
        ("other timestamp", 401),
        ("v2 prefix", 401),
        ("several all wrong", 401),
        ("one valid among several", 200),
        ("valid first of several", 200),
        ("no signature header", 401),
        ("not digits", 401),
        ("huge timestamp", 401),
        ("text/plain", 415),
        ("unknown type", 400),
        ("no response id", 400),
    ],
)
async def test_signed_signature_checks(sg, case, status):
    body = raw(signed_body("sg-sig", sg.tokens[PAT]))
    ts = int(time.time())
    good = standard_sig(sg.whsec, "msg_sig", ts, body)
    signature, timestamp, content_type = good, ts, "application/json"
    wrong = standard_sig("whsec_" + base64.b64encode(b"another secret").decode(), "msg_sig", ts, body)
    if case == "wrong key":
        signature = wrong
    elif case == "raw whsec string as key":
        mac = hmac.new(sg.whsec.encode(), f"msg_sig.{ts}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(mac).decode()
    elif case == "other id":
        signature = standard_sig(sg.whsec, "msg_else", ts, body)
    elif case == "other timestamp":
        signature = standard_sig(sg.whsec, "msg_sig", ts - 1, body)
    elif case == "v2 prefix":
        signature = "v2," + good.removeprefix("v1,")
    elif case == "several all wrong":
        signature = f"{wrong} v1a,{good.removeprefix('v1,')} v1,{base64.b64encode(b'x' * 32).decode()}"
    elif case == "one valid among several":
        signature = f"{wrong} v1,{base64.b64encode(b'x' * 32).decode()} {good}"
    elif case == "valid first of several":
        signature = f"{good} {wrong}"
    elif case == "no signature header":
        signature = ""
    elif case == "not digits":
        timestamp = "2026-11-25T10:00:00Z"
        signature = standard_sig(sg.whsec, "msg_sig", timestamp, body)
    elif case == "huge timestamp":
        timestamp = "9" * 5000  # digits, but no time anywhere near now
        signature = standard_sig(sg.whsec, "msg_sig", timestamp, body)
    elif case == "text/plain":
        content_type = "text/plain"
    elif case in ("unknown type", "no response id"):
        data = signed_body("sg-sig", sg.tokens[PAT])
        if case == "unknown type":
            data["type"] = "invoice.paid"
        else:
            data["data"].pop("response_id")
        body = raw(data)
        signature = standard_sig(sg.whsec, "msg_sig", ts, body)
    got, got_type, payload = await sg.signed(
        body, msg_id="msg_sig", timestamp=timestamp, signature=signature, content_type=content_type
    )
    assert (got, got_type) == (status, "application/json"), payload
    if status == 200:
        assert payload == {"status": "complete"} and sg.completed() == {PAT}
    else:
        assert isinstance(payload["error"], str)
        assert sg.snapshot()[:3] == (0, 0, 0) and sg.completed() == set()
        assert sg.count("SELECT count(*) FROM webhook_seen") == 0  # a refused message does not use up its id


async def test_signed_refused_delivery_does_not_burn_the_message_id(sg):
    body = raw(signed_body("sg-burn", sg.tokens[LUIS]))
    ts = int(time.time())
    assert (await sg.signed(body, msg_id="msg_burn", timestamp=ts, signature="v1,AAAA"))[0] == 401
    assert (await sg.signed(body, msg_id="msg_burn", timestamp=ts))[2] == {"status": "complete"}
    assert sg.completed() == {LUIS}


async def test_signed_distinct_long_message_ids_are_not_taken_for_repeats(sg):
    """Two different messages whose ids share a long prefix are two deliveries: neither may be dropped as a
    repeat of the other (either both are processed, or the over-long id is refused so the sender knows)."""
    prefix = "msg_" + "a" * 220
    first = await sg.signed(signed_body("sg-long-1", sg.tokens[ANA]), msg_id=prefix + "1")
    second = await sg.signed(signed_body("sg-long-2", sg.tokens[JOE]), msg_id=prefix + "2")
    assert first[0] in (200, 400, 401) and second[0] in (200, 400, 401)
    accepted = [r for r in (first, second) if r[0] == 200]
    assert all(r[2] == {"status": "complete"} for r in accepted), (first, second)
    assert sg.count("SELECT count(*) FROM responses") == len(accepted)


@pytest.mark.parametrize("progress", [10**20, -(10**20)])
async def test_signed_partial_with_absurd_progress_is_not_a_server_error(sg, progress):
    body = signed_body("sg-prog", sg.tokens[JOE], kind="response.partial", progress=progress)
    status, content_type, payload = await sg.signed(body)
    assert status < 500 and content_type == "application/json", (status, payload)
    assert sg.count("SELECT count(*) FROM responses") == 0
    assert await sg.healthy()


async def test_a_wave_created_while_the_service_runs_gets_its_webhooks_within_seconds(sg):
    """The service remembers a wave looked up by its webhooks for a moment; a wave created afterwards by the
    CLI (another process) must still be found, even if its URL was probed before it existed."""
    f = sg
    status, _, _ = await f.signed(signed_body("early", None), url=f"{f.base}/webhooks/signed/late/{'x' * 32}")
    assert status == 401
    waves.create_wave(
        f.db,
        waves.WaveSpec(
            slug="late",
            title="Late wave",
            platform="signed",
            survey_id="S-late",
            survey_url="https://survey.example.org/late",
        ),
        utcnow(),
    )
    late = waves.get_wave(f.db, "late")
    url = webhook_url(f.base, f.secret, late)
    body = raw(signed_body("late-1", None))
    whsec = signed_platform.whsec(webhook_signing_secret(f.secret, late))
    answers = []

    async def accepted() -> bool:
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": f"msg_late_{len(answers)}",
            "webhook-timestamp": str(stamp),
            "webhook-signature": standard_sig(whsec, f"msg_late_{len(answers)}", stamp, body),
        }
        answers.append(await f.post(body, headers, url))
        return answers[-1][0] == 200

    started = time.monotonic()
    while not await accepted():
        assert time.monotonic() - started < 3, answers
        await asyncio.sleep(0.2)
    assert answers[-1][2] == {"status": "unmatched"}
    assert f.count("SELECT count(*) FROM responses WHERE wave_id = ?", late["id"]) == 1


@pytest.mark.parametrize("depth", [40, 5_000, 200_000])
async def test_signed_deeply_nested_json_is_refused_with_400(sg, depth):
    """A correctly signed body of thousands of nested brackets is a bad request, not a server error."""
    answers = "[" * depth + "]" * depth
    body = (
        '{"type": "response.completed", "data": {"response_id": "deep", "token": null, "progress": 100, '
        f'"answers": {{"q1": {answers}}}, "embedded": {{}}}}}}'
    ).encode()
    status, content_type, payload = await sg.signed(body)
    assert (status, content_type) == (400, "application/json") and "nested" in payload["error"], payload
    assert sg.count("SELECT count(*) FROM responses") == 0 and await sg.healthy()
