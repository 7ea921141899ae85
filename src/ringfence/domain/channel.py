"""The layout of the signed channel, shared by the server that publishes it and the agent that reads it.

Desired state is published per **cohort**, a bounded set of delegated TUF roles (never one per host).
A host's cohort is a fixed hash bin of its id, so the server and the agent compute it alike and an
agent can tell a target meant for its own cohort from one that is not::

    cohorts.json                                  top-level targets: {"bins": N}
    cohort-NNN/desired.json                       per cohort: what each of its hosts should run
    cohort-NNN/<product>/<version>/<platform>/<file>   the artifacts those hosts may install
    cohort-NNN/remediation/<id>/<file>            signed remediation scripts for the cohort

TUF matches delegated path patterns segment by segment, so each cohort role is delegated the
patterns of :func:`cohort_patterns`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from ringfence.errors import FieldIssue, InputError, shown

__all__ = [
    "COHORTS_TARGET",
    "DEFAULT_BINS",
    "MANIFEST",
    "MAX_BINS",
    "NAME_PATTERN",
    "NAME_RULE",
    "artifact_path",
    "check_name",
    "cohort_of",
    "cohort_patterns",
    "cohort_role",
    "manifest_path",
    "remediation_path",
    "require_names",
    "role_index",
]

#: Top-level target that names the number of cohort bins.
COHORTS_TARGET = "cohorts.json"
#: Per-cohort manifest of desired state.
MANIFEST = "desired.json"
DEFAULT_BINS = 64
MAX_BINS = 4096
_ROLE = re.compile(r"^cohort-(\d{3,4})$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
#: The rule every name that becomes a segment of a channel path follows (products, versions, artifact
#: file names, plan names): checked when the object is created, so nothing is stored that the channel
#: could never publish.
#: The same rule as one regular expression (ECMA 262 and Python alike), for the API's schemas.
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$"
NAME_RULE = ("1 to 200 characters: letters, digits, '.', '_', '+' or '-', starting with a letter or digit "
             "(no spaces, slashes or '..')")


def check_name(field: str, value: str, location: str = "") -> list[FieldIssue]:
    """The problems with ``value`` as a channel name (empty when it is fine); pure, never raises."""
    if isinstance(value, str) and _SEGMENT.match(value) and ".." not in value:
        return []
    return [FieldIssue(field=field, message=f"is {shown(value)}, which the channel cannot publish", location=location,
                       expected=NAME_RULE)]


def require_names(names: Iterable[tuple[str, str]], location: str = "") -> None:
    """Raise one InputError listing every ``(field, value)`` pair that is not a valid channel name."""
    issues = [i for field, value in names for i in check_name(field, value, location)]
    if issues:
        raise InputError(f"{location or 'input'} rejected: names the channel cannot publish", issues)


def cohort_of(host_id: str, bins: int) -> int:
    """The cohort bin of a host: the first 8 bytes of SHA-256 of its id, modulo ``bins``."""
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be between 1 and {MAX_BINS}, not {bins}")
    return int.from_bytes(hashlib.sha256(host_id.encode("utf-8")).digest()[:8], "big") % bins


def cohort_role(index: int, bins: int) -> str:
    """The delegated role name of a cohort bin (``cohort-007``; four digits above 1000 bins)."""
    width = 3 if bins <= 1000 else 4
    return f"cohort-{index:0{width}d}"


def role_index(role: str) -> int | None:
    """The bin of a cohort role name, or None for any other role."""
    m = _ROLE.match(role)
    return int(m.group(1)) if m else None


def cohort_patterns(role: str) -> list[str]:
    """The path patterns delegated to a cohort role (one per depth used by the layout)."""
    return [f"{role}/*", f"{role}/*/*", f"{role}/*/*/*", f"{role}/*/*/*/*"]


def _segment(value: str, field: str) -> str:
    if not _SEGMENT.match(value):
        raise ValueError(f"{field} {shown(value)} cannot be a path segment: use letters, digits, '.', '_', '+' or '-'")
    return value


def manifest_path(role: str) -> str:
    """Target path of a cohort's desired-state manifest."""
    return f"{role}/{MANIFEST}"


def artifact_path(role: str, product: str, version: str, platform: str, name: str) -> str:
    """Target path of one artifact file as published to a cohort."""
    return "/".join((role, _segment(product, "product"), _segment(version, "version"),
                     _segment(platform, "platform"), _segment(name, "file name")))


def remediation_path(role: str, remediation_id: str, name: str) -> str:
    """Target path of a remediation script as published to a cohort."""
    return "/".join((role, "remediation", _segment(remediation_id, "remediation id"), _segment(name, "file name")))
