"""SMTP with AUTH and STARTTLS against a real aiosmtpd server; a refused login keeps messages queued."""

from __future__ import annotations

import ssl
import subprocess
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from tests.mailsink import Handler, free_port
from tests.service import import_rows, running, settings_for, wait_until


def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"lab", b"s3cret:/@"), handled=False)


@pytest.fixture
def certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def launch_one(settings):
    import_rows(settings, ["Ana,ana@bogota.example.org,Bogotá,Colombia,Latin America,es"])
    db = open_db(settings.db_path)
    waves.create_wave(
        db,
        waves.WaveSpec(
            slug="w",
            title="T",
            platform="qualtrics",
            survey_id="SV_1",
            survey_url="https://lab.qualtrics.com/jfe/form/SV_1",
            reminders=(),
            close_after=timedelta(hours=1),
        ),
        utcnow(),
    )
    waves.launch(db, "w", utcnow())
    return db


async def test_starttls_and_auth(tmp_path, certificate):
    key, cert = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, port = Handler(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        url = f"smtp://lab:s3cret%3A%2F%40@127.0.0.1:{port}?starttls=1&cafile={cert}"
        settings = settings_for(tmp_path, url)
        db = launch_one(settings)
        async with running(settings):
            await wait_until(lambda: len(handler.received) == 1, what="the invitation over STARTTLS with AUTH")
    finally:
        controller.stop()
    assert handler.received[0].rcpt_tos == ["ana@bogota.example.org"]
    assert db.execute("SELECT state FROM outbox").fetchone()[0] == "sent"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the test server's choice
async def test_refused_login_keeps_the_message_queued_for_retry(tmp_path):
    handler, port = Handler(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        settings = settings_for(tmp_path, f"smtp://lab:wrong@127.0.0.1:{port}")
        db = launch_one(settings)
        async with running(settings):
            await wait_until(
                lambda: db.execute("SELECT attempts FROM outbox").fetchone()[0] >= 2, what="a second attempt"
            )
        state, error = db.execute("SELECT state, last_error FROM outbox").fetchone()
    finally:
        controller.stop()
    assert handler.received == []
    assert state == "queued" and "535" in error and "SURVEYBOT_MAIL_URL" in error
