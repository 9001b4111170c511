from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import chromium

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(tmp_path):
    """Run the real ``surveybot`` command in a fresh folder with its own database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_"))}
    env["SURVEYBOT_DB"] = str(tmp_path / "surveybot.db")

    def run(*args: str, extra_env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "surveybot", *args],
            cwd=tmp_path,
            text=True,
            capture_output=True,
            env={**env, **(extra_env or {})},
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"surveybot {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture
def mail_sink():
    from tests.mailsink import MailSink

    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
async def browser():
    """Headless Chromium (Debian's package) for the tests that use pages as a person does."""
    async with chromium() as launched:
        yield launched
