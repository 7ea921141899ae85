"""False halts of good releases over many full-simulation replications (issue 13, DESIGN §9: ≤ α over ≥ 1,000).

    .venv/bin/python bench/false_halts.py --replications 1000 --hosts 1000
    .venv/bin/python bench/false_halts.py --replications 30 --hosts 1000 --scenario flapping --json out.json

Each replication is the whole simulator (``ringfence.sim.runner.simulate``: the real engine, gate v2 on risk sets
with self-control, the fleet's physics, its warm-up history), not a one-stream model: a harmless release
(``failures: []``) under the plan (``default`` unless ``--plan``) on a fleet of ``--hosts`` hosts, seed
``--seed + r`` for replication ``r``.  The scenarios default to the three harmless fleets of the issue, in
turn: ``sleeping-laptops`` (all laptops, asleep at night and at weekends, with going-away notices),
``region-outage`` (a quarter of the fleet offline for 2 h without notice) and ``flapping`` (5 % of hosts drop
out 25 min of every 90 without notice).  Replication ``r`` runs scenario ``r mod 3``, so any prefix of the run
is balanced across them.  Every halt is a false halt.

Prints per scenario and overall: replications, false halts and the rate with its exact (Clopper–Pearson) 95 %
upper bound against the plan's α, completed rollouts, HOLDs and median time to completion; ``--json`` writes
every replication's figures.  A run can be stopped at any time (Ctrl-C): what has finished is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from scipy.stats import beta as beta_dist

from ringfence.sim.runner import simulate
from ringfence.sim.scenario import Scenario, load_plan, load_scenario

SCENARIOS = ("sleeping-laptops", "region-outage", "flapping")


def _upper(k: int, n: int, level: float = 0.95) -> float:
    """Exact one-sided upper confidence bound on a binomial rate (Clopper–Pearson)."""
    return 1.0 if k >= n else float(beta_dist.ppf(level, k + 1, n - k))


def _one(scenario: Scenario, plan_name: str, hosts: int, seed: int) -> dict[str, Any]:
    plan = load_plan(plan_name)
    began = time.perf_counter()
    result = simulate(scenario, plan_name, plan, hosts=hosts, seed=seed)
    states = [e["state"] for e in result.log]
    return {**result.figures, "final_state": states[-1] if states else None, "hold": "hold" in states,
            "halt": result.halt["message"] if result.halt else None, "wall_s": round(time.perf_counter() - began, 2)}


def _summary(rows: list[dict[str, Any]], alpha: float) -> str:
    n = len(rows)
    k = sum(1 for r in rows if r["false_halt"])
    done = [r["time_to_full_s"] / 3600 for r in rows if r["time_to_full_s"] is not None]
    holds = sum(1 for r in rows if r["hold"])
    median = f"{statistics.median(done):.1f} h" if done else "—"
    return (f"{n:,} replications, {k:,} false halts ({k / n if n else 0:.2%}; 95 % upper bound "
            f"{_upper(k, n):.2%} vs α = {alpha:.0%}), {len(done):,} completed (median {median}), {holds:,} HOLD")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=1000, help="replications in all (default 1,000)")
    parser.add_argument("--hosts", type=int, default=1000, help="fleet size of each replication (default 1,000)")
    parser.add_argument("--scenario", action="append", default=None,
                        help=f"harmless scenario(s), taken in turn (default: {', '.join(SCENARIOS)})")
    parser.add_argument("--plan", default="default", help="plan (default: default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of replication 0 (replication r: seed + r)")
    parser.add_argument("--horizon-hours", type=float, default=None,
                        help="override the scenarios' horizon (default: each scenario's own, 120 h)")
    parser.add_argument("--json", default="", help="write every replication's figures here")
    args = parser.parse_args(argv)
    if args.replications < 1:
        parser.error("--replications must be at least 1")
    if not 100 <= args.hosts <= 1_000_000:
        parser.error("--hosts must be between 100 and 1,000,000")
    scenarios = []
    for name in args.scenario or SCENARIOS:
        sc = load_scenario(name)
        if sc.harmful:
            parser.error(f"--scenario {name}: the release harms hosts (failures: …); false halts need a harmless one")
        if args.horizon_hours is not None:
            sc = replace(sc, horizon=timedelta(hours=args.horizon_hours))
        scenarios.append(sc)
    alpha = load_plan(args.plan).gate.alpha
    rows: list[dict[str, Any]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("false halts {task.fields[halts]}"), TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns) as bar:
            task = bar.add_task("replications", total=args.replications, halts=0)
            for r in range(args.replications):
                sc = scenarios[r % len(scenarios)]
                row = _one(sc, args.plan, args.hosts, args.seed + r)
                rows.append(row)
                if row["false_halt"]:
                    bar.console.print(f"false halt: {sc.name} seed {args.seed + r}: {row['halt']}")
                bar.update(task, advance=1, halts=sum(1 for x in rows if x["false_halt"]),
                           description=f"replications ({sc.name})")
                if args.json:  # after every replication, so a stopped run keeps what it finished
                    _write(args.json, rows, alpha, args)
    except KeyboardInterrupt:
        print(f"stopped after {len(rows):,} replications", file=sys.stderr)
    if not rows:
        return 1
    for sc in scenarios:
        mine = [x for x in rows if x["scenario"] == sc.name]
        if mine:
            print(f"{sc.name:>18}: {_summary(mine, alpha)}")
    print(f"{'all':>18}: {_summary(rows, alpha)}; {args.hosts:,} hosts each, plan {args.plan}, seeds "
          f"{args.seed}…{args.seed + len(rows) - 1}; wall {sum(x['wall_s'] for x in rows):,.0f} s")
    if args.json:
        _write(args.json, rows, alpha, args)
    return 0


def _write(path: str, rows: list[dict[str, Any]], alpha: float, args: argparse.Namespace) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"replications": rows, "alpha": alpha, "hosts": args.hosts, "plan": args.plan}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
