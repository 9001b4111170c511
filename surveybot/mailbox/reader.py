"""The mailbox reader ``serve`` runs (supervised, like the dispatcher): every few minutes it reads the bounce
and reply mailboxes, acts on each message, and moves it away.

Each message is first tied to the outbox row it answers: by the signed return path it was delivered to
(``To``/``Delivered-To``/``X-Original-To``: see ``mail/verp.py``), else by the ``Message-ID`` it quotes or
answers (every outbox row's is an HMAC of its key, stored when sent). Then, for a delivery report, per
recipient:

- ``failed`` with 5.1.x or 5.2.1: the address is suppressed for good (kind bounce, with the diagnostic) and
  the message counts as failed in its wave;
- any other ``failed`` (5.7.1 policy, mailbox full…): that message failed; after ``HOLD_AFTER`` failed
  messages to one address in one wave, that wave writes to it no more (no suppression);
- ``delayed``: logged, nothing else.

A report tied to no outbox row of this database (forged, or for another database) changes nothing. An
automatic reply is recorded on the contact; anything else is kept for the coordinator (``replies list``).
A message is handled in one transaction with the record that it was read, then moved: after a crash in
between, it is found again, recognised and only moved. A message that cannot be handled is logged and set
aside in ``surveybot-unreadable``; it never stops the others.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import imaplib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.db import retry_busy, transaction
from surveybot.mail import verp
from surveybot.mailbox import classify, dsn, store
from surveybot.mailbox.sources import PROCESSED, UNREADABLE, MailboxSource, MailboxUnavailable, Session, open_session
from surveybot.supervise import Stoppable
from surveybot.suppressions import suppress

log = logging.getLogger("surveybot.mailbox")
READ_EVERY_S = 120.0
BATCH = 500  # messages read from one mailbox per round; the rest wait for the next
_DELIVERED_TO = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


class MailboxReader(Stoppable):
    def __init__(
        self,
        db: Database,
        settings: Settings,
        secret: str,
        *,
        every: float = READ_EVERY_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__()
        self.db, self.secret, self.every, self.clock = db, secret, every, clock
        self.bounce_address = settings.bounce_address
        self.sources: list[tuple[str, MailboxSource]] = [
            (name, source)
            for name, source in (("bounce", settings.bounce_mailbox), ("reply", settings.reply_mailbox))
            if source is not None
        ]
        self._problems: dict[str, str] = {}

    async def run(self) -> None:
        while not self._stopping:
            await self.read_once()
            await self.nap(self.every)

    async def read_once(self) -> Counter[str]:
        """One round over every mailbox; returns how many messages had each outcome."""
        counts: Counter[str] = Counter()
        for name, source in self.sources:
            if self._stopping:
                break
            try:
                await self._read(name, source, counts)
            except (OSError, imaplib.IMAP4.error, MailboxUnavailable) as exc:
                self._unavailable(name, source, str(exc))
                continue
            if self._problems.pop(name, None) is not None:
                log.info("the %s mailbox (%s) can be read again", name, source.describe())
        return counts

    def _unavailable(self, name: str, source: MailboxSource, problem: str) -> None:
        if self._problems.get(name) != problem:  # once per problem, not every round
            log.warning("cannot read the %s mailbox (%s): %s; trying again later", name, source.describe(), problem)
        self._problems[name] = problem

    async def _read(self, name: str, source: MailboxSource, counts: Counter[str]) -> None:
        session: Session = await asyncio.to_thread(open_session, source)
        try:
            for ref in (await asyncio.to_thread(session.waiting))[:BATCH]:
                if self._stopping:
                    break
                raw = await asyncio.to_thread(session.fetch, ref)
                try:
                    outcome = await retry_busy(
                        lambda raw=raw: self.handle(name, raw),  # type: ignore[misc]
                        what="the mailbox reader",
                        stopping=lambda: self._stopping,
                    )
                except sqlite3.OperationalError:
                    raise  # the database, not the message: the supervisor reports and restarts
                except Exception:
                    log.exception(
                        "message %s of the %s mailbox could not be handled; set aside in %s", ref, name, UNREADABLE
                    )
                    await asyncio.to_thread(session.move, ref, UNREADABLE)
                    counts["unreadable"] += 1
                    continue
                await asyncio.to_thread(session.move, ref, PROCESSED)
                counts[outcome] += 1
        finally:
            await asyncio.to_thread(session.close)

    def handle(self, mailbox: str, raw: bytes) -> str:
        """Act on one message (once: a message already read is only recognised). Returns the outcome."""
        digest = hashlib.sha256(raw).hexdigest()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        kind = classify.kind_of(message)
        now = self.clock()
        with transaction(self.db):
            if store.already_read(self.db, digest):
                return "already_read"
            if kind == classify.DSN:
                outcome, row = self._report(message, now)
            else:
                outcome, row = self._reply(kind, message, digest, now)
            store.mark_read(self.db, digest, mailbox, outcome, row["id"] if row else None, now)
        return outcome

    def _report(self, message: EmailMessage, now: datetime) -> tuple[str, dict[str, Any] | None]:
        report = dsn.parse(message)
        assert report is not None
        row = self._tie(message, report.original_ids)
        if row is None:
            log.warning(
                "a delivery report (from %s, subject %r) names no message of this database; nothing done",
                report.reporting_mta or classify.header(message, "From"),
                classify.header(message, "Subject")[:80],
            )
            return "unmatched", None
        address = row["to_email"]
        recipients = report.recipients
        if len(recipients) > 1:  # a report about several recipients: only the one this row was sent to
            recipients = [r for r in recipients if address in (r.final_recipient, r.original_recipient)]
        outcome = "no_action"
        for recipient in recipients:
            severity = classify.severity(recipient)
            if severity == "delayed":
                log.info("message %s to %s delayed (%s): still being tried", row["id"], address, recipient.status)
                outcome = "delayed"
            elif severity in ("hard", "failed"):
                self._returned(row, severity, recipient, now)
                outcome = severity
        return outcome, row

    def _returned(self, row: dict[str, Any], severity: str, recipient: dsn.RecipientStatus, now: datetime) -> None:
        address = row["to_email"]
        store.record_return(self.db, row, severity, recipient.status, recipient.diagnostic, now)
        if severity == "hard":
            reason = f"{recipient.status} {recipient.diagnostic}".strip()[:200]
            if suppress(self.db, address, "bounce", reason, now)[1]:
                log.info("%s bounced (%s): suppressed", address, recipient.status)
            return
        log.info("message %s to %s returned (%s): that message failed", row["id"], address, recipient.status)
        if row["wave_id"] is not None:
            cancelled = store.hold_if_failing(self.db, row["wave_id"], address, now)
            if cancelled is not None:
                log.info(
                    "wave %s sends no more to %s after %d failed messages (%d queued cancelled)",
                    row["wave_id"],
                    address,
                    store.HOLD_AFTER,
                    cancelled,
                )

    def _reply(self, kind: str, message: EmailMessage, digest: str, now: datetime) -> tuple[str, dict[str, Any] | None]:
        answered = classify.header(message, "In-Reply-To") + " " + classify.header(message, "References")
        row = self._tie(message, dsn.message_ids(answered))
        sender = classify.header(message, "From")
        contact_id = row["contact_id"] if row else None
        if contact_id is None:
            try:
                contact_id = store.contact_by_email(self.db, normalise_email(parseaddr(sender)[1]))
            except InvalidAddress:
                pass
        store.record_reply(
            self.db,
            digest,
            kind,
            {
                "wave_id": row["wave_id"] if row else None,
                "contact_id": contact_id,
                "sender": sender[:300],
                "subject": classify.header(message, "Subject")[:300],
                "date": classify.header(message, "Date")[:100],
                "excerpt": classify.excerpt(message),
                "marker": classify.auto_reply_marker(message) if kind == classify.AUTO_REPLY else "",
            },
            now,
        )
        return kind, row

    def _tie(self, message: EmailMessage, message_ids: list[str]) -> dict[str, Any] | None:
        """The outbox row a message is about: by its signed return path, else by a Message-ID we sent."""
        if self.bounce_address:
            values = [str(v) for name in _DELIVERED_TO for v in (_all(message, name))]
            for _, address in getaddresses(values):
                outbox_id = verp.outbox_id_of(self.secret, self.bounce_address, address)
                if outbox_id is not None:
                    return store.outbox_row(self.db, outbox_id)  # signed but absent: another database's
        return store.outbox_row_by_message_id(self.db, message_ids) if message_ids else None


def _all(message: EmailMessage, name: str) -> list[Any]:
    try:
        return message.get_all(name) or []
    except (ValueError, TypeError, IndexError):  # a header the parser cannot make sense of
        return []
