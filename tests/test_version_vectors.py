"""Version orderings against osv-scalibr's comparison vectors (../shared/data/versions)."""

from __future__ import annotations

import pytest

from ringfence.adapters.vuln.osv import format_agreement, version_vector_agreement
from tests.conftest import SHARED_DATA

VECTORS = SHARED_DATA / "versions"

# Alpine: univers' AlpineLinuxVersion rejects versions apk itself calls invalid but still
# compares ("5.1p1-r0", "1.2_blah", "0..8"); fixing that means reimplementing apk's tokenizer,
# so the floor below is asserted instead of 100 %. Every other supported file must agree fully.
FLOORS = {"alpine-versions-generated.txt": 0.995, "alpine-versions.txt": 0.93}



@pytest.fixture(scope="module")
def rows():
    result = version_vector_agreement(VECTORS)
    print("\n" + format_agreement(result))
    return {r.file: r for r in result}


def test_every_supported_vector_file_agrees(rows) -> None:
    supported = [r for r in rows.values() if r.ordering]
    assert len(supported) >= 16
    for row in supported:
        floor = FLOORS.get(row.file, 1.0)
        assert row.ratio >= floor, f"{row.file}: {row.agreed}/{row.total}; first failures {row.failures[:5]}"


def test_unsupported_files_are_reported_not_hidden(rows) -> None:
    assert {f for f, r in rows.items() if r.ordering is None} == {
        "cran-versions-generated.txt",
        "cran-versions.txt",
        "hackage-versions.txt",
    }
