"""Unguessable tokens derived from the service's secret, checked in constant time.

A token is an HMAC of its purpose and the ids it stands for, so nothing secret needs storing to re-create
it (a reminder carries the same survey link as the invitation) and a forged or altered one never verifies.
Where a token is looked up rather than re-derived, only its SHA-256 is stored. The secret itself is
``SURVEYBOT_SECRET`` or a file beside the database, never a row in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import time
from pathlib import Path

from sqlite_utils import Database

from surveybot.db import transaction
from surveybot.errors import DatabaseError

log = logging.getLogger("surveybot.signing")
MIN_SECRET = 16  # characters, as SURVEYBOT_SECRET requires


def service_secret(db: Database, configured: str | None) -> str:
    """``SURVEYBOT_SECRET`` if set, else the secret in the file beside the database (``surveybot.db.secret``),
    generated on first use.

    The secret never lives in the database, where whoever can read the data file (a backup, a browser of the
    file) could forge links with it. One that an earlier version kept there (meta 'secret') is moved to the
    file once, unchanged, so every link already sent still verifies.
    """
    path = secret_file(db)
    if path is not None:
        _move_out_of_database(db, path)
    if configured:
        return configured
    if path is None:
        raise DatabaseError("an in-memory database has no folder for the secret file; set SURVEYBOT_SECRET")
    return _read(path) or _create(path, secrets.token_urlsafe(32))


def secret_file(db: Database) -> Path | None:
    """``FILE.secret`` beside the database ``FILE``; None for an in-memory database."""
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file + ".secret") if file else None
    return None


def _move_out_of_database(db: Database, path: Path) -> None:
    if db.execute("SELECT 1 FROM meta WHERE key = 'secret'").fetchone() is None:
        return  # the usual case: one cheap read, no write lock
    (secure_delete,) = db.execute("PRAGMA secure_delete").fetchone()
    db.execute("PRAGMA secure_delete = ON")  # the deleted row's bytes are overwritten, not left in free space
    try:
        with transaction(db):  # two processes starting together: one moves it, the other finds nothing left
            row = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
            if row is None:
                return
            stored = str(row[0])
            kept = _read(path) or _create(path, stored)
            if not hmac.compare_digest(kept.encode(), stored.encode()):
                raise DatabaseError(
                    f"the database holds a service secret different from the one in {path}, and "
                    f"the links it sent were signed with its own: move {path} aside to keep them"
                )
            db.execute("DELETE FROM meta WHERE key = 'secret'")
    finally:
        db.execute(f"PRAGMA secure_delete = {int(secure_delete)}")
    log.info("moved the service secret out of the database into %s", path)


def _read(path: Path) -> str | None:
    """The secret in ``path``, None if there is no such file. Loose permissions are tightened to 0600."""
    for _ in range(20):
        try:
            with open(path, encoding="utf-8") as file:
                mode = os.fstat(file.fileno()).st_mode
                value = file.read().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatabaseError(f"cannot read the secret file {path}: {exc}") from None
        if value:
            break
        time.sleep(0.05)  # created in place (no hard links on this file system) and not yet written
    if len(value) < MIN_SECRET:
        raise DatabaseError(
            f"the secret file {path} holds no usable secret (at least {MIN_SECRET} characters); "
            f"restore it from a backup, or set SURVEYBOT_SECRET"
        )
    if stat.S_IMODE(mode) & 0o077:
        try:
            os.chmod(path, 0o600)
            log.warning("the secret file %s was readable by others; it is now readable by its owner only", path)
        except OSError:
            log.warning("the secret file %s is readable by others; make it readable by its owner only", path)
    return value


def _create(path: Path, value: str) -> str:
    """Write ``value`` to ``path`` (mode 0600) unless it exists; returns what ``path`` holds then.

    The file appears complete or not at all: written under a temporary name, then hard-linked into place,
    which fails if another process got there first — both then use the first one's secret."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise DatabaseError(f"cannot create the secret file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: create in place, still only if absent
            _create_in_place(path, value)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)  # links signed with it may go out at once: the new name must survive a crash
    kept = _read(path)
    if kept is None:
        raise DatabaseError(f"the secret file {path} disappeared while it was being created")
    return kept


def _create_in_place(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise DatabaseError(f"cannot create the secret file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(value + "\n")


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (Windows); the file itself was synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def derive(secret: str, purpose: str, *parts: object, length: int = 22) -> str:
    """A URL-safe token for ``purpose`` and ``parts`` (22 characters = 132 bits)."""
    message = "\x1f".join([purpose, *map(str, parts)]).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]


def matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def signed(secret: str, purpose: str, *parts: object) -> str:
    """``part.part.signature``: carries its ids, so it can be checked without a lookup."""
    body = ".".join(map(str, parts))
    return f"{body}.{derive(secret, purpose, *parts)}"


def unsigned(secret: str, purpose: str, token: str, count: int) -> list[str] | None:
    """The ``count`` parts of a :func:`signed` token, or ``None`` if it is malformed or forged."""
    pieces = token.split(".")
    if len(pieces) != count + 1 or not all(pieces):
        return None
    *parts, signature = pieces
    return parts if matches(derive(secret, purpose, *parts), signature) else None
