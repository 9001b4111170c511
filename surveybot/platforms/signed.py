"""Signed generic webhooks, following the Standard Webhooks specification.

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds, within five minutes of now) and
``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``, keyed with the
base64-decoded ``whsec_`` secret). A message id seen before is the same delivery again: accepted, not
processed twice. The body:

    {"type": "response.completed" | "response.partial",
     "data": {"response_id": "...", "token": "...", "progress": 100, "answers": {...}, "embedded": {...},
              "recorded_at": "2026-11-25T10:00:00Z"}}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from surveybot.platforms import ResponseEvent, WebhookContext, WebhookRejected, percent, require_json, text_or_none

NAME = "signed"
TOLERANCE = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")


def whsec(signing_secret: str) -> str:
    """The wave's secret in the ``whsec_`` form the specification uses."""
    return "whsec_" + base64.b64encode(signing_secret.encode()).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def receive(body: bytes, headers: Mapping[str, str], content_type: str, context: WebhookContext) -> ResponseEvent:
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (message_id and timestamp and signatures):
        raise WebhookRejected(401, "missing webhook-id, webhook-timestamp or webhook-signature")
    if len(message_id) > 200:
        raise WebhookRejected(400, "webhook-id is longer than 200 characters")
    if not _TIMESTAMP.match(timestamp):
        raise WebhookRejected(401, "webhook-timestamp is not Unix seconds")
    if abs(context.now - int(timestamp)) > TOLERANCE:
        raise WebhookRejected(401, "webhook-timestamp is too far from now (replayed or clock skew)")
    try:
        expected = sign(whsec(context.signing_secret), message_id, int(timestamp), body)
    except (binascii.Error, ValueError):
        raise WebhookRejected(401, "cannot check the signature") from None
    if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures.split()):
        raise WebhookRejected(401, "wrong webhook-signature")
    data = require_json(body, content_type)
    kind, payload = data.get("type"), data.get("data")
    if kind not in ("response.completed", "response.partial") or not isinstance(payload, dict):
        raise WebhookRejected(400, "type must be response.completed or response.partial, with data")
    response_id = text_or_none(payload.get("response_id"))
    if not response_id or len(response_id) > 200:
        raise WebhookRejected(400, "data.response_id is missing")
    answers, embedded = payload.get("answers"), payload.get("embedded")
    return ResponseEvent(
        platform=NAME,
        response_id=response_id,
        finished=kind == "response.completed",
        token=text_or_none(payload.get("token")),
        answers=answers if isinstance(answers, dict) else {},
        embedded=embedded if isinstance(embedded, dict) else {},
        progress=percent(payload.get("progress")),
        recorded_at=text_or_none(payload.get("recorded_at")),
    )
