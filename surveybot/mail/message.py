"""Building the message: a multipart/alternative (text, HTML) e-mail, serialised once to the bytes sent.

Every message surveybot sends has the same shape, so it is written directly rather than through the
``email`` package's generic generator, which costs more than rendering and sending together (it re-folds
every header and searches the whole message for a boundary). What goes into it is controlled here:

- every header value passes through :func:`one_line`, so a name holding CR/LF cannot add a header;
- non-ASCII display names and subjects are RFC 2047 encoded words, ASCII ones kept as is;
- bodies are quoted-printable UTF-8; the boundary starts with ``=_``, which quoted-printable output never
  contains, so it cannot clash with a part;
- ``List-Unsubscribe`` with ``List-Unsubscribe-Post`` gives one-click unsubscribe (RFC 8058).

Tests parse the bytes back with the standard library's parser.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from surveybot.mail.render import Rendered

CRLF = "\r\n"


@dataclass(frozen=True)
class Outgoing:
    """One message ready for a transport: envelope and bytes."""

    sender: str
    recipient: str
    message_id: str
    data: bytes

    def __getitem__(self, header: str) -> str | None:  # for logs and tests: a header of the message
        from email import message_from_bytes, policy

        value = message_from_bytes(self.data, policy=policy.default)[header]
        return None if value is None else str(value)


def one_line(value: str) -> str:
    """Control characters (CR, LF, TAB …) become spaces; runs of space collapse."""
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(value.split())


@lru_cache(maxsize=4096)
def encoded(text: str) -> str:
    """ASCII as is; otherwise RFC 2047 base64 encoded words of at most 75 characters, one per folded line.
    Words break between characters, never inside one (each word must decode on its own)."""
    if text.isascii():
        return text
    words, chunk = [], b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > 45:  # 45 bytes → 60 base64 characters + 12 of framing
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return f"{CRLF} ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def address(name: str, email: str) -> str:
    name, email = one_line(name), one_line(email)
    if not name:
        return email
    if name.isascii():
        return formataddr((name, email))
    return f"{encoded(name)} <{email}>"


@lru_cache(maxsize=64)
def _parsed(sender: str) -> tuple[str, str]:
    return parseaddr(sender)


def _quoted_printable(text: str) -> str:
    # body_encode works on one character per byte: give it the UTF-8 bytes as Latin-1 characters
    return body_encode(text.encode("utf-8").decode("latin-1"), eol=CRLF)


def build_message(rendered: Rendered, *, sender: str, to_email: str, to_name: str, now: datetime,
                  unsubscribe_url: str | None = None, reply_to: str | None = None,
                  calendar: tuple[str, bytes] | None = None) -> Outgoing:
    """``calendar`` = (method, .ics bytes) adds a calendar invitation: as a ``text/calendar`` alternative
    (what mail clients show as an invitation with buttons) and as an ``invite.ics`` attachment."""
    sender_name, sender_email = _parsed(sender)
    domain = sender_email.rpartition("@")[2] or "localhost"
    message_id = make_msgid(domain=domain)
    boundary = f"=_{secrets.token_hex(12)}"
    headers = [
        ("From", address(sender_name, sender_email)),
        ("To", address(to_name, to_email)),
    ]
    if reply_to:
        headers.append(("Reply-To", address(*_parsed(reply_to))))
    headers += [
        ("Subject", encoded(one_line(rendered.subject))),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
        ("Content-Language", ", ".join(rendered.languages)),
    ]
    if unsubscribe_url:
        targets = [f"<{one_line(unsubscribe_url)}>"]
        if reply_to:
            targets.append(f"<mailto:{one_line(_parsed(reply_to)[1])}?subject=unsubscribe>")
        headers += [("List-Unsubscribe", f",{CRLF} ".join(targets)),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    headers.append(("MIME-Version", "1.0"))
    alternative = []
    for subtype, body in (("plain", rendered.text), ("html", rendered.html)):
        alternative.append([f'Content-Type: text/{subtype}; charset="utf-8"',
                            "Content-Transfer-Encoding: quoted-printable", "", _quoted_printable(body)])
    if calendar is None:
        headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
        lines = [f"{name}: {value}" for name, value in headers] + _multipart(boundary, alternative)
    else:
        method, ics = calendar
        encoded_ics = base64.encodebytes(ics).decode("ascii").replace("\n", CRLF).rstrip(CRLF)
        alternative.append([f'Content-Type: text/calendar; charset="utf-8"; method={method}',
                            "Content-Transfer-Encoding: base64", "", encoded_ics])
        inner = f"=_{secrets.token_hex(12)}"
        attachment = ['Content-Type: application/ics; name="invite.ics"',
                      'Content-Disposition: attachment; filename="invite.ics"',
                      "Content-Transfer-Encoding: base64", "", encoded_ics]
        headers.append(("Content-Type", f'multipart/mixed; boundary="{boundary}"'))
        lines = [f"{name}: {value}" for name, value in headers] + _multipart(
            boundary, [[f'Content-Type: multipart/alternative; boundary="{inner}"', ""]
                       + _multipart(inner, alternative)[1:], attachment])
    return Outgoing(sender_email, to_email, message_id, CRLF.join(lines).encode("utf-8"))  # UTF-8 only in an SMTPUTF8 address


def _multipart(boundary: str, parts: list[list[str]]) -> list[str]:
    """The lines of a multipart body: each part after its delimiter, then the closing delimiter."""
    lines = []
    for part in parts:
        lines += ["", f"--{boundary}", *part]
    return lines + [f"--{boundary}--", ""]
