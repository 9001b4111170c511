"""SurveyMonkey takes one event type per webhook, each at a URL of its own: every SurveyMonkey wave has one URL
per event type, listed by ``wave status --json`` (``webhook_urls``), and each takes its signed events through
the real service; the wave's single ``webhook_url`` keeps working.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from surveybot.db import open_db
from tests.service import wait_until
from tests.test_webhooks_platforms import (
    ANA,
    JOE,
    PAT,
    complete_body,
    field_for,
    partial_body,
    settled,
    sm_id,
)

EVENTS = ("response_completed", "response_updated", "response_disqualified", "response_overquota")


@pytest.fixture
async def sm(tmp_path, mail_sink):
    async with field_for("surveymonkey", tmp_path, mail_sink) as f:
        yield f


async def status_json(f, run_cli) -> dict:
    env = {"SURVEYBOT_DB": str(f.tmp_path / "surveybot.db"), "SURVEYBOT_BASE_URL": f.base}
    result = await asyncio.to_thread(run_cli, "wave", "status", "city", "--json", extra_env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_status_lists_one_url_per_event_type_each_answering_the_platforms_check(sm, run_cli):
    report = await status_json(sm, run_cli)
    assert report["webhook_url"] == sm.url  # the single URL stays
    assert report["webhook_urls"] == {event: f"{sm.url}/{event}" for event in EVENTS}
    # SurveyMonkey checks a subscription URL with HEAD (it must answer 200) before it accepts the webhook
    for url in report["webhook_urls"].values():
        async with sm.session.head(url) as response:
            assert response.status == 200, url
    async with sm.session.head(f"{sm.url}/survey_created") as response:
        assert response.status == 404
    # the other platforms send every event to their one URL
    db = open_db(sm.tmp_path / "surveybot.db")
    db.execute("UPDATE waves SET platform = 'typeform'")
    db.conn.commit()
    db.close()
    assert (await status_json(sm, run_cli))["webhook_urls"] == {}


async def test_a_completed_and_a_partial_event_each_on_its_own_url(sm, mail_sink):
    urls = {event: f"{sm.url}/{event}" for event in EVENTS}
    status, _, payload = await sm.deliver(complete_body(sm, sm_id(11), ANA), url=urls["response_completed"])
    assert (status, payload) == (200, {"status": "queued"})
    status, _, payload = await sm.deliver(partial_body(sm, sm_id(12), JOE, "a medias"), url=urls["response_updated"])
    assert (status, payload) == (200, {"status": "queued"})
    # the one URL of before still takes any event
    assert (await sm.deliver(complete_body(sm, sm_id(13), PAT)))[:1] == (200,)
    await settled(sm)
    await wait_until(lambda: sm.count("SELECT count(*) FROM responses") == 2, what="the complete responses")
    assert sm.completed() == {ANA, PAT}
    assert sm.db.execute("SELECT response_id, contact_id FROM partial_audit").fetchall() == [
        (sm_id(12), sm.contact_ids[JOE])
    ]

    # each URL is as secret and as signed as the wave's own
    wrong = sm.url.rsplit("/", 1)[0] + "/" + "x" * 32 + "/response_completed"
    assert (await sm.deliver(complete_body(sm, sm_id(14), JOE), url=wrong))[0] == 401
    forged = await sm.deliver(complete_body(sm, sm_id(15), JOE), url=urls["response_completed"], signature="AAAA")
    assert forged[0] == 401
    assert (await sm.deliver(complete_body(sm, sm_id(16), JOE), url=f"{sm.url}/survey_deleted"))[0] == 404
    await asyncio.sleep(0.3)
    assert sm.count("SELECT count(*) FROM webhook_inbox") == 3
