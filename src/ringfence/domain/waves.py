"""Placing targeted hosts into waves: selectors, salted bucket cuts, stratum coverage, tier-0 last.

Rules, in order, for each targeted host:

1. with ``tier0_last`` (the default), a tier-0 host goes to the last wave;
2. otherwise it goes to the first wave whose ``selector`` it matches, or whose
   cut (``fraction`` and/or ``count`` of the targeted hosts, by salted hash
   bucket) reaches it; the first wave's cut also reaches at least
   ``min_per_stratum`` hosts of every stratum, so the canaries cover every
   OS build × hardware model × kernel-agent set present;
3. a host of a tenant whose ring is ``early`` goes no later than wave 1;
4. anything left goes to the last wave.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ringfence.domain.cohorts import WaveCut, cut_for_count, cut_for_fraction, missing_strata
from ringfence.domain.rollout import Plan

__all__ = ["Placement", "WaveCheck", "assign_waves", "assign_waves_bulk", "check_plan"]


@dataclass(frozen=True, slots=True)
class Placement:
    """What wave assignment needs to know about one host."""

    host_id: str
    stratum: str
    bucket: int
    tier: int = 3
    selected: tuple[bool, ...] = ()  # per wave: does the host match that wave's selector
    early: bool = False


@dataclass(frozen=True, slots=True)
class WaveCheck:
    """What ``plan check`` reports."""

    sizes: tuple[int, ...]
    strata: int
    missing_in_first_wave: tuple[str, ...]


def _cuts(plan: Plan, buckets: dict[str, npt.NDArray[np.int64]]) -> list[WaveCut | None]:
    cuts: list[WaveCut | None] = []
    for i, wave in enumerate(plan.waves):
        per_stratum = plan.min_per_stratum if i == 0 else 0
        cut: WaveCut | None = None
        if wave.fraction is not None:
            cut = cut_for_fraction(wave.fraction, buckets, min_per_stratum=per_stratum)
        if wave.count is not None:
            by_count = cut_for_count(wave.count, buckets, min_per_stratum=per_stratum)
            cut = by_count if cut is None else cut.union(by_count)
        cuts.append(cut)
    return cuts


def assign_waves_bulk(plan: Plan, strata: Sequence[str], stratum: npt.NDArray[np.integer[Any]],
                      bucket: npt.NDArray[np.integer[Any]], tier0: npt.NDArray[np.bool_],
                      selected: npt.NDArray[np.bool_] | None = None,
                      early: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
    """The wave index of each host, the rules above on arrays (one entry per host).

    ``stratum`` indexes ``strata``; ``tier0`` marks tier-0 hosts; ``selected[i, k]`` says whether host ``i``
    matches wave ``k``'s selector (None: no selectors); ``early`` marks hosts of early-ring tenants.
    """
    n = len(stratum)
    last = len(plan.waves) - 1
    stratum = np.asarray(stratum, dtype=np.int64)
    bucket = np.asarray(bucket, dtype=np.int64)
    pooled = ~tier0 if plan.tier0_last else np.ones(n, dtype=bool)
    order = np.argsort(stratum[pooled], kind="stable")
    in_pool = stratum[pooled][order]
    pool_buckets = bucket[pooled][order]
    bounds = np.searchsorted(in_pool, np.arange(len(strata) + 1))
    buckets = {strata[j]: np.sort(pool_buckets[bounds[j]:bounds[j + 1]]) for j in range(len(strata))
               if bounds[j + 1] > bounds[j]}
    cuts = _cuts(plan, buckets)
    out = np.full(n, last, dtype=np.int64)
    undecided = pooled.copy()
    for i in range(len(plan.waves)):
        cut = cuts[i]
        hit = np.zeros(n, dtype=bool)
        if selected is not None and i < selected.shape[1]:
            hit |= selected[:, i]
        if cut is not None:
            thresholds = np.array([cut.threshold(s) for s in strata], dtype=np.int64)
            hit |= bucket < thresholds[stratum] if n else hit
        hit &= undecided
        out[hit] = i
        undecided &= ~hit
    if early is not None:
        out = np.where(pooled & early, np.minimum(out, min(1, last)), out)
    return out


def assign_waves(plan: Plan, hosts: Sequence[Placement]) -> list[int]:
    """The wave index of each host, in input order."""
    strata = sorted({h.stratum for h in hosts})
    index = {s: j for j, s in enumerate(strata)}
    waves = len(plan.waves)
    selected = np.array([[i < len(h.selected) and h.selected[i] for i in range(waves)] for h in hosts],
                        dtype=bool).reshape(len(hosts), waves)
    out = assign_waves_bulk(plan, strata, np.array([index[h.stratum] for h in hosts], dtype=np.int64),
                            np.array([h.bucket for h in hosts], dtype=np.int64),
                            np.array([h.tier == 0 for h in hosts], dtype=bool), selected,
                            np.array([h.early for h in hosts], dtype=bool))
    return [int(w) for w in out]


def check_plan(plan: Plan, hosts: Sequence[Placement]) -> WaveCheck:
    """Wave sizes and the strata present among targeted hosts that the first wave misses."""
    waves = assign_waves(plan, hosts)
    sizes = [0] * len(plan.waves)
    for w in waves:
        sizes[w] += 1
    first: dict[str, list[int]] = defaultdict(list)
    every: dict[str, list[int]] = defaultdict(list)
    for h, w in zip(hosts, waves, strict=True):
        every[h.stratum].append(h.bucket)
        if w == 0:
            first[h.stratum].append(h.bucket)
    reached = WaveCut(global_threshold=0, stratum_thresholds=dict.fromkeys(first, 10000))
    missing = missing_strata(reached, {s: sorted(b) for s, b in every.items()})
    return WaveCheck(sizes=tuple(sizes), strata=len(every), missing_in_first_wave=tuple(missing))
