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

from ringfence.domain.cohorts import WaveCut, cut_for_count, cut_for_fraction, missing_strata
from ringfence.domain.rollout import Plan

__all__ = ["Placement", "WaveCheck", "assign_waves", "check_plan"]


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


def _cuts(plan: Plan, hosts: Sequence[Placement]) -> list[WaveCut | None]:
    pool: dict[str, list[int]] = defaultdict(list)
    for h in hosts:
        if not (plan.tier0_last and h.tier == 0):
            pool[h.stratum].append(h.bucket)
    buckets = {s: sorted(b) for s, b in pool.items()}
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


def assign_waves(plan: Plan, hosts: Sequence[Placement]) -> list[int]:
    """The wave index of each host, in input order."""
    last = len(plan.waves) - 1
    cuts = _cuts(plan, hosts)
    out = []
    for h in hosts:
        wave = last
        if not (plan.tier0_last and h.tier == 0):
            for i in range(len(plan.waves)):
                cut = cuts[i]
                if (i < len(h.selected) and h.selected[i]) or (cut is not None and cut.contains(h.stratum, h.bucket)):
                    wave = i
                    break
            if h.early:
                wave = min(wave, 1, last)
        out.append(wave)
    return out


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
