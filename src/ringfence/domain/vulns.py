"""Vulnerability advisories and the rules that decide whether a component is affected.

This module is pure: it takes data, never opens files, never reads the clock.
Parsing OSV documents lives in :mod:`ringfence.adapters.vuln.osv`.

Rules
=====

1. **Matching follows the OSV schema's ``IsVulnerable`` pseudo-code exactly**
   (https://ossf.github.io/osv-schema/#evaluation).  A version is affected by
   one ``affected`` entry when it equals one of the entry's ``versions``
   (string equality, as the schema says) *or* lies in any one of its ranges.
   A range is evaluated like this:

   * if the range has ``limit`` events, the version must be below at least
     one of them, otherwise the range does not apply;
   * the events are sorted by version in the range's ordering (``introduced:
     "0"`` sorts before every version), then walked in order:
     ``introduced`` at or below the version makes it vulnerable, ``fixed`` at
     or below the version makes it not vulnerable, ``last_affected`` strictly
     below the version makes it not vulnerable.  The state after the walk is
     the answer.  Several introduced/fixed pairs in one range (disjoint
     intervals, in any order in the record) are therefore handled by the sort.

   Several ranges per entry and several entries per package are OR-ed.
2. **Orderings.**  ``SEMVER`` ranges always use Semantic Versioning order.
   ``ECOSYSTEM`` ranges use the ecosystem's own order (see
   :data:`ECOSYSTEM_ORDERING`); the ecosystem string's ``:release`` suffix
   (``Debian:12``, ``Alpine:v3.18``) is ignored for the choice of ordering.
   Where univers disagrees with the reference vectors a small wrapper fixes
   it; each wrapper says which vectors it fixes.
3. **Match results have three values.**  ``GIT`` ranges name commits, not
   versions, so they cannot be evaluated against a version string: an entry
   whose only claim is a ``GIT`` range yields :attr:`MatchResult.NOT_EVALUATED`.
   The same result is given when the version (or an event) cannot be parsed
   in the ecosystem's ordering, or when the ecosystem has no known ordering.
   A gate must treat *not evaluated* as inconclusive, never as clean.
   When an entry has an explicit ``versions`` list, its ``GIT`` ranges are
   taken as already expanded into that list (osv.dev does this), so a version
   outside the list is *not affected* rather than *not evaluated*.
4. **Names.**  A component is keyed by ``(ecosystem, normalised name)``;
   purl first (mapped to the OSV ecosystem with :data:`PURL_TYPE_TO_ECOSYSTEM`),
   CPE never.  PyPI names follow PEP 503; npm scopes are kept (``@scope/name``);
   Maven names are ``group:artifact``; NuGet, Packagist and crates.io names are
   case-insensitive.  A purl without a version takes the component's version.
5. **Withdrawn advisories** are kept (so they can be shown) but never match.
6. **Ecosystem releases.**  A component whose ecosystem carries a release
   (``Debian:12``) matches only entries for that release or for the bare
   ecosystem; a component with a bare ecosystem (``Debian``) matches entries
   of every release.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from packageurl import PackageURL

# univers ships py.typed; its maven and rpm helper modules are untyped, so calls into them
# carry a narrow no-untyped-call ignore.
from univers import maven as _univers_maven
from univers import rpm as _univers_rpm
from univers import versions as _uv

from ringfence.errors import shown

__all__ = [
    "ECOSYSTEM_ORDERING",
    "PURL_TYPE_TO_ECOSYSTEM",
    "Advisory",
    "AdvisoryIndex",
    "AffectedPackage",
    "Component",
    "EventKind",
    "Match",
    "MatchResult",
    "Range",
    "RangeType",
    "Severity",
    "SeverityLabel",
    "VersionMatch",
    "VersionOrderError",
    "base_ecosystem",
    "compare_versions",
    "component_from_purl",
    "fixed_in",
    "go_release_version",
    "is_vulnerable",
    "match_version",
    "normalize_name",
    "ordering_for",
    "package_key",
    "parse_purl",
    "unorderable_events",
]


# --------------------------------------------------------------------------- model


class RangeType(enum.StrEnum):
    """How the events of a range are ordered."""

    SEMVER = "SEMVER"
    ECOSYSTEM = "ECOSYSTEM"
    GIT = "GIT"


class EventKind(enum.StrEnum):
    """The four OSV range events."""

    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


class SeverityLabel(enum.StrEnum):
    """Qualitative severity, ordered from ``NONE`` to ``CRITICAL``; ``UNKNOWN`` when no data."""

    UNKNOWN = "unknown"
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for unknown, then 1..5 from none to critical; compare ranks to apply a policy threshold."""
        return list(SeverityLabel).index(self)


class MatchResult(enum.StrEnum):
    """The outcome of evaluating one version against one affected entry."""

    AFFECTED = "affected"
    NOT_AFFECTED = "not affected"
    NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True, slots=True)
class Severity:
    """A severity with the label, the numeric score and the vector it came from (any may be missing)."""

    label: SeverityLabel = SeverityLabel.UNKNOWN
    score: float | None = None
    vector: str | None = None
    #: Where it came from: ``CVSS_V3``, ``CVSS_V4``, ``database_specific``, ...
    source: str = ""


@dataclass(frozen=True, slots=True)
class Range:
    """One OSV range: a type and its events as ``(kind, version)`` pairs, in record order."""

    type: RangeType
    events: tuple[tuple[EventKind, str], ...]
    repo: str | None = None


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """One ``affected`` entry: a package and the versions of it that are affected."""

    ecosystem: str
    name: str
    purl: str | None = None
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Advisory:
    """One vulnerability (possibly merged from several aliased records)."""

    id: str
    modified: datetime
    aliases: tuple[str, ...] = ()
    summary: str = ""
    published: datetime | None = None
    withdrawn: datetime | None = None
    severity: Severity = field(default_factory=Severity)
    affected: tuple[AffectedPackage, ...] = ()
    #: Where the record was read from (file, zip member); for messages.
    source: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        """The id followed by every alias."""
        return (self.id, *self.aliases)


@dataclass(frozen=True, slots=True)
class Component:
    """A piece of software found in an SBOM or on a host."""

    name: str
    version: str
    ecosystem: str = ""
    purl: str | None = None


@dataclass(frozen=True, slots=True)
class VersionMatch:
    """A match result and the sentence that explains it."""

    result: MatchResult
    reason: str


@dataclass(frozen=True, slots=True)
class Match:
    """A component that an advisory affects (or that could not be evaluated against it)."""

    advisory_id: str
    component: Component
    result: MatchResult
    reason: str
    severity: Severity = field(default_factory=Severity)
    aliases: tuple[str, ...] = ()


# --------------------------------------------------------------------------- orderings


class VersionOrderError(ValueError):
    """A version string cannot be placed in an ecosystem's ordering."""


#: A function from a version string to a key that supports ``<`` and ``==``.
KeyFunc = Callable[[str], Any]


def _univers_key(cls: type[_uv.Version], what: str) -> KeyFunc:
    """Order by a univers version class; ``what`` names its versions in the ecosystem's words (for messages)."""
    def key(version: str) -> Any:
        try:
            return cls(version)
        except Exception as e:  # univers raises InvalidVersion, ValueError, TypeError, ...
            raise VersionOrderError(f"{shown(version)} is not {what}") from e

    return key


def _cmp_key(parse: Callable[[str], Any], cmp: Callable[[Any, Any], int]) -> KeyFunc:
    wrapper = functools.cmp_to_key(cmp)

    def key(version: str) -> Any:
        return wrapper(parse(version))

    return key


# -- SemVer: univers SemverVersion, with a lenient fallback for "v1.2" style bounds.

_SEMVER_LOOSE = re.compile(r"^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$")


def _semver_key(version: str) -> Any:
    with contextlib.suppress(Exception):  # retried below with a normalised form
        return _uv.SemverVersion(version)
    m = _SEMVER_LOOSE.match(version.strip())
    if m:
        rest = m.group(4)
        candidate = f"{m.group(1)}.{m.group(2) or 0}.{m.group(3) or 0}{rest}"
        try:
            return _uv.SemverVersion(candidate)
        except Exception as e:
            raise VersionOrderError(f"{shown(version)} is not a SemVer version") from e
    raise VersionOrderError(f"{shown(version)} is not a SemVer version")


# -- Pub: SemVer precedence, then build metadata, which Dart's pub_semver orders
#    ("1.0.0 < 1.0.0+build", "1.2.3+1 < 1.2.3+a"; pub-versions.txt): no build first,
#    then identifier by identifier, numbers before words, like pre-release identifiers.


def _pub_parse(version: str) -> tuple[Any, tuple[tuple[int, int, str], ...]]:
    main, _, build = version.partition("+")
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in build.split(".")) if build else ()
    return (_semver_key(main), idents)


def _pub_cmp(a: tuple[Any, tuple[Any, ...]], b: tuple[Any, tuple[Any, ...]]) -> int:
    c = _key_cmp(a[0], b[0])
    if c:
        return c
    return (a[1] > b[1]) - (a[1] < b[1])


# -- PyPI: univers PypiVersion (PEP 440); versions that are not PEP 440 are ordered like
#    setuptools' legacy versions, before every PEP 440 version (pypi-versions*.txt:
#    "0.1-bulbasaur < 0.1-charmander", "-class.-jw.util.version.version-pre < 1.0").

_PYPI_LEGACY_PART = re.compile(r"(\d+|[a-z]+|\.|-)")
_PYPI_LEGACY_MAP: Final = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _pypi_legacy_parts(version: str) -> str:
    parts: list[str] = []
    for raw in [*_PYPI_LEGACY_PART.findall(version.lower()), "final"]:
        if raw in ("", "."):
            continue
        part = _PYPI_LEGACY_MAP.get(raw, raw)
        part = part.zfill(8) if part[:1].isdigit() else "*" + part
        if part.startswith("*"):
            if part < "*final":
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(part)
    return "".join(parts)


def _pypi_parse(version: str) -> tuple[int, Any]:
    try:
        return (1, _uv.PypiVersion(version))
    except Exception:
        return (0, _pypi_legacy_parts(version))


def _pypi_cmp(a: tuple[int, Any], b: tuple[int, Any]) -> int:
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    return _key_cmp(a[1], b[1])


# -- Maven: univers' port of ComparableVersion predates Maven 3.9, which added the
#    "release" alias and drops null qualifiers between hyphens (maven-versions.txt:
#    "1release = 1", "4.1.0 = 4.1.0.RELEASE", "1-1 = 1-ga-1"). univers' MavenVersion
#    also strips a leading "v", which Maven does not ("v0.0.5 < 0.0.1.beta6").

_MAVEN_NULL_QUALIFIER = re.compile(r"-(?:ga|final|release)(?=-)", re.IGNORECASE)


class _MavenVersion(_univers_maven.Version):  # univers.maven is untyped
    def _parse_buffer(self, buf: str, followed_by_digit: bool = False) -> Any:
        value = super()._parse_buffer(buf, followed_by_digit)  # type: ignore[no-untyped-call]
        return "" if value == "release" else value


def _maven_key(version: str) -> Any:
    try:
        return _MavenVersion(_MAVEN_NULL_QUALIFIER.sub("", version))  # type: ignore[no-untyped-call]
    except Exception as e:
        raise VersionOrderError(f"{shown(version)} is not a Maven version") from e


# -- RubyGems: Gem::Version splits "1beta" into [1, "beta"] like "1.beta"; univers rejects it
#    (rubygems-versions.txt: "1 > 1beta").

_GEM_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[A-Za-z])")


def _rubygems_key(version: str) -> Any:
    with contextlib.suppress(Exception):  # retried below with segments separated
        return _uv.RubygemsVersion(version)
    try:
        return _uv.RubygemsVersion(_GEM_DIGIT_LETTER.sub(".", version))
    except Exception as e:
        raise VersionOrderError(f"{shown(version)} is not a RubyGems version") from e


# -- Packagist: univers' ComposerVersion is SemVer-based and drops a fourth component
#    ("6.3.0.0 < 6.3.0.1" compares equal) and mis-orders "dev"/"pl"/"RC" (731 of 10,630
#    generated vectors). Composer compares with PHP's version_compare after canonicalising;
#    this is that algorithm (as in osv-scalibr), not a new ordering.

_PHP_SPECIAL_ORDER: Final = ("dev", "a", "b", "rc", "#", "p")


def _php_canonical(version: str) -> tuple[str, ...]:
    v = version.removeprefix("v").removeprefix("V")
    v = re.sub(r"[-_+]", ".", v)
    v = re.sub(r"([^\d.])(\d)", r"\1.\2", v)
    v = re.sub(r"(\d)([^\d.])", r"\1.\2", v)
    return tuple(v.split("."))


def _php_weight(part: str) -> int:
    if part.startswith("RC"):
        return 3
    for i, special in enumerate(_PHP_SPECIAL_ORDER):
        if part.startswith(special):
            return i
    return 0


def _php_cmp(a: Sequence[str], b: Sequence[str]) -> int:
    for x, y in zip(a, b, strict=False):
        xn, yn = x.isdigit(), y.isdigit()
        if xn and yn:
            c = (int(x) > int(y)) - (int(x) < int(y))
        elif not xn and not yn:
            c = _php_weight(x) - _php_weight(y)
        elif xn:
            c = _php_weight("#") - _php_weight(y)
        else:
            c = _php_weight(x) - _php_weight("#")
        if c:
            return 1 if c > 0 else -1
    if len(a) > len(b):
        return 1 if a[len(b)].isdigit() else _php_cmp(a[len(b) :], ("#",))
    if len(a) < len(b):
        return -1 if b[len(a)].isdigit() else _php_cmp(("#",), b[len(a) :])
    return 0


# -- RPM (Red Hat, SUSE, openSUSE, AlmaLinux, Rocky, ...): univers' RpmVersion parses a
#    non-numeric "epoch" as an int and fails ("a:1 < b:1"), and treats "1-" like "1"
#    (redhat-versions.txt). The split below is rpm's own: an epoch only when the part before
#    the first colon is all digits; the release keeps its "-" so that "1-" > "1". Each part
#    is compared with univers' rpmvercmp.


def _rpm_parse(version: str) -> tuple[str, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep or not epoch.isdigit():
        epoch, rest = "", version
    ver, dash, rel = rest.partition("-")
    return (epoch or "0", ver, dash + rel if dash else "")


def _rpm_part_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    if not a:
        return -1
    if not b:
        return 1
    return int(_univers_rpm.vercmp(a, b))  # type: ignore[no-untyped-call]


def _rpm_cmp(a: tuple[str, str, str], b: tuple[str, str, str]) -> int:
    for x, y in zip(a, b, strict=True):
        c = _rpm_part_cmp(x, y)
        if c:
            return 1 if c > 0 else -1
    return 0


_SEMVER: Final = _semver_key
_ORDERINGS: Final[dict[str, KeyFunc]] = {
    "semver": _SEMVER,
    "pub": _cmp_key(_pub_parse, _pub_cmp),
    "pypi": _cmp_key(_pypi_parse, _pypi_cmp),
    "maven": _maven_key,
    "rubygems": _rubygems_key,
    "nuget": _univers_key(_uv.NugetVersion, "a NuGet version (e.g. 4.1.0 or 4.1.0-beta)"),
    "packagist": _cmp_key(_php_canonical, _php_cmp),
    "debian": _univers_key(_uv.DebianVersion, "a Debian version (e.g. 1:2.30-3+deb11u1)"),
    "alpine": _univers_key(_uv.AlpineLinuxVersion, "an Alpine version (e.g. 1.36.1-r2)"),
    "rpm": _cmp_key(_rpm_parse, _rpm_cmp),
    "go": _univers_key(_uv.GolangVersion, "a Go module version (e.g. v1.2.3)"),
}

#: OSV ecosystem (without ``:release``) → name of the ordering used for its ECOSYSTEM ranges.
ECOSYSTEM_ORDERING: Final[Mapping[str, str]] = {
    "PyPI": "pypi",
    "npm": "semver",
    "Maven": "maven",
    "Go": "go",
    "crates.io": "semver",
    "Hex": "semver",
    "Pub": "pub",
    "RubyGems": "rubygems",
    "NuGet": "nuget",
    "Packagist": "packagist",
    "Debian": "debian",
    "Ubuntu": "debian",
    "Alpine": "alpine",
    "Wolfi": "alpine",
    "Chainguard": "alpine",
    "Red Hat": "rpm",
    "SUSE": "rpm",
    "openSUSE": "rpm",
    "AlmaLinux": "rpm",
    "Rocky Linux": "rpm",
    "Mageia": "rpm",
    "openEuler": "rpm",
    "Photon OS": "rpm",
}

#: purl type → OSV ecosystem. Distribution types are refined by the purl namespace.
PURL_TYPE_TO_ECOSYSTEM: Final[Mapping[str, str]] = {
    "pypi": "PyPI",
    "npm": "npm",
    "maven": "Maven",
    "golang": "Go",
    "cargo": "crates.io",
    "hex": "Hex",
    "pub": "Pub",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
    "cran": "CRAN",
    "hackage": "Hackage",
    "deb": "Debian",
    "apk": "Alpine",
    "rpm": "Red Hat",
}

_DISTRO_NAMESPACES: Final[Mapping[str, str]] = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "alpine": "Alpine",
    "wolfi": "Wolfi",
    "chainguard": "Chainguard",
    "redhat": "Red Hat",
    "suse": "SUSE",
    "opensuse": "openSUSE",
    "almalinux": "AlmaLinux",
    "rocky-linux": "Rocky Linux",
    "rocky": "Rocky Linux",
    "mageia": "Mageia",
    "openeuler": "openEuler",
}


def base_ecosystem(ecosystem: str) -> str:
    """The ecosystem without its ``:release`` suffix (``"Debian:12"`` → ``"Debian"``)."""
    return ecosystem.split(":", 1)[0].strip()


def ordering_for(range_type: RangeType | str, ecosystem: str) -> str | None:
    """Name of the ordering for a range of ``range_type`` in ``ecosystem``; None when unknown or GIT."""
    if range_type == RangeType.SEMVER:
        return "semver"
    if range_type == RangeType.GIT:
        return None
    return ECOSYSTEM_ORDERING.get(base_ecosystem(ecosystem))


@functools.lru_cache(maxsize=262_144)
def _key(ordering: str, version: str) -> Any:
    return _ORDERINGS[ordering](version)


def compare_versions(ordering: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b`` in the named ordering.

    Raises :class:`VersionOrderError` when either version cannot be parsed.
    """
    return _key_cmp(_key(ordering, a), _key(ordering, b))


def _key_cmp(ka: Any, kb: Any) -> int:
    # Only "<" is trusted: univers' "==" also compares SemVer build metadata and the
    # spelling of a Debian revision ("0.0.0" vs "0.0.0-00"), which the orderings ignore.
    if ka < kb:
        return -1
    return 1 if kb < ka else 0


# --------------------------------------------------------------------------- evaluation


def unorderable_events(advisory: Advisory) -> list[str]:
    """Why some of an advisory's range events cannot be ordered (``introduced: banana`` in a SEMVER range).

    Empty when every event of every range with a known ordering parses. Such a range is never evaluated
    (components it names are reported *not evaluated*), so an import reports these instead of taking
    them silently.
    """
    out: list[str] = []
    for aff in advisory.affected:
        for rng in aff.ranges:
            ordering = ordering_for(rng.type, aff.ecosystem)
            if ordering is None:
                continue
            for kind, value in rng.events:
                if _is_zero(kind, value) or (kind == EventKind.LIMIT and value == "*"):
                    continue
                try:
                    _key(ordering, value)
                except VersionOrderError as e:
                    out.append(f"{aff.ecosystem}/{aff.name} {rng.type.value} range, {kind.value}: {e}")
    return out


def _is_zero(kind: EventKind, value: str) -> bool:
    return kind == EventKind.INTRODUCED and value == "0"


@functools.lru_cache(maxsize=65_536)
def _sorted_events(ordering: str, events: tuple[tuple[EventKind, str], ...]) -> tuple[tuple[EventKind, str, Any], ...]:
    """Events with their keys, sorted by version; ``introduced: "0"`` first. Stable for ties."""
    keyed: list[tuple[EventKind, str, Any]] = [(k, v, None if _is_zero(k, v) else _key(ordering, v)) for k, v in events]
    zeros = [e for e in keyed if e[2] is None]
    rest = sorted((e for e in keyed if e[2] is not None), key=functools.cmp_to_key(_event_cmp))
    return (*zeros, *rest)


def _event_cmp(a: tuple[EventKind, str, Any], b: tuple[EventKind, str, Any]) -> int:
    return _key_cmp(a[2], b[2])


def _interval(events: Sequence[tuple[EventKind, str, Any]], opened_at: int) -> str:
    low = events[opened_at][1]
    for kind, value, _ in events[opened_at + 1 :]:
        if kind == EventKind.FIXED:
            return f"[{low}, {value})"
        if kind == EventKind.LAST_AFFECTED:
            return f"[{low}, {value}]"
    return f"[{low}, ∞)"


def _match_range(rng: Range, ecosystem: str, version: str) -> VersionMatch:
    ordering = ordering_for(rng.type, ecosystem)
    if ordering is None:
        why = (
            "a GIT range names commits" if rng.type == RangeType.GIT
            else f"ecosystem {shown(ecosystem)} has no known version ordering"
        )
        return VersionMatch(MatchResult.NOT_EVALUATED, why)
    try:
        v = _key(ordering, version)
        # BeforeLimits: with limit events, the version must be below at least one of them.
        limits = [value for kind, value in rng.events if kind == EventKind.LIMIT]
        limit_keys = [_key(ordering, lim) for lim in limits if lim != "*"]
        if limits and "*" not in limits and not any(v < lk for lk in limit_keys):
            return VersionMatch(MatchResult.NOT_AFFECTED, f"is not below any limit ({', '.join(limits)})")
        events = _sorted_events(ordering, rng.events)
    except VersionOrderError as e:
        return VersionMatch(MatchResult.NOT_EVALUATED, f"cannot be ordered: {e}")
    vulnerable = False
    opened_at = -1
    for i, (kind, _value, k) in enumerate(events):
        if kind == EventKind.INTRODUCED and (k is None or not v < k):
            vulnerable, opened_at = True, i
        elif (kind == EventKind.FIXED and not v < k) or (kind == EventKind.LAST_AFFECTED and k < v):
            vulnerable = False
    if vulnerable:
        where = _interval(events, opened_at)
        if limits:
            where += f" below limit {', '.join(limits)}"
        return VersionMatch(MatchResult.AFFECTED, f"is in {where}")
    return VersionMatch(MatchResult.NOT_AFFECTED, "is outside every interval")


def match_version(affected: AffectedPackage, version: str) -> VersionMatch:
    """Match ``version`` against one ``affected`` entry (OSV ``IsVulnerable``), with the reason.

    The reason is a phrase about the version (``"is in [2.13.0, 2.15.0)"``);
    :meth:`AdvisoryIndex.match` puts the component and advisory around it.
    """
    if version in affected.versions:
        return VersionMatch(MatchResult.AFFECTED, "is listed among the affected versions")
    not_evaluated: list[str] = []
    for rng in affected.ranges:
        result = _match_range(rng, affected.ecosystem, version)
        if result.result == MatchResult.AFFECTED:
            return result
        if result.result == MatchResult.NOT_EVALUATED:
            if rng.type == RangeType.GIT and affected.versions:
                continue  # GIT ranges are expanded into the versions list (rule 3)
            not_evaluated.append(result.reason)
    if not_evaluated:
        return VersionMatch(MatchResult.NOT_EVALUATED, "was not evaluated: " + "; ".join(dict.fromkeys(not_evaluated)))
    return VersionMatch(MatchResult.NOT_AFFECTED, "is not affected")


def is_vulnerable(affected: AffectedPackage, version: str) -> bool | None:
    """True if ``version`` is affected by this entry, False if not, None if it cannot be evaluated (GIT ranges)."""
    result = match_version(affected, version).result
    if result == MatchResult.NOT_EVALUATED:
        return None
    return result == MatchResult.AFFECTED


# --------------------------------------------------------------------------- names


_PEP503 = re.compile(r"[-_.]+")
_CASE_INSENSITIVE: Final = frozenset({"NuGet", "Packagist", "crates.io", "Hex", "Pub"})


def normalize_name(ecosystem: str, name: str) -> str:
    """The name as used for matching in ``ecosystem``.

    PyPI: PEP 503 (lowercase, runs of ``-_.`` become ``-``). npm: kept as is,
    scope included (``@types/node``). Maven: ``group:artifact`` (a ``/``
    separator is accepted). NuGet, Packagist, crates.io, Hex, Pub: lowercase.
    """
    eco = base_ecosystem(ecosystem)
    name = name.strip()
    if eco == "PyPI":
        return _PEP503.sub("-", name).lower()
    if eco == "Maven":
        return name.replace("/", ":")
    if eco in _CASE_INSENSITIVE:
        return name.lower()
    return name


def _purl_ecosystem(purl: PackageURL) -> str:
    if purl.type in ("deb", "apk", "rpm") and purl.namespace:
        eco = _DISTRO_NAMESPACES.get(purl.namespace.lower(), PURL_TYPE_TO_ECOSYSTEM[purl.type])
    else:
        eco = PURL_TYPE_TO_ECOSYSTEM.get(purl.type, purl.type)
    return eco


def _purl_name(purl: PackageURL, ecosystem: str) -> str:
    ns = purl.namespace or ""
    if ecosystem == "Maven":
        return f"{ns}:{purl.name}" if ns else purl.name
    if purl.type in ("npm", "golang", "composer", "swift", "github") and ns:
        return f"{ns}/{purl.name}"
    return purl.name


@functools.lru_cache(maxsize=262_144)
def parse_purl(purl: str) -> PackageURL:
    """``PackageURL.from_string``, cached: an SBOM's purls are parsed when it is read, stored and matched,
    and parsing is most of the time each of those takes (PackageURL is immutable, so sharing is safe).

    Raises ``ValueError`` for a string that is not a purl.
    """
    return PackageURL.from_string(purl)


_GO_RELEASE: Final = re.compile(r"^go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(rc|beta)(\d+))?$")
#: The Go module paths that name the Go distribution itself, whose versions are Go release names.
_GO_TOOLCHAIN: Final = frozenset({"stdlib", "toolchain"})


def go_release_version(version: str) -> str:
    """A Go release name as the SemVer version the Go vulnerability database uses for it.

    ``go1.22.4`` → ``1.22.4``, ``go1.21`` → ``1.21.0``, ``go1.22rc1`` → ``1.22.0-rc.1``,
    ``go1.9beta2`` → ``1.9.0-beta.2`` (vuln.go.dev's ``stdlib``/``toolchain`` ranges are written
    that way). Anything else is returned unchanged.
    """
    m = _GO_RELEASE.match(version.strip())
    if m is None:
        return version
    major, minor, patch, pre, num = m.groups()
    out = f"{major}.{minor or 0}.{patch or 0}"
    return f"{out}-{pre}.{num}" if pre else out


def _purl_version(parsed: PackageURL, eco: str, version: str) -> str:
    found = parsed.version or version
    if eco == "Go" and parsed.name in _GO_TOOLCHAIN and not parsed.namespace:
        return go_release_version(found)
    return found


def component_from_purl(purl: str, *, version: str = "") -> Component:
    """A component from a purl; a purl without a version takes ``version``.

    Go's ``pkg:golang/stdlib@go1.22.4`` gets the version ``1.22.4`` (:func:`go_release_version`).
    Raises ``ValueError`` for a string that is not a purl.
    """
    parsed = parse_purl(purl)
    eco = _purl_ecosystem(parsed)
    return Component(name=parsed.name, version=_purl_version(parsed, eco, version), ecosystem=eco, purl=purl)


@functools.lru_cache(maxsize=262_144)  # match() and candidates() both key each component; purl parsing dominates
def _component_key(component: Component) -> tuple[str, str, str, str]:
    """``(base ecosystem, normalised name, full ecosystem, version)`` for a component, purl first."""
    if component.purl:
        try:
            parsed = parse_purl(component.purl)
        except ValueError:
            parsed = None
        if parsed is not None:
            eco = _purl_ecosystem(parsed)
            full = component.ecosystem if base_ecosystem(component.ecosystem) == eco else eco
            return (eco, normalize_name(eco, _purl_name(parsed, eco)), full,
                    _purl_version(parsed, eco, component.version))
    eco = base_ecosystem(component.ecosystem)
    return (eco, normalize_name(eco, component.name), component.ecosystem, component.version)


# --------------------------------------------------------------------------- index


class AdvisoryIndex:
    """Advisories keyed by ``(ecosystem, normalised name)`` for fast matching.

    ``add`` may be called several times; an advisory added again under the
    same id replaces nothing (both are kept), so load each record once.
    Withdrawn advisories are kept in :attr:`advisories` but never indexed.
    """

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self.advisories: dict[str, Advisory] = {}
        self._by_package: dict[tuple[str, str], list[tuple[Advisory, AffectedPackage]]] = defaultdict(list)
        self.add(advisories)

    def __len__(self) -> int:
        return len(self.advisories)

    def add(self, advisories: Iterable[Advisory]) -> None:
        """Index the advisories."""
        for adv in advisories:
            self.advisories[adv.id] = adv
            if adv.withdrawn is not None:
                continue
            for aff in adv.affected:
                eco = base_ecosystem(aff.ecosystem)
                self._by_package[(eco, normalize_name(eco, aff.name))].append((adv, aff))

    def candidates(self, component: Component) -> list[tuple[Advisory, AffectedPackage]]:
        """The affected entries naming the component's package (before version evaluation)."""
        eco, name, full, _ = _component_key(component)
        found = self._by_package.get((eco, name), [])
        if ":" in full:
            found = [(a, p) for a, p in found if ":" not in p.ecosystem or p.ecosystem == full]
        return found

    def match(self, components: Iterable[Component], *, include_not_evaluated: bool = True) -> list[Match]:
        """Every (advisory, component) pair where the advisory affects the component.

        One :class:`Match` per advisory and component: the first affected entry
        that says *affected* wins; otherwise, with ``include_not_evaluated``,
        a *not evaluated* match is reported so that a gate can stay inconclusive.
        """
        out: list[Match] = []
        for comp in components:
            _, _, _, version = _component_key(comp)
            per_advisory: dict[str, tuple[Advisory, VersionMatch]] = {}
            for adv, aff in self.candidates(comp):
                seen = per_advisory.get(adv.id)
                if seen is not None and seen[1].result == MatchResult.AFFECTED:
                    continue
                result = match_version(aff, version) if version else VersionMatch(MatchResult.NOT_EVALUATED, "has no version")
                if result.result == MatchResult.AFFECTED or (seen is None and result.result == MatchResult.NOT_EVALUATED):
                    per_advisory[adv.id] = (adv, result)
            for adv_id, (adv, result) in per_advisory.items():
                if result.result == MatchResult.NOT_EVALUATED and not include_not_evaluated:
                    continue
                shown = f"{comp.name} {version}".strip()
                out.append(
                    Match(
                        advisory_id=adv_id,
                        component=comp,
                        result=result.result,
                        reason=f"{shown} {result.reason} of {adv_id}",
                        severity=adv.severity,
                        aliases=adv.aliases,
                    )
                )
        return out


def package_key(component: Component) -> tuple[str, str]:
    """``(base ecosystem, normalised name)`` of a component as the index keys it (purl first)."""
    eco, name, _, _ = _component_key(component)
    return (eco, name)


def fixed_in(advisory: Advisory, component: Component) -> str:
    """The lowest ``fixed`` version above the component's version in the entries naming its package.

    Empty when the advisory names no fix above it (or the versions cannot be
    ordered); several candidates in different orderings are joined with ``, ``.
    """
    eco, name, _, version = _component_key(component)
    found: list[str] = []
    for aff in advisory.affected:
        a_eco = base_ecosystem(aff.ecosystem)
        if (a_eco, normalize_name(a_eco, aff.name)) != (eco, name):
            continue
        for rng in aff.ranges:
            ordering = ordering_for(rng.type, aff.ecosystem)
            if ordering is None:
                continue
            best: str | None = None
            for kind, value in rng.events:
                if kind != EventKind.FIXED:
                    continue
                try:
                    if version and compare_versions(ordering, value, version) <= 0:
                        continue
                    if best is None or compare_versions(ordering, value, best) < 0:
                        best = value
                except VersionOrderError:
                    continue
            if best is not None and best not in found:
                found.append(best)
    return ", ".join(found)
