"""Settings, read once from the environment and ``.env`` into a frozen object.

The environment wins over ``.env``. A bad value raises :class:`SettingError` naming the key, so start-up
stops with one line that says what to fix. Secrets are never echoed back in that line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from dotenv import dotenv_values

from surveybot.addresses import InvalidAddress, envelope, normalise_email
from surveybot.clock import parse_duration
from surveybot.errors import SettingError
from surveybot.mailbox.sources import MailboxSource, parse_mailbox_url
from surveybot.urlsettings import UrlSetting

DEFAULTS: dict[str, str] = {
    "SURVEYBOT_DB": "./surveybot.db",
    "SURVEYBOT_MAIL_URL": "maildir://./var/mail",
    "SURVEYBOT_FROM": "Survey team <survey@localhost>",
    "SURVEYBOT_BASE_URL": "http://127.0.0.1:8080",
    "SURVEYBOT_SEND_RATE": "10",
    "SURVEYBOT_SEND_CONCURRENCY": "4",
    "SURVEYBOT_RETRY_DELAY": "30s",
    "SURVEYBOT_MAX_ATTEMPTS": "8",
    "SURVEYMONKEY_BASE_URL": "https://api.surveymonkey.com",
    "SURVEYBOT_INTERVIEW_NUDGE_AFTER": "4d",
    "SURVEYBOT_INTERVIEW_EXPIRE_AFTER": "14d",
    "SURVEYBOT_FETCH_GRACE": "15m",
    "SURVEYBOT_FETCH_GIVE_UP": "48h",
    "SURVEYBOT_POLL_EVERY": "5m",
    "SURVEYBOT_NETWORK_TIMEOUT": "30s",
}

# Every setting surveybot reads, with a one-line meaning (the README's table is checked against it).
DOCUMENTED: dict[str, str] = {
    "SURVEYBOT_DB": "SQLite file",
    "SURVEYBOT_MAIL_URL": "smtp://user:pass@host:port (smtps:// for TLS; ?starttls=1; ?cafile=PATH) "
    "or a Maildir folder",
    "SURVEYBOT_FROM": "sender of every e-mail",
    "SURVEYBOT_FROM_ES": "sender of e-mail in Spanish, e.g. 'Equipo de la encuesta <survey@example.org>' "
    "(default: SURVEYBOT_FROM)",
    "SURVEYBOT_BASE_URL": "public URL used in links (unsubscribe, booking)",
    "SURVEYBOT_SECRET": "key for signed links; if unset, generated on first run into the file beside the database "
    "(SURVEYBOT_DB + '.secret', readable by its owner only), never into the database",
    "SURVEYBOT_SEND_RATE": "messages per second at most",
    "SURVEYBOT_TEMPLATES": "folder whose e-mail templates override the built-in ones of the same name",
    "SURVEYBOT_REPLY_TO": "address replies go to; also offered as a mailto: unsubscribe",
    "SURVEYBOT_SEND_CONCURRENCY": "SMTP connections used at once",
    "SURVEYBOT_RETRY_DELAY": "first wait before retrying a temporary failure; doubles each time",
    "SURVEYBOT_MAX_ATTEMPTS": "tries before a message is marked failed",
    "QUALTRICS_API_TOKEN": "Qualtrics API token, for fetching responses",
    "QUALTRICS_BASE_URL": "Qualtrics data-centre URL, e.g. https://fra1.qualtrics.com",
    "SURVEYMONKEY_API_KEY": "SurveyMonkey app's API key (client id), to check its webhooks' signatures",
    "SURVEYMONKEY_API_SECRET": "SurveyMonkey app's secret, to check its webhooks' signatures",
    "SURVEYMONKEY_ACCESS_TOKEN": "SurveyMonkey access token, for fetching responses",
    "SURVEYMONKEY_BASE_URL": "SurveyMonkey API URL",
    "LIMESURVEY_URL": "LimeSurvey RemoteControl (JSON-RPC) URL, "
    "e.g. https://survey.example.org/index.php/admin/remotecontrol",
    "LIMESURVEY_USER": "LimeSurvey user that enrols participants and exports responses",
    "LIMESURVEY_PASSWORD": "that LimeSurvey user's password",
    "SURVEYBOT_INTERVIEW_NUDGE_AFTER": "after an invitation to book an interview, when to remind those who have not",
    "SURVEYBOT_INTERVIEW_EXPIRE_AFTER": "after an invitation to book an interview, when the booking link expires",
    "SURVEYBOT_FETCH_GRACE": "a response the platform does not know yet is asked for again during this time "
    "after its event",
    "SURVEYBOT_FETCH_GIVE_UP": "a response that cannot be fetched is given up after this long "
    "(never before the wave closes)",
    "SURVEYBOT_POLL_EVERY": "how often serve pulls the responses of waves in poll mode (Qualtrics export API, "
    "LimeSurvey); waves taking webhooks are pulled once a day as a safety net",
    "SURVEYBOT_BOUNCE_ADDRESS": "envelope sender (return path) of every message, made personal per message "
    "(bounces+KEY@domain) so a late bounce names the message it is about",
    "SURVEYBOT_BOUNCE_MAILBOX": "where bounces arrive, read every few minutes: imaps://user:pass@host/INBOX "
    "(imap:// with STARTTLS; ?cafile=PATH) or maildir://PATH",
    "SURVEYBOT_REPLY_MAILBOX": "where replies arrive (SURVEYBOT_REPLY_TO's mailbox), "
    "read like SURVEYBOT_BOUNCE_MAILBOX",
    "SURVEYBOT_NETWORK_TIMEOUT": "longest wait for a mail relay's answer (connecting, greeting, each command) "
    "or a survey platform's API answer before trying again later",
    "SURVEYBOT_TRUSTED_PROXIES": "comma-separated addresses or CIDR ranges of reverse proxies whose "
    "X-Forwarded-For names the client (sign-in limits count per client); default none",
}


@dataclass(frozen=True)
class MailTarget:
    """Where e-mail goes: an SMTP server or a Maildir folder."""

    kind: str  # "smtp" | "maildir"
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: str = "none"  # "none" | "starttls" | "tls"
    cafile: Path | None = None  # certificates to trust for a private relay, beside the system's
    path: Path | None = None


@dataclass(frozen=True)
class Settings:
    db_path: Path
    mail: MailTarget
    mail_url: str = field(repr=False)
    sender: str
    sender_email: str
    sender_es: str | None
    base_url: str
    secret: str | None = field(repr=False)
    send_rate: float
    send_concurrency: int
    retry_delay: float
    max_attempts: int
    reply_to: str | None
    templates_dir: Path | None
    qualtrics_api_token: str | None = field(repr=False)
    qualtrics_base_url: str | None
    surveymonkey_api_key: str | None = field(default=None, repr=False)
    surveymonkey_api_secret: str | None = field(default=None, repr=False)
    surveymonkey_access_token: str | None = field(default=None, repr=False)
    surveymonkey_base_url: str = "https://api.surveymonkey.com"
    limesurvey_url: str | None = None
    limesurvey_user: str | None = None
    limesurvey_password: str | None = field(default=None, repr=False)
    interview_nudge_after: float = 4 * 86400
    interview_expire_after: float = 14 * 86400
    fetch_grace: float = 15 * 60
    fetch_give_up: float = 48 * 3600
    poll_every: float = 5 * 60
    bounce_address: str | None = None
    bounce_mailbox: MailboxSource | None = None
    reply_mailbox: MailboxSource | None = None
    network_timeout: float = 30.0
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Read settings from ``environ`` (default: the process environment) over the values in ``env_file``."""
    values: dict[str, str] = dict(DEFAULTS)
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k: v for k, v in (os.environ if environ is None else environ).items() if k in DOCUMENTED})

    def get(key: str) -> str | None:
        value = values.get(key)
        return value.strip() if value is not None and value.strip() != "" else None

    return Settings(
        db_path=_db_path(get("SURVEYBOT_DB") or DEFAULTS["SURVEYBOT_DB"]),
        mail=parse_mail_url(get("SURVEYBOT_MAIL_URL") or DEFAULTS["SURVEYBOT_MAIL_URL"]),
        mail_url=get("SURVEYBOT_MAIL_URL") or DEFAULTS["SURVEYBOT_MAIL_URL"],
        **_sender(get("SURVEYBOT_FROM") or DEFAULTS["SURVEYBOT_FROM"]),
        sender_es=_sender(raw, key="SURVEYBOT_FROM_ES")["sender"] if (raw := get("SURVEYBOT_FROM_ES")) else None,
        base_url=_http_url("SURVEYBOT_BASE_URL", get("SURVEYBOT_BASE_URL") or DEFAULTS["SURVEYBOT_BASE_URL"]),
        secret=_secret(get("SURVEYBOT_SECRET")),
        send_rate=_positive_number(
            "SURVEYBOT_SEND_RATE", get("SURVEYBOT_SEND_RATE") or DEFAULTS["SURVEYBOT_SEND_RATE"]
        ),
        send_concurrency=_whole_number("SURVEYBOT_SEND_CONCURRENCY", get("SURVEYBOT_SEND_CONCURRENCY"), 1, 64),
        retry_delay=_duration("SURVEYBOT_RETRY_DELAY", get("SURVEYBOT_RETRY_DELAY")),
        max_attempts=_whole_number("SURVEYBOT_MAX_ATTEMPTS", get("SURVEYBOT_MAX_ATTEMPTS"), 1, 100),
        reply_to=_reply_to(get("SURVEYBOT_REPLY_TO")),
        templates_dir=_folder("SURVEYBOT_TEMPLATES", get("SURVEYBOT_TEMPLATES")),
        qualtrics_api_token=get("QUALTRICS_API_TOKEN"),
        qualtrics_base_url=(_http_url("QUALTRICS_BASE_URL", raw_q) if (raw_q := get("QUALTRICS_BASE_URL")) else None),
        surveymonkey_api_key=get("SURVEYMONKEY_API_KEY"),
        surveymonkey_api_secret=get("SURVEYMONKEY_API_SECRET"),
        surveymonkey_access_token=get("SURVEYMONKEY_ACCESS_TOKEN"),
        surveymonkey_base_url=_http_url(
            "SURVEYMONKEY_BASE_URL", get("SURVEYMONKEY_BASE_URL") or DEFAULTS["SURVEYMONKEY_BASE_URL"]
        ),
        limesurvey_url=_http_url("LIMESURVEY_URL", raw_ls) if (raw_ls := get("LIMESURVEY_URL")) else None,
        limesurvey_user=get("LIMESURVEY_USER"),
        limesurvey_password=get("LIMESURVEY_PASSWORD"),
        interview_nudge_after=_duration("SURVEYBOT_INTERVIEW_NUDGE_AFTER", get("SURVEYBOT_INTERVIEW_NUDGE_AFTER")),
        interview_expire_after=_duration("SURVEYBOT_INTERVIEW_EXPIRE_AFTER", get("SURVEYBOT_INTERVIEW_EXPIRE_AFTER")),
        fetch_grace=_duration("SURVEYBOT_FETCH_GRACE", get("SURVEYBOT_FETCH_GRACE")),
        poll_every=_positive_duration("SURVEYBOT_POLL_EVERY", get("SURVEYBOT_POLL_EVERY")),
        fetch_give_up=_duration("SURVEYBOT_FETCH_GIVE_UP", get("SURVEYBOT_FETCH_GIVE_UP")),
        bounce_address=_bounce_address(get("SURVEYBOT_BOUNCE_ADDRESS")),
        bounce_mailbox=_mailbox("SURVEYBOT_BOUNCE_MAILBOX", get("SURVEYBOT_BOUNCE_MAILBOX")),
        reply_mailbox=_mailbox("SURVEYBOT_REPLY_MAILBOX", get("SURVEYBOT_REPLY_MAILBOX")),
        network_timeout=_positive_duration("SURVEYBOT_NETWORK_TIMEOUT", get("SURVEYBOT_NETWORK_TIMEOUT")),
        trusted_proxies=_networks("SURVEYBOT_TRUSTED_PROXIES", get("SURVEYBOT_TRUSTED_PROXIES")),
    )


def _db_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.is_dir():
        raise SettingError("SURVEYBOT_DB", raw, "is a folder; give the path of a SQLite file")
    if not path.parent.is_dir():
        raise SettingError("SURVEYBOT_DB", raw, f"folder {str(path.parent)!r} does not exist")
    return path


def parse_mail_url(raw: str) -> MailTarget:
    if "://" not in raw:  # a bare path is a Maildir folder
        return MailTarget(kind="maildir", path=Path(raw).expanduser())
    url = UrlSetting("SURVEYBOT_MAIL_URL", raw)
    if url.scheme == "maildir":
        return MailTarget(kind="maildir", path=url.folder("maildir://./var/mail"))
    if url.scheme not in ("smtp", "smtps"):
        raise url.refuse("must start with smtp://, smtps:// or maildir://")
    parts = url.parts
    if not parts.hostname:
        raise url.refuse("names no host, e.g. smtp://user:pass@mail.example.org:587")
    starttls = url.flag("starttls")
    return MailTarget(
        kind="smtp",
        host=parts.hostname,
        port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls="tls" if url.scheme == "smtps" else ("starttls" if starttls else "none"),
        cafile=url.cafile(),
    )


def _sender(raw: str, key: str = "SURVEYBOT_FROM") -> dict[str, Any]:
    if "\r" in raw or "\n" in raw:
        raise SettingError(key, raw, "must be on one line")
    name, address = parseaddr(raw)
    try:
        email = normalise_email(address, allow_local_domain=True)
    except InvalidAddress as exc:
        raise SettingError(
            key, raw, f"needs an e-mail address, as in 'Survey team <survey@example.org>' ({exc})"
        ) from None
    email, utf8 = envelope(email)  # an international domain as punycode: the form every message carries
    if utf8:
        raise SettingError(
            key,
            raw,
            "the part before the @ must be ASCII (otherwise only relays offering SMTPUTF8 could carry any message)",
        )
    return {"sender": formataddr((name, email)) if name else email, "sender_email": email}


def _http_url(key: str, raw: str) -> str:
    url = UrlSetting(key, raw)
    if url.scheme not in ("http", "https") or not url.parts.hostname:
        raise url.refuse("must be an http:// or https:// URL with a host")
    return raw.rstrip("/")


def _secret(raw: str | None) -> str | None:
    if raw is not None and len(raw) < 16:
        raise SettingError("SURVEYBOT_SECRET", None, "must be at least 16 characters (use a long random string)")
    return raw


def _positive_number(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(key, raw, "must be a number") from None
    if not value > 0 or value == float("inf"):
        raise SettingError(key, raw, "must be a number greater than 0")
    return value


def _whole_number(key: str, raw: str | None, low: int, high: int) -> int:
    raw = raw or DEFAULTS[key]
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingError(key, raw, f"must be a whole number from {low} to {high}")
    return int(raw)


def _positive_duration(key: str, raw: str | None) -> float:
    seconds = _duration(key, raw)
    if seconds <= 0:  # a 0s timeout fails every connection at once; a 0s poll pulls without pause
        raise SettingError(key, raw, "must be longer than 0s, e.g. 30s")
    return seconds


def _duration(key: str, raw: str | None) -> float:
    raw = raw or DEFAULTS[key]
    try:
        return parse_duration(raw).total_seconds()
    except ValueError as exc:
        raise SettingError(key, raw, str(exc).replace(repr(raw) + " ", "")) from None


def _networks(key: str, raw: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses or CIDR ranges (``10.0.0.5, 192.168.0.0/24, ::1``)."""
    found = []
    for part in (raw or "").split(","):
        if part.strip():
            try:
                found.append(ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingError(key, raw, f"{part.strip()!r} is not an IP address or CIDR range") from None
    return tuple(found)


def _reply_to(raw: str | None) -> str | None:
    if raw is None:
        return None
    fields = _sender(raw, key="SURVEYBOT_REPLY_TO")
    return str(fields["sender"])


def _bounce_address(raw: str | None) -> str | None:
    """A bare address: each message's return path is its local part + a signed key, at its domain."""
    key = "SURVEYBOT_BOUNCE_ADDRESS"
    if raw is None:
        return None
    if "<" in raw or " " in raw:
        raise SettingError(key, raw, "must be a bare address such as bounces@example.org, without a name")
    try:
        email = str(_sender(raw, key=key)["sender_email"])
    except SettingError:
        raise SettingError(key, raw, "must be an e-mail address such as bounces@example.org") from None
    if "+" in email.partition("@")[0]:
        raise SettingError(key, raw, "must have no '+' before the @: each message adds its own +KEY there")
    return email


def _mailbox(key: str, raw: str | None) -> MailboxSource | None:
    return parse_mailbox_url(key, raw) if raw is not None else None


def _folder(key: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise SettingError(key, raw, "is not an existing folder")
    return path
