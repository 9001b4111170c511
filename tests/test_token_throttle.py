"""Every place a token can be tried counts against the same limits as sign-in: bearer APIs, the token field of the
upload and researchers' pages. Past them: 429 with Retry-After, a right token answered like a wrong one."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest

from surveybot.config import Settings
from surveybot.web import throttle
from tests.service import coordinator_token, running, settings_for


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}", SURVEYBOT_TRUSTED_PROXIES="127.0.0.1")


async def test_bearer_apis_limit_failed_tokens_per_client_even_for_the_right_one(settings: Settings) -> None:
    good = coordinator_token(settings)
    async with running(settings) as (_, base), aiohttp.ClientSession() as http:

        async def api(token: str, path: str = "/api/interviews", client: str = "203.0.113.5") -> aiohttp.ClientResponse:
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": client}
            async with http.get(f"{base}{path}", headers=headers) as answer:
                await answer.read()
                return answer

        assert (await api(good)).status == 200
        for n in range(throttle.PER_CLIENT):
            assert (await api(f"sbt_wrong{n}", "/api/waves/none/report")).status == 401
        limited = await api("sbt_wrong-again")
        assert limited.status == 429 and 0 < int(limited.headers["Retry-After"]) <= throttle.WINDOW_S
        async with http.get(
            f"{base}/api/networks/Metropolis/contacts",
            headers={"Authorization": f"Bearer {good}", "X-Forwarded-For": "203.0.113.5"},
        ) as answer:
            assert answer.status == 429, "a right token from a limited client waits like a wrong one"
            assert "too many failed attempts" in (await answer.json())["error"]
        assert (await api(good, client="198.51.100.9")).status == 200, "another client is not held up"


async def test_one_token_sprayed_from_many_addresses_is_limited_on_the_upload_page(settings: Settings) -> None:
    async with running(settings) as (_, base), aiohttp.ClientSession() as http:

        async def upload(token: str, client: str) -> tuple[int, str, dict[str, str]]:
            form = aiohttp.FormData()
            form.add_field("token", token)
            form.add_field("network", "Metropolis")
            form.add_field("file", io.BytesIO(b"name,email\nAna,ana@bogota.example.org\n"), filename="c.csv")
            async with http.post(f"{base}/upload", data=form, headers={"X-Forwarded-For": client}) as answer:
                return answer.status, await answer.text(), dict(answer.headers)

        for n in range(throttle.PER_TOKEN):
            status, page, _ = await upload("sbt_guessed-token", f"198.51.100.{n + 1}")
            assert status == 401 and "not valid" in page
        status, page, headers = await upload("sbt_guessed-token", "192.0.2.77")
        assert status == 429 and int(headers["Retry-After"]) > 0
        assert "Too many failed attempts; try again in 15 min." in page


async def test_the_researchers_page_and_sign_in_share_one_count(settings: Settings) -> None:
    good = coordinator_token(settings)
    async with running(settings) as (_, base), aiohttp.ClientSession() as http:
        for n in range(throttle.PER_CLIENT // 2):
            async with http.post(f"{base}/login", data={"token": f"sbt_a{n}"}, allow_redirects=False) as answer:
                assert answer.status == 401
        for n in range(throttle.PER_CLIENT - throttle.PER_CLIENT // 2):
            async with http.post(f"{base}/researchers", data={"token": f"sbt_b{n}"}) as answer:
                assert answer.status == 401
        async with http.post(f"{base}/researchers", data={"token": good}) as answer:
            assert answer.status == 429 and "Too many failed attempts" in await answer.text()
            assert int(answer.headers["Retry-After"]) > 0
