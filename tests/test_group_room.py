"""The in-flight cap per group of the stratum key (counting.group_room / within_room / choose_exposures)."""

from __future__ import annotations

import numpy as np

from ringfence.domain.counting import choose_exposures, group_room, within_room

# Three strata: two builds, two models, one agent set per stratum (so each part's groups are what the test says).
STRATA = ["windows/19045|Surface Laptop 5|A", "windows/19045|Latitude 7440|B", "windows/22631|Latitude 7440|C"]


def _model(stratum: np.ndarray, i: int) -> str:
    return STRATA[int(stratum[i])].split("|")[1]


def test_a_group_gets_cap_plus_one_however_many_hosts_of_other_groups_proved_healthy() -> None:
    """30 hosts; 8 Latitude hosts already proven healthy (4 of each build), nothing in flight; cap 2 with slow
    start: the Surface Laptop group, which proved nothing, takes 3 although its build group has room for
    2 + 4 + 1 = 7; the Latitude hosts of build 19045 get that build's 4 left, those of 22631 all 6 waiting
    (the Latitude group's room, 2 + 8 + 1 = 11, is not the limit)."""
    stratum = np.repeat(np.arange(3, dtype=np.int64), 10)
    proven = np.zeros(30, dtype=bool)
    proven[[10, 11, 12, 13, 20, 21, 22, 23]] = True
    room = group_room(strata=STRATA, stratum=stratum, unproven=np.zeros(30, dtype=bool), proven=proven, cap=2,
                      slow_start=True)
    kept = within_room(np.flatnonzero(~proven), room)
    models = [_model(stratum, i) for i in kept]
    assert models.count("Surface Laptop 5") == 3
    assert models.count("Latitude 7440") == 4 + 6
    # without the slow start every group has cap + 1
    fixed = group_room(strata=STRATA, stratum=stratum, unproven=np.zeros(30, dtype=bool), proven=proven, cap=2,
                       slow_start=False)
    assert [_model(stratum, i) for i in within_room(np.flatnonzero(~proven), fixed)].count("Latitude 7440") == 3


def test_hosts_in_flight_use_up_their_groups_room_in_every_part_of_the_key() -> None:
    """One Surface Laptop and one Latitude host of build 19045 in flight, cap 1: build 19045 has no room left
    (1 + 1 - 2), so none of its hosts goes, whatever its model; build 22631's Latitude hosts share the model
    group with the Latitude host in flight (room 1)."""
    stratum = np.repeat(np.arange(3, dtype=np.int64), 4)
    flight = np.zeros(12, dtype=bool)
    flight[[0, 4]] = True
    room = group_room(strata=STRATA, stratum=stratum, unproven=flight, proven=np.zeros(12, dtype=bool), cap=1,
                      slow_start=False)
    kept = within_room(np.flatnonzero(~flight), room)
    assert [STRATA[int(stratum[i])] for i in kept] == ["windows/22631|Latitude 7440|C"]


def test_one_agent_set_on_every_host_caps_the_whole_wave_like_the_total_cap() -> None:
    """Every host runs the same kernel-mode agent (the 2024 case): its group is the whole fleet, so the room is the
    wave's total cap, no more and no less."""
    strata = ["windows/19045|Latitude 7440|Falcon", "windows/22631|OptiPlex 7010|Falcon"]
    stratum = np.repeat(np.arange(2, dtype=np.int64), 50)
    proven = np.zeros(100, dtype=bool)
    proven[:10] = True
    room = group_room(strata=strata, stratum=stratum, unproven=np.zeros(100, dtype=bool), proven=proven, cap=5,
                      slow_start=True)
    assert len(within_room(np.flatnonzero(~proven), room)) == 5 + 10 + 1


def test_choose_exposures_keeps_the_order_and_the_limit_within_the_room() -> None:
    stratum = np.repeat(np.arange(3, dtype=np.int64), 5)
    eligible = np.ones(15, dtype=bool)
    wave = np.zeros(15, dtype=np.int64)
    bucket = np.arange(15, dtype=np.int64)[::-1].copy()  # the last host first
    room = group_room(strata=STRATA, stratum=stratum, unproven=np.zeros(15, dtype=bool),
                      proven=np.zeros(15, dtype=bool), cap=0, slow_start=False)
    # cap 0: one host per build, per model and per agent set: the 22631 Latitude host with the lowest bucket
    # (host 14), then the 19045 Surface Laptop one (host 4); the 19045 Latitude hosts share a build with the
    # second and a model with the first
    assert choose_exposures(eligible, wave, bucket, 0, 10, room=room).tolist() == [14, 4]
    assert choose_exposures(eligible, wave, bucket, 0, 1, room=room).tolist() == [14]
    assert len(choose_exposures(eligible, wave, bucket, 0, 10)) == 10  # without a room: the limit alone
