"""``surveybot serve``: the web server, the scheduler and the dispatcher in one process."""

from __future__ import annotations

import errno
from pathlib import Path

import click

from surveybot import logs
from surveybot.cli.common import Context, pass_context
from surveybot.config import DEFAULTS


def _sign_in_base(base_url: str, host: str, port: int) -> str:
    """Where the sign-in link points: SURVEYBOT_BASE_URL, or this server's own address when that setting is
    left at its default and the server listens elsewhere (the default would lead nowhere)."""
    if base_url != DEFAULTS["SURVEYBOT_BASE_URL"] or (host, port) == ("127.0.0.1", 8080):
        return base_url
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # every address: this machine's loopback
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@pass_context
def serve(obj: Context, host: str, port: int) -> None:
    """Run the service: webhooks and pages, the wave schedule and e-mail delivery. GET /healthz answers 200.

    Waves launched, paused or closed with other commands while it runs are picked up within seconds.
    Stop it with Ctrl-C: messages being sent are finished, the rest stay queued for the next start.
    """
    from aiohttp import web  # imported here: the other commands start faster without it

    from surveybot.web.app import create_app

    settings = obj.settings
    logs.setup()
    where = settings.mail.path if settings.mail.kind == "maildir" else f"{settings.mail.host}:{settings.mail.port}"
    if not settings.db_path.exists():
        click.echo(f"Creating a new database at {settings.db_path.resolve()} (SURVEYBOT_DB).", err=True)
    _refuse_if_another_serve_runs(settings.db_path)
    code = _first_start_code(settings.db_path)
    click.echo(f"surveybot on http://{host}:{port} (database {settings.db_path}, mail to {where})", err=True)
    if code is not None:
        # the code, never a token: it opens one session, once, within 15 minutes
        click.echo(
            f"Sign in as coordinator: {_sign_in_base(settings.base_url, host, port)}/login/{code} "
            "(this link works once, for 15 minutes)",
            err=True,
        )
    if settings.base_url == DEFAULTS["SURVEYBOT_BASE_URL"] and (host, port) != ("127.0.0.1", 8080):
        click.echo(
            f"Note: SURVEYBOT_BASE_URL is not set, so links in e-mail (unsubscribe, interview booking) point at "
            f"{settings.base_url}; set it to the address people reach this service at.",
            err=True,
        )
    from surveybot.web.app import AccessLogger

    try:
        web.run_app(
            create_app(settings), host=host, port=port, print=None, access_log_class=AccessLogger, shutdown_timeout=30
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another 'surveybot serve'?); "
                f"stop it or choose another with --port"
            ) from None
        raise


def _first_start_code(path: Path) -> str | None:
    """With no coordinator token yet, one is made and a single-use sign-in code for it returned."""
    from surveybot.clock import utcnow
    from surveybot.db import open_db
    from surveybot.web.sessions import first_start_code

    db = open_db(path)
    try:
        return first_start_code(db, utcnow())
    finally:
        db.close()


def _refuse_if_another_serve_runs(path: Path) -> None:
    """One line naming the running ``serve`` before anything is announced (the app takes the lease itself)."""
    from surveybot import lease
    from surveybot.clock import utcnow
    from surveybot.db import open_db

    db = open_db(path)
    try:
        lease.check(db, lease.new_holder(), utcnow())
    finally:
        db.close()
