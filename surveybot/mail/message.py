"""Building the message: a multipart/alternative (text, HTML) e-mail, serialised once to the bytes sent.

Every message surveybot sends has the same shape, so it is written directly rather than through the
``email`` package's generic generator, which costs more than rendering and sending together (it re-folds
every header and searches the whole message for a boundary). What goes into it is controlled here:

- every header value passes through :func:`one_line`, so a name holding CR/LF cannot add a header;
- non-ASCII display names and subjects are RFC 2047 encoded words, ASCII ones kept as is (folded at spaces)
  unless they hold ``=?``, which a reader would take for an encoded word and show as something else;
- bodies are quoted-printable UTF-8; the boundary starts with ``=_``, which quoted-printable output never
  contains, so it cannot clash with a part;
- ``List-Unsubscribe`` with ``List-Unsubscribe-Post`` gives one-click unsubscribe (RFC 8058).

Tests parse the bytes back with the standard library's parser.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.quoprimime import body_encode
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache

from surveybot.addresses import envelope
from surveybot.mail.render import Rendered
from surveybot.signing import derive

CRLF = "\r\n"


@dataclass(frozen=True)
class Outgoing:
    """One message ready for a transport: envelope and bytes."""

    sender: str
    recipient: str  # as it goes on the wire: an international domain in punycode
    message_id: str
    data: bytes
    smtputf8: bool = False  # the recipient's local part is non-ASCII: only a relay offering SMTPUTF8 can carry it
    # ``data`` has CRLF line endings only and ends with one, as it goes on the wire (build_message writes it so):
    # a transport sends it as it is instead of rewriting the line endings of every message
    wire_form: bool = False

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
def encoded(text: str, force: bool = False) -> str:
    """ASCII as is (unless ``force``); otherwise RFC 2047 base64 encoded words of at most 75 characters, one
    per folded line. Words break between characters, never inside one (each word must decode on its own)."""
    if text.isascii() and not force:
        return text
    if len(data := text.encode("utf-8")) <= 45:  # the common case: one word
        return f"=?utf-8?b?{base64.b64encode(data).decode()}?="
    words, chunk = [], b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > 45:  # 45 bytes → 60 base64 characters + 12 of framing
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return f"{CRLF} ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters (and MUST be at most 998)
LONGEST_WORD = 900  # an unbroken run this long cannot be folded: it is sent as encoded words instead


def _verbatim(text: str) -> bool:
    """Can ``text`` go into a header as it is? ASCII, foldable, and nothing a reader would decode: a name
    written ``=?utf-8?b?QWRtaW4=?=`` must not be shown as "Admin"."""
    return text.isascii() and "=?" not in text and all(len(word) <= LONGEST_WORD for word in text.split(" "))


def text_header(text: str) -> str:
    """An unstructured header value (a subject): ASCII folded at spaces; anything else as encoded words."""
    return text if _verbatim(text) else encoded(text, force=True)


def folded(name: str, value: str) -> str:
    """``Name: value`` with lines folded at spaces to about 78 characters. A value that already holds its
    own folds (encoded words) is kept as it is."""
    line = f"{name}: {value}"
    if len(line) <= LINE or CRLF in value:
        return line
    lines, current = [], f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > LINE and current.strip() and current != f"{name}:":
            lines.append(current)
            current = ""
        current += " " + word
    lines.append(current)
    return CRLF.join(lines)


_SPECIALS = set('()<>[]:;@\\,."')


def address(name: str, email: str) -> str:
    """``Name <address>`` for a header. Never raises: any name is quoted or encoded; the address is written
    as given (with an ASCII domain from :func:`addresses.envelope`; a UTF-8 local part only ever goes to a
    relay that offered SMTPUTF8)."""
    name, email = one_line(name), one_line(email)
    if not name:
        return email
    if _verbatim(name):
        if any(ch in _SPECIALS for ch in name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{email}>"
    return f"{encoded(name, force=True)}{CRLF} <{email}>"


@lru_cache(maxsize=64)
def sender_parts(sender: str) -> tuple[str, str]:
    """(display name, address) of a configured sender, the name as people read it: a setting written with
    RFC 2047 encoded words (``=?utf-8?b?…?=``, as ``email.utils.formataddr`` writes a non-ASCII name) is
    decoded, so that it is neither encoded twice in the header nor shown encoded where the team signs."""
    name, email = parseaddr(sender)
    if "=?" in name:
        try:
            name = str(make_header(decode_header(name)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):  # not encoded words after all
            pass
    return name, email


def _quoted_printable(text: str) -> str:
    """The body as quoted-printable UTF-8 lines ending in CRLF. Encoded line by line (quoted-printable
    starts afresh at each line break) with binascii's encoder, written in C; lines recur from one message of
    a wave to the next, so most are encoded once and remembered."""
    if "\r" in text:  # a lone CR is a line break to the email package's encoder: keep its reading
        return body_encode(text.encode("utf-8").decode("latin-1"), eol=CRLF)
    return CRLF.join(map(_quoted_printable_line, text.split("\n")))


@lru_cache(maxsize=16384)
def _quoted_printable_line(line: str) -> str:
    # with its line ending, so that trailing space is encoded and soft breaks end in CRLF
    return binascii.b2a_qp((line + CRLF).encode("utf-8"), istext=True).decode("ascii")[: -len(CRLF)]


@lru_cache(maxsize=64)
def _date(moment: datetime) -> str:  # messages sent in the same second share it
    return format_datetime(moment)


def message_id_for(secret: str, key: str, sender_email: str) -> str:
    """The ``Message-ID`` of the outbox row ``key``: an HMAC of the key under the service secret, at the
    sender's domain. The same row always gives the same id (a message sent again after a crash is the same
    message to every mail client), and nobody without the secret can make one up (so cannot forge a bounce
    for it)."""
    domain = envelope(sender_email)[0].rpartition("@")[2] or "localhost"
    return f"<{derive(secret, 'message-id', key, length=32)}@{domain}>"


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    to_email: str,
    to_name: str,
    now: datetime,
    unsubscribe_url: str | None = None,
    reply_to: str | None = None,
    calendar: tuple[str, bytes] | None = None,
    message_id: str | None = None,
) -> Outgoing:
    """``calendar`` = (method, .ics bytes) adds a calendar invitation: as a ``text/calendar`` alternative
    (what mail clients show as an invitation with buttons) and as an ``invite.ics`` attachment."""
    sender_name, sender_email = sender_parts(sender)
    sender_email = envelope(sender_email)[0]
    to_email, smtputf8 = envelope(one_line(to_email))
    domain = sender_email.rpartition("@")[2] or "localhost"
    message_id = message_id or make_msgid(domain=domain)  # a one-off (a test send) gets a random one
    boundary = f"=_{secrets.token_hex(12)}"
    headers = [
        ("From", address(sender_name, sender_email)),
        ("To", address(to_name, to_email)),
    ]
    reply_name, reply_email = sender_parts(reply_to) if reply_to else ("", "")
    reply_email = envelope(reply_email)[0]
    if reply_to:
        headers.append(("Reply-To", address(reply_name, reply_email)))
    headers += [
        ("Subject", text_header(one_line(rendered.subject))),
        ("Date", _date(now.replace(microsecond=0))),
        ("Message-ID", message_id),
        ("Content-Language", ", ".join(rendered.languages)),
    ]
    if unsubscribe_url:
        targets = [f"<{one_line(unsubscribe_url)}>"]
        if reply_to:
            targets.append(f"<mailto:{one_line(reply_email)}?subject=unsubscribe>")
        headers += [
            ("List-Unsubscribe", f",{CRLF} ".join(targets)),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    headers.append(("MIME-Version", "1.0"))
    alternative = []
    for subtype, body in (("plain", rendered.text), ("html", rendered.html)):
        alternative.append(
            [
                f'Content-Type: text/{subtype}; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable",
                "",
                _quoted_printable(body),
            ]
        )
    if calendar is None:
        headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
        lines = [folded(name, value) for name, value in headers] + _multipart(boundary, alternative)
    else:
        method, ics = calendar
        encoded_ics = base64.encodebytes(ics).decode("ascii").replace("\n", CRLF).rstrip(CRLF)
        alternative.append(
            [
                f'Content-Type: text/calendar; charset="utf-8"; method={method}',
                "Content-Transfer-Encoding: base64",
                "",
                encoded_ics,
            ]
        )
        inner = f"=_{secrets.token_hex(12)}"
        attachment = [
            'Content-Type: application/ics; name="invite.ics"',
            'Content-Disposition: attachment; filename="invite.ics"',
            "Content-Transfer-Encoding: base64",
            "",
            encoded_ics,
        ]
        headers.append(("Content-Type", f'multipart/mixed; boundary="{boundary}"'))
        lines = [folded(name, value) for name, value in headers] + _multipart(
            boundary,
            [
                [f'Content-Type: multipart/alternative; boundary="{inner}"', "", *_multipart(inner, alternative)[1:]],
                attachment,
            ],
        )
    # UTF-8 in the headers only in an address that needs SMTPUTF8; everything else is ASCII by construction
    return Outgoing(sender_email, to_email, message_id, CRLF.join(lines).encode("utf-8"), smtputf8, wire_form=True)


def _multipart(boundary: str, parts: list[list[str]]) -> list[str]:
    """The lines of a multipart body: each part after its delimiter, then the closing delimiter."""
    lines = []
    for part in parts:
        lines += ["", f"--{boundary}", *part]
    return [*lines, f"--{boundary}--", ""]
