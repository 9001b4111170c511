"""Delivery status notifications (RFC 3464): ``multipart/report; report-type=delivery-status``.

The ``message/delivery-status`` part holds header blocks separated by blank lines: the first about the
message, then one per recipient (Action, Status, Diagnostic-Code, Final-Recipient…). Python's ``email``
parser gives each block as a nested message; Exchange Online adds an empty trailing block (skipped). The
original message is quoted as ``message/rfc822`` or only its headers as ``text/rfc822-headers`` (Postfix
delay warnings); Gmail also names it in ``X-Original-Message-ID`` and Gmail and Exchange in ``In-Reply-To``.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")


@dataclass(frozen=True)
class RecipientStatus:
    final_recipient: str
    original_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded (lower case)
    status: str  # 5.1.1, or "" when none is given
    diagnostic: str


@dataclass(frozen=True)
class DeliveryReport:
    recipients: list[RecipientStatus]
    reporting_mta: str
    # Message-IDs that may name the original, most reliable first (the quoted original's own, then hints)
    original_ids: list[str] = field(default_factory=list)


def unfold(value: object) -> str:
    return re.sub(r"\s+", " ", str(value)).strip() if value is not None else ""


def _typed(value: object) -> str:
    """``rfc822; a@b`` → ``a@b``."""
    text = unfold(value)
    kind, sep, rest = text.partition(";")
    return (rest if sep else kind).strip().strip("<>")


def is_report(message: EmailMessage) -> bool:
    return any(part.get_content_type() in _STATUS_TYPES for part in message.walk())


def parse(message: EmailMessage) -> DeliveryReport | None:
    """The report a DSN carries, or None when ``message`` has no delivery-status part."""
    status_part = original = None
    for part in message.walk():
        kind = part.get_content_type()
        if kind in _STATUS_TYPES and status_part is None:
            status_part = part
        elif kind in _ORIGINAL_TYPES and original is None:
            original = part
    if status_part is None:
        return None
    blocks = [b for b in _blocks(status_part) if len(b.keys())]
    per_message = blocks[0] if blocks else Message()
    recipients = [
        RecipientStatus(
            final_recipient=_typed(block.get("Final-Recipient")).lower(),
            original_recipient=_typed(block.get("Original-Recipient")).lower(),
            action=unfold(block.get("Action")).lower(),
            status=status_code(unfold(block.get("Status"))) or status_code(unfold(block.get("Diagnostic-Code"))),
            diagnostic=unfold(block.get("Diagnostic-Code"))[:500],
        )
        for block in blocks[1:]
        if "Action" in block or "Final-Recipient" in block
    ]
    ids: list[str] = []
    quoted = _original_headers(original)
    for value in (
        quoted.get("Message-ID") if quoted is not None else None,
        per_message.get("X-Original-Message-ID"),
        message.get("In-Reply-To"),
        message.get("References"),
    ):
        for found in _MESSAGE_ID.findall(unfold(value)):
            if found not in ids:
                ids.append(found)
    return DeliveryReport(recipients, _typed(per_message.get("Reporting-MTA")), ids)


def message_ids(text: str) -> list[str]:
    return _MESSAGE_ID.findall(text)


def status_code(text: str) -> str:
    found = _STATUS.search(text)
    return ".".join(found.groups()) if found else ""


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status":
        return [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
    # message/global-delivery-status (RFC 6533) is not split by the parser: its text is re-read block by block
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    return [
        email.message_from_string(chunk.strip() + "\n", policy=email.policy.default)
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text)
        if chunk.strip()
    ]


def _original_headers(part: Message | None) -> Message | None:
    if part is None:
        return None
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return None
    raw = part.get_payload(decode=True)
    return email.message_from_bytes(raw, policy=email.policy.default) if isinstance(raw, bytes) else None
