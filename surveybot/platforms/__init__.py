"""Survey platforms: one small adapter each, turning a webhook request into the same ResponseEvent.

Qualtrics and SurveyMonkey notifications carry only ids, so their adapters answer :class:`FetchNeeded`
and the response itself is fetched from the platform's API in the background (a forged id creates
nothing). Typeform and signed generic webhooks carry the response, signed, and give a ResponseEvent at once.

Errors: :class:`WebhookRejected` (the request is refused: its HTTP status and why) and :class:`ApiError`
(the platform's API failed; ``temporary`` says whether to try again, ``retry_after`` when).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from surveybot.errors import SurveybotError

if TYPE_CHECKING:
    from surveybot.config import Settings


@dataclass(frozen=True)
class ResponseEvent:
    platform: str
    response_id: str
    finished: bool
    token: str | None
    answers: dict[str, Any] = field(default_factory=dict)
    embedded: dict[str, Any] = field(default_factory=dict)
    progress: int | None = None
    recorded_at: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)  # the choice text of coded answers (Qualtrics), never stored


@dataclass(frozen=True)
class FetchNeeded:
    platform: str
    survey_id: str
    response_id: str
    event: str


@dataclass(frozen=True)
class WebhookContext:
    """What an adapter may need besides the request: the wave, its signing secret, settings, the time."""

    wave: dict[str, Any]
    signing_secret: str
    settings: Settings
    now: float  # Unix seconds


class WebhookRejected(SurveybotError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class ApiError(SurveybotError):
    """``temporary``: try again later (``retry_after`` seconds, when the platform said); ``not_found``: the
    platform does not know the response (yet: it may become readable a moment after its event);
    ``refused``: the platform refused our credentials, or they are not set (a setting to fix, not a reason to
    hammer it)."""

    def __init__(
        self,
        message: str,
        temporary: bool,
        retry_after: float | None = None,
        *,
        not_found: bool = False,
        refused: bool = False,
    ) -> None:
        self.temporary, self.retry_after = temporary, retry_after
        self.not_found, self.refused = not_found, refused
        super().__init__(message)


def refuse_status(status: int, platform: str, credential: str, setting: str, retry_after: float | None) -> None:
    """Raise the :class:`ApiError` for a platform's answer that is not a success, the same way for every
    platform: 429 and 5xx are tried again (after ``retry_after`` when known); 401 and 403 say the credential
    was refused (a setting to fix, tried again without hammering); 404 is a response the platform does not know
    (yet); any other 4xx is not tried again."""
    if status == 429 or status >= 500:
        raise ApiError(f"{platform} answered {status}", temporary=True, retry_after=retry_after)
    if status in (401, 403):
        raise ApiError(f"{platform} refused the {credential} ({status}); check {setting}", temporary=True, refused=True)
    if status == 404:
        raise ApiError(f"{platform} knows no such response (404)", temporary=False, not_found=True)
    if status >= 400:
        raise ApiError(f"{platform} answered {status}", temporary=False)


def require_json(body: bytes, content_type: str) -> dict[str, Any]:
    import json

    if "json" not in content_type:
        raise WebhookRejected(415, f"expected a JSON body, got {content_type or 'no content type'}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "the body is not valid JSON") from None
    except RecursionError:  # a body of thousands of nested brackets: refused, not a crash
        raise WebhookRejected(400, f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "the body must be a JSON object")
    if _depth_over(data, MAX_DEPTH):  # what parses may still be too deep to store or export again
        raise WebhookRejected(400, f"the JSON is nested more than {MAX_DEPTH} levels deep")
    return data


MAX_DEPTH = 32  # no survey answer nests deeper than a handful of levels


def _depth_over(value: object, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` deep (walked without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def text_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def yes(value: object) -> bool:
    """An opt-in value that means yes, in the forms platforms and people use."""
    return str(value).strip().lower() in {"1", "yes", "y", "true", "si", "sí", "on"}


def percent(value: object) -> int | None:
    """A progress percentage, or None when the value is not a whole number from 0 to 100."""
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,3}\s*", value):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value <= 100 else None
