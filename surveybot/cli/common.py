"""What every command shares: the settings and database, --json output, errors as one line, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlite_utils import Database

from surveybot.config import Settings, load_settings
from surveybot.db import open_db
from surveybot.errors import DatabaseError, InvalidInput


class Context:
    """Settings are read once, when a command first needs them (so ``--help`` always works);
    the database is opened only by commands that use it."""

    def __init__(self, settings: Settings | None = None) -> None:
        if settings is not None:
            self.settings = settings

    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def db(self) -> Database:
        """The database of a command that reads or changes what exists: it must be there already (a command
        run from the wrong folder must not silently start an empty one)."""
        path = self.settings.db_path
        if not path.exists():
            raise DatabaseError(
                f"no database at {str(path.resolve())!r} (SURVEYBOT_DB); run this where the "
                f"database is, or set SURVEYBOT_DB to its path — 'surveybot contacts import', "
                f"'contacts suppress', 'wave create', 'interviews slots add', 'token create' and 'serve' "
                f"create a new one"
            )
        return open_db(path)

    created_db = False

    @cached_property
    def new_db(self) -> Database:
        """The database of a command that creates things: made if it does not exist yet (the command says so
        when it succeeds, and removes it again when it fails)."""
        path = self.settings.db_path
        self.created_db = not path.exists()
        return open_db(path)

    def finish(self, succeeded: bool) -> None:
        """After the command: name a database it created, or take it away if the command failed."""
        if not self.created_db:
            return
        path = self.settings.db_path
        if succeeded:
            click.echo(f"Created a new database at {path.resolve()} (SURVEYBOT_DB).", err=True)
            return
        self.new_db.close()
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)


pass_context = click.make_pass_decorator(Context)
_Command = TypeVar("_Command", bound=Callable[..., Any])
_T = TypeVar("_T")


def platform_call(settings: Settings, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``work(session)`` against a survey platform's API with one HTTP session whose every request is bounded
    by ``SURVEYBOT_NETWORK_TIMEOUT``; the commands that talk to a platform share it."""
    import asyncio

    import aiohttp

    async def run() -> _T:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.network_timeout)) as session:
            return await work(session)

    return asyncio.run(run())


def json_option(command: _Command) -> _Command:
    """``--json``: print one JSON object on stdout instead of the human summary (errors too)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["surveybot.json"] = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=True,
        callback=remember,
        help="Print one JSON object instead of the human summary.",
    )(command)


def write_output(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``--output``: a folder that does not exist, a full disk or a file not allowed is said in one line."""
    try:
        path.write_text(text, encoding=encoding, newline="")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}", field="output") from None


def print_json(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def shown(value: str) -> str:
    """A value from a file, safe to print on a terminal: control characters are shown escaped."""
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value)


@contextmanager
def progress_bar(
    description: str, total_hint: int = 0, minimum: int = 256 * 1024
) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr for long work, only on a terminal and only when worth showing."""
    if not sys.stderr.isatty() or total_hint < minimum:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total_hint)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
