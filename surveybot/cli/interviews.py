"""``surveybot interviews …``: researchers' slots, invitations to book, and what became of each interview."""

from __future__ import annotations

import click

from surveybot import waves
from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.cli.common import Context, json_option, pass_context, print_json
from surveybot.clock import parse_duration, parse_stored, utcnow
from surveybot.errors import InvalidInput
from surveybot.interviews import MARKABLE, STATES, booking, queue, slots
from surveybot.interviews.messages import moment

LIST_KEYS = (
    "id",
    "wave",
    "state",
    "email",
    "name",
    "city",
    "country",
    "language",
    "researcher",
    "starts_at",
    "ends_at",
    "meeting_url",
    "invited_at",
    "expires_at",
    "booked_at",
    "sequence",
    "notes",
)


@click.group()
def interviews() -> None:
    """Follow-up interviews: publish slots, invite respondents who opted in, track each interview."""


@interviews.group("slots")
def slots_group() -> None:
    """Researchers' available times, split into bookable slots."""


@slots_group.command("add")
@click.option("--researcher", required=True, help="The researcher's e-mail (the calendar invitation's organizer).")
@click.option("--from", "start", required=True, help="Start of the window, ISO 8601 (e.g. 2026-12-01T09:00).")
@click.option("--to", "end", required=True, help="End of the window, ISO 8601.")
@click.option("--length", default="30m", show_default=True, help="Length of each slot (30m, 45m, 1h).")
@click.option("--meeting-url", default="", help="The online meeting link sent with the invitation.")
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    help="Time zone of --from/--to when they carry no offset (Area/City, e.g. Europe/Madrid).",
)
@json_option
@pass_context
def slots_add(
    obj: Context, researcher: str, start: str, end: str, length: str, meeting_url: str, tz: str, as_json: bool
) -> None:
    """Split the window --from … --to into slots of --length. Times are stored in UTC; slots that overlap
    ones the researcher already has are skipped."""
    zone = slots.zone(tz)
    try:
        size = parse_duration(length)
    except ValueError as exc:
        raise InvalidInput(f"--length: {exc}", field="length") from None
    if meeting_url and not meeting_url.startswith(("https://", "http://")):
        raise InvalidInput("--meeting-url must be an http(s) link", field="meeting_url")
    windows = slots.split(slots.local_moment(start, zone, "--from"), slots.local_moment(end, zone, "--to"), size)
    try:
        researcher = normalise_email(researcher)
    except InvalidAddress as exc:
        raise InvalidInput(f"--researcher {researcher!r}: {exc}", field="researcher") from None
    result = slots.add(obj.new_db, researcher, windows, zone.key, meeting_url, utcnow())
    if as_json:
        print_json(result)
        return
    click.echo(
        f"Added {result['added']} slots of {length}"
        + (
            f"; skipped {result['skipped_overlapping']} overlapping existing ones."
            if result["skipped_overlapping"]
            else "."
        )
    )


@slots_group.command("list")
@click.option("--researcher", help="Only this researcher's slots.")
@click.option("--all", "show_all", is_flag=True, help="Past slots too.")
@json_option
@pass_context
def slots_list(obj: Context, researcher: str | None, show_all: bool, as_json: bool) -> None:
    """List slots, earliest first, with who booked them."""
    rows = slots.listing(obj.db, researcher=researcher, since=None if show_all else utcnow())
    if as_json:
        keys = ("id", "researcher", "starts_at", "ends_at", "timezone", "meeting_url", "interview_id", "booked_by")
        print_json({"slots": [{k: r[k] for k in keys} for r in rows]})
        return
    if not rows:
        click.echo("No slots.")
    for r in rows:
        booked = f"booked by {r['booked_by']} (interview {r['interview_id']})" if r["interview_id"] else "free"
        when = moment(parse_stored(r["starts_at"]), r["timezone"], "en")
        click.echo(f"{r['id']:>5}  {when:<52} {r['researcher']:<30} {booked}")


@slots_group.command("remove")
@click.argument("slot_id", type=int)
@pass_context
def slots_remove(obj: Context, slot_id: int) -> None:
    """Remove free slot SLOT_ID (a booked one must be cancelled first, so the respondent is told)."""
    slots.remove(obj.db, slot_id)
    click.echo(f"Removed slot {slot_id}.")


@interviews.command()
@click.argument("wave_slug")
@click.option("--limit", type=click.IntRange(min=1), help="Invite at most this many (oldest opt-ins first).")
@click.option(
    "--auto/--no-auto",
    default=None,
    help="From now on, invite new opt-ins as they arrive (while serve runs) — or stop doing so.",
)
@json_option
@pass_context
def invite(obj: Context, wave_slug: str, limit: int | None, auto: bool | None, as_json: bool) -> None:
    """E-mail everyone queued for an interview in WAVE_SLUG a personal link to book a slot, in their language.

    Those who have not booked get a reminder after SURVEYBOT_INTERVIEW_NUDGE_AFTER; the link expires after
    SURVEYBOT_INTERVIEW_EXPIRE_AFTER. `surveybot serve` sends the e-mails."""
    wave = waves.get_wave(obj.db, wave_slug)
    settings = obj.settings
    invited = queue.invite(
        obj.db,
        wave["id"],
        utcnow(),
        nudge_after=settings.interview_nudge_after,
        expire_after=settings.interview_expire_after,
        limit=limit,
    )
    if auto is not None:
        queue.set_auto_invite(obj.db, wave["id"], auto)
    if as_json:
        print_json({"invited": len(invited), "ids": invited, "auto": auto})
        return
    click.echo(
        f"Invited {len(invited)} respondents to book an interview."
        + (
            {True: " New opt-ins will be invited as they arrive.", False: " Automatic invitations are off.", None: ""}[
                auto
            ]
        )
    )


@interviews.command("list")
@click.option("--wave", "wave_slug", help="Only this wave's interviews.")
@click.option("--state", type=click.Choice(STATES, case_sensitive=False), help="Only interviews in this state.")
@json_option
@pass_context
def list_(obj: Context, wave_slug: str | None, state: str | None, as_json: bool) -> None:
    """List interviews: booked ones by time, then the others by when they opted in."""
    wave_id = waves.get_wave(obj.db, wave_slug)["id"] if wave_slug else None
    rows = queue.listing(obj.db, state=state, wave_id=wave_id)
    if as_json:
        print_json({"interviews": [{k: r[k] for k in LIST_KEYS} for r in rows]})
        return
    if not rows:
        click.echo("No interviews.")
    for r in rows:
        when = moment(parse_stored(r["starts_at"]), r["slot_timezone"], "en") if r["starts_at"] else ""
        click.echo(f"{r['id']:>5}  {r['state']:<10} {r['email']:<36} {r['city'] or '-':<18} {when}")


@interviews.command()
@click.argument("interview_id", type=int)
@click.argument("state", type=click.Choice(tuple(MARKABLE), case_sensitive=False))
@click.option("--notes", help="The researcher's notes (replace the current ones).")
@pass_context
def mark(obj: Context, interview_id: int, state: str, notes: str | None) -> None:
    """Set interview INTERVIEW_ID to STATE. Cancelling or declining a booked interview frees its slot and sends
    both sides a calendar cancellation."""
    row = booking.mark(obj.db, interview_id, state, utcnow(), notes)
    click.echo(f"Interview {interview_id} is {row['state']}.")


@interviews.command()
@click.argument("interview_id", type=int)
@click.argument("text")
@pass_context
def note(obj: Context, interview_id: int, text: str) -> None:
    """Set the researcher's notes on interview INTERVIEW_ID."""
    queue.set_notes(obj.db, interview_id, text, utcnow())
    click.echo(f"Notes saved on interview {interview_id}.")
