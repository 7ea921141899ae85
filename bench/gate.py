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

import numpy as np
from scipy import stats

from ringfence.domain.gate import GateConfig, log_e_value_vs_control


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


def _sprt_host_hours(base: float, alpha: float = 0.01, beta: float = 0.01) -> float:
    kl = base * (2 * math.log(2) - 1)
    return (math.log((1 - beta) / alpha) * (1 - beta) + math.log(beta / (1 - alpha)) * beta) / kl


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
    args = ap.parse_args(argv)
    if not (1 <= args.replications <= 100_000 and 1 <= args.false_halt_replications <= 100_000):
        ap.error("replications must be between 1 and 100,000")
    _check_mwu()
    began = time.perf_counter()
    print("| case | baseline λ0 /host-h | gate | halted | median exposure at halt | limit | ratio |")
    print("|---|---|---|---|---|---|---|")
    for base in (1e-4, 1e-3):
        for label, p1, ratio, hours, tick in (("p1=1", 1.0, 1.0, 2.0, args.tick), ("p1=0.1", 0.1, 1.0, 3.0, args.tick),
                                              ("p1=0.01", 0.01, 1.0, 8.0, args.tick),
                                              ("2x", 0.0, 2.0, 72.0 if base >= 1e-3 else 480.0, 10.0)):
            res = simulate(reps=args.replications, base=base, p1=p1, ratio=ratio, rate=args.rate,
                           latency_min=args.latency, control=args.control, wave=args.wave, tick_min=tick,
                           hours=hours, window_min=args.window, seed=args.seed)
            for gate in ("ringfence", "naive", "kayenta"):
                halted = float(np.mean(np.isfinite(res[gate])))
                if ratio > 1:
                    value = float(np.nanmedian(res[gate + "_host_hours"])) if halted else math.nan
                    limit = _sprt_host_hours(base)
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
        for gate in ("ringfence", "naive", "kayenta"):
            rate = float(np.mean(np.isfinite(res[gate])))
            print(f"| 72 h | {base:g} | {gate} | {args.false_halt_replications:,} | {rate:.4f} | 0.01 |", flush=True)
    print(f"\nwall {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
