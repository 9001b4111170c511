"""Where a platform sends a wave's webhooks, and the wave's secrets that authenticate them.

Both secrets are derived from the service secret and the wave, so nothing secret is stored per wave: the
URL's last part (checked on every webhook) and the key signing platforms sign with.
"""

from __future__ import annotations

from typing import Any

from surveybot.platforms.surveymonkey import EVENT_TYPES
from surveybot.signing import derive


def webhook_secret(secret: str, wave: dict[str, Any]) -> str:
    return derive(secret, "webhook", wave["id"], length=32)


def webhook_signing_secret(secret: str, wave: dict[str, Any]) -> str:
    """The key a signing platform (Typeform, Standard Webhooks) signs the wave's webhooks with."""
    return derive(secret, "webhook-signing", wave["id"], length=32)


def webhook_url(base_url: str, secret: str, wave: dict[str, Any]) -> str:
    """The URL to register with the survey platform; its last part is the wave's unguessable secret."""
    return f"{base_url}/webhooks/{wave['platform']}/{wave['slug']}/{webhook_secret(secret, wave)}"


def webhook_urls(base_url: str, secret: str, wave: dict[str, Any]) -> dict[str, str]:
    """SurveyMonkey allows one event type per webhook and a URL per webhook: the URL to register for each event
    type (``webhook_url`` + ``/EVENT``). Empty for the other platforms, which send every event to ``webhook_url``."""
    if wave["platform"] != "surveymonkey":
        return {}
    return {event: f"{webhook_url(base_url, secret, wave)}/{event}" for event in EVENT_TYPES}
