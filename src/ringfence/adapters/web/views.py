"""What the dashboard pages show, gathered from the services and stores (no HTML here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ringfence.adapters.api.deps import AppState
from ringfence.adapters.api.routes.rollouts import rollout_json
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.db.stores.base import utc
from ringfence.domain.access import Role
from ringfence.domain.plans import plan_to_mapping
from ringfence.domain.rollout import TERMINAL, RolloutState
from ringfence.domain.words import STATE_WORDS
from ringfence.services import release_gates, rollouts, supply_chain
from ringfence.services.context import Actor

__all__ = [
    "SILENT_AFTER",
    "STATE_WORDS",
    "FleetHealth",
    "exposure_chart",
    "fleet_health",
    "overview",
    "releases_page",
    "rollout_page",
    "when",
]

#: A host with no heartbeat for this long counts as silent on the overview.
SILENT_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class FleetHealth:
    """Hosts in the inventory, reporting, silent (reported once, then stopped) and never seen."""

    hosts: int
    reporting: int
    silent: int
    never: int


def fleet_health(state: AppState, now: datetime) -> FleetHealth:
    """Counts over the whole inventory from the last heartbeats."""
    with state.db.transaction() as conn:
        total = inventory_store.count_hosts(conn)
        beats = health_store.heartbeats(conn)
    reporting = sum(1 for b in beats.values() if now - b <= SILENT_AFTER)
    return FleetHealth(hosts=total, reporting=reporting, silent=len(beats) - reporting, never=max(0, total - len(beats)))


def overview(state: AppState, actor: Actor) -> dict[str, Any]:
    """Active rollouts with their waves, halts needing attention, kill switches per product, fleet health."""
    now = state.clock()
    views = rollouts.list_rollouts(state.db, actor=actor)
    active = [rollout_json(state, v.spec.id, decisions=1) for v in views if v.status.state not in TERMINAL]
    attention = [rollout_json(state, v.spec.id, decisions=1) for v in views
                 if v.status.state in (RolloutState.HALTED, RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK)
                 and v.status.halt_reason][:10]
    with state.db.transaction() as conn:
        products = sorted({r.product for r in store.list_releases(conn)})
        switches = [{"product": p, "switch": store.kill_switch(conn, p)} for p in products]
    recent = [{"id": v.spec.id, "release": v.spec.release.id, "state": v.status.state.value,
               "message": v.status.message} for v in views if v.status.state in TERMINAL][:10]
    return {"now": now, "active": active, "attention": attention, "switches": switches, "recent": recent,
            "fleet": fleet_health(state, now)}


def exposure_chart(state: AppState, rollout_id: str, now: datetime, *, width: int = 640,
                   height: int = 180) -> dict[str, Any]:
    """Cumulative exposed (and rolled back) hosts over time, as SVG polyline points."""
    with state.db.transaction() as conn:
        rows = store.rollout_host_rows(conn, rollout_id)
    exposed = sorted(t for r in rows if (t := utc(r.exposed_at)) is not None)
    back = sorted(t for r in rows if (t := utc(r.rolled_back_at)) is not None)
    if not exposed:
        return {"points": "", "back_points": "", "total": len(rows), "top": 0, "exposed": 0, "start": None, "end": now,
                "width": width, "height": height}
    top = max(10, len(exposed))  # the y axis ends at the hosts exposed so far, so a small canary is visible
    start, end = exposed[0], max(now, exposed[-1])
    span = max((end - start).total_seconds(), 1.0)

    def xy(t: datetime, n: int) -> str:
        x = (t - start).total_seconds() / span * width
        y = height - n / top * height
        return f"{x:.1f},{y:.1f}"

    def steps(times: list[datetime]) -> str:
        pts = [xy(start, 0)]
        for n, t in enumerate(times, 1):
            pts.append(xy(t, n - 1))
            pts.append(xy(t, n))
        pts.append(xy(end, len(times)))
        return " ".join(pts)

    return {"points": steps(exposed), "back_points": steps(back) if back else "", "total": len(rows), "top": top,
            "exposed": len(exposed), "start": start, "end": end, "width": width, "height": height}


def rollout_page(state: AppState, rollout_id: str) -> dict[str, Any]:
    """Everything the rollout page shows: status, waves, chart, gate evidence, windows, holds, decisions."""
    now = state.clock()
    data = rollout_json(state, rollout_id, decisions=200)
    data.setdefault("gates", [])
    view = rollouts.get_rollout(state.db, rollout_id)
    plan = view.spec.plan
    timeline = []
    for w, spec_w in zip(data["waves"], plan.waves, strict=True):
        bake = w["bake_started_at"]
        earliest = (datetime.fromisoformat(bake) + spec_w.min_bake) if bake else None
        timeline.append({**w, "earliest_promotion": earliest})
    mapping = plan_to_mapping(plan)
    windows = [f"{', '.join(w['days'])} {w['start']}–{w['end']}" for w in mapping.get("windows", [])]
    freeze = mapping.get("freeze", {})
    decisions = list(reversed(data["decisions"]))
    # The health gate's evidence (other evidence, such as release gates before the start, has no streams).
    evidence = next((d for d in decisions if isinstance(d.get("evidence"), dict) and "streams" in d["evidence"]
                     and "verdict" in d["evidence"]), None)
    streams = sorted((evidence or {}).get("evidence", {}).get("streams", []),
                     key=lambda s: (s["verdict"] != "failed", s["stratum"] != "*", s["signal"]))
    return {"now": now, "r": data, "timeline": timeline, "windows": windows, "freeze": freeze,
            "chart": exposure_chart(state, rollout_id, now), "decisions": decisions, "evidence": evidence,
            "streams": streams[:40], "streams_total": len(streams), "started_by": view.status.started_by}


def releases_page(state: AppState, actor: Actor) -> list[dict[str, Any]]:
    """Every release with its artifacts, SBOM findings (VEX waivers applied) and its rollouts' release gates."""
    actor.require(Role.VIEWER, "reading releases")
    index = supply_chain.advisory_index(state.db)
    out: list[dict[str, Any]] = []
    with state.db.transaction() as conn:
        rows = store.list_rollout_rows(conn)
        for release in store.list_releases(conn):
            found = supply_chain.release_findings(conn, release, index)
            open_findings = [f for f in found["findings"] if not f.get("waived")]
            severities: dict[str, int] = {}
            for f in open_findings:
                severities[f["severity"]] = severities.get(f["severity"], 0) + 1
            gates = [{"rollout": r.id, "gates": release_gates.gates_of(conn, r.id)}
                     for r in rows if r.release_id == release.id]
            out.append({"release": release, "sbom": found["sbom"], "findings": open_findings[:10],
                        "findings_total": len(open_findings), "waived": len(found["findings"]) - len(open_findings),
                        "not_evaluated": len(found["not_evaluated"]), "severities": severities,
                        "gates": [g for g in gates if g["gates"]]})
    return out


def when(value: Any) -> str:
    """A time for people: ``2026-11-24 09:07 UTC``; empty for none."""
    if value is None or value == "":
        return ""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(t, datetime):
        return str(value)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
