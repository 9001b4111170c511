"""Address normalisation: the cached fast path must agree with email-validator on every address."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from surveybot.addresses import InvalidAddress, normalise_email

TRICKY = [
    "a@example.org",
    "A.B@Example.ORG",
    "first.last+tag@sub.example.org",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    "a@example",
    "a@-example.org",
    "a@example-.org",
    "a@exa_mple.org",
    "a@@example.org",
    "a b@example.org",
    '"quoted"@example.org',
    "a@[127.0.0.1]",
    "a@localhost",
    "a@x.test",
    "a@x.invalid",
    "ü@example.org",
    "a@bücher.de",
    "a@xn--bcher-kva.de",
    "x" * 64 + "@example.org",
    "x" * 65 + "@example.org",
    "a@" + "b" * 63 + ".org",
    "a@" + "b" * 64 + ".org",
    "a@" + ".".join(["b" * 60] * 4) + ".org",
    "o'brien@example.org",
    "a!#$%&'*+/=?^_`{|}~-@example.org",
    "a@example..org",
    "a@.example.org",
    "a@example.org.",
    "a@1.2.3.4",
    "a@example.c",
    "a@example.123",
    "postmaster@example.org",
    "a@ex ample.org",
]


def reference(address: str) -> str | None:
    """email-validator's verdict, plus RFC 5321's limit of 64 octets before the @, which it does not apply."""
    try:
        normalized = validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None
    return None if len(normalized.rpartition("@")[0].encode()) > 64 else normalized


def test_a_local_part_over_64_octets_is_refused_with_the_rule():
    with pytest.raises(InvalidAddress, match=r"65 characters long; at most 64 .*RFC 5321"):
        normalise_email("x" * 65 + "@example.org")
    assert normalise_email("x" * 64 + "@example.org") == "x" * 64 + "@example.org"


def ours(address: str) -> str | None:
    try:
        return normalise_email(address)
    except InvalidAddress:
        return None


@pytest.mark.parametrize("address", TRICKY)
def test_agrees_with_email_validator(address):
    assert ours(address) == reference(address)


def test_agrees_on_random_addresses():
    rng = random.Random(2019)
    alphabet = string.ascii_letters + string.digits + ".-_+@!#'\"[]() áñ"
    for _ in range(3000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        domain = "".join(rng.choice(string.ascii_lowercase + ".-") for _ in range(rng.randint(0, 12)))
        tld = rng.choice(["org", "com", "es", "c", "", "123"])
        address = f"{local}@{domain}.{tld}" if tld else f"{local}@{domain}"
        # surrounding spaces are trimmed on purpose (pasted values); the rest must agree exactly
        assert ours(address) == reference(address.strip()), address


@pytest.mark.parametrize(
    "pasted, expected",
    [
        ("  Ana@Bogota.Example.ORG \u00a0", "ana@bogota.example.org"),
        ("mailto:ana@bogota.example.org", "ana@bogota.example.org"),
        ("Ana Rodríguez <ana@bogota.example.org>", "ana@bogota.example.org"),
        ("\ufeffana@bogota.example.org\u200b", "ana@bogota.example.org"),
    ],
)
def test_pasted_forms_are_cleaned(pasted, expected):
    assert normalise_email(pasted) == expected


@pytest.mark.parametrize(
    "bad, words", [("", "blank"), ("a@b.org\r\nBcc: x@y.org", "line break"), ("no-at-sign", "@-sign")]
)
def test_refusals_say_why(bad, words):
    with pytest.raises(InvalidAddress, match=words):
        normalise_email(bad)
