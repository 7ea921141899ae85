"""OSV parsing and the IsVulnerable evaluation, on real records and small synthetic ones."""

from __future__ import annotations

import json
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ringfence.adapters.vuln.osv import ZipLimits, load_path, parse_record
from ringfence.domain.vulns import (
    Advisory,
    AdvisoryIndex,
    Component,
    MatchResult,
    SeverityLabel,
    component_from_purl,
    is_vulnerable,
    normalize_name,
)
from ringfence.errors import InputError
from tests.conftest import SHARED_DATA

OSV = SHARED_DATA / "osv"
LOG4SHELL = OSV / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json"
GHSA = OSV / "ghsa-conversion"



def _one(path: Path) -> Advisory:
    (adv,) = load_path(path)
    return adv


def _record(affected: list[dict], **extra) -> dict:
    return {"id": "TEST-1", "modified": "2024-01-01T00:00:00Z", "affected": affected, **extra}


def _pkg(ranges: list[dict] | None = None, versions: list[str] | None = None, eco: str = "PyPI", name: str = "demo") -> dict:
    out: dict = {"package": {"ecosystem": eco, "name": name}}
    if ranges is not None:
        out["ranges"] = ranges
    if versions is not None:
        out["versions"] = versions
    return out


def test_every_shared_record_loads() -> None:
    started = time.process_time()  # CPU time: other work on the shared 2 cores must not fail this test
    advisories = load_path(OSV, merge=False)
    assert len(advisories) == 2661 + 26 + 1 + 11
    assert sum(1 for a in advisories if a.id.startswith("PYSEC-")) == 2661
    assert time.process_time() - started < 20


def test_log4shell_record_has_three_entries_and_critical_severity() -> None:
    adv = _one(LOG4SHELL)
    assert adv.aliases == ("CVE-2021-44228",)
    assert len(adv.affected) == 3
    assert adv.severity.label == SeverityLabel.CRITICAL and adv.severity.score == 10.0


LOG4SHELL_CASES = [
    ("2.14.1 in [2.13.0, 2.15.0)", "2.14.1", MatchResult.AFFECTED),
    ("2.15.0 fixed", "2.15.0", None),
    ("2.17.1 later", "2.17.1", None),
    ("2.12.1 in [2.4, 2.12.2)", "2.12.1", MatchResult.AFFECTED),
    ("2.12.2 fixed on the 2.12 line", "2.12.2", None),
    ("2.12.4 fixed on the 2.12 line", "2.12.4", None),
    ("2.3 in [0, 2.3.1)", "2.3", MatchResult.AFFECTED),
    ("2.3.1 fixed on the 2.3 line", "2.3.1", None),
    ("2.3.2 between lines", "2.3.2", None),
    ("2.0-beta9 in [0, 2.3.1)", "2.0-beta9", MatchResult.AFFECTED),
    ("2.13.0-rc1 sorts below 2.13.0 and above 2.12.2", "2.13.0-rc1", None),
]


@pytest.mark.parametrize(("name", "version", "expected"), LOG4SHELL_CASES, ids=[c[0] for c in LOG4SHELL_CASES])
def test_log4shell_ranges(name: str, version: str, expected: MatchResult | None) -> None:
    index = AdvisoryIndex([_one(LOG4SHELL)])
    matches = index.match([component_from_purl(f"pkg:maven/org.apache.logging.log4j/log4j-core@{version}")])
    assert [m.result for m in matches] == ([expected] if expected else [])


def test_log4shell_reason_names_component_interval_and_advisory() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    (m,) = index.match([component_from_purl("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1")])
    assert m.reason == "log4j-core 2.14.1 is in [2.13.0, 2.15.0) of GHSA-jfh8-c2jp-5v3q"
    assert m.aliases == ("CVE-2021-44228",)


def test_purl_without_version_takes_component_version() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    comp = Component(name="log4j-core", version="2.14.1", purl="pkg:maven/org.apache.logging.log4j/log4j-core")
    assert [m.result for m in index.match([comp])] == [MatchResult.AFFECTED]
    assert index.match([Component(name="log4j-core", version="2.17.1", purl=comp.purl)]) == []


def test_other_maven_artifact_does_not_match() -> None:
    index = AdvisoryIndex(load_path(LOG4SHELL))
    assert index.match([component_from_purl("pkg:maven/org.apache.logging.log4j/log4j-api@2.14.1")]) == []


# Disjoint ranges in one events list, in record order 0, 4.0.1, fixed 4.0.5, fixed 3.0.21.
PASSENGER_CASES = [
    ("below first fix", "3.0.20", True),
    ("first fix", "3.0.21", False),
    ("between intervals", "4.0.0", False),
    ("second interval start", "4.0.1", True),
    ("inside second interval", "4.0.4", True),
    ("second fix", "4.0.5", False),
    ("prerelease of second fix is still affected", "4.0.5.rc1", True),
]


@pytest.mark.parametrize(("name", "version", "expected"), PASSENGER_CASES, ids=[c[0] for c in PASSENGER_CASES])
def test_disjoint_ranges_in_one_record(name: str, version: str, expected: bool) -> None:
    (aff,) = _one(GHSA / "multiple_ranges_in_package.osv.json").affected
    assert is_vulnerable(aff, version) is expected


def test_withdrawn_record_never_matches() -> None:
    adv = _one(GHSA / "withdrawn.osv.json")
    assert adv.withdrawn == datetime(2018, 10, 11, 17, 29, 49, tzinfo=UTC)
    assert is_vulnerable(adv.affected[0], "3.2.1") is True  # the entry itself would match ...
    index = AdvisoryIndex([adv])
    assert index.match([Component("activesupport", "3.2.1", "RubyGems")]) == []  # ... the advisory never does
    assert adv.id in index.advisories


@pytest.mark.parametrize(
    "name",
    [
        "Products.PluggableAuthService",
        "products-pluggableauthservice",
        "Products_PluggableAuthService",
        "products.._pluggableauthservice",
    ],
)
def test_pypi_names_are_normalised(name: str) -> None:
    index = AdvisoryIndex(load_path(GHSA / "pypi_normalize.osv.json"))
    assert [m.advisory_id for m in index.match([Component(name, "2.6.0", "PyPI")])] == ["GHSA-p44j-xrqg-4xrr"]
    assert index.match([Component(name, "2.6.1", "PyPI")]) == []


def test_npm_scope_is_kept_and_purl_maps_to_npm() -> None:
    comp = component_from_purl("pkg:npm/%40types/node@1.0.0")
    assert comp.ecosystem == "npm"
    assert normalize_name("npm", "@types/node") == "@types/node"
    adv = parse_record(
        _record([_pkg([{"type": "SEMVER", "events": [{"introduced": "0"}]}], eco="npm", name="@types/node")]), source="t"
    )
    assert [m.result for m in AdvisoryIndex([adv]).match([comp])] == [MatchResult.AFFECTED]
    assert AdvisoryIndex([adv]).match([component_from_purl("pkg:npm/node@1.0.0")]) == []


def test_prerelease_lower_bound() -> None:
    (aff,) = _one(GHSA / "npm_greater_than.osv.json").affected  # introduced 2.1.1-0, fixed 3.0.0
    assert is_vulnerable(aff, "2.1.1-beta") is True
    assert is_vulnerable(aff, "2.1.0") is False
    assert is_vulnerable(aff, "3.0.0-rc.1") is True
    assert is_vulnerable(aff, "3.0.0") is False


# Synthetic records: versions alongside ranges, last_affected, limit, GIT.
SYNTHETIC_CASES = [
    (
        "versions list adds a version outside the range",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.2"}]}], ["0.9"]),
        "0.9",
        True,
    ),
    (
        "range still applies with a versions list",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.2"}]}], ["0.9"]),
        "1.1",
        True,
    ),
    ("versions list uses string equality", _pkg(versions=["1.0"]), "1.0.0", False),
    ("versions list alone", _pkg(versions=["1.0"]), "1.0", True),
    (
        "last_affected is included",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "2.1.214"}]}]),
        "2.1.214",
        True,
    ),
    (
        "after last_affected",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "2.1.214"}]}]),
        "2.1.215",
        False,
    ),
    ("fixed is excluded", _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.1.214"}]}]), "2.1.214", False),
    ("below limit", _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "2.0"}]}]), "1.5", True),
    ("at limit", _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "2.0"}]}]), "2.0", False),
    (
        "above limit though unfixed",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "2.0"}]}]),
        "3.0",
        False,
    ),
    (
        "below one of two limits",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "2.0"}, {"limit": "4.0"}]}]),
        "3.0",
        True,
    ),
    (
        "limit does not widen a fixed interval",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.5"}, {"limit": "2.0"}]}]),
        "1.7",
        False,
    ),
    ("introduced 0 covers everything", _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]), "0.0.1.dev0", True),
    (
        "two ranges are OR-ed",
        _pkg(
            [
                {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.1"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"fixed": "3.1"}]},
            ]
        ),
        "3.0.5",
        True,
    ),
    (
        "PyPI prerelease of the fix is affected",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]),
        "2.0rc1",
        True,
    ),
    (
        "GIT range alone is not evaluated",
        _pkg([{"type": "GIT", "repo": "https://x/y", "events": [{"introduced": "abc"}, {"fixed": "def"}]}]),
        "1.0",
        None,
    ),
    (
        "GIT range with a versions list: the list decides",
        _pkg([{"type": "GIT", "repo": "https://x/y", "events": [{"introduced": "abc"}]}], ["1.1"]),
        "1.0",
        False,
    ),
    (
        "GIT range and an ECOSYSTEM range that matches",
        _pkg(
            [
                {"type": "GIT", "repo": "https://x/y", "events": [{"introduced": "abc"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}]},
            ]
        ),
        "1.0",
        True,
    ),
    (
        "unknown ecosystem with ranges is not evaluated",
        _pkg([{"type": "ECOSYSTEM", "events": [{"introduced": "1"}, {"fixed": "2"}]}], eco="Nowhere"),
        "1.5",
        None,
    ),
]


@pytest.mark.parametrize(("name", "entry", "version", "expected"), SYNTHETIC_CASES, ids=[c[0] for c in SYNTHETIC_CASES])
def test_is_vulnerable_scenarios(name: str, entry: dict, version: str, expected: bool | None) -> None:
    (aff,) = parse_record(_record([entry]), source=name).affected
    assert is_vulnerable(aff, version) is expected


def test_not_evaluated_is_reported_as_a_match() -> None:
    git = _pkg([{"type": "GIT", "repo": "https://x/y", "events": [{"introduced": "abc"}]}])
    index = AdvisoryIndex([parse_record(_record([git]), source="t")])
    (m,) = index.match([Component("demo", "1.0", "PyPI")])
    assert m.result == MatchResult.NOT_EVALUATED and "GIT" in m.reason
    assert index.match([Component("demo", "1.0", "PyPI")], include_not_evaluated=False) == []


def test_alias_records_merge_into_one_advisory() -> None:
    merged = {a.id: a for a in load_path(OSV)}
    assert "CVE-1" not in merged and "ALIAS-CVE-1" not in merged
    assert set(merged["ALIAS"].ids) >= {"ALIAS", "ALIAS-CVE-1", "CVE-1", "CVE-2"}


def test_malformed_record_names_file_and_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"id": "X", "affected": [{"package": {"ecosystem": "PyPI"}, "ranges": [{"type": "NOPE", "events": []}]}]})
    )
    with pytest.raises(InputError) as info:
        load_path(bad)
    fields = {i.field for i in info.value.issues}
    assert fields == {"modified", "affected[0].package.name", "affected[0].ranges[0].type"}
    assert all(i.location == str(bad) for i in info.value.issues)


def test_all_zip_is_read(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(LOG4SHELL, "GHSA-jfh8-c2jp-5v3q.json")
    assert [a.id for a in load_path(archive)] == ["GHSA-jfh8-c2jp-5v3q"]


def _padded_zip(path: Path, entries: int, mib: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(entries):
            z.writestr(f"R-{i}.json", json.dumps({"id": f"R-{i}", "modified": "2024-01-01T00:00:00Z"})
                       + " " * (mib * 1024 * 1024))
    return path


def test_a_zip_bomb_is_refused_by_entry_size_ratio_and_total(tmp_path: Path) -> None:
    """Per-entry and total uncompressed size and the compression ratio are capped; errors name the entry."""
    one = _padded_zip(tmp_path / "one.zip", 1, 3)
    with pytest.raises(InputError, match="entry declares") as e:
        load_path(one, zip_limits=ZipLimits(max_entry_bytes=2 * 1024 * 1024, max_ratio=10**9))
    assert "one.zip!R-0.json" in str(e.value) and "zip bomb" in str(e.value)
    with pytest.raises(InputError, match="expands more than 100×"):
        load_path(one)  # 3 MiB of spaces deflate about 1,000×
    many = _padded_zip(tmp_path / "many.zip", 4, 2)
    with pytest.raises(InputError, match="past 5,242,880 bytes in all"):
        load_path(many, zip_limits=ZipLimits(max_total_bytes=5 * 1024 * 1024, max_ratio=10**9))
    with pytest.raises(InputError, match="has 4 entries"):
        load_path(many, zip_limits=ZipLimits(max_entries=3, max_ratio=10**9))
    assert len(load_path(many, zip_limits=ZipLimits(max_ratio=10**9))) == 4


def test_a_damaged_zip_is_an_input_error(tmp_path: Path) -> None:
    good = _padded_zip(tmp_path / "all.zip", 1, 0).read_bytes()
    (tmp_path / "bad.zip").write_bytes(good[:40] + b"\0" * 20 + good[60:])
    with pytest.raises(InputError, match="archive"):
        load_path(tmp_path / "bad.zip")


def test_yaml_versions_stay_strings(tmp_path: Path) -> None:
    doc = tmp_path / "r.yaml"
    doc.write_text(
        "id: Y-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: d}\n  versions:\n  - 1.10\n"
    )
    (adv,) = load_path(doc)
    assert adv.affected[0].versions == ("1.10",)


def test_index_matches_10k_components_against_200k_advisories_quickly() -> None:
    modified = datetime(2024, 1, 1, tzinfo=UTC)
    advisories = []
    for i in range(200_000):
        pkg = f"pkg-{i % 50_000}"
        rng = {"type": "ECOSYSTEM", "events": [{"introduced": f"{i % 7}.0"}, {"fixed": f"{i % 7}.5"}]}
        aff = parse_record(_record([_pkg([rng], name=pkg)]), source="synthetic").affected
        advisories.append(Advisory(id=f"SYN-{i}", modified=modified, affected=aff))
    index = AdvisoryIndex(advisories)
    components = [Component(f"pkg_{i * 5}", f"{i % 7}.{i % 10}", "PyPI") for i in range(10_000)]
    started = time.process_time()  # CPU time, as above
    matches = index.match(components)
    elapsed = time.process_time() - started
    print(f"\nindex match: 10,000 components x 200,000 advisories -> {len(matches)} matches in {elapsed:.2f}s")
    assert matches
    assert elapsed < 2.0
