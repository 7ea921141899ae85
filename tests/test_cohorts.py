"""Cohorts: salted buckets, strata and wave cuts."""

from __future__ import annotations

import hashlib
import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from ringfence.domain.cohorts import (
    BUCKETS,
    WaveCut,
    bucket,
    count_in_cut,
    cut_for_count,
    cut_for_fraction,
    missing_strata,
    stratum_of,
)
from ringfence.domain.model import Host, HostId, InstalledAgent, OsFamily, TenantId
from ringfence.errors import InputError

CS = InstalledAgent("CrowdStrike", "Falcon Sensor", "7.16.18605", kernel_mode=True, boot_start=True)
ZS = InstalledAgent("Zscaler", "Client Connector", "4.4", kernel_mode=True)
CHROME = InstalledAgent("Google", "Chrome", "126", kernel_mode=False)


# --------------------------------------------------------------------------- buckets


def test_bucket_is_pinned_to_blake2b() -> None:
    """The definition is part of the contract: other components (SQL, the simulator) recompute it."""
    digest = hashlib.blake2b(b"rollout-42\0host-1", digest_size=8).digest()
    assert bucket("rollout-42", "host-1") == int.from_bytes(digest, "big") % BUCKETS
    # Pinned values: if these change, every running rollout is reshuffled.
    assert [bucket("rollout-42", h) for h in ("host-1", "host-2", "4c4c4544-0042-3510-8052-b4c04f4e4e32")] == [9221, 27, 5293]


def test_bucket_is_deterministic_and_salted() -> None:
    ids = [f"host-{i}" for i in range(2000)]
    a = [bucket("rollout-a", h) for h in ids]
    assert a == [bucket("rollout-a", h) for h in ids]
    b = [bucket("rollout-b", h) for h in ids]
    assert a != b
    # A different salt puts a different set of hosts first.
    first_a = {h for h, x in zip(ids, a, strict=True) if x < 1000}
    first_b = {h for h, x in zip(ids, b, strict=True) if x < 1000}
    assert len(first_a & first_b) < 0.3 * len(first_a)


def test_bucket_rejects_unsalted_use() -> None:
    with pytest.raises(InputError, match="salt"):
        bucket("", "host-1")
    with pytest.raises(InputError, match="salt"):
        bucket("a\0b", "host-1")


def test_buckets_are_uniform() -> None:
    values = np.array([bucket("uniformity", f"{i:08x}-host") for i in range(100_000)])
    assert values.min() >= 0
    assert values.max() < BUCKETS
    counts = np.bincount(values // 100, minlength=BUCKETS // 100)  # 100 bins of 100 buckets, ~1000 each
    _, p = stats.chisquare(counts)
    assert p > 1e-4
    fine = np.bincount(values, minlength=BUCKETS)  # ~10 per bucket
    _, p_fine = stats.chisquare(fine)
    assert p_fine > 1e-4


# --------------------------------------------------------------------------- strata

STRATA_CASES = [
    ("kernel agents sorted, user-mode left out",
     Host(id=HostId("w1"), hostname="w1", tenant=TenantId("t"), os_family=OsFamily.WINDOWS, os_build="22631",
          hardware_model="Latitude 7440", agents=(ZS, CHROME, CS)),
     "windows/22631|Latitude 7440|CrowdStrike Falcon Sensor+Zscaler Client Connector"),
    ("no kernel agents",
     Host(id=HostId("l1"), hostname="l1", tenant=TenantId("t"), os_family=OsFamily.LINUX, os_build="5.15.0-122",
          hardware_model="PowerEdge R650", agents=(CHROME,)),
     "linux/5.15.0-122|PowerEdge R650|"),
    ("agent versions do not split strata",
     Host(id=HostId("w2"), hostname="w2", tenant=TenantId("t"), os_family=OsFamily.WINDOWS, os_build="22631",
          hardware_model="Latitude 7440", agents=(InstalledAgent("CrowdStrike", "Falcon Sensor", "7.11", kernel_mode=True),)),
     "windows/22631|Latitude 7440|CrowdStrike Falcon Sensor"),
    ("unknown build and model are empty fields",
     Host(id=HostId("m1"), hostname="m1", tenant=TenantId("t"), os_family=OsFamily.MACOS),
     "macos/||"),
]


@pytest.mark.parametrize(("name", "host", "expected"), STRATA_CASES, ids=[c[0] for c in STRATA_CASES])
def test_stratum_of(name: str, host: Host, expected: str) -> None:
    assert stratum_of(host) == expected


# --------------------------------------------------------------------------- cuts


def fleet(seed: int = 7, salt: str = "rollout-1") -> dict[str, list[int]]:
    """About 20k hosts in a few big strata and many tiny ones (1-3 hosts)."""
    rng = random.Random(seed)
    sizes = {"windows/22631|Latitude 7440|CrowdStrike Falcon Sensor": 9000,
             "windows/19045|OptiPlex 7090|CrowdStrike Falcon Sensor": 6000,
             "linux/5.15|PowerEdge R650|": 4000,
             "macos/23F79|MacBookPro18,3|": 800}
    for k in range(60):
        sizes[f"windows/{20000 + k}|Rare {k}|Odd Driver {k}"] = rng.randint(1, 3)
    out: dict[str, list[int]] = {}
    n = 0
    for stratum, size in sizes.items():
        out[stratum] = sorted(bucket(salt, f"host-{n + i}") for i in range(size))
        n += size
    return out


def total(strata: dict[str, list[int]]) -> int:
    return sum(len(v) for v in strata.values())


def test_first_wave_covers_every_stratum_and_stays_near_one_percent() -> None:
    strata = fleet()
    plain = cut_for_fraction(0.01)
    assert plain == WaveCut(100)
    assert missing_strata(plain, strata)  # a plain 1 % cut misses tiny strata

    cut = cut_for_fraction(0.01, strata, min_per_stratum=1)
    assert cut.global_threshold == 100
    assert missing_strata(cut, strata) == []
    reached = count_in_cut(cut, strata)
    n = total(strata)
    assert 0.008 * n <= reached <= 0.01 * n + 2 * 64  # at most a host or two extra per small stratum
    for stratum, buckets in strata.items():
        assert sum(cut.contains(stratum, b) for b in buckets) >= 1


def test_min_per_stratum_takes_the_lowest_buckets_or_the_whole_stratum() -> None:
    strata = {"big": list(range(0, 10_000, 10)), "small": [5000, 9000], "empty": []}
    cut = cut_for_fraction(0.0, strata, min_per_stratum=3)
    assert cut.global_threshold == 0
    assert cut.threshold("big") == 21  # buckets 0, 10, 20
    assert cut.threshold("small") == 9001  # fewer than 3 hosts: all of them
    assert "empty" not in cut.stratum_thresholds
    assert missing_strata(cut, strata) == []
    assert count_in_cut(cut, strata) == 5


def test_cumulative_waves_are_nested() -> None:
    strata = fleet()
    fractions = [0.001, 0.01, 0.05, 0.25, 0.5, 1.0]
    cuts = [cut_for_fraction(f, strata, min_per_stratum=1) for f in fractions]
    for earlier, later in itertools.pairwise(cuts):
        for stratum, buckets in strata.items():
            for b in buckets:
                assert not earlier.contains(stratum, b) or later.contains(stratum, b)
    assert count_in_cut(cuts[-1], strata) == total(strata)


@pytest.mark.parametrize("count", [0, 1, 50, 200, 1000, 5000, 19_000])
def test_cut_for_count_reaches_count_and_not_much_more(count: int) -> None:
    strata = fleet()
    cut = cut_for_count(count, strata)
    reached = count_in_cut(cut, strata)
    assert reached >= count
    per_bucket = np.bincount(np.concatenate([np.array(v, dtype=np.int64) for v in strata.values()]), minlength=BUCKETS)
    if cut.global_threshold > 0:
        assert reached - count < per_bucket[cut.global_threshold - 1]  # only the last bucket's ties overshoot
        assert count_in_cut(WaveCut(cut.global_threshold - 1), strata) < count  # and it is the smallest such cut


def test_cut_for_count_with_minima_and_when_asking_for_too_many() -> None:
    strata = fleet()
    cut = cut_for_count(100, strata, min_per_stratum=1)
    assert missing_strata(cut, strata) == []
    assert count_in_cut(cut, strata) >= 100
    everything = cut_for_count(10 * total(strata), strata)
    assert everything.global_threshold == BUCKETS
    assert count_in_cut(everything, strata) == total(strata)
    assert cut_for_count(5, {}) == WaveCut(BUCKETS)
    assert cut_for_count(0, {}) == WaveCut(0)


def test_numpy_and_unsorted_inputs() -> None:
    arr = np.array([900, 3, 77], dtype=np.int32)
    cut = cut_for_count(2, {"s": arr})
    assert cut.global_threshold == 78
    assert cut_for_fraction(0, {"s": arr}, min_per_stratum=1).threshold("s") == 4
    assert missing_strata(WaveCut(3), {"s": arr}) == ["s"]


def test_union_keeps_waves_nested_when_the_inventory_changes() -> None:
    before = cut_for_fraction(0.0, {"s": [50, 900]}, min_per_stratum=1)
    after = cut_for_fraction(0.0, {"s": [10, 50, 900]}, min_per_stratum=1)  # a new host with a lower bucket
    assert not after.contains("s", 50)
    merged = after.union(before)
    assert merged.contains("s", 50)
    assert merged.contains("s", 10)
    assert WaveCut(10, {"a": 20}).union(WaveCut(30)) == WaveCut(30)


@pytest.mark.parametrize(("call", "field"), [
    (lambda: cut_for_fraction(1.5), "fraction"),
    (lambda: cut_for_fraction(float("nan")), "fraction"),
    (lambda: cut_for_fraction(0.1, min_per_stratum=-1), "min_per_stratum"),
    (lambda: cut_for_count(-1, {}), "count"),
    (lambda: cut_for_count(1, {"s": [BUCKETS]}), "stratum_buckets['s']"),
    (lambda: WaveCut(BUCKETS + 1), "global_threshold"),
    (lambda: WaveCut(100, {"s": 50}), "stratum_thresholds['s']"),
])
def test_bad_arguments_name_the_field(call, field: str) -> None:
    with pytest.raises(InputError) as err:
        call()
    assert [i.field for i in err.value.issues] == [field]


def test_cut_is_immutable() -> None:
    source = {"s": 200}
    cut = WaveCut(100, source)
    source["s"] = 9999
    assert cut.threshold("s") == 200
    with pytest.raises(TypeError):
        cut.stratum_thresholds["s"] = 1  # type: ignore[index]


# --------------------------------------------------------------------------- properties

strata_strategy = st.dictionaries(
    st.text(alphabet="abcdefgh/|", min_size=1, max_size=6),
    st.lists(st.integers(0, BUCKETS - 1), max_size=40).map(sorted),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(strata=strata_strategy, fractions=st.lists(st.floats(0, 1), min_size=2, max_size=5).map(sorted),
       minimum=st.integers(0, 3))
def test_fraction_cuts_are_nested_and_cover(strata, fractions, minimum) -> None:
    cuts = [cut_for_fraction(f, strata, min_per_stratum=minimum) for f in fractions]
    for earlier, later in itertools.pairwise(cuts):
        assert earlier.global_threshold <= later.global_threshold
        for stratum, buckets in strata.items():
            assert all(later.contains(stratum, b) for b in buckets if earlier.contains(stratum, b))
    for cut in cuts:
        if minimum:
            assert missing_strata(cut, strata) == []
        for stratum, buckets in strata.items():
            inside = sum(cut.contains(stratum, b) for b in buckets)
            assert inside >= min(minimum, len(buckets))


@settings(max_examples=200, deadline=None)
@given(strata=strata_strategy, counts=st.lists(st.integers(0, 500), min_size=2, max_size=5).map(sorted),
       minimum=st.integers(0, 2))
def test_count_cuts_are_nested_and_reach_their_count(strata, counts, minimum) -> None:
    n = sum(len(v) for v in strata.values())
    cuts = [cut_for_count(c, strata, min_per_stratum=minimum) for c in counts]
    for c, cut in zip(counts, cuts, strict=True):
        assert count_in_cut(cut, strata) >= min(c, n)
        assert count_in_cut(cut, strata) == sum(cut.contains(s, b) for s, bs in strata.items() for b in bs)
        if minimum:
            assert missing_strata(cut, strata) == []
    for earlier, later in itertools.pairwise(cuts):
        for stratum, buckets in strata.items():
            assert all(later.contains(stratum, b) for b in buckets if earlier.contains(stratum, b))
