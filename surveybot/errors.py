"""The exceptions surveybot raises for problems a user can fix.

    SurveybotError                 anything the CLI prints as one line and the web layer answers as 4xx
    ├── SettingError               a bad setting: names the key, the (masked) value and what is wrong
    ├── DatabaseError              the SQLite file cannot be opened or is newer than this program
    ├── NotFound                   a named thing (wave, contact, slot) does not exist
    ├── InvalidInput               an argument or field that cannot be used as given
    │   └── RowRejected            one row of an upload: row number, field and reason
    └── FileRefused                a whole upload refused (not text, empty, no e-mail column)

Programming errors stay ordinary exceptions: they are bugs, not messages.
"""

from __future__ import annotations

from typing import Any


class SurveybotError(Exception):
    """Base class: ``str(error)`` is a complete one-line message for the user."""


class SettingError(SurveybotError):
    def __init__(self, key: str, value: str | None, problem: str) -> None:
        self.key, self.value, self.problem = key, value, problem
        shown = "" if value is None else f"={value!r}"
        super().__init__(f"invalid setting {key}{shown}: {problem}")


class DatabaseError(SurveybotError):
    pass


class NotFound(SurveybotError):
    """``public`` is what a web client is told: the message itself may name the database file and what it
    holds, which helps at the command line and is nobody's business over HTTP."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or message


class InvalidInput(SurveybotError):
    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class RowRejected(InvalidInput):
    def __init__(self, row: int, field: str, reason: str) -> None:
        self.row, self.reason = row, reason
        super().__init__(f"row {row}, {field}: {reason}", field=field)

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.reason}


class FileRefused(SurveybotError):
    pass
