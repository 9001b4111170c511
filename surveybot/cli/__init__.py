"""The ``surveybot`` command line: thin commands that parse, call a stage and print.

A problem the user can fix (a bad setting, file or argument) is one line on stderr and exit status 1;
with ``--json`` the same message is also printed as ``{"error": ...}`` on stdout.
"""

from __future__ import annotations

from typing import Any

import click

from surveybot import __version__
from surveybot.cli.common import Context, print_json
from surveybot.errors import SurveybotError


class SurveybotGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except SurveybotError as exc:
            _finish(ctx, False)
            if _wants_json(ctx):
                print_json({"error": str(exc)})
            raise click.ClickException(str(exc)) from None
        except BaseException:
            _finish(ctx, False)
            raise
        _finish(ctx, True)
        return result


def _finish(ctx: click.Context, succeeded: bool) -> None:
    if isinstance(ctx.obj, Context):
        ctx.obj.finish(succeeded)


def _wants_json(ctx: click.Context | None) -> bool:
    while ctx is not None:
        if ctx.meta.get("surveybot.json"):
            return True
        ctx = ctx.parent
    return False


@click.group(cls=SurveybotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="surveybot")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run the field work of a survey: contacts, waves, e-mail, responses, interviews and reports.

    Settings come from the environment or a .env file in the current folder (see the README):
    SURVEYBOT_DB, SURVEYBOT_MAIL_URL, SURVEYBOT_FROM, SURVEYBOT_BASE_URL, SURVEYBOT_SECRET,
    SURVEYBOT_SEND_RATE, SURVEYBOT_TEMPLATES, QUALTRICS_API_TOKEN, QUALTRICS_BASE_URL.
    """
    ctx.obj = Context()


from surveybot.cli import backup, contacts, interviews, replies, report, responses, serve, tokens, waves  # noqa: E402

main.add_command(contacts.contacts)
main.add_command(waves.wave)
main.add_command(responses.responses_group)
main.add_command(replies.replies_group)
main.add_command(interviews.interviews)
main.add_command(tokens.token)
main.add_command(report.report)
main.add_command(backup.backup)
main.add_command(serve.serve)
