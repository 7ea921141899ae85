"""The health gate against its limits (DESIGN §5, §9), with a naive and a Kayenta-style gate in the same run.

    .venv/bin/python bench/gate.py                       # the full run (a few minutes)
    .venv/bin/python bench/gate.py --replications 200 --false-halt-replications 2000   # quicker

One stream, many replications at once (numpy): a control arm of ``--control`` hosts that are not updated,
and a wave of ``--wave`` hosts exposed at ``--rate`` hosts per minute, then baking (the default plan's first
waves on a 20,000-host fleet).  Every host has its first baseline event at rate
λ0 per host-hour (1e-4 and 1e-3); the release adds:

* ``p1 = 1, 0.1, 0.01``: that share of updated hosts fails ``--latency`` minutes after exposure (the time a
  failure takes to be seen: the silence grace of the default plan is 15 minutes);
* ``2x``: updated hosts fail at 2 λ0 from exposure.

Gates, evaluated every ``--tick`` minutes on cumulative counts:

* **ringfence**: the halt rule of :func:`ringfence.domain.gate.evaluate` — the mixture e-value against the
  concurrent control (:func:`~ringfence.domain.gate.log_e_value_vs_control`, null share
  ``n1 / (n1 + n0 - x0)``) reaching ``K / alpha`` with the default GateConfig (K = 40, alpha = 0.01);
* **naive**: halt once the treated failure rate per host-hour exceeds twice the control's with at least
  3 treated failures (a dashboard threshold alarm);
* **kayenta**: Kayenta-style fixed windows of ``--window`` minutes; in each, a one-sided Mann–Whitney U
  test (scipy) of per-host failure indicators in the window, treated vs control, halting at p < 0.01.

Reported per case: the median exposure at halt (hosts for p1 cases, updated host-hours for 2x) and its
ratio to the limits: ``1 + rate × latency`` hosts (p1 = 1; for p1 < 1, ``1/p1 + rate × latency``), and the
optimal SPRT's expected host-hours ``(log((1-β)/α)(1-β) + log(β/(1-α))β) / (λ0 (2 ln 2 - 1))`` (2x, α = β = 0.01).
Then the false-halt rate of each gate over ``--false-halt-replications`` harmless releases, against α.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import stats

from ringfence.domain import logrank
from ringfence.domain.engine import command, initial_status, reconcile
from ringfence.domain.gate import GateConfig, StreamCounts, Verdict, evaluate, log_e_value_vs_control
from ringfence.domain.gate import Signal as V1Signal
from ringfence.domain.risksets import count_tick, self_control_revealed
from ringfence.domain.rollout import (
    Observations,
    Plan,
    Release,
    ReleaseId,
    ReleaseKind,
    RolloutId,
    RolloutSpec,
    RolloutState,
    WaveObservation,
    WaveSpec,
)


def _mwu_p(a1: np.ndarray, n1: np.ndarray, a0: np.ndarray, n0: float) -> np.ndarray:
    """One-sided Mann–Whitney U p-values for 0/1 samples given as counts (normal approximation with the
    tie correction, as scipy.stats.mannwhitneyu(method="asymptotic") computes it)."""
    n1 = np.maximum(n1, 1.0)
    # U of the treated sample: pairs (treated 1, control 0) + half the ties.
    u = a1 * (n0 - a0) + 0.5 * (a1 * a0 + (n1 - a1) * (n0 - a0))
    mu = n1 * n0 / 2.0
    n = n1 + n0
    ones, zeros = a1 + a0, n - (a1 + a0)
    tie = (ones ** 3 - ones + zeros ** 3 - zeros) / (n * (n - 1))
    sigma = np.sqrt(np.maximum(n1 * n0 / 12.0 * ((n + 1) - tie), 1e-300))
    z = (u - mu - 0.5) / sigma  # continuity correction, as scipy's default
    return np.asarray(stats.norm.sf(z))


def _check_mwu() -> None:
    rng = np.random.default_rng(0)
    x, y = (rng.random(300) < 0.05).astype(float), (rng.random(2000) < 0.03).astype(float)
    ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic").pvalue
    ours = float(_mwu_p(np.array([x.sum()]), np.array([300.0]), np.array([y.sum()]), 2000.0)[0])
    assert abs(ref - ours) < 1e-9, (ref, ours)


def _per_tick(times: np.ndarray, ticks: int, tick_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Per replication and tick: how many of these event times fell at or before the tick, and their sum."""
    reps = times.shape[0]
    k = np.ceil(times / tick_min)
    k = np.where(np.isfinite(k), k, ticks + 1).astype(np.int64)
    k = np.clip(k, 0, ticks + 1)
    flat = (np.arange(reps)[:, None] * (ticks + 2) + k).ravel()
    count = np.bincount(flat, minlength=reps * (ticks + 2)).reshape(reps, ticks + 2)
    total = np.bincount(flat, weights=np.where(np.isfinite(times), times, 0.0).ravel(),
                        minlength=reps * (ticks + 2)).reshape(reps, ticks + 2)
    return np.cumsum(count, axis=1)[:, 1:ticks + 1], np.cumsum(total, axis=1)[:, 1:ticks + 1]


def _v2_fired(x1: np.ndarray, x0: np.ndarray, n1: np.ndarray, control: int, cfg: GateConfig) -> np.ndarray:
    """Gate v2's pooled test (domain.logrank) on the same events: each tick's events bet against the share of
    hosts at risk then, ``T / (T + C)`` with ``T`` = exposed hosts not yet failed and ``C`` = control hosts not
    yet failed (both counted before this tick's events), the products accumulated over ticks; the e-value is
    ``PLUG_IN_WEIGHT`` × the predictable plug-in bet's product (``logrank.plug_in_log_theta`` of the ticks
    before) + the rest × the configured mixture's; halts at the pooled threshold ``G / (0.9 alpha)`` (one
    stream: the pooled and the stratum statistic coincide, and the pooled test halts first)."""
    dx1 = np.diff(x1, axis=1, prepend=0).astype(float)
    dx0 = np.diff(x0, axis=1, prepend=0).astype(float)
    t = np.broadcast_to(n1, x1.shape) - (x1 - dx1)
    c = control - (x0 - dx0)
    share = t / np.maximum(t + c, 1.0)
    dx = dx1 + dx0
    terms = []
    w_fixed = 1.0 - logrank.PLUG_IN_WEIGHT
    for (theta, _), w in zip(cfg.alternatives, logrank.pooled_fixed_weights(cfg), strict=True):
        if w <= 0:
            continue
        if math.isinf(theta):
            lost = np.cumsum(dx0, axis=1) > 0
            with np.errstate(divide="ignore"):
                inc = np.where(dx1 > 0, -dx1 * np.log(np.maximum(share, 1e-300)), 0.0)
            terms.append(np.where(lost, -np.inf, np.cumsum(inc, axis=1)) + math.log(w * w_fixed))
        else:
            inc = dx1 * math.log(theta) - dx * np.log1p((theta - 1.0) * share)
            terms.append(np.cumsum(inc, axis=1) + math.log(w * w_fixed))
    # The plug-in: the bet of tick k from the Mantel–Haenszel sums of the ticks before it.
    num = np.cumsum(dx1 * (1.0 - share), axis=1) - dx1 * (1.0 - share)
    den = np.cumsum(dx0 * share, axis=1) - dx0 * share
    log_theta = logrank.plug_in_log_theta(num, den, cfg.tolerance)
    inc = dx1 * log_theta - dx * np.log1p(np.expm1(log_theta) * share)
    terms.append(np.cumsum(inc, axis=1) + math.log(logrank.PLUG_IN_WEIGHT))
    stack = np.stack(terms, axis=-1)
    top = np.max(stack, axis=-1)
    with np.errstate(invalid="ignore"):
        log_e = top + np.log(np.sum(np.exp(stack - top[..., None]), axis=-1))
    return np.asarray(log_e >= math.log(logrank.halt_thresholds(cfg)[0]))


def _v2_mixture_only_fired(x1: np.ndarray, x0: np.ndarray, n1: np.ndarray, control: int, cfg: GateConfig
                           ) -> np.ndarray:
    """The gate v2 of before the plug-in (the nine-point mixture alone at ``2G / alpha``), for the side-by-side."""
    dx1 = np.diff(x1, axis=1, prepend=0).astype(float)
    dx0 = np.diff(x0, axis=1, prepend=0).astype(float)
    t = np.broadcast_to(n1, x1.shape) - (x1 - dx1)
    c = control - (x0 - dx0)
    share = t / np.maximum(t + c, 1.0)
    dx = dx1 + dx0
    terms = []
    for theta, w in cfg.alternatives:
        if math.isinf(theta):
            lost = np.cumsum(dx0, axis=1) > 0
            with np.errstate(divide="ignore"):
                inc = np.where(dx1 > 0, -dx1 * np.log(np.maximum(share, 1e-300)), 0.0)
            terms.append(np.where(lost, -np.inf, np.cumsum(inc, axis=1)) + math.log(w))
        else:
            inc = dx1 * math.log(theta) - dx * np.log1p((theta - 1.0) * share)
            terms.append(np.cumsum(inc, axis=1) + math.log(w))
    stack = np.stack(terms, axis=-1)
    top = np.max(stack, axis=-1)
    with np.errstate(invalid="ignore"):
        log_e = top + np.log(np.sum(np.exp(stack - top[..., None]), axis=-1))
    return np.asarray(log_e >= math.log(2 * len(logrank.Signal) / cfg.alpha))


def _chunk(*, reps: int, base: float, p1: float, ratio: float, rate: float, latency_min: float, control: int,
           wave: int, tick_min: float, hours: float, window_min: float,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    cfg = GateConfig()
    log_threshold = math.log(cfg.max_streams / cfg.alpha)
    ticks = round(hours * 60 / tick_min)
    now = np.arange(1, ticks + 1) * tick_min  # minutes
    n_max = min(wave, int(rate * hours * 60) + 1)
    expose = np.arange(n_max) / rate  # the minute each treated host is exposed
    t_base = rng.exponential(60.0 / (base * ratio), size=(reps, n_max))
    if p1 > 0:
        t_base = np.minimum(t_base, np.where(rng.random((reps, n_max)) < p1, latency_min, np.inf))
    x1, s1 = _per_tick(expose + t_base, ticks, tick_min)
    x0, s0 = _per_tick(rng.exponential(60.0 / base, size=(reps, control)), ticks, tick_min)
    n1 = np.minimum(n_max, np.floor(now * rate) + 1)[None, :]
    exposed_sum = np.cumsum(expose)[(n1[0] - 1).astype(np.int64)][None, :]
    # Host-hours at risk: every exposed host since its exposure, less the time after a failed host's event.
    e1 = (n1 * now - exposed_sum - (x1 * now - s1)) / 60.0
    e0 = (control * now - (x0 * now - s0)) / 60.0
    p0 = n1 / (n1 + control - x0)
    log_e = log_e_value_vs_control(x1, x0, p0, cfg.alternatives)
    fired = {
        "ringfence": log_e >= log_threshold,
        "ringfence-v2": _v2_fired(x1, x0, n1, control, cfg),
        "v2-mixture-only": _v2_mixture_only_fired(x1, x0, n1, control, cfg),
        "naive": (x1 >= 3) & (x1 / np.maximum(e1, 1e-9) > 2 * np.maximum(x0, 0.5) / np.maximum(e0, 1e-9)),
    }
    step = round(window_min / tick_min)
    kay = np.zeros_like(fired["naive"])
    for j in range(step - 1, ticks, step):
        before = j - step
        a1 = x1[:, j] - (x1[:, before] if before >= 0 else 0)
        a0 = x0[:, j] - (x0[:, before] if before >= 0 else 0)
        kay[:, j] = _mwu_p(a1.astype(float), np.broadcast_to(n1[:, j], a1.shape).astype(float), a0.astype(float),
                           float(control)) < 0.01
    fired["kayenta"] = kay
    out: dict[str, np.ndarray] = {}
    for gate, f in fired.items():
        any_ = f.any(axis=1)
        first = np.argmax(f, axis=1)
        out[gate] = np.where(any_, now[first], np.inf)
        out[gate + "_hosts"] = np.where(any_, n1[0, first], np.nan)
        out[gate + "_host_hours"] = np.where(any_, e1[np.arange(reps), first], np.nan)
    return out


def simulate(*, reps: int, base: float, p1: float, ratio: float, rate: float, latency_min: float, control: int,
             wave: int, tick_min: float, hours: float, window_min: float, seed: int) -> dict[str, np.ndarray]:
    """Halt times (minutes; inf = never) and exposure at halt per gate, for ``reps`` replications."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, int(2e7 // (wave + control)))  # bound memory to a few hundred MB
    parts = []
    for start in range(0, reps, per_chunk):
        parts.append(_chunk(reps=min(per_chunk, reps - start), base=base, p1=p1, ratio=ratio, rate=rate,
                            latency_min=latency_min, control=control, wave=wave, tick_min=tick_min, hours=hours,
                            window_min=window_min, rng=rng))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _sprt_host_hours(base: float, alpha: float = 0.01, beta: float = 0.01, ratio: float = 2.0) -> float:
    kl = base * (ratio * math.log(ratio) - ratio + 1)  # KL of Poisson(ratio·λ0) from Poisson(λ0) per host-hour
    return (math.log((1 - beta) / alpha) * (1 - beta) + math.log(beta / (1 - alpha)) * beta) / kl


# --- a host-level fleet whose hosts go offline (gate v2 beside today's gate) ----------------------------------

GRACE_S = 15 * 60.0
HISTORY_DAYS = 14  # the heartbeats the server keeps from before the rollout (self-control)
REBOOT_LIMIT_S = 20 * 60.0


def _intervals(rng: np.random.Generator, n: int, hours: float, laptops: float, outage: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Offline spells (host, start, end, notice) in seconds from 09:00 on day 0, and each host's usual time away.

    Laptops sleep every night with a notice (18:00–22:00 until 07:00–10:00, from the night before day 0 on);
    every host has unannounced silences (network loss, 2e-3 per hour, 20 min to 4 h); 5 % of hosts flap
    (0.05 per hour, 20–40 min); the spells start ``HISTORY_DAYS`` before day 0; with ``outage`` a region
    of a quarter of the hosts is offline for 2 h
    without notice at a random time.
    """
    laptop = rng.random(n) < laptops
    hosts, starts, ends, notices = [], [], [], []
    days = int(hours // 24) + 2
    lap = np.flatnonzero(laptop)
    for d in range(-HISTORY_DAYS, days):
        s0 = (d * 24 + 9) * 3600.0 + rng.uniform(0, 4 * 3600.0, len(lap))  # 18:00–22:00 = 9–13 h after 09:00
        e0 = (d * 24 + 22) * 3600.0 + rng.uniform(0, 3 * 3600.0, len(lap))  # 07:00–10:00 next day
        hosts.append(lap)
        starts.append(s0)
        ends.append(e0)
        notices.append(np.ones(len(lap), dtype=bool))
    flap = rng.random(n) < 0.05
    spells = ((2e-3, 20 * 60.0, 4 * 3600.0, np.arange(n)), (0.05, 20 * 60.0, 40 * 60.0, np.flatnonzero(flap)))
    for rate, lo, hi, who in spells:
        k = rng.poisson(rate * (hours + 24), len(who))
        h = np.repeat(who, k)
        st = rng.uniform(-24 * 3600.0, hours * 3600.0, len(h))
        hosts.append(h)
        starts.append(st)
        ends.append(st + rng.uniform(lo, hi, len(h)))
        notices.append(np.zeros(len(h), dtype=bool))
    if outage:
        region = np.flatnonzero(rng.random(n) < 0.25)
        t = rng.uniform(2 * 3600.0, max(3 * 3600.0, (hours - 4) * 3600.0))
        hosts.append(region)
        starts.append(np.full(len(region), t))
        ends.append(np.full(len(region), t + 7200.0))
        notices.append(np.zeros(len(region), dtype=bool))
    away = np.where(laptop, 16 * 3600.0, 2 * 3600.0)  # each host's usual time away after a notice
    return (np.concatenate(hosts), np.concatenate(starts), np.concatenate(ends), np.concatenate(notices), away)


def _merge(h_of: np.ndarray, s_of: np.ndarray, e_of: np.ndarray, flags: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping offline spells of a host as one block: its last report is the block's start, and it sent a
    notice (or a reboot notice) only if the block's first spell did."""
    order = np.lexsort((s_of, h_of))
    h, st, en, fl = h_of[order], s_of[order], e_of[order], flags[order]
    out_h, out_s, out_e, out_f = [], [], [], []
    for i in range(len(h)):
        if out_h and out_h[-1] == h[i] and st[i] <= out_e[-1]:
            out_e[-1] = max(out_e[-1], en[i])
        else:
            out_h.append(h[i])
            out_s.append(st[i])
            out_e.append(en[i])
            out_f.append(fl[i])
    return np.array(out_h, dtype=np.int64), np.array(out_s), np.array(out_e), np.array(out_f, dtype=np.int64)


def fleet_run(*, seed: int, hours: float, harm: str, hosts: int = 5_000, laptops: float = 0.6, outage: bool = True,
              rate: float = 5.0, tick_min: float = 5.0, v1_every: int = 6) -> dict[str, float]:
    """One replication: gate v2 (domain.risksets + domain.logrank) and today's gate (ever-silent counting fed to
    domain.gate.evaluate, as services/fleet_port.count_streams does) on the same fleet; returns the halt time (h)
    of each (inf: never) and the exposed hosts of the harmed stratum at that time.

    ``harm``: ``none``; ``bootloop`` (every updated host of a 1 % hardware model reboots with a notice a minute
    after the update and never comes back); ``silent-bootloop`` (the same without the notice);
    ``hang`` (40 % of updated hosts hang 6–24 h after the update and never report again).
    """
    rng = np.random.default_rng(seed)
    n = hosts
    strata = 12
    sizes = np.array([0.01, 0.02, 0.04, 0.05, 0.08, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.15])
    stratum = rng.choice(strata, size=n, p=sizes / sizes.sum()).astype(np.int64)
    stratum[:3] = 0  # the 1 % model has at least three hosts
    h_of, s_of, e_of, notice_of, away = _intervals(rng, n, hours, laptops, outage)
    # The wave: 2 % of the hosts and at least five of the 1 % model (stratum 0), in random order, offered at
    # `rate` per minute to hosts that are online then (a host asleep at its slot is offered when it next reports).
    pick = rng.random(n) < 0.02
    pick[rng.permutation(np.flatnonzero(stratum == 0))[:5]] = True
    wave = np.flatnonzero(pick)
    rng.shuffle(wave)
    slot = np.arange(len(wave)) * 60.0 / rate
    exposed_s = np.full(n, np.nan)
    for i, h in zip(range(len(wave)), wave, strict=True):
        t = slot[i]
        for _ in range(50):  # move past the offline spells that cover the slot
            cover = (h_of == h) & (s_of <= t) & (e_of > t)
            if not cover.any():
                break
            t = float(e_of[cover].max())
        exposed_s[h] = t
    harmed = np.zeros(n, dtype=bool)
    if harm in ("bootloop", "silent-bootloop"):
        harmed = (stratum == 0) & ~np.isnan(exposed_s)  # every updated host of the model
        start = exposed_s[harmed] + 60.0
        extra = (np.flatnonzero(harmed), start, np.full(len(start), np.inf), np.full(len(start), harm == "bootloop"))
    elif harm == "hang":
        harmed = ~np.isnan(exposed_s) & (rng.random(n) < 0.4)
        start = exposed_s[harmed] + rng.uniform(6 * 3600.0, 24 * 3600.0, int(harmed.sum()))
        extra = (np.flatnonzero(harmed), start, np.full(len(start), np.inf), np.zeros(len(start), dtype=bool))
    flags = notice_of.astype(np.int64)  # 0 none, 1 notice, 2 reboot notice
    if harm != "none":
        h_of = np.concatenate([h_of, extra[0]])
        s_of = np.concatenate([s_of, extra[1]])
        e_of = np.concatenate([e_of, extra[2]])
        flags = np.concatenate([flags, np.full(len(extra[0]), 2 if harm == "bootloop" else 0)])
    h_of, s_of, e_of, flags = _merge(h_of, s_of, e_of, flags)
    notice_of, reboot = flags > 0, flags == 2
    in_scope = np.ones(n, dtype=bool)
    cfg = GateConfig()
    # Each stratum's own record before the rollout for "did not come back": away-hours after a notice (up to
    # the host's limit) and the absences that overran it, in the order they happened going back from day 0.
    pre = (s_of < 0) & notice_of
    limit_of = np.where(reboot, REBOOT_LIMIT_S, away[h_of])
    pre_hours = np.bincount(stratum[h_of[pre]], weights=np.minimum(e_of[pre] - s_of[pre], limit_of[pre]) / 3600.0,
                            minlength=strata)
    overran = pre & ((e_of - s_of) > limit_of)
    pre_events = [np.sort(-s_of[overran & (stratum[h_of] == j)] / 3600.0) for j in range(strata)]  # a proxy position
    post_hours = np.zeros(strata)
    revealed = np.zeros(strata, dtype=np.int64)
    v1_cfg = GateConfig(required_signals=frozenset({V1Signal.SILENT}))
    # Today's gate: a host is failed from the first moment after its reference (exposure + grace for updated
    # hosts, the start for the others) at which it has been offline for longer than the grace.
    long = (e_of - s_of) > GRACE_S
    names = [f"model-{j}" for j in range(strata)]
    ledger: logrank.Ledger = ()
    since = 0.0
    out = {"v2": math.inf, "v1": math.inf, "v2_exposed": math.nan, "v1_exposed": math.nan, "v2_failed": math.nan,
           "v1_failed": math.nan}
    fail_at = np.full(n, np.inf)
    if harm != "none":
        fail_at[extra[0]] = extra[1]
    ticks = int(hours * 60 / tick_min)
    for k in range(1, ticks + 1):
        now = k * tick_min * 60.0
        idx = np.flatnonzero((s_of <= now) & (e_of > now))  # merged blocks: at most one per host
        beat = np.full(n, now)
        beat[h_of[idx]] = s_of[idx]
        noticed_start = np.full(n, np.nan)
        is_reboot = np.zeros(n, dtype=bool)
        sel = idx[notice_of[idx]]
        noticed_start[h_of[sel]] = s_of[sel]
        is_reboot[h_of[sel[reboot[sel]]]] = True
        limit = np.where(is_reboot, REBOOT_LIMIT_S, away)
        exp_now = np.where(exposed_s <= now, exposed_s, np.nan)
        counts = count_tick(stratum=stratum, strata=strata, in_scope=in_scope, exposed_s=exp_now, beat_s=beat,
                            notice_s=noticed_start, away_limit_s=limit, since_s=since, now_s=now, grace_s=GRACE_S)
        batch = []
        for signal, arm in ((logrank.Signal.SILENT, counts.silent), (logrank.Signal.NOT_BACK, counts.not_back)):
            for j in range(strata):
                if (signal is logrank.Signal.NOT_BACK and arm.treated_at_risk[j]
                        and arm.control_at_risk[j] < cfg.min_control_hosts):
                    # Too few hosts of the stratum that have not been updated are away now (by day, none): judge
                    # against the stratum's own record (the choice rests on the hosts at risk, not on the events).
                    now_revealed = self_control_revealed(pre_events[j], post_hours[j] + arm.treated_hours[j],
                                                         cfg.self_control_ratio)
                    batch.append(logrank.self_control_tick(
                        signal, names[j], post_events=int(arm.treated_events[j]),
                        pre_events_revealed=now_revealed - int(revealed[j]), post_hours=float(arm.treated_hours[j]),
                        pre_hours_total=float(pre_hours[j]), ratio=cfg.self_control_ratio,
                        hours_before=float(post_hours[j])))
                    revealed[j] = now_revealed
                    post_hours[j] += arm.treated_hours[j]
                elif arm.treated_at_risk[j] or arm.treated_events[j]:
                    batch.append(logrank.RiskTick(signal, names[j], int(arm.treated_events[j]),
                                                  int(arm.control_events[j]), float(arm.treated_at_risk[j]),
                                                  float(arm.control_at_risk[j]), float(arm.treated_hours[j]),
                                                  int(np.count_nonzero(~np.isnan(exp_now) & (stratum == j)))))
        ledger, _ = logrank.accumulate(ledger, batch, cfg)
        since = now
        exposed_harmed = float(np.count_nonzero(~np.isnan(exp_now) & (stratum == 0)))
        failed_now = float(np.count_nonzero(fail_at <= now))
        if math.isinf(out["v2"]) and logrank.decide(ledger, cfg).verdict is Verdict.FAILED:
            out["v2"], out["v2_exposed"], out["v2_failed"] = now / 3600.0, exposed_harmed, failed_now
        if math.isinf(out["v1"]) and k % v1_every == 0:
            treated = ~np.isnan(exp_now)
            ref = np.where(treated, exp_now + GRACE_S, 0.0)
            t_at = np.maximum(s_of + GRACE_S, ref[h_of])
            ok = long & (t_at < e_of) & (t_at <= now)
            first_silent = np.full(n, np.inf)
            np.minimum.at(first_silent, h_of[ok], t_at[ok])
            failed = np.isfinite(first_silent)
            streams = []
            present = [j for j in range(strata) if np.count_nonzero(treated & (stratum == j))]
            groups = [(names[j], stratum == j) for j in present if np.count_nonzero(treated & (stratum == j)) >= 10]
            groups.append(("*", np.ones(n, dtype=bool)))
            for name, m in groups:
                t_m, c_m = treated & m, ~treated & m
                t_end = np.where(failed, np.minimum(first_silent, now), now)
                streams.append(StreamCounts(
                    V1Signal.SILENT, name, int(t_m.sum()), int((t_m & failed).sum()),
                    float(np.sum(np.maximum(0.0, t_end[t_m] - exp_now[t_m])) / 3600.0), int(c_m.sum()),
                    int((c_m & failed).sum()), float(np.sum(np.maximum(0.0, t_end[c_m])) / 3600.0)))
            if evaluate(streams, v1_cfg).verdict is Verdict.FAILED:
                out["v1"], out["v1_exposed"], out["v1_failed"] = now / 3600.0, exposed_harmed, failed_now
        if math.isfinite(out["v1"]) and math.isfinite(out["v2"]):
            break
    return out


def engine_cap_run(*, p1: float, rate: float, cap: int | None, seed: int, control: int = 18_000,
                   hours: float = 3.0) -> tuple[float, float]:
    """The engine itself (domain.engine.reconcile with gate v2) exposing a 2,000-host wave at ``rate`` per minute
    with ``max_in_flight = cap``: an updated host crashes a minute after its update with probability ``p1`` and
    is seen 15 minutes later (silence); it is healthy once it has reported for the 15-minute crash window.
    Control hosts fail at 1e-4 per host-hour.  Returns (hosts exposed, hosts crashed) when the gate halted
    (inf, inf if it never did within ``hours``)."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    plan = Plan(name="bench", waves=(
        WaveSpec("canary", count=2_000, min_bake=timedelta(hours=1), max_rate_per_minute=rate, max_in_flight=cap),
        WaveSpec("rest", fraction=1.0)), gate=GateConfig(required_signals=frozenset({V1Signal.SILENT})))
    release = Release(ReleaseId("r@1"), "r", "1", ReleaseKind.CONTENT, ("windows",))
    spec = RolloutSpec(RolloutId("bench"), release, plan, salt="s", created_by="bench", created_at=t0)
    status = command(spec, initial_status(spec), "start", actor="bench", now=t0).status
    exposed_at: list[float] = []
    crash: list[bool] = []
    control_left = control
    for minute in range(1, int(hours * 60) + 1):
        now = float(minute)
        e = np.array(exposed_at)
        c = np.array(crash, dtype=bool)
        seen = c & (e + 16.0 <= now)  # crashed a minute after the update, silent for the 15-minute grace
        new = c & (e + 16.0 <= now) & (e + 16.0 > now - 1.0)
        x0 = int(rng.binomial(control_left, 1e-4 / 60.0))
        control_left -= x0
        t_risk = int(np.count_nonzero(~seen)) + int(new.sum())
        tick = logrank.RiskTick(logrank.Signal.SILENT, "all", int(new.sum()), x0, float(t_risk),
                                float(control_left + x0), treated_hours=t_risk / 60.0, treated_hosts=len(e))
        in_flight = int(np.count_nonzero(c | (e + 15.0 > now)))
        at = t0 + timedelta(minutes=minute)
        obs = Observations(waves=(WaveObservation(in_reach=2_000, exposed=len(e), eligible_now=2_000 - len(e)),
                                  WaveObservation(in_reach=18_000, exposed=0)),
                           health_as_of=at, risk=(tick,), risk_as_of=at, in_flight=in_flight)
        d = reconcile(spec, status, obs, at)
        status = d.status
        if status.state in (RolloutState.HALTED, RolloutState.ROLLING_BACK):
            return float(len(e)), float(c.sum())
        for intent in d.intents:
            for _ in range(intent.hosts):
                exposed_at.append(now)
                crash.append(bool(rng.random() < p1))
    return math.inf, math.inf


def cap_main(reps: int, seed: int) -> None:
    """The in-flight cap through the engine: exposure and crashes at halt, with and without it."""
    print("| case (engine, gate v2) | exposure rate | max_in_flight | halted | median exposed at halt | "
          "median crashed at halt | limit 1 + max_in_flight |")
    print("|---|---|---|---|---|---|---|")
    for p1 in (1.0, 0.1):
        for rate in (5.0, 1_000.0):
            for cap in (None, 5):
                res = [engine_cap_run(p1=p1, rate=rate, cap=cap, seed=seed + i) for i in range(reps)]
                x = np.array([r[0] for r in res])
                y = np.array([r[1] for r in res])
                ok = np.isfinite(x)
                limit = f"{1 + cap}" if cap is not None and p1 == 1.0 else "—"
                print(f"| p1 = {p1:g} | {rate:,.0f}/min | {cap if cap is not None else 'none'} | {ok.mean():.0%} | "
                      f"{np.median(x[ok]) if ok.any() else math.nan:,.0f} | "
                      f"{np.median(y[ok]) if ok.any() else math.nan:,.0f} | {limit} |", flush=True)


def fleet_main(reps: int, false_reps: int, seed: int, harms: Sequence[str] = ("bootloop", "silent-bootloop", "hang")
               ) -> None:
    """The host-level tables: harms (median over ``reps``) and false halts over ``false_reps`` harmless releases."""
    print("| fleet case | gate | halted | median hours to halt | median updated hosts of the model at halt | "
          "median harmed hosts failed at halt |")
    print("|---|---|---|---|---|---|")
    for harm, hours, laptops in (("bootloop", 12.0, 0.6), ("silent-bootloop", 12.0, 0.6), ("hang", 48.0, 1.0)):
        if harm not in harms:
            continue
        runs = [fleet_run(seed=seed + i, hours=hours, harm=harm, laptops=laptops) for i in range(reps)]
        for gate in ("v2", "v1"):
            t = np.array([r[gate] for r in runs])
            x = np.array([r[gate + "_exposed"] for r in runs])
            halted = float(np.mean(np.isfinite(t)))
            med_t = float(np.median(t[np.isfinite(t)])) if halted else math.nan
            med_x = float(np.nanmedian(x)) if halted else math.nan
            f = np.array([r[gate + "_failed"] for r in runs])
            med_f = float(np.nanmedian(f)) if halted else math.nan
            label = "gate v2" if gate == "v2" else "today's gate"
            what = "40 % of updated hosts, all laptops" if harm == "hang" else "every updated host of a 1 % model"
            print(f"| {harm} ({what}) | {label} | {halted:.0%} | {med_t:.1f} | {med_x:.0f} | {med_f:.0f} |", flush=True)
    if not false_reps:
        return
    print()
    print("| harmless release, 36 h, 2,000 hosts: laptops sleeping with notices (60 %), flapping 5 %, a region offline "
          "2 h | gate | replications | false halts | α |")
    print("|---|---|---|---|---|")
    runs = [fleet_run(seed=seed + 10_000 + i, hours=36.0, harm="none", hosts=2_000, tick_min=10.0, v1_every=3)
            for i in range(false_reps)]
    for gate, label in (("v2", "gate v2"), ("v1", "today's gate")):
        rate = float(np.mean([math.isfinite(r[gate]) for r in runs]))
        print(f"| | {label} | {false_reps:,} | {rate:.4f} | 0.01 |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=400)
    ap.add_argument("--false-halt-replications", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=5.0, help="hosts exposed per minute (default plan's canary rate)")
    ap.add_argument("--latency", type=float, default=15.0, help="minutes until a failure is seen")
    ap.add_argument("--control", type=int, default=18_000, help="control hosts (not yet updated)")
    ap.add_argument("--wave", type=int, default=2_000, help="updated hosts once the wave is fully exposed")
    ap.add_argument("--tick", type=float, default=1.0, help="minutes between gate evaluations")
    ap.add_argument("--window", type=float, default=60.0, help="Kayenta window in minutes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fleet-replications", type=int, default=20, help="host-level runs per harm (0: skip)")
    ap.add_argument("--fleet-false-halt-replications", type=int, default=1_000)
    ap.add_argument("--fleet-harms", default="bootloop,silent-bootloop,hang",
                    help="comma-separated host-level harms to run (bootloop, silent-bootloop, hang)")
    ap.add_argument("--only-fleet", action="store_true", help="run only the host-level fleet tables")
    ap.add_argument("--only-cap", action="store_true", help="run only the in-flight cap table (the engine itself)")
    ap.add_argument("--only-stream", action="store_true", help="run only the one-stream tables (regressions, false halts)")
    ap.add_argument("--cap-replications", type=int, default=20)
    args = ap.parse_args(argv)
    if not (1 <= args.replications <= 100_000 and 1 <= args.false_halt_replications <= 100_000):
        ap.error("replications must be between 1 and 100,000")
    _check_mwu()
    began = time.perf_counter()
    if args.only_cap:
        cap_main(args.cap_replications, args.seed)
        print(f"\nwall {time.perf_counter() - began:.0f} s")
        return 0
    if args.only_fleet:
        fleet_main(args.fleet_replications, args.fleet_false_halt_replications, args.seed,
                   tuple(args.fleet_harms.split(',')))
        print(f"\nwall {time.perf_counter() - began:.0f} s")
        return 0
    print("| case | baseline λ0 /host-h | gate | halted | median exposure at halt | limit | ratio |")
    print("|---|---|---|---|---|---|---|")
    for base in (1e-4, 1e-3):
        for label, p1, ratio, hours, tick in (("p1=1", 1.0, 1.0, 2.0, args.tick), ("p1=0.1", 0.1, 1.0, 3.0, args.tick),
                                              ("p1=0.01", 0.01, 1.0, 8.0, args.tick),
                                              ("2x", 0.0, 2.0, 72.0 if base >= 1e-3 else 480.0, 10.0),
                                              ("3x in 7 days", 0.0, 3.0, 168.0, 10.0)):
            res = simulate(reps=args.replications, base=base, p1=p1, ratio=ratio, rate=args.rate,
                           latency_min=args.latency, control=args.control, wave=args.wave, tick_min=tick,
                           hours=hours, window_min=args.window, seed=args.seed)
            for gate in ("ringfence", "v2-mixture-only", "ringfence-v2", "naive", "kayenta"):
                halted = float(np.mean(np.isfinite(res[gate])))
                if ratio > 1:
                    value = float(np.nanmedian(res[gate + "_host_hours"])) if halted else math.nan
                    limit = _sprt_host_hours(base, ratio=ratio)
                    unit = "host-h"
                else:
                    value = float(np.nanmedian(res[gate + "_hosts"])) if halted else math.nan
                    limit = (1.0 / p1 if p1 < 1 else 1.0) + args.rate * args.latency
                    unit = "hosts"
                print(f"| {label} | {base:g} | {gate} | {halted:.0%} | {value:,.0f} {unit} | {limit:,.0f} {unit} | "
                      f"{value / limit:.2f} |", flush=True)
    print()
    print("| false halts (harmless release) | baseline λ0 /host-h | gate | replications | rate | α |")
    print("|---|---|---|---|---|---|")
    for base in (1e-4, 1e-3):
        res = simulate(reps=args.false_halt_replications, base=base, p1=0.0, ratio=1.0, rate=args.rate,
                       latency_min=args.latency, control=args.control, wave=args.wave, tick_min=10.0,
                       hours=72.0, window_min=args.window, seed=args.seed + 7)
        for gate in ("ringfence", "v2-mixture-only", "ringfence-v2", "naive", "kayenta"):
            rate = float(np.mean(np.isfinite(res[gate])))
            print(f"| 72 h | {base:g} | {gate} | {args.false_halt_replications:,} | {rate:.4f} | 0.01 |", flush=True)
    if args.only_stream:
        print(f"\nwall {time.perf_counter() - began:.0f} s")
        return 0
    if args.cap_replications:
        print()
        cap_main(args.cap_replications, args.seed)
    if args.fleet_replications:
        print()
        fleet_main(args.fleet_replications, args.fleet_false_halt_replications, args.seed,
                   tuple(args.fleet_harms.split(',')))
    print(f"\nwall {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
