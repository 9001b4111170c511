"""A Qualtrics webhook refused (503) while the database could not be written, and never sent again by the
platform: once the disk is writable, ``wave sync`` fetches what the webhook named, and everything recorded before
is counted once."""

from __future__ import annotations

import asyncio

import aiohttp

from surveybot import waves
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from surveybot.web.keys import DB
from tests import fake_platforms
from tests.fake_qualtrics_export import QualtricsExports
from tests.service import import_rows, qualtrics_wave, running, settings_for, wait_until

ANA, JOE = "ana@bogota.example.org", "joe@leeds.example.org"


async def test_wave_sync_fetches_what_a_refused_webhook_named(tmp_path, run_cli, mail_sink):
    fake = fake_platforms.FakePlatform()
    exports = QualtricsExports(fake)
    runner = await fake_platforms.start(fake, exports.routes)
    env = {"QUALTRICS_BASE_URL": fake.url, "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_TOKEN}
    settings = settings_for(tmp_path, mail_sink.url, **env)
    import_rows(settings, [f"Ana Pérez,{ANA},Bogotá,Colombia,LatAm,es", f"Joe Bloggs,{JOE},Leeds,UK,Europe,en"])
    try:
        await _refused_then_synced(settings, env, run_cli, mail_sink, fake)
    finally:
        await runner.cleanup()


async def _refused_then_synced(settings, env, run_cli, mail_sink, fake) -> None:
    async with running(settings) as (app, base), aiohttp.ClientSession() as http:
        db = app[DB]
        wave = qualtrics_wave(db)
        secret = service_secret(db, None)
        await wait_until(lambda: len(mail_sink.received) == 2, what="the invitations")
        tokens = {
            email: survey_token(secret, wave["id"], cid) for cid, email in db.execute("SELECT id, email FROM contacts")
        }
        url = webhook_url(base, secret, wave)

        async def notify(response_id: str) -> int:
            form = {"Topic": "surveyengine.completedResponse.SV_city", "SurveyID": "SV_city", "ResponseID": response_id}
            async with http.post(url, data=form) as answer:
                return answer.status

        fake.add_qualtrics("R_ana", finished=True, token=tokens[ANA], answers={"QID1": 1})
        assert await notify("R_ana") == 200
        await wait_until(lambda: db.execute("SELECT count(*) FROM responses").fetchone()[0] == 1, what="Ana's")
        db.execute("PRAGMA query_only = ON")  # the service's connection cannot write: a read-only file
        fake.add_qualtrics("R_joe", finished=True, token=tokens[JOE], answers={"QID1": 2})
        assert await notify("R_joe") == 503  # refused; this platform does not send it again
        db.execute("PRAGMA query_only = OFF")
        synced = await asyncio.to_thread(run_cli, "wave", "sync", "city", extra_env=env)
        assert synced.returncode == 0, synced.stderr
        assert "Pulled city: 1 complete, 1 already recorded." in synced.stdout
        finished = "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id WHERE r.completed_at"
        done = {email for (email,) in db.execute(finished + " IS NOT NULL")}
        assert done == {ANA, JOE}
        assert waves.get_wave(db, "city")["intake"] == "webhook"
