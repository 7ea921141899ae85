"""The 19 July 2024 replay at full scale: big-bang and ringfence's default policy in one run.

    .venv/bin/python bench/crowdstrike.py                      # 10M hosts (the scenario's size)
    .venv/bin/python bench/crowdstrike.py --hosts 8500000 --seed 1
    .venv/bin/python bench/crowdstrike.py --hosts 200000 --gate both            # the first gate and gate v2
    .venv/bin/python bench/crowdstrike.py --scenario good-release --hosts 20000 --plan default --gate v2

Runs `examples/scenarios/crowdstrike-2024.yaml` through the real engine (ringfence.sim) under each policy
on the same simulated fleet (``--scenario`` runs another one; ``--gate v2`` counts risk sets for gate v2,
``both`` runs each policy under the first gate and under gate v2), and prints per policy: hosts, exposed,
crashed, halted and when, manual recovery, recovery hours, completion, final state and wall time; then the
ratio of crashed hosts (big-bang / default), the share of the fleet crashed under default against DESIGN §9's
0.001 % target, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace

from ringfence.sim.fleet import build_template
from ringfence.sim.runner import simulate
from ringfence.sim.scenario import load_plan, load_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=None, help="fleet size (default: the scenario's, 10M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plan", "--policy", dest="plan", action="append", default=None,
                        help="plans (default: big-bang, default); --policy is the former name")
    parser.add_argument("--json", default="", help="also write the results as JSON here")
    parser.add_argument("--scenario", default="crowdstrike-2024", help="scenario (default: crowdstrike-2024)")
    parser.add_argument("--gate", choices=("v1", "v2", "both"), default="v2",
                        help="v2 (the default): risk sets with self-control; v1: the first gate (counted streams); both")
    args = parser.parse_args(argv)
    if args.hosts is not None and not 1_000 <= args.hosts <= 20_000_000:
        parser.error("--hosts must be between 1,000 and 20,000,000")
    base = load_scenario(args.scenario)
    plans = args.plan or ["big-bang", "default"]
    template = build_template(base, args.seed)
    gates = ["v1", "v2"] if args.gate == "both" else [args.gate]
    rows = []
    for name, gate in [(p, g) for p in plans for g in gates]:
        scenario = replace(base, risk_sets=gate == "v2")
        began = time.perf_counter()
        result = simulate(scenario, name, load_plan(name), hosts=args.hosts, seed=args.seed, template=template)
        wall = time.perf_counter() - began
        rows.append({**result.figures, "gate": gate, "wall_s": round(wall, 1), "warm_up_s": round(result.warm_up_s, 1),
                     "state": result.log[-1]["state"]
                     if result.log else None, "halt": result.halt["message"] if result.halt else None})
        print(f"{name:>18} {gate}: {result.figures['hosts']:,} hosts, exposed {result.figures['exposed_hosts']:,}, "
              f"crashed {result.figures['crashed_hosts']:,}, halted {result.figures['halted']} "
              f"after {result.figures['time_to_halt_s']} s, manual recovery {result.figures['manual_recovery_hosts']:,}"
              f" hosts / {result.figures['recovery_hours']} h, completed after {result.figures['time_to_full_s']} s, "
              f"final state {rows[-1]['state']}, wall {wall:.1f} s (warm-up {result.warm_up_s:.1f} s)", flush=True)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    by = {r["plan"]: r for r in rows if r["gate"] == gates[0]}
    if "big-bang" in by and "default" in by:
        big, default = by["big-bang"]["crashed_hosts"], by["default"]["crashed_hosts"]
        share = default / by["default"]["hosts"]
        print(f"crashed big-bang / default: {big / max(default, 1):,.0f}x; default crashed {share:.5%} of the fleet "
              f"(target ≤ 0.001 %: {'met' if share <= 1e-5 else 'MISSED'})")
    print(f"peak RSS {peak_gib:.2f} GiB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": rows, "peak_rss_gib": round(peak_gib, 2)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
