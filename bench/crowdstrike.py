"""The 19 July 2024 replay at full scale: big-bang and ringfence's default policy in one run.

    .venv/bin/python bench/crowdstrike.py                      # 10M hosts (the scenario's size)
    .venv/bin/python bench/crowdstrike.py --hosts 8500000 --seed 1

Runs `examples/scenarios/crowdstrike-2024.yaml` through the real engine (ringfence.sim) under each policy
on the same simulated fleet, and prints per policy: hosts, exposed, crashed, halted and when, manual
recovery, recovery hours and wall time; then the ratio of crashed hosts (big-bang / default), the share of
the fleet crashed under default against DESIGN §9's 0.001 % target, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from ringfence.sim.fleet import build_template
from ringfence.sim.runner import simulate
from ringfence.sim.scenario import load_policy, load_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=None, help="fleet size (default: the scenario's, 10M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", action="append", default=None, help="policies (default: big-bang, default)")
    parser.add_argument("--json", default="", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.hosts is not None and not 1_000 <= args.hosts <= 20_000_000:
        parser.error("--hosts must be between 1,000 and 20,000,000")
    scenario = load_scenario("crowdstrike-2024")
    policies = args.policy or ["big-bang", "default"]
    template = build_template(scenario, args.seed)
    rows = []
    for name in policies:
        began = time.perf_counter()
        result = simulate(scenario, name, load_policy(name), hosts=args.hosts, seed=args.seed, template=template)
        wall = time.perf_counter() - began
        rows.append({**result.figures, "wall_s": round(wall, 1),
                     "halt": result.halt["message"] if result.halt else None})
        print(f"{name:>18}: {result.figures['hosts']:,} hosts, exposed {result.figures['exposed_hosts']:,}, "
              f"crashed {result.figures['crashed_hosts']:,}, halted {result.figures['halted']} "
              f"after {result.figures['time_to_halt_s']} s, manual recovery {result.figures['manual_recovery_hosts']:,}"
              f" hosts / {result.figures['recovery_hours']} h, wall {wall:.1f} s", flush=True)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    by = {r["policy"]: r for r in rows}
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
