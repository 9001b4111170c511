"""Calendar invitations (.ics, RFC 5545 / iTIP RFC 5546) for an interview, built with icalendar.

One event per interview: its ``UID`` never changes, its ``SEQUENCE`` is the interview's sequence (bumped by
every booking, move and cancellation), so a calendar updates the event in place. ``METHOD:REQUEST`` books or
moves it, ``METHOD:CANCEL`` (with ``STATUS:CANCELLED``) removes it. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//surveybot//interviews//EN"


def uid(interview_id: int, domain: str) -> str:
    return f"interview-{interview_id}@{domain}"


def invitation(
    *,
    interview_id: int,
    domain: str,
    method: str,
    sequence: int,
    start: datetime,
    end: datetime,
    summary: str,
    description: str,
    meeting_url: str,
    organizer: tuple[str, str],
    attendee: tuple[str, str],
    stamp: datetime,
) -> bytes:
    """The .ics bytes. ``organizer`` is the researcher and ``attendee`` the respondent, as (name, e-mail)."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"method must be REQUEST or CANCEL, not {method!r}")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", uid(interview_id, domain))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    if meeting_url:
        event.add("location", meeting_url)
        event.add("url", meeting_url)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("organizer", _address(*organizer, role=None))
    event.add("attendee", _address(*attendee, role="REQ-PARTICIPANT"), encode=False)
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()  # icalendar leaves to_ical unannotated
    return ical


def _address(name: str, email: str, role: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["cn"] = vText(name)
    if role:
        address.params["role"] = vText(role)
        address.params["partstat"] = vText("ACCEPTED")
        address.params["rsvp"] = vText("FALSE")
    return address
