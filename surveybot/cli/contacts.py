"""``surveybot contacts …``: import partner lists, list contacts, choose a contact's values, suppress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.cli.common import Context, json_option, pass_context, print_json, progress_bar, shown
from surveybot.contacts import store
from surveybot.contacts.fields import FIELDS
from surveybot.contacts.importer import ImportReport, import_contacts
from surveybot.contacts.merge import use_values
from surveybot.contacts.zones import zone_of
from surveybot.db import open_db
from surveybot.errors import InvalidInput
from surveybot.suppressions import suppress as suppress_address
from surveybot.suppressions import unsuppress as unsuppress_address

SHOWN = 20  # rows of each list printed in the human summary (--json has them all)


@click.group()
def contacts() -> None:
    """Import, list and suppress contacts; choose which network's values a contact uses."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--network", required=True, help="The partner network that sent the list (e.g. Metropolis).")
@click.option("--dry-run", is_flag=True, help="Check the file and report what would change, writing nothing.")
@click.option(
    "--new-network",
    is_flag=True,
    help="The network is new even though its name is close to one "
    "already imported (without it, a close name is taken for a typo and refused).",
)
@json_option
@pass_context
def import_(obj: Context, file: Path, network: str, dry_run: bool, new_network: bool, as_json: bool) -> None:
    """Import a partner network's contact list from a CSV FILE.

    The encoding (UTF-8, UTF-16, Windows-1252) and delimiter (comma, semicolon, tab) are detected.
    Columns are matched by their header (email/E-mail/Correo, name or first + last name, city, country,
    region, language, position/role/title, timezone); other columns are kept as attributes. Each
    address becomes one contact however many networks list it; each network's own values are kept as its
    listing. A later list fills blank fields and reports values that differ as conflicts. Rows that cannot
    be used are reported with their row number (as a spreadsheet shows it), field and reason; the other rows
    are imported.
    """
    if not new_network:
        _refuse_a_likely_typo(obj, network)
    # a dry run where there is no database yet checks the file against an empty one, and leaves no file behind
    db = obj.new_db if not dry_run or obj.settings.db_path.exists() else open_db(":memory:")
    with progress_bar(f"Importing {file.name}", file.stat().st_size) as progress:
        report = import_contacts(db, file, network, dry_run=dry_run, progress=progress)
    if as_json:
        print_json(report.as_json())
    else:
        _print_report(report)


def _print_report(report: ImportReport) -> None:
    data = report.as_json()
    verb = "Checked (dry run, nothing written)" if report.dry_run else "Imported"
    click.echo(
        f"{verb} {shown(report.filename)} for {shown(report.network)}: {report.rows} rows "
        f"({data['encoding']}, {data['delimiter']}-separated)"
    )
    for label, key in (
        ("new contacts", "imported"),
        ("updated", "updated"),
        ("duplicates", "duplicates"),
        ("conflicts", "conflicts"),
        ("rejected", "rejected"),
        ("suppressed", "suppressed"),
    ):
        click.echo(f"  {label:<13}{data[key]:>8}")
    sections: tuple[tuple[str, list[dict[str, Any]], Callable[[dict[str, Any]], str]], ...] = (
        ("Rejected rows", report.errors, lambda e: f"{e['field']}: {e['message']}"),
        (
            "Conflicts (kept the stored value)",
            report.conflict_details,
            lambda c: f"{c['email']} {c['field']}: stored {c['current']!r}, file says {c['proposed']!r}",
        ),
        ("Filled in", report.changes, lambda c: f"{c['email']} {c['field']}: {c['new']!r}"),
        ("Warnings", report.warnings, lambda w: f"{w['field']}: {w['message']}"),
    )
    for title, items, describe in sections:
        if not items:
            continue
        click.echo(f"{title}:")
        for item in items[:SHOWN]:
            where = f"row {item['row']}, " if item.get("row") else ""
            click.echo(f"  {where}{shown(describe(item))}")
        if len(items) > SHOWN:
            click.echo(f"  … and {len(items) - SHOWN} more (use --json to see them all)")


@contacts.command("list")
@click.option("--network", help="Only contacts this network listed.")
@click.option(
    "--no-timezone", "no_timezone", is_flag=True, help="Only contacts with no time zone (none imported or derived)."
)
@json_option
@pass_context
def list_(obj: Context, network: str | None, no_timezone: bool, as_json: bool) -> None:
    """List contacts with the networks that listed them.

    The values shown are those used in e-mail; "values" says where they come from (merged: the first
    listing's, blanks filled by later ones; or the network chosen with 'contacts use'). --json adds
    "values_from" ('' when merged) and "listings": each network's own values; "timezone" is the zone
    e-mail uses and "timezone_source" where it comes from: import (the list's column), city, country
    (derived from them) or none.
    """
    rows = store.list_contacts(obj.db, network)
    for row in rows:
        # the zone e-mail uses: the list's own, else derived from the city or country (looked up once each)
        row["timezone"], row["timezone_source"] = zone_of(row)
    if no_timezone:
        rows = [row for row in rows if not row["timezone"]]
    if as_json:
        keys = (
            "email",
            "name",
            "city",
            "country",
            "region",
            "language",
            "position",
            "timezone",
            "timezone_source",
            "networks",
            "suppressed",
            "attributes",
            "values_from",
            "listings",
        )
        print_json({"contacts": [{k: row[k] for k in keys} for row in rows]})
        return
    if not rows:
        if no_timezone:
            click.echo("Every contact" + (f" {network} listed" if network else "") + " has a time zone.")
            return
        click.echo(
            "No contacts"
            + (
                f" listed by {network}."
                if network
                else " yet: import a list with 'surveybot contacts import FILE --network NAME'."
            )
        )
        return
    columns = ("email", "name", "city", "country", "language", "timezone", "networks", "values", "status")
    table = [[shown(_cell(r, c)) for c in columns] for r in rows]
    widths = [min(40, max(len(c), *(len(line[i]) for line in table))) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *table]:
        click.echo("  ".join(v[:w].ljust(w) for v, w in zip(line, widths)).rstrip())
    click.echo(f"{len(rows)} contact{'s' if len(rows) != 1 else ''}" + (" with no time zone" if no_timezone else ""))


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "networks":
        return ", ".join(row["networks"])
    if column == "values":
        return row["values_from"] or ("merged" if len(row["listings"]) > 1 else "-")
    if column == "status":
        return f"suppressed ({row['suppressed']})" if row["suppressed"] else ""
    if column == "timezone":  # a derived zone says so: it is a guess from the city or country
        source = row["timezone_source"]
        return "-" if not row["timezone"] else row["timezone"] + ("" if source == "import" else f" ({source})")
    return row[column] or "-"


@contacts.command("use")
@click.argument("email")
@click.option("--network", help="The network whose listing supplies the contact's values.")
@click.option(
    "--merged",
    is_flag=True,
    help="Go back to the merged values: the first listing's, blanks filled from later listings in the order they came.",
)
@json_option
@pass_context
def use(obj: Context, email: str, network: str | None, merged: bool, as_json: bool) -> None:
    """Choose which network's listing supplies the values (name, language, time zone, city …) used in
    EMAIL's messages.

    Each network that lists a contact keeps its own values ('contacts list --json' shows them under
    "listings"). --network NAME copies that listing's values to the contact; --merged goes back to the
    merged values. A network's own uploads never change the values of a contact another network listed
    first, unless its listing is the one chosen here.
    """
    if merged == (network is not None):
        raise click.UsageError("give either --network NAME or --merged")
    try:
        address = normalise_email(email)
    except InvalidAddress as exc:
        raise InvalidInput(f"{email!r} is not a valid e-mail address: {exc}", field="email") from None
    before, after, chosen = use_values(obj.db, address, network)
    changed = {
        name: {"old": before.get(name, ""), "new": after.get(name, "")}
        for name in (*FIELDS, "attributes")
        if before.get(name, "") != after.get(name, "")
    }
    if as_json:
        print_json({"email": address, "values_from": chosen, "values": after, "changed": changed})
        return
    source = f"the listing of {chosen}" if chosen else "the merged listings"
    click.echo(f"{shown(address)} now uses the values of {shown(source)}.")
    for name, change in changed.items():
        click.echo(f"  {name}: {shown(repr(change['old']))} -> {shown(repr(change['new']))}")
    if not changed:
        click.echo("  (no value changed)")


def _refuse_a_likely_typo(obj: Context, network: str) -> None:
    """A network never seen before whose name is close to a known one is most likely a typo ('Metroplis'):
    ask at a terminal, refuse otherwise, naming the closest name. A name unlike any is simply new."""
    import difflib

    if not obj.settings.db_path.exists():
        return
    known = store.network_names(obj.db)
    folded = {" ".join(name.casefold().split()): name for name in known}
    wanted = " ".join(network.casefold().split())
    if not known or wanted in folded:
        return
    close = difflib.get_close_matches(wanted, list(folded), n=1, cutoff=0.75)
    if not close:
        return
    closest = folded[close[0]]
    if sys.stdin.isatty() and click.confirm(
        f"No list was imported for network {network!r} yet; the closest "
        f"name is {closest!r}. Create the new network {network!r}?",
        default=False,
    ):
        return
    raise click.ClickException(
        f"no network {network!r} yet — did you mean {closest!r}? (--network {closest!r}; "
        f"or --new-network if {network!r} really is a new one)"
    )


@contacts.command("unsuppress")
@click.argument("email")
@click.option("--reason", required=True, help="Why the suppression was a mistake (kept for the record).")
@pass_context
def unsuppress(obj: Context, email: str, reason: str) -> None:
    """Lift a suppression of EMAIL made by mistake (an opt-out clicked by someone else, a manual one).

    A bounce is never lifted: the mailbox does not exist. The lift and its reason are kept.
    """
    row = unsuppress_address(obj.db, email, reason)
    click.echo(f"Lifted the {row['kind'].replace('_', '-')} suppression of {row['email']}: it can be e-mailed again.")


@contacts.command("suppress")
@click.argument("email")
@click.option("--reason", default="", help="Why (kept with the suppression for the record).")
@pass_context
def suppress(obj: Context, email: str, reason: str) -> None:
    """Never e-mail EMAIL again, in any wave (whether or not it is a contact yet)."""
    address, new = suppress_address(obj.new_db, email, "manual", reason)
    click.echo(f"Suppressed {address}: it will get no more e-mail." if new else f"{address} was already suppressed.")
