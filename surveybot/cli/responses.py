"""``surveybot responses …``: export a wave's complete responses."""

from __future__ import annotations

from pathlib import Path

import click

from surveybot import responses, waves
from surveybot.cli.common import Context, pass_context, write_output


@click.group("responses")
def responses_group() -> None:
    """Export responses; fetch again those that could not be fetched."""


@responses_group.command()
@click.argument("slug")
@pass_context
def retry(obj: Context, slug: str) -> None:
    """Queue again every response of wave SLUG whose fetch from the platform failed (see 'wave status').

    'surveybot serve' fetches them within seconds; each gets the full time to succeed again.
    """
    from surveybot import inbox
    from surveybot.clock import utcnow

    wave = waves.get_wave(obj.db, slug)
    count = inbox.requeue_failed(obj.db, wave["id"], utcnow())
    click.echo(f"Queued {count} response{'s' if count != 1 else ''} of {slug} to be fetched again.")


@responses_group.command()
@click.argument("slug")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output.",
)
@pass_context
def export(obj: Context, slug: str, output: Path | None) -> None:
    """Write wave SLUG's complete (and unmatched) responses as CSV, with the contact's fields.

    Values a spreadsheet would run as a formula (starting with = + - @) are written as text.
    Partial responses are not there: only an audit line of them was ever kept.
    """
    text = responses.export_csv(obj.db, waves.get_wave(obj.db, slug))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text, encoding="utf-8-sig")  # with a BOM, so Excel reads the accents right
        click.echo(f"Wrote {text.count(chr(10)) - 1} responses to {output}.", err=True)
