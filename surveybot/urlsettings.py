"""Settings written as URLs (the mail relay, the bounce and reply mailboxes, the platforms' API addresses):
the pieces every one of them checks the same way, each refusal a :class:`SettingError` naming the setting and
the value with its password masked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from surveybot.errors import SettingError

YES, NO = ("1", "true", "yes"), ("0", "false", "no")
_USERINFO = re.compile(r"(://[^/@:]*:)[^@/]*@")


def masked(url: str) -> str:
    """``url`` with the password between ``:`` and ``@`` shown as ``***`` (for messages and logs)."""
    try:
        password = urlsplit(url).password if "://" in url else None
    except ValueError:  # a URL urllib cannot split may still carry a password: mask what looks like one
        return _USERINFO.sub(r"\1***@", url, count=1)
    return url.replace(":" + password + "@", ":***@", 1) if password else url


class UrlSetting:
    """One URL-shaped setting, split once; a URL Python cannot split (``smtp://[host``) is refused here."""

    def __init__(self, key: str, raw: str) -> None:
        self.key, self.raw, self.shown = key, raw, masked(raw)
        try:
            self.parts: SplitResult = urlsplit(raw)
            self.parts.port  # noqa: B018  # reading it is how urllib checks the port
        except ValueError as exc:
            reason = "port must be a number from 1 to 65535" if "port" in str(exc).lower() else f"is not a URL: {exc}"
            raise self.refuse(reason) from None
        self.scheme = self.parts.scheme.lower()
        self.query = {k.lower(): v[-1] for k, v in parse_qs(self.parts.query).items()}

    def refuse(self, reason: str) -> SettingError:
        return SettingError(self.key, self.shown, reason)

    @property
    def port(self) -> int | None:
        return self.parts.port

    def folder(self, example: str) -> Path:
        """The folder of a ``maildir://`` URL."""
        path = unquote(self.parts.netloc + self.parts.path)
        if not path:
            raise self.refuse(f"maildir:// needs a folder, e.g. {example}")
        return Path(path).expanduser()

    def flag(self, name: str) -> bool:
        """A yes/no option of the query string (``?starttls=1``); absent is no."""
        value = self.query.get(name, "0").lower()
        if value not in YES + NO:
            raise self.refuse(f"{name} must be 1 or 0")
        return value in YES

    def cafile(self) -> Path | None:
        """The ``?cafile=`` option: a certificate bundle that must exist."""
        cafile = Path(unquote(self.query["cafile"])) if self.query.get("cafile") else None
        if cafile is not None and not cafile.is_file():
            raise self.refuse(f"cafile {str(cafile)!r} is not a file")
        return cafile
