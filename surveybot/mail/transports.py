"""Mail transports behind one small interface: ``await send(outgoing)``, ``await close()``.

- ``maildir``: each message a file in a Maildir folder (the embedded default; open them with any mail
  reader, or ``cat``).
- ``smtp``: aiosmtplib, with a pool of connections reused across messages; STARTTLS, TLS and AUTH.

A failure is reported as :class:`TemporaryFailure` (try again later: 4xx, connection refused, timeout, and
a refusal of our login or sender, which is a setting to fix rather than a reason to drop the message) or
:class:`PermanentFailure` (5xx for this message; ``bounce`` when the mailbox does not exist, 5.1.x).
"""

from __future__ import annotations

import asyncio
import mailbox
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
from aiosmtplib.status import SMTPStatus

from surveybot.config import MailTarget
from surveybot.mail.message import Outgoing

_MAILBOX_STATUS = re.compile(r"\b5\.1\.\d{1,3}\b")
_LINE_ENDING = re.compile(rb"\r\n|\n|\r(?!\n)")


class TemporaryFailure(Exception):
    pass


class Withdrawn(Exception):
    """Raised by a ``before_data`` hook: this message is not to go after all (``outcome`` says why); nothing
    of it was delivered, and the connection stays good for the next one."""

    def __init__(self, outcome: tuple[Any, ...]) -> None:
        super().__init__(outcome)
        self.outcome = outcome


BeforeData = Callable[[], Awaitable[None]] | None


class PermanentFailure(Exception):
    def __init__(self, message: str, code: int = 0, bounce: bool = False) -> None:
        super().__init__(message)
        self.code, self.bounce = code, bounce


class MaildirTransport:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = mailbox.Maildir(str(path), create=True)

    async def send(self, message: Outgoing, before_data: BeforeData = None) -> None:
        if before_data is not None:
            await before_data()
        try:
            await asyncio.to_thread(self.folder.add, message.data)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to the Maildir folder: {exc}") from exc

    async def close(self) -> None:
        return None


class SmtpTransport:
    def __init__(self, target: MailTarget, connections: int = 4, timeout: float = 30.0) -> None:
        self.target, self.timeout = target, timeout
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot; the connection is opened when first needed

    def _client(self) -> aiosmtplib.SMTP:
        t = self.target
        return aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.tls == "tls",
            start_tls=True if t.tls == "starttls" else False,
            cert_bundle=str(t.cafile) if t.cafile else None,
            timeout=self.timeout,
        )

    async def send(self, message: Outgoing, before_data: BeforeData = None) -> None:
        """``before_data`` is awaited once the relay has accepted the envelope, just before the message goes
        (DATA); it may raise :class:`Withdrawn` to hold the message back."""
        if not message.smtputf8 and not (message.sender + message.recipient).isascii():
            # refused before any command: halfway through an envelope it would spoil the connection's next message
            odd = message.recipient if not message.recipient.isascii() else message.sender
            raise PermanentFailure(
                f"cannot send to {message.recipient!r}: the domain of {odd!r} cannot be written "
                "in ASCII (punycode); it is not a valid international domain name"
            )
        client = await self._idle.get()
        keep = None
        try:
            if client is None or not client.is_connected:
                client = self._client()
                await client.connect()
            await _transaction(client, message, before_data)
            keep = client
        except Withdrawn:
            keep = client if client is not None and client.is_connected else None
            raise
        except aiosmtplib.SMTPNotSupported as exc:
            if not (message.smtputf8 and "SMTPUTF8" in str(exc)):  # e.g. no STARTTLS: a setting to fix
                raise TemporaryFailure(
                    f"SMTP {self.target.host}:{self.target.port}: {exc}; check SURVEYBOT_MAIL_URL"
                ) from exc
            keep = client  # the relay is fine; only this address cannot go through it
            raise PermanentFailure(
                f"the relay {self.target.host} does not offer SMTPUTF8, which the address "
                f"{message.recipient} needs (a non-ASCII part before the @)"
            ) from exc
        except (UnicodeError, ValueError) as exc:  # an address the protocol cannot carry: this message only
            # (the connection is dropped, not reused: the envelope may be half-open on it)
            raise PermanentFailure(f"cannot send to {message.recipient!r}: {exc}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            keep = client
            refused = exc.recipients[0]
            raise _classified(refused.code, refused.message) from exc
        except (
            aiosmtplib.SMTPAuthenticationError,
            aiosmtplib.SMTPSenderRefused,
            aiosmtplib.SMTPConnectResponseError,
            aiosmtplib.SMTPHeloError,
        ) as exc:
            # the server refuses us, not this recipient: a setting to fix, so keep the message queued
            raise TemporaryFailure(
                f"SMTP {self.target.host}:{self.target.port} refused the connection or "
                f"sender ({exc.code} {exc.message}); check SURVEYBOT_MAIL_URL and "
                f"SURVEYBOT_FROM"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            keep = client
            raise _classified(exc.code, exc.message) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"SMTP {self.target.host}:{self.target.port}: {exc}") from exc
        finally:
            if keep is None and client is not None:
                client.close()
            self._idle.put_nowait(keep)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), 5)
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()


async def _transaction(client: aiosmtplib.SMTP, message: Outgoing, before_data: BeforeData = None) -> None:
    """One mail transaction, as ``SMTP.sendmail`` makes it for one recipient, without its second reading of
    the addresses, nor its two regular-expression passes over the whole message (line endings, then
    dot-stuffing), which cost more than the rest of the exchange: a built message is in wire form already."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    wire = _wire_form(message)
    options = []
    if message.smtputf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
        options.append("SMTPUTF8")
    if client.supports_extension("size"):
        options.insert(0, f"size={len(wire)}")  # RFC 1870: the size as DATA sends it, CRLF line endings
    encoding = "utf-8" if message.smtputf8 else "ascii"
    try:
        # MAIL and RCPT written out: both addresses were checked and normalised when the message was built, so
        # aiosmtplib's mail()/rcpt() parsing them again (email.utils.parseaddr) buys nothing; its command
        # layer still refuses control characters
        sent = await client.execute_command(
            b"MAIL", b"FROM:<" + message.sender.encode(encoding) + b">", *(o.encode("ascii") for o in options)
        )
        if sent.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(sent.code, sent.message, message.sender)
        sent = await client.execute_command(b"RCPT", b"TO:<" + message.recipient.encode(encoding) + b">")
        if sent.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            refused = aiosmtplib.SMTPRecipientRefused(sent.code, sent.message, message.recipient)
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        if before_data is not None:
            await before_data()
        await _data(client, wire)
    except Withdrawn:
        try:  # the envelope is reset for the connection's next message
            await client.rset()
        except Exception:  # whatever the reset meets, the message stays withdrawn; the connection is let go
            client.close()
        raise
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        try:  # the envelope is reset for the connection's next message
            await client.rset()
        except (ConnectionError, aiosmtplib.SMTPResponseException):
            pass
        raise


async def _data(client: aiosmtplib.SMTP, wire: bytes) -> None:
    """DATA (RFC 5321 4.1.1.4) with a message in wire form: a line that starts with a period gets a second one
    (every line but the first follows a CRLF, so one ``replace`` finds them all), then the end-of-data line."""
    started = await client.execute_command(b"DATA")
    if started.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(started.code, started.message)
    stuffed = wire.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(stuffed + b".\r\n")
        done = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()  # as SMTP.data does: the connection is in an unknown state
        raise
    if done.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(done.code, done.message)


def _wire_form(message: Outgoing) -> bytes:
    """The message with CRLF line endings only, ending with one (RFC 5321 2.3.8)."""
    if message.wire_form:
        return message.data
    data = _LINE_ENDING.sub(b"\r\n", message.data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _classified(code: int, text: str) -> Exception:
    message = f"{code} {text}".strip()
    if 400 <= code < 500:
        return TemporaryFailure(message)
    return PermanentFailure(message, code, bounce=bool(_MAILBOX_STATUS.search(text)))


class Transport(Protocol):
    """Where messages go: a relay, or a Maildir folder."""

    async def send(self, message: Outgoing, before_data: BeforeData = None) -> None: ...

    async def close(self) -> None: ...


def open_transport(target: MailTarget, connections: int = 4, timeout: float = 30.0) -> Transport:
    """``timeout`` bounds connecting, the greeting and each command (DATA included): a relay that stops
    answering is a temporary failure, and the message is tried again."""
    if target.kind == "maildir":
        assert target.path is not None  # a maildir:// setting always names its folder
        return MaildirTransport(target.path)
    return SmtpTransport(target, connections, timeout)
