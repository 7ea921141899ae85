"""What the dashboard pages show, gathered from the services and stores (no HTML here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from ringfence.adapters.api.deps import AppState
from ringfence.adapters.api.routes.rollouts import rollout_json
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import rollouts as store
from ringfence.adapters.db.stores.base import utc
from ringfence.domain.access import Role
from ringfence.domain.logrank import ledger_rows
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
    "fleet_history",
    "group_decisions",
    "overview",
    "prose",
    "releases_page",
    "rollback_summary",
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


def fleet_history(state: AppState, now: datetime, *, span: timedelta = timedelta(hours=6), samples: int = 73,
                  width: int = 640, height: int = 140) -> dict[str, Any]:
    """Hosts reporting and silent over the last ``span``, from each host's first and last heartbeat.

    At time t a host counts as reporting when it had first reported by t and its last heartbeat is no more than
    :data:`SILENT_AFTER` before t; as silent when its last heartbeat is older than that.  Only first and last
    heartbeats are stored, so a host that went quiet and came back counts as reporting throughout: the chart
    shows hosts that are silent *now* and when they went quiet (a boot loop after an update), not every gap.
    """
    with state.db.transaction() as conn:
        last = health_store.heartbeats(conn)
        first = health_store.first_heartbeats(conn, last)
    if not last:
        return {"reporting": "", "silent": "", "width": width, "height": height, "x_ticks": [], "y_ticks": [],
                "start": None, "end": now, "now_silent": 0}
    ids = list(last)
    last_s = np.array([(last[h] - now).total_seconds() for h in ids])
    first_s = np.array([(first.get(h, last[h]) - now).total_seconds() for h in ids])
    start_s = max(-span.total_seconds(), float(first_s.min()))
    times = np.linspace(start_s, 0.0, samples)
    grace = SILENT_AFTER.total_seconds()
    seen = np.searchsorted(np.sort(first_s), times, side="right")              # first heartbeat at or before t
    silent = np.searchsorted(np.sort(last_s + grace), times, side="left")      # last heartbeat + grace before t
    reporting = seen - silent
    top = max(10, int(reporting.max(initial=0)), int(silent.max(initial=0)))
    length = max(-start_s, 1.0)

    def line(values: Any) -> str:
        return " ".join(f"{(t - start_s) / length * width:.1f},{height - v / top * height:.1f}"
                        for t, v in zip(times, values, strict=True))

    start = now + timedelta(seconds=start_s)
    x_ticks = [{"x": round(i / 4 * width, 1), "label": f"{start + (now - start) * (i / 4):%H:%M}"} for i in range(5)]
    y_ticks = [{"y": round(height - v / top * height, 1), "label": f"{v:,}"} for v in sorted({round(top * i / 4)
                                                                                             for i in range(5)})]
    return {"reporting": line(reporting), "silent": line(silent), "width": width, "height": height,
            "x_ticks": x_ticks, "y_ticks": y_ticks, "start": start, "end": now, "now_silent": int(silent[-1])}


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


def exposure_chart(state: AppState, rollout_id: str, now: datetime, *, width: int = 640, height: int = 180,
                   ended_at: datetime | None = None, halted_at: datetime | None = None) -> dict[str, Any]:
    """Cumulative exposed (and sent back) hosts over time, as SVG polyline points, with ticks and a halt marker.

    The time axis ends at ``now`` while the rollout runs; once it has ended (``ended_at``: halted, rolled back,
    completed or aborted) it stops at the last event, so the story does not shrink into the left edge as the
    clock goes on.
    """
    with state.db.transaction() as conn:
        rows = store.rollout_host_rows(conn, rollout_id)
    exposed = sorted(t for r in rows if (t := utc(r.exposed_at)) is not None)
    back = sorted(t for r in rows if (t := utc(r.rolled_back_at)) is not None)
    if not exposed:
        return {"points": "", "back_points": "", "total": len(rows), "top": 0, "exposed": 0, "start": None, "end": now,
                "width": width, "height": height, "x_ticks": [], "y_ticks": [], "halt_x": None, "halted_at": None}
    top = max(10, len(exposed))  # the y axis ends at the hosts exposed so far, so a small canary is visible
    start = exposed[0]
    last = max([exposed[-1], *back[-1:], *([halted_at] if halted_at else [])])
    end = max(last, min(now, ended_at or now))
    if ended_at is not None:  # ended: a margin of 5 % after the last event, never the wall clock
        end = last + max((last - start) * 0.05, timedelta(minutes=1))
    span = max((end - start).total_seconds(), 1.0)

    def x_of(t: datetime) -> float:
        return (t - start).total_seconds() / span * width

    def xy(t: datetime, n: int) -> str:
        return f"{x_of(t):.1f},{height - n / top * height:.1f}"

    def steps(times: list[datetime]) -> str:
        pts = [xy(start, 0)]
        for n, t in enumerate(times, 1):
            pts.append(xy(t, n - 1))
            pts.append(xy(t, n))
        pts.append(xy(end, len(times)))
        return " ".join(pts)

    x_ticks = []
    for i in range(5):
        t = start + (end - start) * (i / 4)
        x_ticks.append({"x": round(i / 4 * width, 1), "label": f"{t:%H:%M}" if span < 86400 else f"{t:%m-%d %H:%M}"})
    y_ticks = [{"y": round(height - v / top * height, 1), "label": f"{v:,}"}
               for v in sorted({round(top * i / 4) for i in range(5)})]
    halt_x = round(x_of(halted_at), 1) if halted_at is not None and start <= halted_at <= end else None
    return {"points": steps(exposed), "back_points": steps(back) if back else "", "total": len(rows), "top": top,
            "exposed": len(exposed), "start": start, "end": end, "width": width, "height": height,
            "x_ticks": x_ticks, "y_ticks": y_ticks, "halt_x": halt_x, "halted_at": halted_at}


def rollback_summary(state: AppState, rollout_id: str, product: str, bad_version: str,
                     now: datetime) -> dict[str, Any]:
    """What is true after a rollback: desired state reverted; who confirmed they are back; who is silent.

    A host is *silent* when it has not reported for :data:`SILENT_AFTER` (a boot loop looks exactly like this)
    and needs recovery by hand, whatever version it last reported; *confirmed back* when it has reported since
    the rollback and runs a version other than the rolled-back one; the rest report but have not moved yet
    (they move at their next poll).
    """
    with state.db.transaction() as conn:
        rows = [r for r in store.rollout_host_rows(conn, rollout_id) if r.exposed_at is not None]
        ids = [r.host_id for r in rows]
        beats = health_store.heartbeats(conn, ids)
        versions = health_store.versions_of(conn, ids, product)
    back_at = {r.host_id: utc(r.rolled_back_at) for r in rows}
    confirmed = silent = 0
    for host in ids:
        running = versions.get(host, ("", ""))[0]
        beat = utc(beats.get(host))
        if beat is None or now - beat > SILENT_AFTER:  # never heard of again: a boot loop looks like this
            silent += 1
        elif running and running != bad_version and (back_at[host] is None or beat >= back_at[host]):  # type: ignore[operator]
            confirmed += 1  # reporting since the rollback, and not on the bad version
    return {"exposed": len(ids), "confirmed": confirmed, "silent": silent,
            "moving": len(ids) - confirmed - silent}


def group_decisions(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive log rows that say the same thing (numbers aside) become one row with a count and a span.

    A wave exposing hosts writes a row a minute ("exposing 9 more hosts" ×28); grouped, the log shows the
    decisions instead of the ticks.  ``decisions`` is newest first; so is the result.
    """
    grouped: list[dict[str, Any]] = []
    for d in decisions:
        key = (d["state"], d["wave"], d["actor"], re.sub(r"\d[\d,.]*", "#", d["message"]))
        if grouped and grouped[-1]["key"] == key:
            grouped[-1]["count"] += 1
            grouped[-1]["first_at"] = d["at"]
            continue
        grouped.append({**d, "key": key, "count": 1, "first_at": d["at"]})
    return grouped


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
    found = (evidence or {}).get("evidence", {}).get("streams", []) or (  # gate v2 keeps its evidence in the ledger
        ledger_rows(view.status.gate_ledger, plan.gate) if view.status.gate_ledger else [])
    streams = sorted(found,
                     key=lambda s: (s["verdict"] != "failed", s["stratum"] != "*", -(s.get("e_value") or 0.0), s["signal"]))
    halted_at = datetime.fromisoformat(data["halted_at"]) if data.get("halted_at") else None
    ended = view.status.state in TERMINAL or view.status.state is RolloutState.HALTED
    ended_at = utc(datetime.fromisoformat(decisions[0]["at"])) if ended and decisions else None
    rollback = None
    if view.status.state in (RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK):
        rollback = rollback_summary(state, rollout_id, view.spec.release.product, view.spec.release.version, now)
    return {"now": now, "r": data, "timeline": timeline, "windows": windows, "freeze": freeze,
            "chart": exposure_chart(state, rollout_id, now, ended_at=ended_at, halted_at=utc(halted_at)),
            "decisions": group_decisions(decisions), "evidence": evidence, "rollback": rollback,
            "streams": streams[:40], "streams_total": len(streams), "started_by": view.status.started_by}


def releases_page(state: AppState, actor: Actor) -> list[dict[str, Any]]:
    """Every release with its artifacts, SBOM findings (VEX waivers applied) and its rollouts' release gates."""
    actor.require(Role.VIEWER, "reading releases")
    index = supply_chain.advisory_index(state.db, state.context.advisories)
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


_HALT_PREFIX = re.compile(r"^(?:halted wave \d+ \([^)]*\)(?: at \d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?(?: UTC)?)?:\s*)?"
                          r"(?:halted:\s*)?", re.IGNORECASE)


def prose(text: Any, *, halt: bool = False) -> Markup:
    """Engine and gate sentences made readable as HTML: `code` rendered, the pooled stratum ``*`` in words,
    and (``halt``) the "halted wave N (name) at T: halted:" prefix dropped where the page already says it."""
    value = str(text or "")
    if halt:
        value = _HALT_PREFIX.sub("", value, count=1)
        value = value[:1].upper() + value[1:]
    value = re.sub(r"updated \* hosts", "updated hosts (all strata pooled)", value)
    value = re.sub(r"(?<![\w*`])\*(?![\w*`])", "all strata", value)
    parts = str(escape(value)).split("`")
    html = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)) if len(parts) % 2 else "`".join(parts)
    return Markup(html)  # noqa: S704 - every part was escaped above
