"""E-mail address normalisation: one canonical, lower-case form per mailbox, validated without DNS.

email-validator does the validation. Its domain checks (IDNA, UTS #46) are most of its cost and give the
same answer for every address at one domain, so they are cached per domain; an address whose local part is
a plain ASCII dot-atom then needs only a regular-expression check that accepts exactly what email-validator
accepts for such local parts (the equivalence is tested). Anything unusual goes through the full validator.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

# RFC 5322 dot-atom over ASCII atext: what email-validator accepts for an unquoted ASCII local part.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
MAX_LOCAL = 64  # octets before the @ (RFC 5321)
# Invisible characters that copy-and-paste from web pages and spreadsheets leaves around addresses.
_INVISIBLE = dict.fromkeys(map(ord, "\u00a0\u200b\u200c\u200d\u2060\ufeff"), " ")


class InvalidAddress(ValueError):
    """The text is not a usable e-mail address; the message says why."""


def normalise_email(raw: str, *, allow_local_domain: bool = False) -> str:
    """Return the canonical lower-case form of ``raw`` or raise :class:`InvalidAddress`.

    Accepts the forms people paste: surrounding spaces, ``mailto:``, ``Name <address>``.
    ``allow_local_domain`` admits ``user@localhost``-style addresses (a sender on a test machine).
    """
    text = raw.translate(_INVISIBLE).strip()
    if not text:
        raise InvalidAddress("is blank")
    if "\r" in text or "\n" in text:
        raise InvalidAddress("contains a line break")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: bytes that were not text (e.g. a command-line argument)
        raise InvalidAddress(
            f"contains {text[exc.start]!r} at position {exc.start + 1}, which is not a "
            "character (bytes that were not UTF-8 text)"
        ) from None
    if "<" in text and text.endswith(">"):
        text = parseaddr(text)[1] or text
    if text[:7].lower() == "mailto:":
        text = text[7:]
    if allow_local_domain and re.fullmatch(r"[^@\s]+@localhost", text, re.IGNORECASE):
        return text.lower()
    local, at, domain = text.rpartition("@")
    # counted as sent: composed characters (NFC, as the validator stores them), in UTF-8 octets
    octets = len(unicodedata.normalize("NFC", local).encode("utf-8")) if at else 0
    if octets > MAX_LOCAL:
        unit = "characters" if local.isascii() else "octets (in UTF-8)"
        raise InvalidAddress(
            f"the part before the @ is {octets} {unit} long; at most {MAX_LOCAL} are allowed "
            f"(RFC 5321, section 4.5.3.1.1)"
        )
    if at and _DOT_ATOM.match(local):
        try:
            unicode_domain, ascii_domain = _domain(domain.lower())
        except EmailNotValidError as exc:
            raise InvalidAddress(str(exc)) from None
        if len(local) + 1 + len(ascii_domain) <= 254:
            return f"{local}@{unicode_domain}".lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return result.normalized.lower()


def envelope(email: str) -> tuple[str, bool]:
    """The form of a stored address that goes on the wire: its domain in ASCII (an international domain as
    punycode, ``xn--…``), and whether its local part is non-ASCII, so that only a relay offering SMTPUTF8
    (RFC 6531) can carry it."""
    local, _, domain = email.rpartition("@")
    if not domain.isascii():
        try:
            domain = _domain(domain.lower())[1]
        except EmailNotValidError:  # not a stored address: left as is, the transport refuses it for this message
            pass
    return f"{local}@{domain}", not local.isascii()


def needs_smtputf8(email: str) -> bool:
    return not email.rpartition("@")[0].isascii()


@lru_cache(maxsize=65536)
def _domain(domain: str) -> tuple[str, str]:
    """Validate a domain once: (normalised Unicode form, ASCII form). Raises EmailNotValidError."""
    result = validate_email("x@" + domain, check_deliverability=False)
    return result.domain, result.ascii_domain
