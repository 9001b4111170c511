"""``surveybot backup FILE``: a consistent copy of the live database, safe while ``serve`` runs."""

from __future__ import annotations

from pathlib import Path

import click

from surveybot.backup import backup as copy_database
from surveybot.cli.common import Context, json_option, pass_context, print_json, progress_bar
from surveybot.clock import utcnow


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_context
def backup(obj: Context, file: Path, as_json: bool) -> None:
    """Write a consistent copy of the database to FILE, while 'surveybot serve' keeps running.

    To restore, stop the service, put the copy in place of the database (SURVEYBOT_DB) and start it again:
    messages the copy records as sent are not sent again; messages sent after the copy was taken go again
    with the same Message-ID, so mail clients show them once.
    """
    _ = obj.db  # refuses a database that does not exist, naming it
    source = obj.settings.db_path
    with progress_bar(f"Copying {source.name}", source.stat().st_size, minimum=64 * 1024 * 1024) as bar:
        result = copy_database(source, file, utcnow(), progress=(lambda done, total: bar(done, total)) if bar else None)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"Backed up {source} to {file} ({result['bytes']:,} bytes; {result['waves']} waves, "
        f"{result['messages']} messages)."
    )
