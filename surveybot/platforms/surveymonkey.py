"""SurveyMonkey: response webhooks, then the response details API.

The callback carries ``Sm-Apikey`` and ``Sm-Signature`` (base64 HMAC-SHA1 of the raw body, keyed
``API_KEY&API_SECRET`` of the SurveyMonkey app) and names the response; its answers and custom variables
come from ``GET {base}/v3/surveys/{survey_id}/responses/{id}/details`` with the access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from surveybot.platforms import (
    ApiError,
    FetchNeeded,
    ResponseEvent,
    WebhookContext,
    WebhookRejected,
    refuse_status,
    require_json,
    text_or_none,
)

NAME = "surveymonkey"
_EVENTS = {
    "response_completed": "completed",
    "response_updated": "partial",
    "response_created": "partial",
    "response_disqualified": "partial",
    "response_overquota": "partial",
}

if TYPE_CHECKING:
    from surveybot.config import Settings


# SurveyMonkey takes one event type per webhook, each at its own URL: the response events worth registering.
EVENT_TYPES = ("response_completed", "response_updated", "response_disqualified", "response_overquota")


def signature(api_key: str, api_secret: str, body: bytes) -> str:
    key = f"{api_key}&{api_secret}".encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode()


def receive(body: bytes, headers: Mapping[str, str], content_type: str, context: WebhookContext) -> FetchNeeded:
    settings = context.settings
    if not settings.surveymonkey_api_key or not settings.surveymonkey_api_secret:
        raise WebhookRejected(401, "SurveyMonkey webhooks need SURVEYMONKEY_API_KEY and SURVEYMONKEY_API_SECRET")
    given_key, given = headers.get("Sm-Apikey", ""), headers.get("Sm-Signature", "")
    expected = signature(settings.surveymonkey_api_key, settings.surveymonkey_api_secret, body)
    if not (
        hmac.compare_digest(given_key.encode(), settings.surveymonkey_api_key.encode())
        and hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise WebhookRejected(401, "missing or wrong Sm-Apikey / Sm-Signature")
    data = require_json(body, content_type)
    event = _EVENTS.get(str(data.get("event_type")))
    resources = raw_resources if isinstance(raw_resources := data.get("resources"), dict) else {}
    if event is None or data.get("object_type") != "response":
        raise WebhookRejected(400, "not a SurveyMonkey response event")
    if str(resources.get("survey_id")) != context.wave["survey_id"]:
        raise WebhookRejected(400, "the survey is not this wave's")
    response_id = str(data.get("object_id") or "")
    if not response_id.isdigit():
        raise WebhookRejected(400, "object_id is not a SurveyMonkey response id")
    return FetchNeeded(NAME, context.wave["survey_id"], response_id, event)


async def fetch(session: aiohttp.ClientSession, settings: Settings, survey_id: str, response_id: str) -> ResponseEvent:
    if not settings.surveymonkey_access_token:
        raise ApiError("SURVEYMONKEY_ACCESS_TOKEN is needed to fetch responses", temporary=True, refused=True)
    # simple=true adds each answer's text (simple_text) beside its ids: what the coordinator reads and types
    url = f"{settings.surveymonkey_base_url}/v3/surveys/{survey_id}/responses/{response_id}/details?simple=true"
    headers = {"Authorization": f"Bearer {settings.surveymonkey_access_token}"}
    try:
        async with session.get(url, headers=headers) as response:
            if response.status >= 400:
                wait = _wait(response.headers)
                refuse_status(response.status, "SurveyMonkey", "access token", "SURVEYMONKEY_ACCESS_TOKEN", wait)
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(f"SurveyMonkey API unreachable: {exc.__class__.__name__}", temporary=True) from None
    except ValueError:
        raise ApiError("SurveyMonkey answered with something that is not JSON", temporary=True) from None
    return event_of(response_id, data)


def event_of(response_id: str, data: object) -> ResponseEvent:
    """The response in a ``/details`` answer, whatever shape it has: what is not where it belongs is skipped."""
    if not isinstance(data, dict):
        raise ApiError("SurveyMonkey answered without a response object", temporary=False)
    answers, labels = answers_of(data)
    variables = raw_variables if isinstance(raw_variables := data.get("custom_variables"), dict) else {}
    return ResponseEvent(
        platform=NAME,
        response_id=response_id,
        finished=data.get("response_status") == "completed",
        token=text_or_none(variables.get("token")),
        answers=answers,
        embedded={k: v for k, v in variables.items() if k != "token"},
        recorded_at=text_or_none(data.get("date_modified")),
        labels=labels,
    )


def answers_of(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(answers, labels) of a response's details. A matrix keeps its rows (``QID_ROWID``), an "other" box
    its text (``QID_other``); an answer is its text (``simple_text``, else the typed ``text``, else the choice
    id), and its choice id is kept as its label so either can be matched."""
    answers: dict[str, object] = {}
    labels: dict[str, object] = {}
    for question in _questions(data):
        qid = str(question["id"])
        given = (
            [a for a in question.get("answers") or [] if isinstance(a, dict)]
            if isinstance(question.get("answers"), list)
            else []
        )
        for answer in given:
            if answer.get("other_id") is not None:
                key = f"{qid}_other"
            elif answer.get("row_id") is not None and (answer.get("choice_id") is not None or answer.get("col_id")):
                key = f"{qid}_{answer['row_id']}"
            else:
                key = qid
            text = answer.get("simple_text") or answer.get("text") or answer.get("choice_id") or answer.get("row_id")
            _add(answers, key, text)
            if answer.get("choice_id") is not None:
                _add(labels, key, answer["choice_id"])
    return answers, labels


def _add(holder: dict[str, Any], key: str, value: object) -> None:
    """One value as itself, several as a list (a multiple choice)."""
    if key not in holder:
        holder[key] = value
    elif isinstance(holder[key], list):
        holder[key].append(value)
    else:
        holder[key] = [holder[key], value]


def _questions(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The questions of the response's pages, skipping anything that is not a question with an id."""
    pages = raw_pages if isinstance(raw_pages := data.get("pages"), list) else []
    found = []
    for page in pages:
        questions = page.get("questions") if isinstance(page, dict) else None
        for question in questions if isinstance(questions, list) else []:
            if isinstance(question, dict) and isinstance(question.get("id"), (str, int)):
                found.append(question)
    return found


def _wait(headers: Mapping[str, str]) -> float | None:
    """How long to wait after a 429: ``Retry-After`` if given; else, since SurveyMonkey sends none, its own
    rate-limit headers — the seconds until the exhausted quota (the minute's, or the day's at 00:00 GMT)
    comes back."""
    given = _seconds(headers.get("Retry-After"))
    if given is not None:
        return given
    for span in ("Day", "Minute"):
        if headers.get(f"X-Ratelimit-App-Global-{span}-Remaining", "").strip() == "0":
            reset = _seconds(headers.get(f"X-Ratelimit-App-Global-{span}-Reset"))
            if reset is not None:
                return reset + 1
    return None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
