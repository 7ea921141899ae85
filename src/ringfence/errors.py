"""The one exception hierarchy of ringfence, grouped by who is at fault.

::

    RingfenceError
    ├── InputError              the caller sent something malformed (HTTP 422, CLI exit 2)
    ├── NotFoundError           the named thing does not exist (HTTP 404)
    ├── ConflictError           someone else changed it first; retry (HTTP 409)
    ├── AuthenticationError     no or unknown credential (HTTP 401)
    ├── PermissionDeniedError   credential lacks the role (HTTP 403)
    └── UnavailableError        a dependency (the database) is down (HTTP 503)

Every error carries a human sentence; :class:`InputError` also carries one
:class:`FieldIssue` per problem so that a caller can be told the file, row,
field and what was expected, all at once rather than one per attempt.
Foreign exceptions are wrapped with ``raise ... from e``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "FieldIssue",
    "InputError",
    "NotFoundError",
    "PermissionDeniedError",
    "RingfenceError",
    "UnavailableError",
    "describe",
    "shown",
]


def describe(value: object) -> str:
    """What a value from an input file is, in the file's words (never a Python type name).

    For messages such as ``plan: is empty (expected a mapping with name and waves)``: YAML's and
    JSON's kinds (empty, a list, a mapping, text, a number, true/false), with a short quote of scalars.
    """
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}" if value else "an empty text"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, Mapping):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return "a value of a kind this file cannot hold"


def shown(value: object, limit: int = 60) -> str:
    """A value from an input file quoted in the file's own syntax, for ``is {shown(v)}`` in a message.

    Text keeps its quotes (``'banana'``); empty, true/false and numbers read as YAML/JSON does; lists
    and mappings are written as JSON (``["signature", null]``), cut at ``limit`` characters, so a message
    never shows Python's ``None``, ``True`` or ``{'a': 1}``.
    """
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = repr(value)
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        return describe(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one field of the input.

    ``location`` says where the field is (``"hosts.csv row 17"``,
    ``"fleet.jsonl line 3"``, ``"query parameter"``); ``expected`` says what
    would have been accepted, so the message names the fix.
    """

    field: str
    message: str
    location: str = ""
    expected: str = ""

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" (expected {self.expected})" if self.expected else ""
        return f"{where}{self.field}: {self.message}{hint}"

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form used in problem responses."""
        out = {"field": self.field, "message": self.message}
        if self.location:
            out["location"] = self.location
        if self.expected:
            out["expected"] = self.expected
        return out


class RingfenceError(Exception):
    """Base of every error ringfence raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(RingfenceError):
    """The input is malformed; nothing was changed."""

    status = 422
    title = "Invalid input"

    def __init__(self, message: str, issues: list[FieldIssue] | None = None) -> None:
        self.issues: list[FieldIssue] = list(issues or [])
        #: The message without the issues appended (the CLI lists issues itself).
        self.headline = message
        if self.issues and message:
            shown = "; ".join(str(i) for i in self.issues[:5])
            more = f" (and {len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
            message = f"{message}: {shown}{more}"
        super().__init__(message)

    @classmethod
    def single(cls, field: str, message: str, *, expected: str = "", location: str = "") -> InputError:
        """An error about one field."""
        issue = FieldIssue(field=field, message=message, expected=expected, location=location)
        return cls("invalid input", [issue])


class NotFoundError(RingfenceError):
    """The named object does not exist."""

    status = 404
    title = "Not found"


class ConflictError(RingfenceError):
    """A concurrent writer changed the object first; reload and retry."""

    status = 409
    title = "Conflict"


class AuthenticationError(RingfenceError):
    """The request carries no valid credential."""

    status = 401
    title = "Authentication required"


class PermissionDeniedError(RingfenceError):
    """The credential is valid but its role does not allow the action."""

    status = 403
    title = "Permission denied"


class UnavailableError(RingfenceError):
    """A dependency the action needs is not reachable."""

    status = 503
    title = "Service unavailable"
