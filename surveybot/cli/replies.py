"""``surveybot replies list SLUG``: what people (and their mail systems) wrote back about a wave."""

from __future__ import annotations

from typing import Any

import click

from surveybot import waves
from surveybot.cli.common import Context, json_option, pass_context, print_json, shown
from surveybot.mailbox import store


@click.group("replies")
def replies_group() -> None:
    """Replies read from SURVEYBOT_REPLY_MAILBOX and SURVEYBOT_BOUNCE_MAILBOX by 'surveybot serve'."""


@replies_group.command("list")
@click.argument("slug")
@json_option
@pass_context
def list_replies(obj: Context, slug: str, as_json: bool) -> None:
    """List the replies to wave SLUG's e-mail kept for the coordinator (people writing back, and bounces in
    no standard form), then the automatic replies (out of office…), newest first.

    A reply belongs to the wave when it answers one of the wave's messages, or comes from one of its
    recipients without naming a message.
    """
    wave = waves.get_wave(obj.db, slug)
    rows = store.replies(obj.db, wave["id"])
    kept = [_shape(r) for r in rows if r["kind"] != "auto_reply"]
    automatic = [_shape(r) for r in rows if r["kind"] == "auto_reply"]
    if as_json:
        print_json({"wave": slug, "replies": kept, "auto_replies": automatic})
        return
    click.echo(f"Replies to {slug}: {len(kept)}; automatic replies: {len(automatic)}")
    for reply in kept:
        who = reply["contact"] or "not a contact"
        label = "" if reply["kind"] == "reply" else " [bounce in no standard form]"
        click.echo(f"\n{reply['received_at']}  {shown(reply['from'])} ({shown(who)}){label}")
        click.echo(f"  Subject: {shown(reply['subject'])}")
        if reply["excerpt"]:
            click.echo(f"  {shown(reply['excerpt'][:300])}")
    if automatic:
        click.echo("\nAutomatic replies:")
        for reply in automatic:
            click.echo(
                f"  {reply['received_at']}  {shown(reply['contact'] or reply['from'])}: {shown(reply['subject'])}"
            )


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "from": row["sender"],
        "contact": row["contact_email"],
        "name": row["contact_name"],
        "subject": row["subject"],
        "date": row["sent_date"],
        "received_at": row["received_at"],
        "excerpt": row["excerpt"],
        **({"marker": row["marker"]} if row["kind"] == "auto_reply" else {}),
    }
