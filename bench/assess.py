"""Benchmark: the fleet resilience assessment on a generated fleet.

Usage (from the repository root, after `make install`)::

    .venv/bin/python bench/assess.py [--hosts 1000000] [--seed 1] [--top 100]

Times, in one run: generating the fleet (about one service per 100 hosts, so 10,000 services at 1M
hosts); building the assessment index (``domain.assessment.Fleet``); one scenario
(``agent.vendor=CrowdStrike``); and the ``--top`` sweep over every single vendor, kernel
component, OS build and cloud region.  Targets (DESIGN §9): one scenario ≤ 10 s and a top-100
sweep ≤ 60 s at 1M hosts + 10k services.  The database is not involved: this measures the
computation the API runs after loading the inventory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

from rich.console import Console
from rich.table import Table

from ringfence.domain.assessment import Fleet, assess, top
from ringfence.runtime import collector_paused
from ringfence.sim.fleetgen import generate_fleet

console = Console(stderr=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--scenario", default="agent.vendor=CrowdStrike")
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []

    with console.status(f"generating {args.hosts:,} hosts"), collector_paused():
        t = time.perf_counter()
        inv = generate_fleet(args.hosts, args.seed)
        rows.append(("generate fleet", time.perf_counter() - t,
                     f"{len(inv.hosts):,} hosts, {len(inv.services):,} services"))
    with console.status("building the index"), collector_paused():
        t = time.perf_counter()
        fleet = Fleet(inv.hosts, inv.services)
        rows.append(("build index", time.perf_counter() - t, ""))
    with console.status(f"assessing {args.scenario}"), collector_paused():
        t = time.perf_counter()
        result = assess(fleet, args.scenario)
        secs = time.perf_counter() - t
        rows.append((f"one scenario ({args.scenario})", secs,
                     f"{result.hosts_down:,} hosts down, {len(result.services_down):,} services down; target ≤ 10 s"))
    with console.status(f"top {args.top}"), collector_paused():
        t = time.perf_counter()
        ranked = top(fleet, args.top)
        secs = time.perf_counter() - t
        first = f"#1 {ranked[0].kind} {ranked[0].name}" if ranked else "none"
        rows.append((f"top {args.top} sweep", secs, f"{first}; target ≤ 60 s"))

    table = Table(title=f"assessment, {args.hosts:,} hosts, seed {args.seed}")
    for col in ("stage", "seconds", "notes"):
        table.add_column(col)
    for stage, s, note in rows:
        table.add_row(stage, f"{s:.2f}", note)
    Console().print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB; python {sys.version.split()[0]}; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
