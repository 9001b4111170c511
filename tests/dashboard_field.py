"""A wave driven through the real pipeline, for the dashboard, partner-view and sign-in tests: contacts of two
networks imported from CSV, the real service sending through a real SMTP server (one address refused as
unknown), responses posted as signed webhooks (complete, a city duplicate, a partial, an unmatched one), an
opt-out through the one-click unsubscribe link. Plus signing in with Chromium as a person does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp

from surveybot import tokens, waves
from surveybot.clock import utcnow
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from surveybot.suppressions import unsubscribe_token
from tests.service import import_rows, signed_delivery, wait_until

XSS = "<script>alert(1)</script>"
METROPOLIS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Luis Gómez,luis@bogota.example.org,Bogotá,Colombia,Latin America,es",
    f"{XSS},joe@leeds.example.org,Leeds,UK,Europe,en",
    "Kim Lee,kim@seoul.example.org,Seoul,Korea,Asia,en",
    "Bo Gone,gone@nowhere.example.org,Valparaíso,Chile,Latin America,es",
    "Sam Both,sam@porto.example.org,Porto,Portugal,Europe,en",
]
EUROCITIES = [
    "Eve Euro,eve@lyon.example.org,Lyon,France,Europe,en",
    "Sam Both,sam@porto.example.org,Porto,Portugal,Europe,en",
    "Olga Out,olga@riga.example.org,Riga,Latvia,Europe,en",
]
GONE = "gone@nowhere.example.org"
SLUG = "city"


def import_networks(settings) -> None:
    import_rows(settings, METROPOLIS, network="Metropolis", name="metropolis.csv")
    import_rows(settings, EUROCITIES, network="Eurocities", name="eurocities.csv")


def create_wave(db, slug: str = SLUG, share: bool = False) -> dict:
    return waves.create_wave(
        db,
        waves.WaveSpec(
            slug=slug,
            title="City diplomacy 2026",
            platform="signed",
            survey_id="S1",
            survey_url="https://survey.example.org/s1",
            interview_question="Q9",
            interview_yes="1",
            timezone="America/Bogota",
            share_status_with_networks=share,
        ),
        utcnow(),
    )


def make_tokens(db) -> dict[str, str]:
    now = utcnow()
    return {
        "coordinator": tokens.create(db, "coordinator", None, now)[1],
        "metropolis": tokens.create(db, "network", "Metropolis", now)[1],
        "eurocities": tokens.create(db, "network", "Eurocities", now)[1],
        "researcher": tokens.create(db, "researcher", None, now, email="marta@lab.example.org")[1],
    }


def contact_ids(db) -> dict[str, int]:
    return {email: cid for cid, email in db.execute("SELECT id, email FROM contacts")}


async def post_response(
    session: aiohttp.ClientSession,
    base: str,
    db,
    *,
    response_id: str,
    email: str | None,
    kind: str = "response.completed",
    progress: int = 100,
    answers: dict | None = None,
    slug: str = SLUG,
) -> dict:
    """A signed webhook as the platform would send it; ``email=None`` sends a token that names nobody."""
    secret = service_secret(db, None)
    wave = waves.get_wave(db, slug)
    token = survey_token(secret, wave["id"], contact_ids(db)[email]) if email else "not-a-recipient-token"
    body, headers = signed_delivery(
        secret, wave, token, response_id, kind=kind, progress=progress, answers=answers or {"Q1": "Twinning"}
    )
    async with session.post(webhook_url(base, secret, wave), data=body, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def one_click_unsubscribe(session: aiohttp.ClientSession, base: str, db, email: str, slug: str = SLUG):
    token = unsubscribe_token(service_secret(db, None), contact_ids(db)[email], waves.get_wave(db, slug)["id"])
    async with session.post(
        f"{base}/unsubscribe/{token}",
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as answer:
        assert answer.status == 200


async def drive(db, base: str, mail_sink, slug: str = SLUG) -> None:
    """Launch the wave in the running service and play its field work: 8 invited, one address refused as
    unknown, four who finish (one a city duplicate, one listed by both networks), a partial (from the contact
    whose name is a script tag), an unmatched response and an opt-out."""
    mail_sink.handler.refuse_rcpt[GONE] = "550 5.1.1 No such user"
    waves.launch(db, slug, utcnow())
    await wait_until(
        lambda: (
            len(mail_sink.received) == 7
            and db.execute("SELECT count(*) FROM outbox WHERE state = 'failed'").fetchone()[0] == 1
        ),
        timeout=20,
        what="seven invitations sent and one refused",
    )
    async with aiohttp.ClientSession() as session:
        outcomes = [
            await post_response(
                session,
                base,
                db,
                response_id="R1",
                email="ana@bogota.example.org",
                answers={"Q1": "Twinning", "Q9": "1"},
                slug=slug,
            ),
            await post_response(session, base, db, response_id="R2", email="luis@bogota.example.org", slug=slug),
            await post_response(
                session,
                base,
                db,
                response_id="R3",
                email="joe@leeds.example.org",
                kind="response.partial",
                progress=40,
                slug=slug,
            ),
            await post_response(session, base, db, response_id="R4", email="sam@porto.example.org", slug=slug),
            await post_response(session, base, db, response_id="R5", email="eve@lyon.example.org", slug=slug),
            await post_response(session, base, db, response_id="R6", email=None, slug=slug),
        ]
        assert [o["status"] for o in outcomes] == [
            "complete",
            "duplicate",
            "partial",
            "complete",
            "complete",
            "unmatched",
        ]
        await one_click_unsubscribe(session, base, db, "olga@riga.example.org", slug=slug)


DOCS = Path(__file__).resolve().parent.parent / "docs"  # screenshots of the pages (SURVEYBOT_SCREENSHOTS=1)


async def sign_in(page, base: str, token: str, *, lang: str | None = None) -> None:
    """Type the token on /login as a person does; lands on the home page of its role."""
    await page.goto(f"{base}/login" + (f"?lang={lang}" if lang else ""))
    await page.fill("#token", token)
    async with page.expect_navigation():
        await page.click("#sign-in")


def long_wave_spec(slug: str) -> waves.WaveSpec:
    return waves.WaveSpec(
        slug=slug,
        title="Second wave",
        platform="signed",
        survey_id="S2",
        survey_url="https://survey.example.org/s2",
        reminders=(timedelta(days=3),),
        close_after=timedelta(days=5),
    )


@asynccontextmanager
async def served(settings, mail_sink=None) -> AsyncIterator[dict]:
    """The field above, served: both networks imported, the wave created, a token per role; with ``mail_sink``
    the wave is also driven (sent, answered, one opt-out). Yields db, base, tokens, settings, sink."""
    from surveybot.db import open_db
    from tests.service import running

    import_networks(settings)
    db = open_db(settings.db_path)
    create_wave(db)
    made = make_tokens(db)
    try:
        async with running(settings) as (_, base):
            if mail_sink is not None:
                await drive(db, base, mail_sink)
            yield {"db": db, "base": base, "tokens": made, "settings": settings, "sink": mail_sink}
    finally:
        db.close()
