"""Where bounces and replies are read from: an IMAP folder (over TLS) or a local Maildir folder.

``imaps://user:pass@host[:port]/FOLDER`` (TLS from the start, port 993) or ``imap://…`` (port 143, upgraded
with STARTTLS before logging in: a password never crosses the network in clear). ``?cafile=PATH`` trusts a
private server's certificate besides the system's; ``?insecure=1`` checks no certificate at all (a test
server only). ``maildir://PATH`` reads a Maildir folder that a local mail server delivers into.

A session lists the messages waiting, fetches one at a time and moves each away once handled: IMAP to a
folder beside the one read (``surveybot-processed``, ``surveybot-unreadable``; created when missing), a
Maildir to a Maildir++ subfolder of the same names (``.surveybot-processed``). What was moved is never read
again, so a restart reads nothing twice. imaplib blocks: the reader calls a session from a worker thread.
"""

from __future__ import annotations

import imaplib
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from surveybot.urlsettings import UrlSetting

PROCESSED = "surveybot-processed"
UNREADABLE = "surveybot-unreadable"
TIMEOUT_S = 30.0


class MailboxUnavailable(Exception):
    """The mailbox cannot be reached or refuses us (down, wrong password, no such folder): tried next time."""


@dataclass(frozen=True)
class MailboxSource:
    kind: str  # "imap" | "maildir"
    host: str = ""
    port: int = 0
    tls: str = "tls"  # "tls" | "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    folder: str = "INBOX"
    cafile: Path | None = None
    insecure: bool = False
    path: Path | None = None

    def describe(self) -> str:
        """How logs name it: never with its password."""
        if self.kind == "maildir":
            return f"maildir://{self.path}"
        return f"{'imaps' if self.tls == 'tls' else 'imap'}://{self.username}@{self.host}:{self.port}/{self.folder}"


def parse_mailbox_url(key: str, raw: str) -> MailboxSource:
    """The mailbox a setting names, or :class:`SettingError` saying what is wrong (password masked)."""
    url = UrlSetting(key, raw)
    if url.scheme == "maildir":
        return MailboxSource(kind="maildir", path=url.folder("maildir:///var/mail/bounces"))
    if url.scheme not in ("imap", "imaps"):
        raise url.refuse("must start with imaps://, imap:// (STARTTLS) or maildir://")
    parts = url.parts
    if not parts.hostname:
        raise url.refuse("names no host, e.g. imaps://user:pass@mail.example.org/INBOX")
    if not parts.username or not parts.password:
        raise url.refuse("needs a user and password, e.g. imaps://user:pass@mail.example.org/INBOX")
    unknown = set(url.query) - {"cafile", "insecure"}
    if unknown:
        raise url.refuse(f"unknown option {sorted(unknown)[0]!r} (known: cafile, insecure)")
    return MailboxSource(
        kind="imap",
        host=parts.hostname,
        port=url.port or (993 if url.scheme == "imaps" else 143),
        tls="tls" if url.scheme == "imaps" else "starttls",
        username=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        cafile=url.cafile(),
        insecure=url.flag("insecure"),
    )


class Session(Protocol):
    def waiting(self) -> list[str]: ...
    def fetch(self, ref: str) -> bytes: ...
    def move(self, ref: str, folder: str) -> None: ...
    def close(self) -> None: ...


def open_session(source: MailboxSource) -> Session:
    """Connect (blocking): raises :class:`MailboxUnavailable` when the mailbox cannot be used now."""
    if source.kind == "maildir":
        return MaildirSession(source)
    return ImapSession(source)


class MaildirSession:
    def __init__(self, source: MailboxSource) -> None:
        assert source.path is not None
        self.root = source.path
        if not (self.root / "new").is_dir() or not (self.root / "cur").is_dir():
            raise MailboxUnavailable(f"{self.root} is not a Maildir folder (no new/ and cur/ in it)")

    def waiting(self) -> list[str]:
        found: list[str] = []
        for sub in ("new", "cur"):
            names = sorted(n for n in os.listdir(self.root / sub) if not n.startswith("."))
            found.extend(f"{sub}/{name}" for name in names)
        return found

    def fetch(self, ref: str) -> bytes:
        return (self.root / ref).read_bytes()

    def move(self, ref: str, folder: str) -> None:
        target = self.root / f".{folder}"
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        name = ref.split("/", 1)[1]
        if ":2," not in name:
            name += ":2,S"  # seen: a mail client shows it as read
        os.replace(self.root / ref, target / "cur" / name)  # atomic: the message is in one place or the other

    def close(self) -> None:
        return None


class ImapSession:
    def __init__(self, source: MailboxSource) -> None:
        self.created: set[str] = set()
        context = ssl.create_default_context(cafile=str(source.cafile) if source.cafile else None)
        if source.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            if source.tls == "tls":
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    source.host, source.port, ssl_context=context, timeout=TIMEOUT_S
                )
            else:
                self.conn = imaplib.IMAP4(source.host, source.port, timeout=TIMEOUT_S)
                self.conn.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxUnavailable(f"cannot connect to {source.describe()}: {exc}") from exc
        try:
            self.conn.login(source.username, source.password)
            typ, data = self.conn.select(_quoted(source.folder))
            if typ != "OK":
                raise MailboxUnavailable(f"cannot open folder {source.folder!r}: {_text(data)}")
        except (OSError, imaplib.IMAP4.error) as exc:
            self.close()
            raise MailboxUnavailable(f"{source.describe()} refused us: {exc}") from exc
        except MailboxUnavailable:
            self.close()
            raise

    def waiting(self) -> list[str]:
        typ, data = self.conn.uid("SEARCH", "ALL")
        if typ != "OK":
            raise MailboxUnavailable(f"search failed: {_text(data)}")
        return [uid.decode() for uid in (data[0] or b"").split()]

    def fetch(self, ref: str) -> bytes:
        typ, data = self.conn.uid("FETCH", ref, "(BODY.PEEK[])")  # PEEK: not marked read until handled
        for item in data if typ == "OK" else []:
            if isinstance(item, tuple):
                return bytes(item[1])
        raise ValueError(f"the server returned no message for UID {ref}: {_text(data)}")

    def move(self, ref: str, folder: str) -> None:
        if folder not in self.created:
            self.conn.create(_quoted(folder))  # "already exists" is a NO: fine
            self.created.add(folder)
        try:
            if self.conn.uid("MOVE", ref, _quoted(folder))[0] == "OK":  # RFC 6851
                return
        except imaplib.IMAP4.error:  # BAD: a server that does not know MOVE
            pass
        # a server without MOVE: copy, then delete the original
        typ, data = self.conn.uid("COPY", ref, _quoted(folder))
        if typ != "OK":
            raise MailboxUnavailable(f"cannot move UID {ref} to {folder!r}: {_text(data)}")
        self.conn.uid("STORE", ref, "+FLAGS.SILENT", r"(\Seen \Deleted)")
        self.conn.expunge()

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Sequence[object]) -> str:
    return " ".join(x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in data)[:200]
