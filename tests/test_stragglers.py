"""Stragglers: a host offline through one whole change window of its own does not hold a wave back (issue 13,
"a good release must complete"), except in the last wave; and the counting rule that finds them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from ringfence.domain.counting import first_whole_window_end, wave_observations
from ringfence.domain.engine import reconcile
from ringfence.domain.rollout import Observations, RolloutState, WaveObservation
from ringfence.domain.windows import FreezeCalendar, parse_window, window_status_many
from tests.test_engine_v2 import QUIET, SPEC, obs, started

WINDOWS = (parse_window({"days": "mon-thu", "start": "09:00", "end": "16:00"}),)
FREEZE = FreezeCalendar(public_holidays=False)
BERLIN = ("Europe/Berlin", "DE", "HE")
NEW_YORK = ("America/New_York", "US", "NY")


def test_the_first_whole_window_after_a_wave_opens() -> None:
    """Opened before the window: today's window; opened inside it: tomorrow's; Thursday evening: Monday's."""
    monday_6utc = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 07:00 in Berlin, 01:00 in New York
    berlin, new_york = first_whole_window_end(WINDOWS, FREEZE, [BERLIN, NEW_YORK], monday_6utc)
    assert berlin == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 16:00 CET
    assert new_york == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # Monday 16:00 EST
    inside = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 11:00 in Berlin: the window is open, so not whole
    assert first_whole_window_end(WINDOWS, FREEZE, [BERLIN], inside) == [datetime(2026, 3, 3, 15, 0, tzinfo=UTC)]
    thursday_night = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
    assert first_whole_window_end(WINDOWS, FREEZE, [BERLIN], thursday_night) == [datetime(2026, 3, 9, 15, 0, tzinfo=UTC)]
    assert first_whole_window_end((), FREEZE, [BERLIN], inside) == [None]  # always open: never a whole window


def test_wave_observations_count_only_hosts_of_keys_past_a_whole_window_as_stragglers() -> None:
    """Hosts 0–2 (key 0, past a whole window): one exposed, one offline (a straggler), one online and eligible;
    host 3 (key 1, window not yet had) offline: still waited for."""
    now = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    statuses = window_status_many(WINDOWS, FREEZE, [BERLIN, NEW_YORK], now)
    windows = [statuses[BERLIN], statuses[NEW_YORK]]
    nan = np.nan
    counts = wave_observations(
        waves=1, wave=np.zeros(4, dtype=np.int64), exposed_s=np.array([0.0, nan, nan, nan]),
        rolled_back=np.zeros(4, dtype=bool), held=np.zeros(4, dtype=bool), delayed=np.zeros(4, dtype=bool),
        key=np.array([0, 0, 0, 1], dtype=np.int64), windows=windows,
        beat_s=np.array([100.0, -7200.0, 100.0, -7200.0]), runs_release=np.ones(4, dtype=bool), now_s=100.0,
        grace_s=900.0, name_of=str, missed_key=np.array([True, False]))
    wo = counts.waves[0]
    assert statuses[BERLIN].open is False  # 17:00 in Berlin: closed, so host 2 is blocked by its window
    assert (wo.in_reach, wo.exposed, wo.eligible_now, wo.missed_window) == (4, 1, 0, 2)
    assert counts.missed is not None and counts.missed.tolist() == [False, True, True, False]


def test_stragglers_do_not_hold_a_wave_but_hold_the_last_one() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    status = started()
    wave = WaveObservation(in_reach=10, exposed=8, eligible_now=0, observed=8, missed_window=2)
    d = reconcile(SPEC, status, obs(wave, QUIET, now), now)
    assert d.status.state is RolloutState.BAKING, d.summary
    assert any(r.code == "stragglers" for r in d.reasons)
    # One more host than the stragglers is owed: the wave waits for its window as before.
    owed = WaveObservation(in_reach=10, exposed=7, eligible_now=0, observed=7, missed_window=2)
    assert reconcile(SPEC, status, obs(owed, QUIET, now), now).status.state is RolloutState.WAITING_WINDOW
    # A straggler that reports again in its window is exposed, even while the wave bakes.
    back = WaveObservation(in_reach=10, exposed=8, eligible_now=1, observed=8, missed_window=1)
    d = reconcile(SPEC, d.status, obs(back, QUIET, now), now + timedelta(minutes=1))
    assert [i.hosts for i in d.intents] == [1]
    # The last wave waits for every host: completing means every host in reach has the release.
    last = replace(started(), wave=1)
    rest = WaveObservation(in_reach=1000, exposed=998, eligible_now=0, observed=998, missed_window=2)
    o = Observations(waves=(WaveObservation(in_reach=10, exposed=10, observed=10), rest), health_as_of=now,
                     risk=QUIET, risk_as_of=now)
    assert reconcile(SPEC, last, o, now).status.state is RolloutState.WAITING_WINDOW
