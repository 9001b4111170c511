"""How the rows of an upload merge into contacts and into the uploading network's own listing.

A value once filled is never overwritten by a different one: a later row fills blanks only, and a value that
differs is a conflict (kept for the coordinator, never applied). Two records are kept per address:

- the contact (the values used in e-mail), and
- the network's listing (that network's own values; one per network that listed the address).

Who imports decides which record the report speaks of and what the upload may change:

- a coordinator (the CLI, or a coordinator's token): the report compares rows with the contact, whose blanks
  the rows fill; the network's listing is kept up to date beside it.
- a network (its own token): the report compares rows with that network's listing only, so an upload reveals
  nothing of what other networks listed. The contact is created when new, and its blanks filled only when
  this network listed it first (or a coordinator chose this network's listing); never otherwise.

A coordinator may choose which listing supplies a contact's values (:func:`use_values`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.clock import iso, utcnow
from surveybot.contacts import store
from surveybot.contacts.fields import FIELDS, fold
from surveybot.db import transaction
from surveybot.errors import NotFound

BY = ("coordinator", "network")


@dataclass
class Entry:
    """One address as an upload sees it while it runs (loaded per batch, changed row by row)."""

    email: str
    contact: dict[str, Any] | None = None  # the values used in e-mail; None: no contact yet
    listing: dict[str, Any] | None = None  # the uploading network's own values; None: not listed by it yet
    network_may_fill: bool = True  # a network's upload may fill the contact's blanks
    listed: bool = False  # an earlier row of this upload named the address
    stored_contact: bool = False  # the contact row exists (update it, not insert)
    stored_listing: bool = False
    contact_changed: bool = False
    listing_changed: bool = False

    @classmethod
    def stored(cls, email: str, found: dict[str, Any]) -> Entry:
        return cls(
            email,
            found["contact"],
            found["listing"],
            found["network_may_fill"],
            found["listed"],
            stored_contact=True,
            stored_listing=found["listing"] is not None,
        )

    def dump(self) -> dict[str, Any]:
        """What a dry run remembers of an address its file named (see :meth:`remembered`)."""
        return {"contact": self.contact, "listing": self.listing, "network_may_fill": self.network_may_fill}

    @classmethod
    def remembered(cls, email: str, data: dict[str, Any]) -> Entry:
        return cls(email, data["contact"], data["listing"], data["network_may_fill"], listed=True)


@dataclass
class Outcome:
    """What one batch did, for the report."""

    imported: int = 0
    updated: int = 0
    duplicates: int = 0
    conflicted_rows: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def apply_rows(batch: list[tuple[int, dict[str, Any]]], entries: dict[str, Entry], by: str) -> Outcome:
    """Merge each ``(row number, record)`` into ``entries`` (changed in place, new addresses added)."""
    by_network = by == "network"
    outcome = Outcome()
    for number, record in batch:
        email = record["email"]
        entry = entries.get(email) or entries.setdefault(email, Entry(email))
        if entry.contact is None and entry.listing is None:  # new to all: both start (and stay) alike
            entry.contact = entry.listing = copy_values(record)
            entry.contact_changed = entry.listing_changed = entry.listed = True
            outcome.imported += 1
            continue
        own = entry.listing if by_network else entry.contact  # the record the report speaks of
        if own is None:
            outcome.imported += 1
            fills: list[tuple[str, Any, Any]] = []
        else:
            fills, clashes = fill(own, record)
            for name, old, value in fills:
                outcome.changes.append({"row": number, "email": email, "field": name, "old": old, "new": value})
            for name, current, proposed in clashes:
                outcome.conflicts.append(
                    {"row": number, "email": email, "field": name, "current": current, "proposed": proposed}
                )
            outcome.conflicted_rows += bool(clashes)
            if not entry.listed and fills:
                outcome.updated += 1
            else:
                outcome.duplicates += 1
        if by_network:
            _keep(entry, "listing", record, bool(fills))
            if entry.contact is None or entry.network_may_fill:
                _keep(entry, "contact", record)
        else:
            _keep(entry, "contact", record, bool(fills))
            _keep(entry, "listing", record)
        entry.listed = True
    return outcome


def _keep(entry: Entry, which: str, record: dict[str, Any], filled: bool | None = None) -> None:
    """Create ``entry``'s contact or listing from ``record``, or fill its blanks (``filled``: already done)."""
    current = getattr(entry, which)
    if current is None:
        setattr(entry, which, copy_values(record))
        changed = True
    elif filled is None:
        changed = bool(fill(current, record)[0])
    else:
        changed = filled
    if changed:
        setattr(entry, f"{which}_changed", True)


def copy_values(record: dict[str, Any]) -> dict[str, Any]:
    return {**{name: record[name] for name in FIELDS}, "attributes": dict(record["attributes"])}


def fill(
    target: dict[str, Any], record: dict[str, Any]
) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """Fill ``target``'s blank fields from ``record``; list what it filled and what differs."""
    fills: list[tuple[str, Any, Any]] = []
    clashes: list[tuple[str, Any, Any]] = []
    pairs = [(name, target, record[name]) for name in FIELDS]
    pairs += [(name, target["attributes"], value) for name, value in record["attributes"].items()]
    for name, holder, value in pairs:
        if not value:
            continue
        current = holder.get(name, "")
        if not current:
            holder[name] = value
            fills.append((name, current, value))
        elif current != value and fold(current) != fold(value):
            clashes.append((name, current, value))
    return fills, clashes


def use_values(
    db: Database, email: str, network: str | None, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A coordinator's choice: the contact ``email`` takes ``network``'s listing as its values, or (``None``)
    the merged values again — the first listing's, blanks filled from later listings in the order they came.

    Returns (values before, values after, the network chosen or ''). Raises NotFound."""
    with transaction(db):
        found = store.listings_of(db, email)
        if found is None:
            raise NotFound(f"no contact {email!r}")
        contact_id, listings = found
        before = store.contact_values(db, contact_id)
        if network is None:
            if not listings:
                raise NotFound(f"{email} has no listing by any network to merge")
            after = copy_values(listings[0])
            for later in listings[1:]:
                fill(after, later)
            chosen = ""
        else:
            listing = next((li for li in listings if li["network"].casefold() == network.casefold()), None)
            if listing is None:
                named = ", ".join(li["network"] for li in listings) or "none"
                raise NotFound(f"{email} has no listing by {network!r}; networks that list it: {named}")
            after, chosen = copy_values(listing), listing["network"]
        store.set_contact_values(db, contact_id, after, chosen, iso(now or utcnow()))
    return before, after, chosen
