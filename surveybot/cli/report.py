"""``surveybot report SLUG``: the field report of a wave — method table, method paragraph, AAPOR
dispositions and response rates — as Markdown, HTML, JSON or CSV."""

from __future__ import annotations

from pathlib import Path

import click

from surveybot import waves
from surveybot.cli.common import Context, pass_context, write_output
from surveybot.reports.dispositions import DEFAULT_THRESHOLD
from surveybot.reports.formats import FORMATS, render
from surveybot.reports.method import field_report


@click.command()
@click.argument("slug")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS, case_sensitive=False),
    default="md",
    show_default=True,
    help="md for the paper, html for a browser, json for R or pandas, csv for a spreadsheet.",
)
@click.option(
    "--language",
    type=click.Choice(("en", "es"), case_sensitive=False),
    default="en",
    show_default=True,
    help="Language of the method paragraph and the labels.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of the terminal.",
)
@click.option(
    "--partial-threshold",
    type=click.IntRange(1, 100),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Progress (%) from which an unfinished response counts as partial (P); below it, as a break-off (R).",
)
@pass_context
def report(obj: Context, slug: str, fmt: str, language: str, output: Path | None, partial_threshold: int) -> None:
    """Write the field report of wave SLUG: the method table and paragraph, each invited recipient's final
    disposition coded as the AAPOR Standard Definitions code it, and RR1, RR2, COOP1, REF1 and CON1 overall
    and by network, region, country and language."""
    wave = waves.get_wave(obj.db, slug)
    text = render(field_report(obj.db, wave, language=language.lower(), threshold=partial_threshold), fmt.lower())
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    write_output(output, text)
    click.echo(f"Wrote the {fmt.lower()} field report of {slug} to {output}.", err=True)
