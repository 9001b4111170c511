"""Qualtrics: event-subscription notifications, the single-response API, and subscribing a wave.

The notification (``application/x-www-form-urlencoded``: Topic, Status, SurveyID, ResponseID,
CompletedDate, BrandID) is authenticated by the secret in the wave's webhook URL; the response is then
fetched with ``GET {base}/API/v3/surveys/{SurveyID}/responses/{ResponseID}`` (header ``X-API-TOKEN``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

import aiohttp

from surveybot.platforms import (
    ApiError,
    FetchNeeded,
    ResponseEvent,
    WebhookContext,
    WebhookRejected,
    percent,
    refuse_status,
    text_or_none,
)

NAME = "qualtrics"
_RESPONSE_ID = re.compile(r"R_[A-Za-z0-9]{1,64}\Z")
# Values Qualtrics records about a response rather than answers; the location ones are not kept at all.
_METADATA = {
    "startDate",
    "endDate",
    "status",
    "ipAddress",
    "progress",
    "duration",
    "finished",
    "recordedDate",
    "_recordId",
    "locationLatitude",
    "locationLongitude",
    "distributionChannel",
    "userLanguage",
    "recipientEmail",
    "recipientFirstName",
    "recipientLastName",
    "externalDataReference",
}

if TYPE_CHECKING:
    from surveybot.config import Settings


def receive(body: bytes, headers: Mapping[str, str], content_type: str, context: WebhookContext) -> FetchNeeded:
    if "application/x-www-form-urlencoded" not in content_type:
        raise WebhookRejected(415, "Qualtrics notifications are application/x-www-form-urlencoded")
    try:
        fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=True).items()}
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "the body is not a form-encoded Qualtrics notification") from None
    missing = [k for k in ("Topic", "SurveyID", "ResponseID") if not fields.get(k)]
    if missing:
        raise WebhookRejected(400, f"missing {', '.join(missing)}")
    if fields["SurveyID"] != context.wave["survey_id"]:
        raise WebhookRejected(400, f"survey {fields['SurveyID'][:40]!r} is not this wave's")
    if not _RESPONSE_ID.match(fields["ResponseID"]):
        raise WebhookRejected(400, "ResponseID is not a Qualtrics response id")
    topic = fields["Topic"]
    event = "partial" if "partial" in topic.lower() else "completed"
    return FetchNeeded(NAME, fields["SurveyID"], fields["ResponseID"], event)


async def fetch(session: aiohttp.ClientSession, settings: Settings, survey_id: str, response_id: str) -> ResponseEvent:
    if not settings.qualtrics_base_url or not settings.qualtrics_api_token:
        raise ApiError(
            "QUALTRICS_BASE_URL and QUALTRICS_API_TOKEN are needed to fetch responses", temporary=True, refused=True
        )
    url = f"{settings.qualtrics_base_url}/API/v3/surveys/{survey_id}/responses/{response_id}"
    data = await _call(session, "GET", url, settings.qualtrics_api_token)
    result = data.get("result") if isinstance(data, dict) else None
    event = event_from(response_id, result)
    if event is None:
        raise ApiError("the Qualtrics API answered without result.values", temporary=False)
    return event


def event_from(response_id: str, response: object) -> ResponseEvent | None:
    """A response object as the API gives it (single response, or one of an export's ``responses``):
    ``values`` hold the recodes and embedded data, ``labels`` the choice texts. None if it has no values."""
    if not isinstance(response, dict):
        return None
    values = response.get("values")
    if not isinstance(values, dict):
        return None
    labels = raw_labels if isinstance(raw_labels := response.get("labels"), dict) else {}
    answers = {k: v for k, v in values.items() if k.startswith("QID")}
    embedded = {k: v for k, v in values.items() if not k.startswith("QID") and k not in _METADATA}
    return ResponseEvent(
        platform=NAME,
        response_id=response_id,
        finished=str(values.get("finished")) in ("1", "True", "true"),
        token=text_or_none(values.get("token")),
        answers=answers,
        embedded=embedded,
        progress=percent(values.get("progress")),
        recorded_at=text_or_none(values.get("recordedDate") or values.get("endDate")),
        labels={k: v for k, v in labels.items() if k.startswith("QID")},
    )


TOPICS = ("completedResponse", "partialResponse")  # a partial comes when Qualtrics closes an unfinished one


class NotAdministrator(ApiError):
    """The API token is valid but not a brand administrator's: event subscriptions are refused to it."""


async def subscriptions(
    session: aiohttp.ClientSession, settings: Settings, publication_url: str
) -> list[dict[str, Any]]:
    """The event subscriptions that deliver to ``publication_url`` (the list is paged: nextPage)."""
    url: str | None = f"{_base(settings)}/API/v3/eventsubscriptions"
    found = []
    while url:
        data = await _call(session, "GET", url, settings.qualtrics_api_token, admin=True)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict) or not isinstance(elements := result.get("elements"), list):
            raise ApiError("the Qualtrics API listed no result.elements", temporary=False)
        found += [e for e in elements if isinstance(e, dict) and e.get("publicationUrl") == publication_url]
        url = raw_url if isinstance(raw_url := result.get("nextPage"), str) else None
    return found


async def subscribe(
    session: aiohttp.ClientSession, settings: Settings, survey_id: str, publication_url: str
) -> list[str]:
    """Register the wave's webhook for completed and partial responses, each topic once: a topic already
    subscribed for this URL is left as it is. Returns the new subscription ids."""
    existing = {e.get("topics") for e in await subscriptions(session, settings, publication_url)}
    made = []
    for topic in TOPICS:
        topics = f"surveyengine.{topic}.{survey_id}"
        if topics in existing:
            continue
        body = {"topics": topics, "publicationUrl": publication_url, "encrypt": False}
        data = await _call(
            session,
            "POST",
            f"{_base(settings)}/API/v3/eventsubscriptions",
            settings.qualtrics_api_token,
            json=body,
            admin=True,
        )
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict) or not result.get("id"):
            raise ApiError("the Qualtrics API answered without a subscription id", temporary=False)
        made.append(str(result["id"]))
    return made


async def unsubscribe(session: aiohttp.ClientSession, settings: Settings, publication_url: str) -> list[str]:
    """Remove every subscription that delivers to ``publication_url``; returns their ids."""
    removed = []
    for element in await subscriptions(session, settings, publication_url):
        await _call(
            session,
            "DELETE",
            f"{_base(settings)}/API/v3/eventsubscriptions/{element['id']}",
            settings.qualtrics_api_token,
            admin=True,
        )
        removed.append(str(element["id"]))
    return removed


def _base(settings: Settings) -> str:
    if not settings.qualtrics_base_url or not settings.qualtrics_api_token:
        raise ApiError("QUALTRICS_BASE_URL and QUALTRICS_API_TOKEN are needed to manage subscriptions", temporary=False)
    return settings.qualtrics_base_url


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None,
    *,
    admin: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    try:
        async with session.request(method, url, headers={"X-API-TOKEN": token or ""}, **kwargs) as response:
            refuse_failure(response, admin=admin)
            # callers check the shape of what came back
            return cast("dict[str, Any]", await response.json(content_type=None))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(f"Qualtrics API unreachable: {exc.__class__.__name__} {exc}", temporary=True) from None
    except ValueError:
        raise ApiError("Qualtrics answered with something that is not JSON", temporary=True) from None


def refuse_failure(response: aiohttp.ClientResponse, *, admin: bool = False) -> None:
    """An :class:`ApiError` for an answer that is not a success, saying whether and when to try again."""
    if response.status < 400:
        return
    if response.status == 403 and admin:
        raise NotAdministrator(
            "Qualtrics refused (403): event subscriptions can only be made with a brand "
            "administrator's API token; ask your Qualtrics brand administrator to run "
            "'wave subscribe' with theirs, or pull the responses instead ('wave set SLUG --intake poll')",
            temporary=False,
        )
    retry_after = _retry_after(response.headers.get("Retry-After"))
    refuse_status(response.status, "Qualtrics", "API token", "QUALTRICS_API_TOKEN", retry_after)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
