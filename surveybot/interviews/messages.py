"""The interview e-mails, built when they are sent: invitations to book, nudges, confirmations with the
calendar invitation, cancellations and the reminder a day before.

The respondent reads them in their language (both, Spanish first, when it is not known) with times in their
time zone; the researcher reads them in English with times in the zone their slot was published in. Whether a
message still applies is decided here too: a nudge to someone who has booked, or a confirmation of a time
since moved, is not sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_timezone_name
from sqlite_utils import Database

from surveybot.clock import parse_stored
from surveybot.interviews import calendar, queue, slots
from surveybot.mail.compose import LOCALES, Composer, closing_date
from surveybot.mail.message import Outgoing, build_message, one_line

_CALENDAR = {"interview_confirmed": "REQUEST", "interview_soon": "REQUEST", "interview_cancelled": "CANCEL"}
_STILL_VALID = {
    "interview_invite": ("invited",),
    "interview_nudge": ("invited",),
    "interview_confirmed": ("booked",),
    "interview_soon": ("booked",),
}


_FORMATS = {"en": "EEEE d MMMM y, HH:mm", "es": "EEEE, d 'de' MMMM 'de' y, HH:mm"}


def moment(when: datetime, zone: str, language: str) -> str:
    """``'Tuesday 1 December 2026, 10:00 (Central European Time)'`` in the reader's language and zone."""
    tz = ZoneInfo(zone) if zone else UTC
    text = format_datetime(when, _FORMATS[language], tzinfo=tz, locale=LOCALES[language])
    name = get_timezone_name(tz, width="long", locale=LOCALES[language]) if zone else "UTC"
    return f"{text} ({name})"


class InterviewMessages:
    def __init__(self, db: Database, composer: Composer) -> None:
        self.db, self.composer = db, composer
        self.settings, self.secret = composer.settings, composer.secret

    def why_not(self, row: dict[str, Any], interview: dict[str, Any] | None, payload: dict[str, Any]) -> str | None:
        """Why an outbox row must not go now (None: send it)."""
        if interview is None:
            return "the interview no longer exists"
        if row["kind"] in _STILL_VALID and interview["state"] not in _STILL_VALID[row["kind"]]:
            return f"the interview is {interview['state']}"
        if (
            "sequence" in payload
            and row["kind"] != "interview_cancelled"
            and payload["sequence"] != interview["sequence"]
        ):
            return "the interview was changed since"
        return None

    def build(
        self, row: dict[str, Any], wave: dict[str, Any], contact: dict[str, Any], now: datetime
    ) -> tuple[Outgoing | None, str]:
        """The message for an interview outbox row, or (None, why) when it no longer applies."""
        payload = json.loads(row["payload"] or "{}")
        interview = next(self.db.query("SELECT * FROM interview_queue WHERE id = ?", [payload.get("interview")]), None)
        reason = self.why_not(row, interview, payload)
        if reason is not None:
            return None, reason
        assert interview is not None  # why_not gives a reason otherwise
        slot = None
        if payload.get("slot") is not None:
            slot = next(self.db.query("SELECT * FROM interview_slots WHERE id = ?", [payload["slot"]]), None)
        for_researcher = payload.get("for") == "researcher"
        context = self.context(wave, contact, interview, slot, payload, now, for_researcher)
        language = "en" if for_researcher else contact["language"]
        rendered = self.composer.renderer.render(row["kind"], language, context)
        ics = None
        if slot is not None and row["kind"] in _CALENDAR:
            method = _CALENDAR[row["kind"]]
            ics = (
                method,
                self.ics(interview, slot, contact, wave, payload.get("sequence", interview["sequence"]), method, now),
            )
        unsubscribe = None if for_researcher else context["en"]["unsubscribe_url"]
        return build_message(
            rendered,
            sender=self.settings.sender,
            to_email=row["to_email"],
            to_name="" if for_researcher else contact["name"],
            now=now,
            unsubscribe_url=unsubscribe,
            reply_to=self.settings.reply_to,
            calendar=ics,
            message_id=self.composer.message_id(row["key"]),
        ), ""

    def context(
        self,
        wave: dict[str, Any],
        contact: dict[str, Any],
        interview: dict[str, Any],
        slot: dict[str, Any] | None,
        payload: dict[str, Any],
        now: datetime,
        for_researcher: bool,
    ) -> dict[str, Any]:
        base = self.composer.context(wave, contact, now)
        booking = queue.booking_url(self.settings.base_url, self.secret, interview["id"])
        zone = (slot or {}).get("timezone", "UTC") if for_researcher else contact["timezone"]
        expires = parse_stored(interview["expires_at"]) if interview["expires_at"] else now
        result = {}
        for language in ("en", "es"):
            when = moment(parse_stored(slot["starts_at"]), zone, language) if slot else ""
            result[language] = {
                **base[language],
                "booking_url": booking,
                "when": when,
                "minutes": slots.minutes(slot) if slot else 30,
                "researcher": one_line(slot["researcher"]) if slot else "",
                "meeting_url": one_line(slot["meeting_url"]) if slot else "",
                "expires_on": closing_date(expires, contact["timezone"], language),
                "moved": bool(payload.get("moved")),
                "by": payload.get("by", "respondent"),
                "for_researcher": for_researcher,
                "respondent": one_line(
                    f"{contact['name']} <{contact['email']}>" if contact["name"] else contact["email"]
                ),
            }
        return result

    def ics(
        self,
        interview: dict[str, Any],
        slot: dict[str, Any],
        contact: dict[str, Any],
        wave: dict[str, Any],
        sequence: int,
        method: str,
        now: datetime,
    ) -> bytes:
        domain = self.settings.sender_email.rpartition("@")[2] or "localhost"
        city = f" ({contact['city']})" if contact["city"] else ""
        booking = queue.booking_url(self.settings.base_url, self.secret, interview["id"])
        description = (
            f"Follow-up interview for {wave['title']}{city}.\n"
            + (f"Online: {slot['meeting_url']}\n" if slot["meeting_url"] else "")
            + f"Change or cancel: {booking}"
        )
        return calendar.invitation(
            interview_id=interview["id"],
            domain=domain,
            method=method,
            sequence=sequence,
            start=parse_stored(slot["starts_at"]),
            end=parse_stored(slot["ends_at"]),
            summary=f"Interview: {wave['title']}{city}",
            description=description,
            meeting_url=slot["meeting_url"],
            organizer=("", slot["researcher"]),
            attendee=(contact["name"], contact["email"]),
            stamp=now,
        )
