"""``surveybot wave …``: create a wave, preview and test its e-mail, launch, pause, resume, close, status."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, timedelta
from email import message_from_bytes
from email import policy as email_policy
from typing import TYPE_CHECKING, Any

import click

from surveybot import waves
from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.cli.common import Context, json_option, pass_context, platform_call, print_json, shown
from surveybot.clock import format_duration, iso, parse_duration, parse_moment, parse_stored, utcnow
from surveybot.contacts.store import contact_by_email
from surveybot.errors import InvalidInput, NotFound
from surveybot.mail.render import KINDS, LANGUAGES
from surveybot.reports import wave_status
from surveybot.signing import service_secret

if TYPE_CHECKING:  # click's parameter types are generic only in recent versions: a base for type checkers alone
    _OneDuration = click.ParamType[timedelta, str]
    _Durations = click.ParamType[tuple[timedelta, ...], "str | tuple[timedelta, ...]"]
else:
    _OneDuration = _Durations = click.ParamType


def _duration(value: str, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


class Duration(_OneDuration):
    name = "duration"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        return _duration(value, param, ctx)


class DurationList(_Durations):
    name = "durations"

    def convert(
        self, value: str | tuple[timedelta, ...], param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[timedelta, ...]:
        if isinstance(value, tuple):
            return value
        if value.strip().lower() in ("", "none"):
            return ()
        return tuple(sorted(_duration(part, param, ctx) for part in value.split(",")))


@click.group()
def wave() -> None:
    """Create, preview, launch and follow survey waves."""


@wave.command()
@click.argument("slug")
@click.option("--title", required=True, help="The survey's title, as shown in every e-mail's subject.")
@click.option(
    "--platform", required=True, type=click.Choice(waves.PLATFORMS, case_sensitive=False), help="The survey platform."
)
@click.option(
    "--survey-id", required=True, help="The survey's id on the platform (Qualtrics SV_…, LimeSurvey's number)."
)
@click.option("--survey-url", required=True, help="The survey's public link.")
@click.option("--survey-url-es", default="", help="A separate link for the Spanish version, if any.")
@click.option("--title-es", default="", help="The survey's title in Spanish, for Spanish e-mail (default: --title).")
@click.option(
    "--close-at-end-of-day",
    is_flag=True,
    help="Close at 23:59 of the last day (the wave's time zone) instead of at the launch's time of day.",
)
@click.option(
    "--timezone",
    "zone",
    default="",
    help="The wave's time zone, e.g. Europe/Madrid (default: this "
    "machine's); contacts whose own zone is unknown are written to in it.",
)
@click.option(
    "--send-window",
    default="",
    help="Send invitations and reminders only between these hours of each recipient's own day, e.g. 09:00-17:00.",
)
@click.option("--send-days", default="", help="…and only on these days of their week, e.g. mon-fri.")
@click.option(
    "--start",
    default="now",
    show_default=True,
    help="When to send the invitations: 'now' (at launch) "
    "or an ISO 8601 time; without an offset it is this machine's local time.",
)
@click.option(
    "--reminders",
    type=DurationList(),
    default="7d,12d",
    show_default=True,
    help="When to remind those who have not finished, after the start ('none' for no reminders).",
)
@click.option(
    "--close-after",
    type=Duration(),
    default="14d",
    show_default=True,
    help="How long after the start the survey closes.",
)
@click.option(
    "--network", "networks", multiple=True, help="Only contacts from this network (repeatable; default: every contact)."
)
@click.option("--interview-question", default="", help="The question id that asks for a follow-up interview.")
@click.option("--interview-yes", default="", help="The answer to that question that means yes.")
@click.option(
    "--require", "required", multiple=True, help="A question id a complete response must answer (repeatable)."
)
@click.option(
    "--share-status-with-networks",
    "share",
    is_flag=True,
    help="Show partner networks which of their contacts answered (default: counts only, those under 5 hidden).",
)
@click.option(
    "--intake",
    type=click.Choice(waves.INTAKES, case_sensitive=False),
    help="How responses come in: 'webhook' (the platform calls surveybot; Qualtrics needs a brand administrator "
    "to subscribe) or 'poll' (surveybot pulls them every SURVEYBOT_POLL_EVERY; Qualtrics and LimeSurvey). "
    "Default: poll for LimeSurvey, webhook for the others.",
)
@click.option(
    "--in-progress-timeout",
    type=Duration(),
    default="7d",
    show_default=True,
    help="The survey's in-progress timeout: how long after the close pulls go on, for responses still open "
    "then to be recorded (as partials).",
)
@pass_context
def create(
    obj: Context,
    slug: str,
    title: str,
    platform: str,
    survey_id: str,
    survey_url: str,
    survey_url_es: str,
    title_es: str,
    close_at_end_of_day: bool,
    zone: str,
    send_window: str,
    send_days: str,
    start: str,
    reminders: tuple[timedelta, ...],
    close_after: timedelta,
    networks: tuple[str, ...],
    interview_question: str,
    interview_yes: str,
    required: tuple[str, ...],
    share: bool,
    intake: str | None,
    in_progress_timeout: timedelta,
) -> None:
    """Create the wave SLUG (a draft until launched).

    Durations are a number and a unit: 30s, 15m, 2h, 14d. A LimeSurvey survey is checked first: it needs a
    participant table and responses that are not anonymized (LIMESURVEY_URL, LIMESURVEY_USER, LIMESURVEY_PASSWORD).
    """
    now = utcnow()
    try:
        start_at = None if start.strip().lower() == "now" else parse_moment(start, now)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="start") from None
    if start_at is not None and start_at < now - timedelta(minutes=1):
        raise InvalidInput(f"--start {start} is in the past; give 'now' or a later time", field="start")
    spec = waves.WaveSpec(
        slug=slug,
        title=title,
        platform=platform,
        survey_id=survey_id,
        survey_url=survey_url,
        survey_url_es=survey_url_es,
        start=start_at,
        reminders=reminders,
        close_after=close_after,
        networks=networks,
        interview_question=interview_question,
        interview_yes=interview_yes,
        required=required,
        title_es=title_es,
        close_at_end_of_day=close_at_end_of_day,
        timezone=zone,
        send_window=send_window,
        send_days=send_days,
        share_status_with_networks=share,
        intake=(intake or "").lower(),
        in_progress_timeout=in_progress_timeout,
    )
    waves.check_intake(spec.platform, spec.intake or waves.default_intake(spec.platform))
    if spec.platform == "limesurvey":
        _check_limesurvey(obj, survey_id)
    created = waves.create_wave(obj.new_db, spec, now)
    plan = ", ".join(format_duration(r) for r in reminders) or "none"
    click.echo(
        f"Created wave {created['slug']} (draft): starts {start_at.isoformat() if start_at else 'at launch'}, "
        f"reminders after {plan}, closes after {format_duration(close_after)}."
    )
    hours = (
        f"; sent {created['send_window'] or 'at any hour'} on {created['send_days'] or 'every day'} of each "
        f"recipient's own time zone"
        if created["send_window"] or created["send_days"]
        else ""
    )
    click.echo(f"Time zone of the wave: {created['timezone']}{hours}.")
    if created["intake"] == "poll":
        click.echo(
            f"Responses are pulled every {format_duration(timedelta(seconds=obj.settings.poll_every))} by "
            f"'surveybot serve' until {format_duration(in_progress_timeout)} after the close."
        )
    click.echo(f"Preview it with 'surveybot wave preview {slug}', then 'surveybot wave launch {slug}'.")


def _check_limesurvey(obj: Context, survey_id: str) -> None:
    """Refuse a LimeSurvey survey whose personal links could not work, saying why and what to change."""
    from surveybot.platforms import limesurvey

    problems = platform_call(obj.settings, lambda session: limesurvey.check_survey(session, obj.settings, survey_id))
    if problems:
        raise InvalidInput("; ".join(problems), field="survey_id")


@wave.command()
@click.argument("slug")
@click.option("--kind", type=click.Choice(KINDS, case_sensitive=False), help="Which e-mail (default: all of them).")
@click.option(
    "--language",
    type=click.Choice(LANGUAGES, case_sensitive=False),
    help="Which language (default: the contact's; both if the contact has no preference or none is named).",
)
@click.option("--contact", "email", help="Render for this contact (default: a sample contact).")
@click.option("--html", is_flag=True, help="Print the HTML part instead of the text part.")
@pass_context
def preview(obj: Context, slug: str, kind: str | None, language: str | None, email: str | None, html: bool) -> None:
    """Print the e-mail of wave SLUG as a contact would receive it."""
    from surveybot.mail import preview as when
    from surveybot.mail.compose import SAMPLE_CONTACT, Composer

    now = utcnow()
    wave_row = when.planned(waves.get_wave(obj.db, slug), now)
    composer = Composer(obj.db, obj.settings, service_secret(obj.db, obj.settings.secret))
    contact = _contact(obj, email) if email else SAMPLE_CONTACT
    # a named contact gets what they would receive (both languages in one message if no preference)
    languages = [language] if language else ([str(contact["language"] or "")] if email else list(LANGUAGES))
    for number, (k, lang) in enumerate((k, lang) for k in ([kind] if kind else KINDS) for lang in languages):
        # parsed back from its bytes: the preview shows exactly what is sent, as of when it is sent
        at = when.as_of(obj.db, wave_row, k, now)
        message = message_from_bytes(
            composer.message(k, wave_row, contact, at, language=lang).data, policy=email_policy.default
        )
        if number:
            click.echo("\n" + "=" * 72 + "\n")
        for header in ("From", "To", "Date", "Subject", "Content-Language", "List-Unsubscribe"):
            if message[header]:
                click.echo(f"{header}: {shown(str(message[header]))}")
        click.echo()
        part = message.get_body(("html",) if html else ("plain",))
        assert part is not None  # every message has a text and an HTML part
        click.echo(part.get_content().rstrip())


def _contact(obj: Context, email: str) -> dict[str, Any]:
    try:
        address = normalise_email(email)
    except InvalidAddress as exc:
        raise InvalidInput(f"{email!r} is not a valid e-mail address: {exc}", field="contact") from None
    row = contact_by_email(obj.db, address)
    if row is None:
        raise NotFound(f"no contact {address}")
    return row


@wave.command("test-send")
@click.argument("slug")
@click.option("--to", "to", required=True, help="The address that receives the test messages.")
@pass_context
def test_send(obj: Context, slug: str, to: str) -> None:
    """Send every e-mail of wave SLUG, in English and Spanish, to one address (through the real transport)."""
    from surveybot.mail.compose import SAMPLE_CONTACT, Composer
    from surveybot.mail.transports import PermanentFailure, TemporaryFailure, open_transport

    try:
        address = normalise_email(to, allow_local_domain=True)
    except InvalidAddress as exc:
        raise InvalidInput(f"{to!r} is not a valid e-mail address: {exc}", field="to") from None
    wave_row = waves.get_wave(obj.db, slug)
    composer = Composer(obj.db, obj.settings, service_secret(obj.db, obj.settings.secret))
    now = utcnow()
    messages = []
    for kind in KINDS:
        for language in (*LANGUAGES, ""):
            message = composer.message(
                kind, wave_row, SAMPLE_CONTACT, now, to_email=address, language=language, subject_prefix="[test] "
            )
            messages.append((kind, language or "bilingual", message))

    async def send_all() -> list[str]:
        transport = open_transport(obj.settings.mail, 1)
        problems = []
        try:
            for kind, language, message in messages:
                try:
                    await transport.send(message)
                except (TemporaryFailure, PermanentFailure) as exc:
                    problems.append(f"{kind} ({language}): {exc}")
        finally:
            await transport.close()
        return problems

    problems = asyncio.run(send_all())
    for problem in problems:
        click.echo(f"not sent: {problem}", err=True)
    click.echo(f"Sent {len(messages) - len(problems)} of {len(messages)} test messages to {address}.")
    if problems:
        raise SystemExit(1)


@wave.command()
@click.argument("slug")
@click.option("--yes", "-y", is_flag=True, help="Launch without asking (for scripts).")
@click.option("--skip-overlap", is_flag=True, help="Leave out contacts who are already in another open wave.")
@json_option
@pass_context
def launch(obj: Context, slug: str, yes: bool, skip_overlap: bool, as_json: bool) -> None:
    """Launch wave SLUG: invitations at its start, then reminders, then close (run by 'surveybot serve').

    Shows who will be invited (by language and network), who is left out as suppressed or already in
    another open wave, and the plan with its dates, then asks before launching. Refuses a wave that would
    invite nobody.
    """
    from surveybot import lease, recipients

    db, now = obj.db, utcnow()
    wave_row = waves.get_wave(db, slug)
    if wave_row["state"] != "draft":
        raise InvalidInput(f"wave {slug!r} was launched already (it is {wave_row['state']})", field="slug")
    who = recipients.audience(db, {**wave_row, "skip_overlap": int(skip_overlap)})
    plan = waves.planned_steps(wave_row, now)
    warnings = []
    if who["recipients"] == 0:
        overlap = sum(who["in_other_open_waves"].values()) if skip_overlap else 0
        raise InvalidInput(
            f"wave {slug!r} would invite nobody: no contact that is not suppressed"
            + (f" is listed by {', '.join(wave_row['networks'])}" if wave_row["networks"] else "")
            + (" and not in another open wave" if skip_overlap else "")
            + f" ({who['suppressed']} suppressed"
            + (f", {overlap} in another open wave" if skip_overlap else "")
            + "); import contacts first",
            field="slug",
        )
    if who["in_other_open_waves"] and not skip_overlap:
        named = ", ".join(f"{n} in {other}" for other, n in who["in_other_open_waves"].items())
        warnings.append(
            f"contacts already in another open wave would get a second invitation ({named}); "
            f"--skip-overlap leaves them out"
        )
    if wave_row["start_at"] and parse_stored(wave_row["start_at"]) < now:
        warnings.append(f"the planned start ({wave_row['start_at'][:16]} UTC) has passed: invitations go out now")
    if not lease.seen_since(db, now - timedelta(minutes=1)):
        warnings.append(
            f"no 'surveybot serve' has been seen on this database ({obj.settings.db_path}) in the last "
            f"minute: nothing is sent until it runs"
        )
    if not as_json:
        click.echo(
            f"Wave {slug}: {who['recipients']} recipients "
            f"({', '.join(f'{n} {lang}' for lang, n in who['by_language'].items())})"
        )
        for network, n in who["by_network"].items():
            click.echo(f"  {shown(network):<24}{n:>6}")
        click.echo(f"  left out as suppressed: {who['suppressed']}")
        for kind, at in plan:
            click.echo(f"  {kind:<15}{at.astimezone():%Y-%m-%d %H:%M %Z}   {at:%Y-%m-%d %H:%M} UTC")
        for warning in warnings:
            click.echo(f"Warning: {warning}", err=True)
        if not yes and sys.stdin.isatty() and not click.confirm(f"Launch {slug}?", default=False):
            raise click.ClickException("not launched")
    if wave_row["platform"] == "limesurvey":
        enrolled = _enrol(obj, {**wave_row, "skip_overlap": int(skip_overlap)}, as_json)
    launched = waves.launch(db, slug, now, skip_overlap=skip_overlap)
    if wave_row["platform"] == "limesurvey":
        from surveybot import pull

        pull.note_enrolled(db, wave_row["id"], enrolled)
    step = waves.next_step(db, launched)
    assert step is not None  # a wave just launched has its whole plan ahead
    if as_json:
        print_json(
            {
                "wave": slug,
                "state": launched["state"],
                "audience": who,
                "warnings": warnings,
                "plan": [{"kind": kind, "at": iso(at)} for kind, at in plan],
                "closes_at": launched["closes_at"],
            }
        )
        return
    click.echo(f"Launched {slug}: {step['kind']} at {step['at']}; closes at {launched['closes_at']}.")


def _enrol(obj: Context, wave_row: dict[str, Any], quiet: bool) -> int:
    """Make everyone the launch invites a participant of the LimeSurvey survey, with their own token, before a
    link goes out; the launch is refused (the wave stays a draft) if LimeSurvey refuses any of them."""
    from surveybot import recipients
    from surveybot.platforms import ApiError, limesurvey

    contacts = recipients.audience_contacts(obj.db, wave_row)
    try:
        added = platform_call(
            obj.settings, lambda session: limesurvey.enrol(session, obj.settings, obj.db, wave_row, contacts)
        )
    except ApiError as exc:
        raise InvalidInput(f"not launched: {exc}", field="slug") from None
    if not quiet:
        click.echo(f"LimeSurvey: {added} participants added, {len(contacts) - added} were there already.")
    return len(contacts)


@wave.command()
@click.argument("slug")
@pass_context
def pause(obj: Context, slug: str) -> None:
    """Hold wave SLUG: no step runs and nothing of it is sent until it is resumed."""
    waves.set_paused(obj.db, slug, True)
    click.echo(f"Paused {slug}.")


@wave.command()
@click.argument("slug")
@pass_context
def resume(obj: Context, slug: str) -> None:
    """Resume wave SLUG; steps that fell due while paused run once (only the latest reminder)."""
    waves.set_paused(obj.db, slug, False)
    click.echo(f"Resumed {slug}.")


@wave.command("close")
@click.argument("slug")
@pass_context
def close_(obj: Context, slug: str) -> None:
    """Close wave SLUG now: unsent invitations and reminders are cancelled."""
    waves.close(obj.db, slug, utcnow())
    click.echo(f"Closed {slug}.")


def _qualtrics_call(obj: Context, slug: str, action: str) -> tuple[dict[str, Any], list[str]]:
    """Run ``qualtrics.<action>(session, settings, …)`` for wave SLUG's webhook URL; (wave, result)."""
    import aiohttp

    from surveybot.platforms import ApiError, qualtrics
    from surveybot.platforms.urls import webhook_url

    wave_row = waves.get_wave(obj.db, slug)
    if wave_row["platform"] != "qualtrics":
        where = f"its webhook URL (from 'surveybot wave status {slug}') in the platform's settings"
        raise InvalidInput(
            f"wave {slug!r} is on {wave_row['platform']}, whose webhooks are managed there: "
            + (f"register {where}" if action == "subscribe" else f"remove {where}"),
            field="platform",
        )
    url = webhook_url(obj.settings.base_url, service_secret(obj.db, obj.settings.secret), wave_row)

    async def call(session: aiohttp.ClientSession) -> list[str]:
        if action == "subscribe":
            return await qualtrics.subscribe(session, obj.settings, wave_row["survey_id"], url)
        return await qualtrics.unsubscribe(session, obj.settings, url)

    try:
        return wave_row, platform_call(obj.settings, call)
    except ApiError as exc:
        raise InvalidInput(f"Qualtrics did not {action}: {exc}", field=action) from None


@wave.command("set")
@click.argument("slug")
@click.option(
    "--share-status-with-networks/--no-share-status-with-networks",
    "share",
    default=None,
    help="Whether partner networks see which of their contacts answered.",
)
@click.option(
    "--intake",
    type=click.Choice(waves.INTAKES, case_sensitive=False),
    help="How responses come in from now on: webhook, or poll (pulled every SURVEYBOT_POLL_EVERY). Nothing "
    "already recorded is counted twice.",
)
@pass_context
def set_(obj: Context, slug: str, share: bool | None, intake: str | None) -> None:
    """Change settings of wave SLUG that may change while it runs."""
    if share is None and intake is None:
        raise click.UsageError("name a setting to change: --intake or --[no-]share-status-with-networks")
    if intake is not None:
        changed = waves.set_intake(obj.db, slug, intake.lower())
        how = (
            f"pulled every {format_duration(timedelta(seconds=obj.settings.poll_every))} by 'surveybot serve'"
            if changed["intake"] == "poll"
            else "taken from webhooks (and pulled once a day in case one never came)"
            if changed["platform"] == "qualtrics"
            else "taken from webhooks"
        )
        click.echo(f"Wave {slug}: responses are {how}.")
    if share is not None:
        changed = waves.set_sharing(obj.db, slug, share)
        click.echo(
            f"Wave {slug}: partner networks {'see' if changed['share_status_with_networks'] else 'do not see'} "
            f"which of their contacts answered."
        )


@wave.command()
@click.argument("slug")
@json_option
@pass_context
def sync(obj: Context, slug: str, as_json: bool) -> None:
    """Pull wave SLUG's responses now (Qualtrics export API, LimeSurvey RemoteControl), whatever its intake.

    A catch-up for responses whose webhook never came, or after the service was down. Only responses recorded
    or changed since the last pull are read; each is recorded once, however often it is read.
    """

    from surveybot import pull

    wave_row = waves.get_wave(obj.db, slug)
    if wave_row["platform"] not in waves.PULLED:
        raise InvalidInput(
            f"wave {slug!r} is on {wave_row['platform']}, whose responses cannot be pulled: they come by webhook",
            field="slug",
        )
    show = not as_json and sys.stderr.isatty()

    def progress(result: pull.PullResult) -> None:
        if show:
            click.echo(f"\r  {sum(result.outcomes.values()):,} responses read…", nl=False, err=True)

    result = platform_call(
        obj.settings, lambda session: pull.pull_wave(obj.db, obj.settings, session, wave_row, on_batch=progress)
    )
    if show:
        click.echo(err=True)
    if as_json:
        print_json(result.as_json())
    elif result.outcomes or not result.error:
        click.echo(f"Pulled {slug}: {pull.describe(result.outcomes)}.")
    if result.error:
        raise click.ClickException(f"pulling {slug}'s responses failed: {result.error}")


@wave.command()
@click.argument("slug")
@pass_context
def subscribe(obj: Context, slug: str) -> None:
    """Register wave SLUG's webhook with Qualtrics for completed and partial responses.

    Needs QUALTRICS_BASE_URL and the API token of a Qualtrics brand administrator (QUALTRICS_API_TOKEN);
    a topic already registered for this wave is not registered twice.
    """
    wave_row, made = _qualtrics_call(obj, slug, "subscribe")
    if made:
        click.echo(
            f"Subscribed {slug} to completed and partial responses of {wave_row['survey_id']} "
            f"(subscriptions {', '.join(made)})."
        )
    else:
        click.echo(f"{slug} was subscribed already: nothing registered twice.")


@wave.command()
@click.argument("slug")
@pass_context
def unsubscribe(obj: Context, slug: str) -> None:
    """Remove the Qualtrics subscriptions that deliver to wave SLUG's webhook."""
    _, removed = _qualtrics_call(obj, slug, "unsubscribe")
    click.echo(
        f"Removed {len(removed)} subscription{'s' if len(removed) != 1 else ''} of {slug}"
        + (f" ({', '.join(removed)})." if removed else ".")
    )


@wave.command("list")
@json_option
@pass_context
def list_(obj: Context, as_json: bool) -> None:
    """List the waves of this database with their state, dates and headline counts: people invited,
    invitations and reminders sent, people who finished."""
    rows = waves.list_waves(obj.db)
    if as_json:
        print_json({"waves": rows})
        return
    if not rows:
        click.echo(f"No waves yet in {obj.settings.db_path}: create one with 'surveybot wave create'.")
        return
    click.echo(f"{'WAVE':<20}{'STATE':<11}{'INVITED':>8}{'SENT':>7}{'DONE':>6}  CLOSES (UTC)      TITLE")
    for row in rows:
        closes = (row["closed_at"] or row["closes_at"] or "")[:16].replace("T", " ")
        click.echo(
            f"{row['slug']:<20}{row['state']:<11}{row['invited']:>8}{row['sent']:>7}{row['completed']:>6}  "
            f"{closes:<17} {shown(row['title'])}"
        )


# sent, queued and failed count messages (thank-yous included); the other figures count people
_LABELS = {"sent": "messages sent", "queued": "messages queued", "failed": "messages failed"}


@wave.command()
@click.argument("slug")
@json_option
@pass_context
def status(obj: Context, slug: str, as_json: bool) -> None:
    """Show where wave SLUG stands: who was invited, sent, bounced, finished, what happens next."""
    wave_row = waves.get_wave(obj.db, slug)
    report = wave_status(obj.db, wave_row, service_secret(obj.db, obj.settings.secret), obj.settings.base_url)
    if as_json:
        print_json(report)
        return
    click.echo(f"{report['title']} ({slug}): {report['state']}")
    for key in (
        "invited",
        "sent",
        "queued",
        "failed",
        "bounced",
        "soft_bounced",
        "delivered",
        "opted_out",
        "responses",
        "duplicate_contact",
        "completed",
        "cities_responded",
        "duplicate_city",
        "duplicate_responses",
        "partial_discarded",
        "unmatched_responses",
        "interview_queue",
    ):
        click.echo(f"  {_LABELS.get(key, key.replace('_', ' ')):<20}{report[key]:>8}")
    step = report["next_step"]
    click.echo(
        f"Next: {step['kind']} at {step['at']}{' (held: paused)' if step['held'] else ''}"
        if step
        else "Next: nothing (closed or not launched)"
    )
    plan = waves.steps(obj.db, wave_row["id"])
    if plan:
        click.echo("Plan (local time of this machine, then UTC):")
        for row in plan:
            when = parse_stored(row["done_at"] if row["state"] != "pending" and row["done_at"] else row["due_at"])
            label = {"pending": "due", "done": "done", "skipped": "skipped", "cancelled": "cancelled"}[row["state"]]
            click.echo(
                f"  {row['kind']:<15}{label:<10}{when.astimezone():%Y-%m-%d %H:%M %Z}   "
                f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            )
    if report["release_times"]:
        click.echo("Queued messages go out (each recipient's send window, UTC):")
        for slot in report["release_times"][:12]:
            click.echo(f"  {slot['at'].replace('T', ' ')}  {slot['messages']:>6}")
    pulled = report["pull"]
    if report["intake"] == "poll":
        every = format_duration(timedelta(seconds=obj.settings.poll_every))
        last = (
            f"; last pull {pulled['last_done_at'][:16].replace('T', ' ')} UTC"
            if pulled and pulled["last_done_at"]
            else ""
        )
        click.echo(f"Responses: pulled every {every} by 'surveybot serve'{last}")
    else:
        click.echo("Responses: by webhook" + ("; pulled once a day as a safety net" if pulled else ""))
    if pulled and pulled["last_error"]:
        why = "credentials missing or refused (tried again hourly)" if pulled["refused"] else "it failed"
        click.echo(f"The last pull: {why}: {shown(pulled['last_error'])}")
    if report["intake_retrying"]:
        click.echo(
            f"Responses being fetched again: {report['intake_retrying']} "
            f"(the last try: {shown(report['intake_retry_error'])})"
        )
    if report["intake_failed"]:
        click.echo(
            f"Responses that could not be fetched: {report['intake_failed']} "
            f"('surveybot responses retry {slug}' tries them again)"
        )
        for failure in report["intake_errors"][:5]:
            click.echo(f"  {failure['response_id']}: {shown(failure['error'])}")
    if report["skipped_outside_window"]:
        click.echo(f"Not sent, the recipient's window opening only after the close: {report['skipped_outside_window']}")
    click.echo(
        f"Webhook URL: {report['webhook_url']}"
        if report["webhook_url"]
        else f"Webhook URL: none ({wave_row['platform']} sends no webhooks; its responses are pulled)"
    )
    if "webhook_signing_secret" in report:
        click.echo(f"Webhook signing secret: {report['webhook_signing_secret']}")


from surveybot.cli import wave_check  # noqa: E402, F401  (adds the command `wave check`)
