"""Guessing tokens on /login is limited: per client address, per token tried (one token sprayed from many
addresses), with a 429 page and Retry-After; X-Forwarded-For counts only from a configured proxy; a correct
token from a throttled address waits like any other; what is remembered is bounded."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import aiohttp
import pytest

from surveybot.config import Settings
from surveybot.web import throttle
from surveybot.web.keys import SIGN_IN_GUARD
from tests.service import coordinator_token, running, settings_for


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")


async def sign_in(
    session: aiohttp.ClientSession, base: str, token: str, forwarded: str | None = None
) -> tuple[int, str, dict[str, str]]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with session.post(
        f"{base}/login", data={"token": token, "next": "/waves"}, headers=headers, allow_redirects=False
    ) as answer:
        return answer.status, await answer.text(), dict(answer.headers)


async def test_failed_sign_ins_from_one_address_are_limited_even_for_the_right_token(settings: Settings) -> None:
    good = coordinator_token(settings)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        for n in range(throttle.PER_CLIENT):
            status, _, _ = await sign_in(session, base, f"sbt_wrong{n}")
            assert status == 401
        status, html, headers = await sign_in(session, base, "sbt_wrong-again")
        assert status == 429 and 0 < int(headers["Retry-After"]) <= throttle.WINDOW_S
        assert "Too many failed sign-in attempts" in html and 'role="alert"' in html
        # a right guess is answered like a wrong one until the window has passed: no oracle
        status, _, headers = await sign_in(session, base, good)
        assert status == 429 and "Set-Cookie" not in headers
        # X-Forwarded-For from a peer that is not a trusted proxy changes nothing
        status, _, _ = await sign_in(session, base, good, forwarded="198.51.100.7")
        assert status == 429
        # the window passes (the guard's clock moved on): the right token signs in
        guard = app[SIGN_IN_GUARD]
        for counter in (guard.clients, guard.tokens):
            counter.clock = lambda: 10**9
        status, _, headers = await sign_in(session, base, good)
        assert status == 303 and headers["Location"] == "/waves"


async def test_one_token_sprayed_from_many_addresses_behind_a_trusted_proxy_is_limited(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, f"maildir://{tmp_path / 'mail'}", SURVEYBOT_TRUSTED_PROXIES="10.9.0.0/16, 127.0.0.1"
    )
    good = coordinator_token(settings)
    guess = "sbt_" + "A" * 43
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        for n in range(throttle.PER_TOKEN):  # each from its own client, through two trusted proxies
            status, _, _ = await sign_in(session, base, guess, forwarded=f"203.0.113.{n}, 10.9.1.1")
            assert status == 401
        status, _, headers = await sign_in(session, base, guess, forwarded="203.0.113.200")
        assert status == 429 and int(headers["Retry-After"]) > 0
        # the same characters typed without their prefix, or with spaces, are the same guess
        assert (await sign_in(session, base, "  " + guess, forwarded="203.0.113.201"))[0] == 429
        assert (await sign_in(session, base, guess[4:], forwarded="203.0.113.202"))[0] == 429
        # a client that only failed once is not held back with another token, and the right one works
        assert (await sign_in(session, base, good, forwarded="203.0.113.1"))[0] == 303
        # a client naming itself in front of the proxies' entries gets no new address: the rightmost
        # untrusted one counts (203.0.113.3 failed once above; nine more and it is held)
        for n in range(throttle.PER_CLIENT - 1):
            assert (await sign_in(session, base, f"sbt_x{n}", forwarded=f"1.2.3.{n}, 203.0.113.3"))[0] == 401
        assert (await sign_in(session, base, "sbt_other", forwarded="9.9.9.9, 203.0.113.3"))[0] == 429


async def test_sign_in_codes_guessed_from_one_address_are_limited(settings: Settings) -> None:
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        for n in range(throttle.PER_CLIENT):
            async with session.get(f"{base}/login/guess{n}", allow_redirects=False) as answer:
                assert answer.status == 410
        async with session.get(f"{base}/login/guess-more", allow_redirects=False) as answer:
            assert answer.status == 429 and answer.headers["Retry-After"]


def test_what_the_guard_remembers_is_bounded_and_forgets_the_oldest() -> None:
    now = [0.0]
    guard = throttle.SignInGuard(per_client=2, per_token=2, window=60, capacity=100, clock=lambda: now[0])
    for n in range(5000):  # an attacker rotating addresses and guesses
        guard.failed(f"198.51.{n // 256}.{n % 256}", f"sbt_{n}")
    assert len(guard.clients) == 100 and len(guard.tokens) == 100
    guard.failed("192.0.2.1", "sbt_same")
    guard.failed("192.0.2.1", "sbt_same")
    assert 0 < guard.wait("192.0.2.1", "sbt_fresh") <= 60
    now[0] = 61
    assert guard.wait("192.0.2.1", "sbt_fresh") == 0


def test_an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() -> None:
    assert throttle.client_key("2001:db8:1:2:aaaa::1") == throttle.client_key("2001:db8:1:2:bbbb::9")
    assert throttle.client_key("2001:db8:1:3::1") != throttle.client_key("2001:db8:1:2::1")
    assert throttle.client_key("::ffff:192.0.2.5") == "192.0.2.5"
    proxies = [ip_network("10.0.0.0/8")]
    assert throttle.client_address("192.0.2.9", "203.0.113.1", proxies) == "192.0.2.9"  # not from a proxy
    assert throttle.client_address("10.0.0.2", "203.0.113.1, 10.0.0.3", proxies) == "203.0.113.1"
    assert throttle.client_address("10.0.0.2", "203.0.113.1, <script>", proxies) == "10.0.0.2"  # malformed
    assert throttle.client_address("10.0.0.2", "", proxies) == "10.0.0.2"
