"""``surveybot wave check SLUG``: do the question ids the wave names exist in its survey?

Added to the ``wave`` group when ``cli/waves.py`` imports this module (its last line).
"""

from __future__ import annotations

import asyncio

import click

from surveybot import waves
from surveybot.cli.common import Context, json_option, pass_context, print_json, shown
from surveybot.cli.waves import wave
from surveybot.platforms.definitions import check_wave


@wave.command("check")
@click.argument("slug")
@json_option
@pass_context
def check(obj: Context, slug: str, as_json: bool) -> None:
    """Check that every --require and --interview-question id of wave SLUG is a question of its survey.

    Reads the survey from Qualtrics, SurveyMonkey or LimeSurvey (for LimeSurvey it also checks that the
    survey can take personal links); a Typeform or signed-webhook survey cannot be read, and says why.
    Exits with status 1 when an id is missing or the survey cannot be used.
    """
    wave_row = waves.get_wave(obj.db, slug)
    report = asyncio.run(check_wave(obj.settings, wave_row))
    failed = bool(report["missing"] or report["problems"])
    if as_json:
        print_json(report)
    else:
        _print(report)
    if failed:
        raise SystemExit(1)


def _print(report: dict[str, object]) -> None:
    title = f"Wave {report['wave']}: {report['platform']} survey {shown(str(report['survey_id']))}"
    questions = report["questions"]
    assert isinstance(questions, list) and isinstance(report["missing"], list)
    if not report["checked"]:
        click.echo(f"{title} cannot be checked: {report['reason']}.")
        return
    click.echo(f"{title}")
    if not questions:
        click.echo("  no --require or --interview-question ids to check")
    for item in questions:
        mark = "ok" if item["found"] else "MISSING"
        hint = f"   ({item['hint']})" if item["hint"] else ""
        click.echo(f"  {mark:<8} {item['option']} {shown(item['id'])}{hint}")
    problems = report["problems"]
    for problem in problems if isinstance(problems, list) else []:
        click.echo(f"  problem: {problem}")
    if report["missing"]:
        click.echo(f"{len(report['missing'])} of {len(questions)} question ids not found in the survey.")
    elif questions:
        click.echo(f"All {len(questions)} question ids are in the survey.")
