"""``surveybot serve`` killed with SIGKILL in the middle of pulling a 5,000-response Qualtrics export: the next
serve pulls again from the last continuation token it stored (none: the token comes with the last batch), reads
what was recorded already again, and every response ends up recorded exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading

from surveybot.db import open_db
from tests import fake_platforms
from tests.fake_qualtrics_export import QualtricsExports
from tests.faults.test_kill import serve_process, wait_for
from tests.mailsink import free_port
from tests.service import import_rows, qualtrics_wave, settings_for

RESPONSES = 5000


class FakeInThread:
    """The Qualtrics stand-in on its own event loop, so a synchronous test can run serve beside it."""

    def __init__(self, fake: fake_platforms.FakePlatform, exports: QualtricsExports) -> None:
        self.fake, self.exports = fake, exports
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeInThread:
        self.thread.start()
        start = fake_platforms.start(self.fake, self.exports.routes)
        self.runner = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def serve(tmp_path, fake_url: str, port: int) -> subprocess.Popen:
    return serve_process(
        tmp_path,
        port,
        SURVEYBOT_MAIL_URL=f"maildir://{tmp_path / 'mail'}",
        SURVEYBOT_POLL_EVERY="1s",
        QUALTRICS_BASE_URL=fake_url,
        QUALTRICS_API_TOKEN=fake_platforms.QUALTRICS_TOKEN,
    )


def test_a_pull_killed_half_way_resumes_and_records_every_response_once(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    import_rows(settings, ["Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es"])
    db = open_db(settings.db_path)
    qualtrics_wave(db, intake="poll")
    fake = fake_platforms.FakePlatform()
    exports = QualtricsExports(fake)
    for n in range(RESPONSES):
        fake.add_qualtrics(f"R_{n:05d}", finished=True, token=None, answers={"QID1": n})

    def recorded() -> int:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])

    with FakeInThread(fake, exports):
        first = serve(tmp_path, fake.url, free_port())
        try:
            wait_for(lambda: recorded() > 0, 60, "the first batch of the export")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        at_kill = recorded()
        assert 0 < at_kill < RESPONSES, f"killed after {at_kill} responses: not half-way"
        second = serve(tmp_path, fake.url, free_port())
        try:
            wait_for(lambda: recorded() == RESPONSES, 60, "every response after the restart")
            wait_for(lambda: len(exports.bodies) >= 3, 30, "another pull: nothing new, nothing twice")
            wait_for(lambda: len(exports.jobs) == len(exports.bodies) and all(j.file_id for j in exports.jobs.values()),
                     30, "that pull's export read")  # fmt: skip
        finally:
            second.terminate()
            second.wait(20)
    assert recorded() == RESPONSES
    assert db.execute("SELECT count(DISTINCT response_id) FROM responses").fetchone()[0] == RESPONSES
    # the export after the restart started from the stored token (none yet), never from beyond what was recorded
    assert "continuationToken" not in exports.bodies[1]
    assert all("continuationToken" in body for body in exports.bodies[2:])
    assert len(exports.bodies) >= 3
