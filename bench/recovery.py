"""Benchmark: the shared recovery planner on 1,000,000 affected hosts over 500 sites.

Usage (from the repository root, after `make install`)::

    .venv/bin/python bench/recovery.py [--hosts 1000000] [--sites 500] [--updates 10000] [--seed 1]

Generates a fleet (``sim.fleetgen``; its 37 sites are split into ``--sites`` sites that keep their time
zones), then times in one run: building the index (``domain.assessment.Fleet``); planning every host with
the example runbooks (examples/recovery/default.yaml) and three 8-hour shifts of technicians in each site's
own time zone; and a re-plan after ``--updates`` hosts were verified (the remaining hosts, from the hour the
updates arrived, on the same index).  Targets (DESIGN §9): plan ≤ 10 s and ≤ 2 GB; re-plan ≤ 1 s.  Each stage
prints wall seconds and the process's CPU seconds (on a machine shared with other work the CPU time is the
figure that does not depend on the load).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from ringfence.domain.assessment import Fleet, plan_recovery
from ringfence.domain.recovery import RecoveryModel, Shift, runbooks_from_mapping
from ringfence.sim.fleetgen import generate_fleet

console = Console(stderr=True)
RUNBOOKS = Path(__file__).resolve().parents[1] / "examples" / "recovery" / "default.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    with console.status(f"generating {args.hosts:,} hosts over {args.sites} sites"):
        inv = generate_fleet(args.hosts, args.seed)
        base_sites = sorted({h.site for h in inv.hosts})
        split = max(1, round(args.sites / len(base_sites)))
        hosts = [dataclasses.replace(h, site=f"{h.site}-{i % split}") for i, h in enumerate(inv.hosts)]
        n_sites = len({h.site for h in hosts})
    books = runbooks_from_mapping(yaml.safe_load(RUNBOOKS.read_text(encoding="utf-8")))
    shifts = tuple(Shift(clock(h), 8.0, 2) for h in (6, 14, 22))
    model = RecoveryModel(default_shifts=shifts)
    start = datetime(2024, 7, 19, 4, 9, tzinfo=UTC)
    with console.status("building the index"):
        t, c = time.perf_counter(), time.process_time()
        fleet = Fleet(hosts, inv.services)
        t_index = time.perf_counter() - t
        rows.append(("build index", t_index, time.process_time() - c,
                     f"{fleet.n:,} hosts, {n_sites} sites, {len(inv.services):,} services"))
    idx = np.arange(fleet.n, dtype=np.int64)
    with console.status("planning"):
        t, c = time.perf_counter(), time.process_time()
        plan = plan_recovery(fleet, idx, model, books, start=start)
        t_plan = time.perf_counter() - t
        rows.append(("plan every host", t_plan, time.process_time() - c,
                     f"ETA {plan.recovery_hours:,.1f} h, {len(plan.waves):,} waves, {len(plan.rto_breaches):,} breaches; "
                     f"index + plan {t_index + t_plan:.1f} s, target ≤ 10 s"))
    rng = np.random.default_rng(args.seed)
    verified = rng.choice(fleet.n, size=min(args.updates, fleet.n), replace=False)
    left = np.setdiff1d(idx, verified)
    at = float(np.quantile(plan.done_hours, 0.01))
    with console.status("re-planning"):
        t, c = time.perf_counter(), time.process_time()
        again = plan_recovery(fleet, left, model, books, start=start, start_hours=at, previous=plan)
        t_again = time.perf_counter() - t
        rows.append((f"re-plan after {len(verified):,} updates", t_again, time.process_time() - c,
                     f"{len(left):,} hosts left, ETA {again.recovery_hours:,.1f} h; target ≤ 1 s"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    table = Table(title=f"recovery planner, {fleet.n:,} hosts, {n_sites} sites (cpus {os.cpu_count()})")
    for col in ("stage", "seconds", "cpu seconds", "notes"):
        table.add_column(col)
    for name, secs, cpu, note in rows:
        table.add_row(name, f"{secs:.2f}", f"{cpu:.2f}", note)
    console.print(table)
    console.print(f"peak RSS {rss:.2f} GB (includes generating the fleet); target ≤ 2 GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
