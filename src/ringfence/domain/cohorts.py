"""Cohorts: which hosts a wave reaches, by salted hash buckets and strata.

Rules:

* **Buckets.**  Every targeted host gets a bucket in ``[0, BUCKETS)`` from
  ``blake2b(salt + "\\0" + host_id)`` (first 8 bytes of the digest, big-endian,
  modulo :data:`BUCKETS`; the modulo bias is below 1e-15).  The value depends on
  nothing but the two strings, so it is the same on every run, process and
  platform and can be recomputed by the server, the simulator and SQL alike.
* **Salted per rollout.**  The salt is the rollout's own identity, so each
  rollout orders the fleet differently and the same unlucky hosts are not
  always first.  An empty salt, or one containing NUL, is refused.
* **Cumulative cuts.**  A wave is a :class:`WaveCut`: hosts whose bucket is
  below a threshold are in it.  Thresholds only grow from one wave to the
  next, so wave *k* contains every earlier wave and a host, once reached,
  stays reached.  Use :meth:`WaveCut.union` with the previous wave's cut to
  keep that true when the inventory changes between waves.
* **Strata.**  A host's stratum (:func:`stratum_of`) is what makes its failure
  mode different: OS family and build, hardware model, and the set of
  kernel-mode agents beside the update.  A stratum may have its own, higher
  threshold so that small strata are reached early: with
  ``min_per_stratum=1`` the first wave covers every stratum present
  (the hosts of a stratum with the lowest buckets are taken first).
* ``stratum_buckets`` maps each stratum to the bucket numbers of its targeted
  hosts (a list or a numpy integer array; sorted is cheapest, unsorted is
  sorted here).  Strata with no hosts are ignored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ringfence.domain.model import Host
from ringfence.errors import InputError, shown

__all__ = [
    "BUCKETS",
    "BucketList",
    "WaveCut",
    "bucket",
    "count_in_cut",
    "cut_for_count",
    "cut_for_fraction",
    "missing_strata",
    "stratum_of",
]

#: Number of hash buckets; cuts move in steps of 1 / BUCKETS of the fleet (0.01 %).
BUCKETS = 10_000

#: Bucket numbers of one stratum's hosts: a sequence of ints or a numpy integer array.
BucketList: TypeAlias = Sequence[int] | npt.NDArray[np.integer[Any]]


def bucket(salt: str, host_id: str) -> int:
    """The host's bucket in ``[0, BUCKETS)`` for the rollout salted ``salt``."""
    if not salt or "\0" in salt:
        raise InputError.single("salt", f"is {shown(salt)}", expected="a non-empty string without NUL, such as the rollout id")
    digest = hashlib.blake2b(f"{salt}\0{host_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def stratum_of(host: Host) -> str:
    """The host's stratum: ``"os_family/os_build|hardware_model|kernel agents"``.

    The kernel-agent part is the sorted set of ``"vendor product"`` of the
    host's kernel-mode agents joined by ``+`` (versions are left out: they
    change too often to define a failure mode), empty when there are none::

        windows/22631|Latitude 7440|CrowdStrike Falcon Sensor+Zscaler Client Connector
        linux/5.15.0-122|PowerEdge R650|

    Fields are taken as they are (stripped); an unknown build or model is an
    empty field.
    """
    agents = sorted({f"{a.vendor.strip()} {a.product.strip()}".strip() for a in host.kernel_agents})
    return f"{host.os_family}/{host.os_build.strip()}|{host.hardware_model.strip()}|{'+'.join(agents)}"


@dataclass(frozen=True, slots=True)
class WaveCut:
    """How far a wave reaches: hosts with ``bucket < threshold(stratum)`` are in it.

    ``global_threshold`` applies to every stratum; ``stratum_thresholds``
    raises it for strata that would otherwise be missed (each value is at
    least the global one; strata not listed use the global one).
    """

    global_threshold: int
    stratum_thresholds: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.global_threshold <= BUCKETS:
            raise InputError.single("global_threshold", f"is {self.global_threshold}", expected=f"0 … {BUCKETS}")
        for stratum, value in self.stratum_thresholds.items():
            if not self.global_threshold <= value <= BUCKETS:
                raise InputError.single(f"stratum_thresholds[{shown(stratum)}]", f"is {value}",
                                        expected=f"{self.global_threshold} (the global threshold) … {BUCKETS}")
        object.__setattr__(self, "stratum_thresholds", MappingProxyType(dict(self.stratum_thresholds)))

    def threshold(self, stratum: str) -> int:
        """The bucket threshold for hosts of ``stratum``."""
        return self.stratum_thresholds.get(stratum, self.global_threshold)

    def contains(self, stratum: str, bucket: int) -> bool:
        """Whether a host of ``stratum`` in ``bucket`` is in the wave."""
        return bucket < self.threshold(stratum)

    def union(self, other: WaveCut) -> WaveCut:
        """The smallest cut containing both (thresholds are the larger of the two)."""
        glob = max(self.global_threshold, other.global_threshold)
        strata = set(self.stratum_thresholds) | set(other.stratum_thresholds)
        merged = {s: max(self.threshold(s), other.threshold(s)) for s in strata}
        return WaveCut(glob, {s: v for s, v in sorted(merged.items()) if v > glob})


def _sorted_buckets(stratum: str, values: BucketList) -> npt.NDArray[np.int64]:
    arr = np.asarray(values, dtype=np.int64)
    if arr.ndim != 1:
        raise InputError.single(f"stratum_buckets[{shown(stratum)}]", f"has shape {arr.shape}", expected="a flat list of buckets")
    if arr.size and (arr.min() < 0 or arr.max() >= BUCKETS):
        raise InputError.single(f"stratum_buckets[{shown(stratum)}]", f"has buckets from {arr.min()} to {arr.max()}",
                                expected=f"buckets in 0 … {BUCKETS - 1}")
    if arr.size > 1 and bool(np.any(arr[1:] < arr[:-1])):
        arr = np.sort(arr)
    return arr


def _check_min(min_per_stratum: int) -> None:
    if min_per_stratum < 0:
        raise InputError.single("min_per_stratum", f"is {min_per_stratum}", expected="0 or more")


def _coverage_thresholds(strata: Mapping[str, npt.NDArray[np.int64]], min_per_stratum: int) -> dict[str, int]:
    """Per stratum, the smallest threshold that reaches ``min_per_stratum`` of its hosts (all if fewer)."""
    out: dict[str, int] = {}
    if min_per_stratum == 0:
        return out
    for stratum, arr in strata.items():
        if arr.size:
            out[stratum] = int(arr[min(min_per_stratum, arr.size) - 1]) + 1
    return out


def _cut(global_threshold: int, coverage: Mapping[str, int]) -> WaveCut:
    return WaveCut(global_threshold, {s: t for s, t in sorted(coverage.items()) if t > global_threshold})


def cut_for_fraction(
    fraction: float,
    stratum_buckets: Mapping[str, BucketList] | None = None,
    *,
    min_per_stratum: int = 0,
) -> WaveCut:
    """The cut reaching ``fraction`` of the buckets, plus at least ``min_per_stratum`` hosts of every stratum.

    The global threshold is ``ceil(fraction × BUCKETS)`` (any positive fraction
    reaches at least one bucket).  ``stratum_buckets`` is needed only for the
    per-stratum minimum.
    """
    if not (isinstance(fraction, int | float) and math.isfinite(fraction) and 0 <= fraction <= 1):
        raise InputError.single("fraction", f"is {shown(fraction)}", expected="a number from 0 to 1")
    _check_min(min_per_stratum)
    global_threshold = min(BUCKETS, math.ceil(fraction * BUCKETS - 1e-9))
    strata = {s: _sorted_buckets(s, v) for s, v in (stratum_buckets or {}).items()}
    return _cut(global_threshold, _coverage_thresholds(strata, min_per_stratum))


def cut_for_count(count: int, stratum_buckets: Mapping[str, BucketList], *, min_per_stratum: int = 0) -> WaveCut:
    """The smallest cut that reaches at least ``count`` hosts.

    Per-stratum minima are applied first; the global threshold is then the
    lowest that brings the total to ``count``.  The cut overshoots ``count``
    only by the hosts that share its last bucket, plus what the minima force.
    When there are fewer than ``count`` hosts the cut is everything
    (``global_threshold == BUCKETS``), hosts that enrol later included.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InputError.single("count", f"is {shown(count)}", expected="a whole number, 0 or more")
    _check_min(min_per_stratum)
    strata = {s: _sorted_buckets(s, v) for s, v in stratum_buckets.items()}
    coverage = _coverage_thresholds(strata, min_per_stratum)
    forced = 0
    pending: list[npt.NDArray[np.int64]] = []  # buckets of hosts the minima do not reach
    for stratum, arr in strata.items():
        k = int(np.searchsorted(arr, coverage.get(stratum, 0), side="left"))
        forced += k
        pending.append(arr[k:])
    if forced >= count:
        return _cut(0, coverage)
    rest = np.bincount(np.concatenate(pending), minlength=BUCKETS) if pending else np.zeros(BUCKETS, dtype=np.int64)
    reached = forced + np.cumsum(rest)  # reached[t - 1]: hosts in the cut with global threshold t
    t = int(np.searchsorted(reached, count, side="left")) + 1
    return _cut(min(t, BUCKETS), coverage)


def count_in_cut(cut: WaveCut, stratum_buckets: Mapping[str, BucketList]) -> int:
    """How many of the hosts in ``stratum_buckets`` the cut reaches."""
    total = 0
    for stratum, values in stratum_buckets.items():
        arr = _sorted_buckets(stratum, values)
        total += int(np.searchsorted(arr, cut.threshold(stratum), side="left"))
    return total


def missing_strata(cut: WaveCut, stratum_buckets: Mapping[str, BucketList]) -> list[str]:
    """The strata (with at least one host) of which the cut reaches no host, sorted."""
    out = []
    for stratum, values in stratum_buckets.items():
        arr = np.asarray(values, dtype=np.int64)
        if arr.size and int(arr.min()) >= cut.threshold(stratum):
            out.append(stratum)
    return sorted(out)
