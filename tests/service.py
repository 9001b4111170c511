"""Helpers to run the real service (aiohttp server + scheduler + dispatcher) inside a test's event loop."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.config import Settings, load_settings
from surveybot.contacts.importer import import_contacts
from surveybot.db import Database, open_db
from surveybot.web.app import create_app

HEADER = "name,email,city,country,region,language\n"


def settings_for(tmp_path: Path, mail_url: str, **extra: str) -> Settings:
    values = {
        "SURVEYBOT_DB": str(tmp_path / "surveybot.db"),
        "SURVEYBOT_MAIL_URL": mail_url,
        "SURVEYBOT_SEND_RATE": "1000",
        "SURVEYBOT_RETRY_DELAY": "0.2s",
        "SURVEYBOT_FROM": "City Diplomacy Lab <lab@example.org>",
        "SURVEYBOT_BASE_URL": "https://survey.example.org",
        **extra,
    }
    return load_settings(values, env_file=None)


def import_rows(settings: Settings, rows: list[str], network: str = "Metropolis", name: str = "list.csv"):
    path = settings.db_path.parent / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    db = open_db(settings.db_path)
    try:
        return import_contacts(db, path, network)
    finally:
        db.close()


def signed_wave(db: Database, slug: str = "w", *, launch: bool = True, **spec: object) -> dict:
    """A wave on the generic signed-webhook platform with the tests' usual survey, created now (and launched
    unless ``launch=False``); ``spec`` overrides any WaveSpec field (reminders, close_after, …)."""
    fields: dict = {
        "slug": slug,
        "title": "City diplomacy 2026",
        "platform": "signed",
        "survey_id": "S1",
        "survey_url": "https://survey.example.org/s1",
        **spec,
    }
    wave = waves.create_wave(db, waves.WaveSpec(**fields), utcnow())
    return waves.launch(db, slug, utcnow()) if launch else wave


def qualtrics_wave(db: Database, slug: str = "city", *, launch: bool = True, **spec: object) -> dict:
    """A Qualtrics wave on survey SV_city (the stand-in API's), no reminders, closing in ten minutes, created
    now (and launched unless ``launch=False``); ``spec`` overrides any WaveSpec field."""
    fields: dict = {
        "platform": "qualtrics",
        "survey_id": "SV_city",
        "survey_url": "https://lab.qualtrics.com/jfe/form/SV_city",
        "reminders": (),
        "close_after": timedelta(minutes=10),
        **spec,
    }
    return signed_wave(db, slug, launch=launch, **fields)


@asynccontextmanager
async def running(settings: Settings):
    """The service on a free loopback port; yields (app, base URL). Stops gracefully on exit."""
    app = create_app(settings, check_every=0.2, poll=0.05)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def wait_until(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def upload_service_db(settings: Settings):
    """A database with Eve from Eurocities and one token of each kind (plus a revoked Metropolis one):
    the setting of the upload tests. Returns (db, {name: token})."""
    from surveybot import tokens
    from surveybot.clock import utcnow

    import_rows(settings, ["Eve Euro,eve@lyon.example.org,Lyon,France,Europe,en"], network="Eurocities")
    db = open_db(settings.db_path)
    now = utcnow()
    made = {
        "metropolis": tokens.create(db, "network", "Metropolis", now)[1],
        "eurocities": tokens.create(db, "network", "Eurocities", now)[1],
        "coordinator": tokens.create(db, "coordinator", None, now)[1],
        "researcher": tokens.create(db, "researcher", None, now)[1],
    }
    revoked_id, made["revoked"] = tokens.create(db, "network", "Metropolis", now)
    tokens.revoke(db, revoked_id, now)
    return db, made


def wave_create_args(slug: str = "w", title: str = "T", survey_id: str = "S") -> list[str]:
    """``wave create`` arguments for a signed-webhook wave on the tests' usual survey (more options may follow)."""
    return ["wave", "create", slug, "--title", title, "--platform", "signed", "--survey-id", survey_id,
            "--survey-url", "https://survey.example.org/s"]  # fmt: skip


def signed_delivery(
    secret: str,
    wave: dict,
    token: str,
    response_id: str,
    *,
    kind: str = "response.completed",
    progress: int = 100,
    answers: dict | None = None,
    message_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A response as the generic signed platform delivers it (Standard Webhooks): (body, headers), signed with the
    wave's secret now. ``message_id`` (default ``msg_<response id>``) is what a platform keeps across retries."""
    import json

    from surveybot.platforms import signed
    from surveybot.platforms.urls import webhook_signing_secret

    data = {"response_id": response_id, "token": token, "progress": progress, "answers": answers or {"q1": "Twinning"}}
    body = json.dumps({"type": kind, "data": {**data, "embedded": {}}}).encode()
    stamp, message_id = int(time.time()), message_id or f"msg_{response_id}"
    whsec = signed.whsec(webhook_signing_secret(secret, wave))
    return body, {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signed.sign(whsec, message_id, stamp, body),
    }


def qualtrics_notification(
    response_id: str, *, topic: str = "citylab.surveyengine.completedResponse.SV_city", survey_id: str = "SV_city"
) -> dict[str, str]:
    """The form Qualtrics posts for an event subscription (application/x-www-form-urlencoded)."""
    return {
        "Topic": topic,
        "Status": "Complete",
        "SurveyID": survey_id,
        "ResponseID": response_id,
        "CompletedDate": "2026-11-25 09:20:01",
        "BrandID": "citylab",
    }


def coordinator_token(settings: Settings) -> str:
    """A new coordinator's access token in the settings' database."""
    from surveybot import tokens

    db = open_db(settings.db_path)
    try:
        return tokens.create(db, "coordinator", None, utcnow())[1]
    finally:
        db.close()
