"""Benchmark: ETA curves of the recovery after the 19 July 2024 replay's big-bang outcome, beside the 2024 figures.

Usage (from the repository root, after `make install`)::

    .venv/bin/python bench/recovery_eta.py [--hosts 10000000] [--seed 0] [--html recovery-eta.html]

Runs `examples/scenarios/crowdstrike-2024.yaml` under the `big-bang` policy through the real simulator
(``ringfence.sim.simulate``; at 10M hosts about 8.6M online Windows hosts crash and 99 % boot-loop), keeps the
simulator's own outcome (which hosts crashed and when, which healed by rebooting, which need hands and at which
recovery site), and plans the hands-on hosts with the shared planner (``ringfence.domain.recovery``: queue
order, each site's technicians as one pool, automated lanes) under four preparations:

* **as in 2024**: the scenario's key mix (70 % BitLocker, 85 % of those escrowed and verified: a PC or server
  with a usable key is unlocked by hand, one without is reimaged) and no automation;
* **every key escrowed**: every encrypted disk has an escrowed, verified key (no reimage);
* **Redfish / hypervisor automation**: servers whose disk can be unlocked (not encrypted, or a usable key) need
  no technician: physical servers (PowerEdge, ProLiant) through Redfish virtual media, virtual servers (Hyper-V,
  VMware) through the hypervisor's or cloud's rescue tooling, on automated lanes *per recovery site* with the
  example runbooks' limits (examples/recovery/default.yaml: Redfish 10 at once capped at 60 min, cloud/VM rescue
  20 at once capped at 90 min) and the class minutes (server 20 min, VM 45 min);
* **both**.

The technician model is the replay's (the scenario's ``recovery:`` block, the simulator's default: 3 technicians
round the clock per recovery site of 500 hosts, 5 min per PC, 20 per server, 65 to reimage, from 78 minutes
after the release).  It prints the share of the crashed hosts back at the end of each day since 04:09 UTC on
19 July (self-healed and recovered), the hour 97 % and 100 % are back, beside the 2024 figures (CrowdStrike:
about 89 % of Windows sensors back online after a day, more than 97 % by day 6), and writes an HTML page with
the four curves (``--html``).  Every curve is one planner call on the same hosts.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import ringfence.sim.runner as sim_runner
from ringfence.adapters.reports.assessment import step_chart
from ringfence.domain.model import DiskEncryption
from ringfence.domain.recovery import (
    CLOUD_VM,
    Capacity,
    Lane,
    RecoveryModel,
    class_minutes,
    classify,
    dependency_tier,
    queue_order,
    schedule,
)
from ringfence.sim.fleet import SimFleet, build_template
from ringfence.sim.scenario import load_plan, load_scenario

#: CrowdStrike's figures for 2024 (share of Windows sensors back online after the end of day N).
FIGURES_2024 = {1: "≈ 89 %", 6: "> 97 %"}
#: Automated lanes per recovery site, with the example runbooks' limits: (concurrency, cap minutes).
REDFISH = (10, 60.0)
VM_RESCUE = (20, 90.0)
_PHYSICAL = ("PowerEdge", "ProLiant")


class _Keep(SimFleet):
    """The simulator's own fleet, kept so its outcome (crash times, sites) can be planned again."""

    kept: ClassVar[list[_Keep]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.back: Any = None
        _Keep.kept.append(self)

    def recovery(self, withdrawn_s: float | None, noticed_s: float | None) -> tuple[Any, int]:
        """The simulator's recovery, unchanged; its result is kept."""
        back, manual = super().recovery(withdrawn_s, noticed_s)
        self.back = back
        return back, manual


def _curves(fleet: SimFleet, back: Any, model: Any, technicians: int) -> dict[str, Any]:
    assert fleet.manual_work is not None
    manual, site, begin_s = fleet.manual_work
    tmpl = fleet.template  # the template hosts the release reaches; fleet.tmpl indexes them
    t = fleet.tmpl[manual]
    server = np.array([h.labels.get("role") == "server" for h in tmpl], bool)[t]
    encrypted = np.array([h.encryption is not DiskEncryption.NONE for h in tmpl], bool)[t]
    key_ready = np.array([h.recovery_key_escrowed and h.recovery_key_verified for h in tmpl], bool)[t]
    physical = np.array([h.hardware_model.startswith(_PHYSICAL) for h in tmpl], bool)[t]
    tier = np.array([h.tier for h in tmpl], np.int64)[t]
    n_sites = int(site.max()) + 1
    crashed = ~np.isnan(fleet.crashed_s)
    healed = crashed.copy()
    healed[manual] = False
    healed_back = back[healed] / 3600.0
    ready = fleet.crashed_s[manual] / 3600.0
    begin = begin_s / 3600.0
    dep = np.full(len(manual), dependency_tier("", 3), np.int64)
    capacity = [Capacity(technicians)] * n_sites
    out: dict[str, Any] = {}
    for name, keys, auto in (("as in 2024", False, False), ("every key escrowed", True, False),
                             ("Redfish / hypervisor automation", False, True), ("both", True, True)):
        usable = key_ready | ~encrypted if not keys else np.ones(len(manual), bool)
        cls = classify(server, np.zeros(len(manual), bool), encrypted, usable)
        minutes = class_minutes(cls, model)
        lane = np.full(len(manual), -1, np.int64)
        lanes: list[Lane] = []
        if auto:
            on = server & usable
            minutes = np.where(on & ~physical, class_minutes(np.full(len(manual), CLOUD_VM, np.int64), model), minutes)
            # one Redfish lane and one VM-rescue lane per recovery site
            lane[on & physical] = site[on & physical] * 2
            lane[on & ~physical] = site[on & ~physical] * 2 + 1
            for s in range(n_sites):
                lanes += [Lane(f"redfish-{s}", *REDFISH), Lane(f"vm-rescue-{s}", *VM_RESCUE)]
        began = time.perf_counter()
        key = np.where(lane < 0, site, n_sites + lane)
        order = queue_order(key, dep, tier, minutes, manual)
        done = schedule(site, minutes, order, capacity, lane=lane, lanes=lanes, start_hours=begin, ready_hours=ready)
        wall = time.perf_counter() - began
        every = np.sort(np.r_[healed_back, done])
        total = int(crashed.sum())
        days = {d: float(np.searchsorted(every, 24.0 * d, side="right")) / total for d in range(1, 8)}
        out[name] = {"days": days, "h97": float(every[int(np.ceil(0.97 * total)) - 1]), "h100": float(every[-1]),
                     "curve": every, "wall": wall, "reimage": int((cls == 3).sum()),
                     "automated": int((lane >= 0).sum()), "hands_on": int((lane < 0).sum())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--html", type=Path, default=Path("recovery-eta.html"))
    args = parser.parse_args()
    if not 1_000 <= args.hosts <= 20_000_000:
        parser.error("--hosts must be between 1,000 and 20,000,000")
    scenario = load_scenario("crowdstrike-2024")
    began = time.perf_counter()
    sim_runner.SimFleet = _Keep  # type: ignore[attr-defined]  # keep the simulator's fleet; the run is unchanged
    result = sim_runner.simulate(scenario, "big-bang", load_plan("big-bang"), hosts=args.hosts, seed=args.seed,
                                 template=build_template(scenario, args.seed))
    sim_wall = time.perf_counter() - began
    fleet = _Keep.kept[-1]
    fig = result.figures
    back = fleet.back
    print(f"simulated {fig['hosts']:,} hosts under big-bang in {sim_wall:.1f} s: crashed {fig['crashed_hosts']:,}, "
          f"manual recovery {fig['manual_recovery_hosts']:,} hosts, simulator's recovery {fig['recovery_hours']} h",
          flush=True)
    rec = scenario.recovery
    defaults = RecoveryModel()
    models = (("the replay's technicians", rec.planner(), rec.technicians,
               f"{rec.technicians} technicians per recovery site of {rec.hosts_per_site} hosts, round the clock; "
               f"{rec.workstation_minutes:g} min per PC, {rec.server_minutes:g} per server, "
               f"{rec.reimage_minutes:g} to reimage"),
              ("the planner's defaults", defaults, defaults.technicians_per_site,
               f"{defaults.technicians_per_site} technicians per recovery site of {rec.hosts_per_site} hosts, round the "
               f"clock; {defaults.pc_minutes:g} min per PC, {defaults.server_minutes:g} per server, "
               f"{defaults.cloud_vm_minutes:g} per VM rescue, {defaults.reimage_minutes:g} to reimage"))
    tables = []
    for label, model, techs, words in models:
        curves = _curves(fleet, back, model, techs)
        tables.append((label, words, curves))
        print(f"\n{label}: {words}")
        print("preparation".ljust(34) + "".join(f"day {d}".rjust(9) for d in range(1, 8)) + "    97 % at   100 % at")
        print("2024 (CrowdStrike)".ljust(34) + "".join(FIGURES_2024.get(d, "").rjust(9) for d in range(1, 8)))
        for name, c in curves.items():
            print(name.ljust(34) + "".join(f"{100 * v:8.1f}%" for v in c["days"].values())
                  + f"{c['h97']:9.1f} h{c['h100']:9.1f} h   (reimage {c['reimage']:,}, automated {c['automated']:,}, "
                  f"plan {c['wall']:.1f} s)", flush=True)
    curves = tables[0][2]
    lines = []
    for name, c in curves.items():
        ev = c["curve"]
        grid = np.linspace(0.0, 24.0 * 7, 169)
        share = np.searchsorted(ev, grid, side="right") / len(ev) * 100.0
        lines.append((name, list(zip((grid / 24.0).tolist(), share.tolist(), strict=True))))
    chart = step_chart("crashed hosts back (%), days after 04:09 UTC 19 July 2024 (big-bang replay)", lines,
                       x_label="days after the release", y_label="% back")
    sections = ""
    for label, words, cv in tables:
        rows = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{100 * v:.1f} %</td>" for v in c["days"].values())
                       + f"<td>{c['h97']:.1f} h</td><td>{c['h100']:.1f} h</td></tr>" for name, c in cv.items())
        sections += (f"<h2>With {label}</h2><p>{words}.</p><table><tr><th>preparation</th>"
                     + "".join(f"<th>day {d}</th>" for d in range(1, 8)) + "<th>97 %</th><th>100 %</th></tr>"
                     "<tr><td>2024 (CrowdStrike)</td>"
                     + "".join(f"<td>{FIGURES_2024.get(d, '')}</td>" for d in range(1, 8))
                     + f"<td></td><td></td></tr>{rows}</table>")
    args.html.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Recovery ETA after the 2024 replay</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2rem}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>Recovery after the 19 July 2024 replay (big-bang)</h1>"
        f"<p>{fig['crashed_hosts']:,} hosts crashed; {fig['manual_recovery_hosts']:,} needed hands. 2024: about 89 % "
        f"back after a day, more than 97 % by day 6 (CrowdStrike). The chart: with {tables[0][0]}.</p>"
        f"<figure>{chart}</figure>{sections}</body></html>", encoding="utf-8")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"wrote {args.html}; peak RSS {rss:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
