"""The database schema, as numbered migrations.

``PRAGMA user_version`` holds how many have been applied; each runs in the same transaction as the bump,
so a database is always at one version. Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: contacts, their provenance, uploads and suppressions
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        city TEXT NOT NULL DEFAULT '',
        country TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '' CHECK (language IN ('', 'en', 'es')),
        position TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        network TEXT NOT NULL,
        filename TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
        created_at TEXT NOT NULL,
        finished_at TEXT,
        rows INTEGER NOT NULL DEFAULT 0,
        imported INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        conflicts INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE contact_sources (
        upload_id INTEGER NOT NULL REFERENCES uploads(id),
        row INTEGER NOT NULL,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        network TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (upload_id, row)
    );
    CREATE INDEX contact_sources_contact ON contact_sources(contact_id, upload_id);
    CREATE INDEX contact_sources_network ON contact_sources(network, contact_id);
    CREATE TABLE contact_conflicts (
        id INTEGER PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        upload_id INTEGER NOT NULL REFERENCES uploads(id),
        row INTEGER NOT NULL,
        field TEXT NOT NULL,
        current TEXT NOT NULL,
        proposed TEXT NOT NULL
    );
    CREATE INDEX contact_conflicts_contact ON contact_conflicts(contact_id);
    CREATE TABLE suppressions (
        email TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('opt_out', 'bounce', 'manual')),
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    """,
]
