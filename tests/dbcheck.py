"""Looking into a test's SQLite file with plain sqlite3, independent of the code under test."""

from __future__ import annotations

import sqlite3
from pathlib import Path

TABLES = ("contacts", "contact_sources", "contact_conflicts", "uploads", "suppressions")  # at least these
COUNT_KEYS = ("rows", "imported", "updated", "duplicates", "conflicts", "rejected")


def sql(tmp_path: Path, query: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]
    finally:
        conn.close()


def all_tables(tmp_path: Path) -> list[str]:
    names = [
        n
        for (n,) in sql(
            tmp_path, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    assert set(TABLES) <= set(names)
    return names


def table_counts(tmp_path: Path) -> dict[str, int]:
    """Rows in every table of the database (whatever other stages add to the schema)."""
    return {t: sql(tmp_path, f"SELECT COUNT(*) FROM {t}")[0][0] for t in all_tables(tmp_path)}
