"""Building the MIME message: text and HTML alternatives and the headers mail providers expect.

Everything that comes from a contact list is flattened to one line before it reaches a header, so a name
holding CR/LF cannot add a header; non-ASCII names are RFC 2047-encoded when the message is serialised.
``List-Unsubscribe`` with ``List-Unsubscribe-Post`` gives one-click unsubscribe (RFC 8058).
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from surveybot.mail.render import Rendered


def one_line(value: str) -> str:
    """Control characters (CR, LF, TAB …) become spaces; runs of space collapse."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def build_message(rendered: Rendered, *, sender: str, to_email: str, to_name: str, now: datetime,
                  unsubscribe_url: str | None = None, reply_to: str | None = None) -> EmailMessage:
    message = EmailMessage()
    sender_name, sender_email = parseaddr(sender)
    message["From"] = Address(display_name=one_line(sender_name), addr_spec=sender_email)
    message["To"] = Address(display_name=one_line(to_name), addr_spec=to_email)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender_email.rpartition("@")[2] or "localhost")
    if unsubscribe_url:
        targets = [f"<{unsubscribe_url}>"]
        if reply_to:
            targets.append(f"<mailto:{parseaddr(reply_to)[1]}?subject=unsubscribe>")
        message["List-Unsubscribe"] = ", ".join(targets)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = ", ".join(rendered.languages)  # after set_content, which drops Content-*
    return message
