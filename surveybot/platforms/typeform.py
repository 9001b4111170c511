"""Typeform: ``form_response`` (submitted) and ``form_response_partial`` webhooks.

Authenticated by ``Typeform-Signature: sha256=<base64 HMAC-SHA256 of the raw body>`` keyed with the
wave's signing secret (paste it as the webhook's secret in Typeform), on top of the URL's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from surveybot.platforms import ResponseEvent, WebhookContext, WebhookRejected, require_json, text_or_none

NAME = "typeform"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def receive(body: bytes, headers: Mapping[str, str], content_type: str, context: WebhookContext) -> ResponseEvent:
    given = headers.get("Typeform-Signature", "")
    if not given or not hmac.compare_digest(signature(context.signing_secret, body).encode(), given.encode()):
        raise WebhookRejected(401, "missing or wrong Typeform-Signature")
    data = require_json(body, content_type)
    event_type = data.get("event_type")
    response = data.get("form_response")
    if event_type not in ("form_response", "form_response_partial") or not isinstance(response, dict):
        raise WebhookRejected(400, "not a Typeform form_response event")
    if response.get("form_id") != context.wave["survey_id"]:
        raise WebhookRejected(400, "the form is not this wave's")
    response_id = text_or_none(response.get("token") or response.get("response_id"))
    if not response_id:
        raise WebhookRejected(400, "form_response has no token")
    hidden_value = response.get("hidden")
    hidden: dict[str, Any] = hidden_value if isinstance(hidden_value, dict) else {}
    listed = response.get("answers") or []
    if not isinstance(listed, list):
        raise WebhookRejected(400, "form_response.answers is not a list")
    answers: dict[str, Any] = {}
    for answer in listed:
        if isinstance(answer, dict) and isinstance(answer.get("field"), dict):
            key = answer["field"].get("ref") or answer["field"].get("id")
            if isinstance(key, (str, int)) and not isinstance(key, bool):
                answers[str(key)] = _value(answer)
    return ResponseEvent(
        platform=NAME,
        response_id=response_id,
        finished=event_type == "form_response",
        token=text_or_none(hidden.get("token")),
        answers=answers,
        embedded={**{k: v for k, v in hidden.items() if k != "token"}, **_scores(response)},
        recorded_at=text_or_none(response.get("submitted_at") or response.get("landed_at")),
    )


def _value(answer: dict[str, Any]) -> Any:
    """The answer's value, found under the key its ``type`` names: ``choice`` holds a label (or the text typed
    in its "other" box), ``choices`` labels, and the "other" text after them."""
    kind = answer.get("type")
    if not isinstance(kind, str) or not kind:
        return None
    value = answer.get(kind)
    if kind == "choice" and isinstance(value, dict):
        return value.get("label") or value.get("other")
    if kind == "choices" and isinstance(value, dict):
        labels = value.get("labels")
        if not isinstance(labels, list):
            labels = []
        return [*labels, value["other"]] if value.get("other") else labels
    return value


def _scores(response: dict[str, Any]) -> dict[str, Any]:
    """The form's variables (a quiz's ``score``, any text variable) and the legacy ``calculated.score``."""
    found: dict[str, Any] = {}
    calculated = response.get("calculated")
    if isinstance(calculated, dict) and isinstance(calculated.get("score"), (int, float)):
        found["score"] = calculated["score"]
    for variable in response.get("variables") or [] if isinstance(response.get("variables"), list) else []:
        if (
            isinstance(variable, dict)
            and isinstance(variable.get("key"), str)
            and variable.get("type") in ("number", "text")
        ):
            found[variable["key"]] = variable.get(variable["type"])
    return found
