"""Three officers of the pull tests, and who among a database's recipients has finished."""

from __future__ import annotations

from sqlite_utils import Database

ANA, JOE, PAT = "ana@bogota.example.org", "joe@leeds.example.org", "pat@lima.example.org"
CONTACTS = [
    f"Ana Pérez,{ANA},Bogotá,Colombia,Latin America,es",
    f"Joe Bloggs,{JOE},Leeds,UK,Europe,en",
    f"Pat Doe,{PAT},Lima,Peru,Latin America,",
]


def finished(db: Database) -> set[str]:
    """The e-mail addresses of the recipients marked as having finished, in any wave."""
    return {
        email
        for (email,) in db.execute(
            "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id WHERE r.completed_at IS NOT NULL"
        )
    }
