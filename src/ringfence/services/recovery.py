"""Recovery campaigns (DESIGN §3 C5): create, plan, assign, mark, verify by heartbeat, keys. No SQL here.

* A campaign is created from a rollout (hosts that received its release and then crashed, failed to install
  or went silent), from a selector, or from a list of host ids; every host gets its runbook from the
  campaign's runbooks (the first that matches).  All-or-nothing: bad runbooks, a bad model, an unknown host
  or an empty selection change nothing.
* Planning uses the shared planner (:func:`ringfence.domain.assessment.plan_recovery`) on the whole
  inventory's index, for the hosts not yet verified, from the campaign's start; so ``recovery plan`` agrees
  with ``assess`` for the same hosts and model.
* State rules are :mod:`ringfence.domain.recovery_campaign`'s; only :func:`sync_heartbeats` sets ``verified``,
  from the host's own heartbeats as stored by the health API.
* Keys: :func:`import_keys` takes an escrow export (``Hostname, KeyID, RecoveryKey``) and stores each key
  encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under the key in ``RINGFENCE_RECOVERY_KEY``; the keys
  are never logged, returned by a list or written to the audit log.  :func:`reveal_key` applies
  :func:`~ringfence.domain.recovery_campaign.reveal_refusal` and audits every reveal and every refusal.
* Notifications (the notifier port, :mod:`ringfence.services.notify`), each after its transaction committed:
  ``recovery.created`` and ``recovery.planned`` when a campaign is created, ``recovery.planned`` again when a
  re-plan moves the ETA by an hour (or by a tenth) from the last one announced, ``recovery.milestone`` when 50 %, 90 %
  and 100 % of the hosts are verified (each once, remembered as campaign events), ``recovery.closed``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from typing import IO, Any, Protocol

import numpy as np
from cryptography.fernet import Fernet, InvalidToken

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import escrow as escrow_store
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.adapters.db.stores import recovery as store
from ringfence.adapters.db.stores import rollouts as rollout_store
from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.access import Role
from ringfence.domain.assessment import Fleet, plan_recovery
from ringfence.domain.assessment_model import RecoveryPlan
from ringfence.domain.model import Host
from ringfence.domain.recovery import RecoveryModel, Runbook, burn_down, model_from_mapping, runbooks_from_mapping
from ringfence.domain.recovery_campaign import (
    HostState,
    milestones_crossed,
    next_state,
    reveal_refusal,
    verified_by_heartbeat,
)
from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, NotFoundError, PermissionDeniedError, UnavailableError, shown
from ringfence.services.context import Actor, Clock
from ringfence.services.notify import Event, LogNotifier, Notification, Notifier

__all__ = [
    "DEVICE_ID_LABEL",
    "MAX_RUNBOOK_BYTES",
    "REVEAL_LIMIT",
    "REVEAL_WINDOW",
    "KeySource",
    "KeyVault",
    "assign",
    "close",
    "create_campaign",
    "default_runbooks",
    "export_csv",
    "hosts_to_recover",
    "import_keys",
    "list_campaigns",
    "load_runbooks",
    "mark",
    "plan",
    "record_step",
    "reveal_key",
    "show",
    "sync_heartbeats",
    "work_order",
]

#: Largest runbook file accepted (parsed with the project's bounded YAML loader).
MAX_RUNBOOK_BYTES = 256 * 1024
#: At most this many key reveals per technician per window.
REVEAL_LIMIT = 10
REVEAL_WINDOW = timedelta(hours=1)
#: A host exposed to a rollout's release is silent when it has not reported for this long.
SILENCE_MINUTES = 20.0
_BAD_EVENTS = ("crashed", "install_failed", "auto_reverted")
_KEY = re.compile(r"^\d{6}(-\d{6}){7}$")
#: A technician's name (also the JSON Schema pattern of the API field that takes one).
TECHNICIAN_PATTERN = r"^[\w .:@/-]{1,200}$"
_NAME = re.compile(TECHNICIAN_PATTERN)
_CSV_COLUMNS = ("hostname", "keyid", "recoverykey")


def default_runbooks() -> str:
    """The example runbooks shipped with ringfence (``examples/recovery/default.yaml``)."""
    return (files("ringfence") / "data" / "recovery" / "default.yaml").read_text(encoding="utf-8")


def load_runbooks(source: str | bytes, *, where: str = "runbooks") -> tuple[dict[str, Any], tuple[Runbook, ...]]:
    """Parse and validate a runbook YAML document; the parsed document and the runbooks."""
    data = source.encode() if isinstance(source, str) else source
    if len(data) > MAX_RUNBOOK_BYTES:
        raise InputError.single("runbooks", f"is {len(data):,} bytes", expected=f"at most {MAX_RUNBOOK_BYTES:,} bytes",
                                location=where)
    doc = load_yaml(data, what="runbooks", location=where, expected="see examples/recovery/default.yaml")
    return doc, runbooks_from_mapping(doc, where=where)


def _model(doc: Mapping[str, Any] | None) -> RecoveryModel:
    return model_from_mapping(doc or {}, where="model")


def _tell(notifier: Notifier | None, event: Event, campaign_id: str, title: str, text: str, at: datetime,
          details: Mapping[str, str | int | float]) -> None:
    """Hand one campaign notification to the port (the log notifier when none is configured)."""
    (notifier or LogNotifier()).notify(Notification(event=event, subject=f"recovery/{campaign_id}", title=title,
                                                    text=text, at=at, details=dict(details)))


#: How many host ids a ``recovery.hosts`` notification names (the counts cover them all).
_HOSTS_NAMED = 20
_STATE_WORDS = {"queued": "back in the queue", "assigned": "assigned", "in_progress": "in progress",
                "fixed": "fixed, awaiting their heartbeat", "verified": "verified by their own heartbeat",
                "failed": "failed", "escalated": "escalated"}


def _tell_hosts(notifier: Notifier | None, c: store.Campaign, evs: Sequence[Mapping[str, Any]], by: str,
                at: datetime) -> None:
    """One ``recovery.hosts`` notification for one committed change of host states (an assignment of N hosts,
    a technician's mark, a pass of heartbeat verification), with the counts per new state and the first hosts."""
    moved = [e for e in evs if e.get("kind", "state") == "state"]
    if not moved:
        return
    counts: dict[str, int] = {}
    for e in moved:
        counts[e["state_to"]] = counts.get(e["state_to"], 0) + 1
    words = ", ".join(f"{n:,} {_STATE_WORDS.get(s, s)}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    hosts = [e["host_id"] for e in moved]
    named = ", ".join(hosts[:_HOSTS_NAMED]) + (f" and {len(hosts) - _HOSTS_NAMED:,} more" if len(hosts) > _HOSTS_NAMED
                                                else "")
    one = moved[0]
    title = (f"recovery campaign {c.name}: {one['host_id']} {_STATE_WORDS.get(one['state_to'], one['state_to'])}"
             if len(moved) == 1 else f"recovery campaign {c.name}: {words}")
    text = f"{named}: {words} ({by})" + (f"; {one['message']}" if len(moved) == 1 and one.get("message") else "")
    details: dict[str, str | int | float] = {"campaign": c.id, "hosts": len(moved), "by": by,
                                             **{f"to.{s}": n for s, n in counts.items()}}
    if len(moved) == 1:
        details.update({"host": one["host_id"], "from": one["state_from"], "to": one["state_to"]})
    _tell(notifier, Event.RECOVERY_HOSTS, c.id, title, text, at, details)


def _eta_words(hours: float) -> str:
    return f"{hours:,.1f} h after the start" if math.isfinite(hours) else "never (a site has no technicians)"


def _planned(campaign_id: str, name: str, p: RecoveryPlan, *, hosts: int,
             before: float | None = None) -> tuple[str, str, dict[str, str | int | float]]:
    """Title, text and details of a ``recovery.planned`` notification."""
    eta = p.recovery_hours
    moved = "" if before is None else f" (was {_eta_words(before)})"
    text = (f"{hosts:,} hosts to do; ETA {_eta_words(eta)}{moved}; {len(p.rto_breaches):,} services break their "
            f"RTO/MTD" + (f"; critical path: {p.critical_path[0]}" if p.critical_path else ""))
    details: dict[str, str | int | float] = {"campaign": campaign_id, "hosts": hosts, "rto_breaches": len(p.rto_breaches),
                                             "eta_hours": round(eta, 3) if math.isfinite(eta) else -1.0}
    return f"recovery campaign {name}: planned, ETA {_eta_words(eta)}", text, details


def _last_announced_eta(conn: Any, campaign_id: str) -> float | None:
    """The ETA of the last ``recovery.planned`` announcement (campaign events of kind ``plan``)."""
    plans = [e for e in store.events(conn, campaign_id, host_id="") if e["kind"] == "plan"]
    if not plans:
        return None
    v = plans[-1]["details"].get("eta_hours")
    return float(v) if isinstance(v, int | float) and v >= 0 else math.inf


# ------------------------------------------------------------------ create


def _from_rollout(conn: Any, rollout_id: str, now: datetime) -> list[str]:
    row = rollout_store.get_rollout_row(conn, rollout_id)
    if row is None:
        raise NotFoundError(f"rollout {shown(rollout_id)} not found")
    exposed = {r.host_id: r.exposed_at for r in rollout_store.rollout_host_rows(conn, rollout_id)
               if r.exposed_at is not None}
    if not exposed:
        return []
    since = min(exposed.values())
    bad: set[str] = set()
    for kind, hosts in health_store.events_for(conn, [rollout_id], since).items():
        if kind in _BAD_EVENTS:
            bad |= hosts & exposed.keys()
    beats = health_store.heartbeats(conn, exposed)
    quiet = now - timedelta(minutes=SILENCE_MINUTES)
    bad |= {h for h in exposed if beats.get(h) is None or beats[h] < quiet}
    return sorted(bad)


def hosts_to_recover(db: Database, rollout_id: str, *, actor: Actor, clock: Clock) -> list[str]:
    """The hosts a campaign ``--from-rollout`` would take now (exposed, then crashed, failed or silent)."""
    actor.require(Role.VIEWER, "reading a rollout's hosts to recover")
    with db.transaction() as conn:
        return _from_rollout(conn, rollout_id, clock())


def _from_selector(conn: Any, where: str) -> list[str]:
    try:
        node = parse_selector(where)
    except InputError as e:
        raise InputError("invalid selector", [FieldIssue("where", i.message, expected=i.expected) for i in e.issues]) from e
    out: list[str] = []
    after = ""
    while True:
        page = inventory_store.list_hosts(conn, node, limit=5000, after=after)
        out.extend(h.id for h in page)
        if len(page) < 5000:
            return out
        after = page[-1].id


def _from_list(conn: Any, hosts: Sequence[str]) -> list[str]:
    wanted = [h.strip() for h in hosts if h.strip() and not h.lstrip().startswith("#")]
    known = inventory_store.existing_host_ids(conn, wanted)
    missing = [h for h in wanted if h not in known]
    if missing:
        raise InputError("unknown hosts", [FieldIssue("hosts", f"{shown(h)} is not in the inventory", location=f"line {i + 1}",
                                                      expected="host ids from the inventory, one a line")
                                           for i, h in enumerate(wanted) if h in set(missing)][:50])
    return sorted(set(wanted))


def _fleet(conn: Any) -> Fleet:
    return Fleet(inventory_store.all_hosts(conn), inventory_store.list_services(conn), escrow_store.all_records(conn))


def create_campaign(db: Database, *, actor: Actor, clock: Clock, name: str, runbooks: str | bytes,
                    model: Mapping[str, Any] | None = None, from_rollout: str = "", where: str = "",
                    hosts: Sequence[str] | None = None, reason: str = "",
                    notifier: Notifier | None = None) -> dict[str, Any]:
    """Create a campaign; returns its summary.  Exactly one of ``from_rollout``, ``where``, ``hosts``.

    ``notifier`` hears ``recovery.created`` and ``recovery.planned`` (the first plan) once it is stored.
    """
    actor.require(Role.OPERATOR, "creating a recovery campaign")
    sources = [k for k, v in (("from_rollout", from_rollout), ("where", where), ("hosts", hosts)) if v]
    if len(sources) != 1:
        raise InputError.single("source", f"got {', '.join(sources) or 'none'}",
                                expected="exactly one of --from-rollout, --where, --hosts")
    if not _NAME.match(name):
        raise InputError.single("name", f"is {shown(name)}", expected="1-200 letters, digits, spaces and . : @ / -")
    doc, books = load_runbooks(runbooks)
    recovery_model = _model(model)
    now = clock()
    with db.transaction() as conn:
        if from_rollout:
            ids = _from_rollout(conn, from_rollout, now)
            source, ref = "rollout", from_rollout
        elif where:
            ids = _from_selector(conn, where)
            source, ref = "selector", where
        else:
            ids = _from_list(conn, hosts or [])
            source, ref = "hosts", f"{len(ids)} hosts"
        if not ids:
            raise InputError.single(sources[0], "selects no host", expected="a source that selects hosts to recover")
        fleet = _fleet(conn)
        idx = np.asarray([fleet.index[h] for h in ids], np.int64)
        p = plan_recovery(fleet, idx, recovery_model, books, start=now)
        members = []
        for pos, hid in enumerate(ids):
            r = int(p.runbook[pos])
            members.append((hid, books[r].name if r >= 0 else "", books[r].path.value if r >= 0 else "site_visit"))
        cid = f"rc-{now:%Y%m%d}-{secrets.token_hex(3)}"
        store.create_campaign(conn, store.Campaign(cid, name, "open", source, ref, doc, dict(model or {}), now,
                                                   actor.name, None, 1), members)
        title, text, details = _planned(cid, name, p, hosts=len(ids))
        store.add_events(conn, cid, [{"host_id": "", "at": now, "actor": actor.name, "kind": "campaign",
                                      "message": f"created from {source} {ref}: {len(ids)} hosts"},
                                     {"host_id": "", "at": now, "actor": actor.name, "kind": "plan", "message": text,
                                      "details": details}])
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.create", target=f"recovery/{cid}",
                           source=actor.source, reason=reason, details={"source": source, "ref": ref, "hosts": len(ids)})
    paths = _count(m[2] for m in members)
    _tell(notifier, Event.RECOVERY_CREATED, cid, f"recovery campaign {name} opened for {len(ids):,} hosts",
          f"created by {actor.name} from {source} {ref}; paths: "
          + ", ".join(f"{k} {v:,}" for k, v in paths.items()), now,
          {"campaign": cid, "hosts": len(ids), "source": source, **{f"path.{k}": v for k, v in paths.items()}})
    _tell(notifier, Event.RECOVERY_PLANNED, cid, title, text, now, details)
    return {"id": cid, "name": name, "source": source, "source_ref": ref, "hosts": len(ids),
            "paths": paths}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ read


def _check_reader(actor: Actor) -> None:
    if actor.role is not Role.TECHNICIAN:
        actor.require(Role.VIEWER, "reading recovery campaigns")


def show(db: Database, campaign_id: str, *, actor: Actor, clock: Clock,
         notifier: Notifier | None = None) -> dict[str, Any]:
    """A campaign with its counts and hosts (a technician sees only the hosts assigned to it)."""
    _check_reader(actor)
    sync_heartbeats(db, campaign_id, clock=clock, notifier=notifier)
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        mine = actor.name if actor.role is Role.TECHNICIAN else None
        rows = store.hosts(conn, campaign_id, assignee=mine)
        counts = store.state_counts(conn, campaign_id) if mine is None else _count(h.state for h in rows)
    return {"id": c.id, "name": c.name, "state": c.state, "source": c.source, "source_ref": c.source_ref,
            "started_at": c.started_at.isoformat(), "created_by": c.created_by,
            "closed_at": c.closed_at.isoformat() if c.closed_at else None, "counts": counts,
            "hosts": [{"host_id": h.host_id, "state": h.state, "runbook": h.runbook, "path": h.path,
                       "assignee": h.assignee, "updated_at": h.updated_at.isoformat(),
                       "verified_at": h.verified_at.isoformat() if h.verified_at else None} for h in rows]}


def list_campaigns(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Every campaign with its counts, newest first."""
    _check_reader(actor)
    with db.transaction() as conn:
        return [{"id": c.id, "name": c.name, "state": c.state, "source": c.source,
                 "started_at": c.started_at.isoformat(), "counts": store.state_counts(conn, c.id)}
                for c in store.list_campaigns(conn)]


def plan(db: Database, campaign_id: str, *, actor: Actor, clock: Clock, waves_limit: int = 200,
         notifier: Notifier | None = None) -> dict[str, Any]:
    """Re-plan the hosts not yet verified, from now: ETA per site and service, waves, critical path, breaches,
    and the burn-down per recovery path, planned (the plan from the campaign's start) against observed (when
    each host was verified by its own heartbeat).

    A re-plan whose ETA moved by an hour (or a tenth) from the last one announced is told to ``notifier``
    (``recovery.planned``) and remembered as a campaign event.
    """
    actor.require(Role.VIEWER, "planning a recovery campaign")
    sync_heartbeats(db, campaign_id, clock=clock, notifier=notifier)
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        rows = store.hosts(conn, campaign_id)
        fleet = _fleet(conn)
    books = runbooks_from_mapping(c.runbooks, where=f"campaign {c.id} runbooks")
    model = _model(c.model)
    known = [h for h in rows if h.host_id in fleet.index]
    todo = [h.host_id for h in known if h.state != HostState.VERIFIED]
    elapsed = max(0.0, (now - c.started_at).total_seconds() / 3600.0)
    idx_all = np.asarray([fleet.index[h.host_id] for h in known], np.int64)
    first = plan_recovery(fleet, idx_all, model, books, start=c.started_at)
    if len(todo) == len(known) and elapsed == 0.0:
        p = first
    else:
        idx = np.asarray([fleet.index[h] for h in todo], np.int64)
        # the hosts left keep their runbook, minutes and queue position: a re-plan reuses the first plan
        p = plan_recovery(fleet, idx, model, books, start=c.started_at, start_hours=elapsed, previous=first)
    verified = sum(1 for h in rows if h.state == HostState.VERIFIED)
    observed = verified / elapsed if elapsed > 0 and verified else 0.0
    out = {"id": c.id, "hosts": len(rows), "to_do": len(todo), "verified": verified,
           "hours_since_start": round(elapsed, 3), **_plan_json(p, c.started_at, waves_limit),
           "observed_per_hour": round(observed, 3),
           "observed_eta_hours": round(elapsed + len(todo) / observed, 3) if observed else None,
           "planned_eta_hours": _hours(first.recovery_hours),
           "burn_down_by_path": _burn_by_path(known, first.done_hours, c.started_at, elapsed)}
    _announce_plan(db, c, p, now, hosts=len(todo), notifier=notifier)
    return out


#: Points of the burn-down per path (planned and observed share one grid of hours since the start).
_BURN_POINTS = 24


def _burn_by_path(hosts: Sequence[store.CampaignHost], planned_done: Any, started: datetime,
                  elapsed: float) -> dict[str, dict[str, list[list[float | int | None]]]]:
    """Per path: hosts not yet back at each hour since the start, planned (from the start) and observed (so far)."""
    if not hosts:
        return {}
    paths = sorted({h.path for h in hosts})
    code = np.asarray([paths.index(h.path) for h in hosts], np.int64)
    planned = np.asarray(planned_done, np.float64)
    seen = np.asarray([(h.verified_at - started).total_seconds() / 3600.0 if h.verified_at is not None else math.inf
                       for h in hosts], np.float64)
    finite = planned[np.isfinite(planned)]
    end = max(float(finite.max()) if len(finite) else 0.0, elapsed, 1e-6)
    grid = np.linspace(0.0, end, _BURN_POINTS + 1)
    p_left = burn_down(planned, code, len(paths), grid)
    o_left = burn_down(seen, code, len(paths), grid)
    upto = int(np.searchsorted(grid, elapsed, side="right"))
    out: dict[str, dict[str, list[list[float | int | None]]]] = {}
    for i, name in enumerate(paths):
        planned_pts: list[list[float | int | None]] = [[round(float(h), 4), int(n)]
                                                      for h, n in zip(grid, p_left[i], strict=True)]
        observed_pts: list[list[float | int | None]] = [[round(float(h), 4), int(n)]
                                                       for h, n in zip(grid[:upto], o_left[i, :upto], strict=True)]
        if elapsed > grid[upto - 1]:  # the last point: now
            observed_pts.append([round(elapsed, 4), int((seen[code == i] > elapsed).sum())])
        out[name] = {"planned": planned_pts, "observed": observed_pts}
    return out


def _announce_plan(db: Database, c: store.Campaign, p: RecoveryPlan, now: datetime, *, hosts: int,
                   notifier: Notifier | None) -> None:
    """Tell ``recovery.planned`` when the ETA moved by an hour, or by a tenth, from the last announcement."""
    if c.state != "open":
        return
    with db.transaction() as conn:
        before = _last_announced_eta(conn, c.id)
        eta = p.recovery_hours
        same = before is not None and (before == eta or abs(before - eta) < max(0.01, min(1.0, 0.1 * abs(before))))
        if same:
            return
        title, text, details = _planned(c.id, c.name, p, hosts=hosts, before=before)
        store.add_events(conn, c.id, [{"host_id": "", "at": now, "actor": "planner", "kind": "plan", "message": text,
                                       "details": details}])
    _tell(notifier, Event.RECOVERY_PLANNED, c.id, title, text, now, details)


def _hours(h: float) -> float | None:
    return round(h, 4) if math.isfinite(h) else None


def _plan_json(p: RecoveryPlan, start: datetime, waves_limit: int) -> dict[str, Any]:
    return {
        "eta_hours": _hours(p.recovery_hours),
        "eta_at": (start + timedelta(hours=p.recovery_hours)).isoformat() if math.isfinite(p.recovery_hours) else None,
        "eta_hours_by_site": {k: _hours(v) for k, v in p.eta_hours_by_site.items()},
        "eta_hours_by_service": {k: _hours(v) for k, v in p.eta_hours_by_service.items()},
        "waves": [{"site": w.site, "lane": w.lane, "index": w.index, "start_hours": _hours(w.start_hours),
                   "end_hours": _hours(w.end_hours), "hosts": w.hosts} for w in p.waves[:waves_limit]],
        "waves_total": len(p.waves),
        "critical_path": list(p.critical_path),
        "rto_breaches": [{"service": b.service, "tier": b.tier, "restore_hours": _hours(b.restore_hours),
                          "rto_minutes": b.rto_minutes, "mtd_minutes": b.mtd_minutes, "breaks": b.breaks}
                         for b in p.rto_breaches],
        "burn_down_by_site": {k: [[_hours(h), n] for h, n in v] for k, v in p.burn_down_by_site.items()},
    }


# ------------------------------------------------------------------ change


def _event(h: store.CampaignHost, to: HostState, actor: str, now: datetime, message: str) -> dict[str, Any]:
    return {"host_id": h.host_id, "at": now, "actor": actor, "kind": "state", "state_from": h.state,
            "state_to": to.value, "message": message}


def assign(db: Database, campaign_id: str, host_ids: Sequence[str], technician: str, *, actor: Actor, clock: Clock,
           reason: str = "", notifier: Notifier | None = None) -> dict[str, Any]:
    """Assign hosts to a technician (a work order per host); all or nothing; told as one ``recovery.hosts``."""
    actor.require(Role.OPERATOR, "assigning recovery work")
    if not _NAME.match(technician):
        raise InputError.single("technician", f"is {shown(technician)}", expected="a technician's token name")
    if not host_ids:
        raise InputError.single("hosts", "is empty", expected="one or more host ids of the campaign")
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        evs = []
        for hid in sorted(set(host_ids)):
            h = store.get_host(conn, campaign_id, hid)
            to = next_state(HostState(h.state), "assign", campaign_open=c.state == "open", host=hid)
            store.set_host(conn, campaign_id, hid, h.version, {"state": to.value, "assignee": technician,
                                                               "updated_at": now})
            evs.append(_event(h, to, actor.name, now, f"assigned to {technician}"))
        store.add_events(conn, campaign_id, evs)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.assign", target=f"recovery/{campaign_id}",
                           source=actor.source, reason=reason, details={"technician": technician, "hosts": len(evs)})
    _tell_hosts(notifier, c, evs, actor.name, now)
    return {"assigned": len(evs), "technician": technician}


def mark(db: Database, campaign_id: str, host_id: str, move: str, *, actor: Actor, clock: Clock,
         message: str = "", notifier: Notifier | None = None) -> dict[str, Any]:
    """A person's move for one host (start, fixed, failed, escalate, unassign); never ``verified``.

    Told as a ``recovery.hosts`` notification once committed."""
    if actor.role is not Role.TECHNICIAN:
        actor.require(Role.OPERATOR, "changing recovery work")
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        h = store.get_host(conn, campaign_id, host_id)
        if actor.role is Role.TECHNICIAN and h.assignee != actor.name:
            raise PermissionDeniedError(f"host {host_id} is not in a work order assigned to {actor.name}")
        to = next_state(HostState(h.state), move, campaign_open=c.state == "open", host=host_id)
        values: dict[str, Any] = {"state": to.value, "updated_at": now}
        if to is HostState.FIXED:
            values["fixed_at"] = now
        if to is HostState.QUEUED:
            values["assignee"] = ""
        store.set_host(conn, campaign_id, host_id, h.version, values)
        evs = [_event(h, to, actor.name, now, message)]
        store.add_events(conn, campaign_id, evs)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.mark", target=f"recovery/{campaign_id}/{host_id}",
                           source=actor.source, reason=message, details={"from": h.state, "to": to.value})
    _tell_hosts(notifier, c, evs, actor.name, now)
    return {"host_id": host_id, "state": to.value}


def record_step(db: Database, campaign_id: str, host_id: str, *, step: str, events: Sequence[Mapping[str, Any]],
                actor: Actor, clock: Clock) -> int:
    """Append an executor's events for one step of one host (e.g. ansible-runner's event stream)."""
    if actor.role is not Role.TECHNICIAN:
        actor.require(Role.OPERATOR, "recording recovery steps")
    now = clock()
    with db.transaction() as conn:
        store.get_host(conn, campaign_id, host_id)
        store.add_events(conn, campaign_id, [{"host_id": host_id, "at": now, "actor": actor.name, "kind": "step",
                                              "message": f"{step}: {e.get('event', '')}", "details": dict(e)}
                                             for e in events])
    return len(events)


def sync_heartbeats(db: Database, campaign_id: str, *, clock: Clock, notifier: Notifier | None = None) -> int:
    """Verify the hosts whose own heartbeat says they are back; return how many were newly verified.

    When the verified share reaches 50 %, 90 % or 100 % of the campaign's hosts for the first time, the
    milestone is remembered as a campaign event and told to ``notifier`` (``recovery.milestone``).
    """
    now = clock()
    reached: list[int] = []
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        if c.state != "open":
            return 0
        every = store.hosts(conn, campaign_id)
        rows = [h for h in every if h.state != HostState.VERIFIED]
        if not rows:
            return 0
        beats = health_store.heartbeats(conn, [h.host_id for h in rows])
        bad_version: set[str] = set()
        if c.source == "rollout":
            ro = rollout_store.get_rollout_row(conn, c.source_ref)
            release = rollout_store.get_release(conn, ro.release_id) if ro is not None else None
            if release is not None:
                versions = health_store.versions_of(conn, [h.host_id for h in rows], release.product)
                bad_version = {h for h, (v, _) in versions.items() if v == release.version}
        evs = []
        for h in rows:
            if verified_by_heartbeat(HostState(h.state), h.fixed_at, beats.get(h.host_id), h.host_id in bad_version,
                                     c.started_at):
                store.set_host(conn, campaign_id, h.host_id, h.version,
                               {"state": HostState.VERIFIED.value, "verified_at": beats[h.host_id], "updated_at": now})
                evs.append(_event(h, HostState.VERIFIED, "heartbeat", now,
                                  f"reported at {beats[h.host_id].isoformat()}"))
        if evs:
            done = len(every) - len(rows) + len(evs)
            announced = [int(e["details"].get("percent", -1)) for e in store.events(conn, campaign_id, host_id="")
                         if e["kind"] == "milestone"]
            reached = milestones_crossed(done, len(every), announced)
            evs += [{"host_id": "", "at": now, "actor": "heartbeat", "kind": "milestone",
                     "message": f"{m} % of the hosts verified ({done:,} of {len(every):,})",
                     "details": {"percent": m, "verified": done, "hosts": len(every)}} for m in reached]
        store.add_events(conn, campaign_id, evs)
    _tell_hosts(notifier, c, evs, "heartbeat", now)
    for m in reached:
        hours = (now - c.started_at).total_seconds() / 3600.0
        _tell(notifier, Event.RECOVERY_MILESTONE, campaign_id, f"recovery campaign {c.name}: {m} % of the hosts back",
              f"{done:,} of {len(every):,} hosts verified by their own heartbeats, {hours:,.1f} h after the start",
              now, {"campaign": campaign_id, "percent": m, "verified": done, "hosts": len(every),
                    "hours_since_start": round(hours, 3)})
    return sum(1 for e in evs if e["kind"] == "state")


def close(db: Database, campaign_id: str, *, actor: Actor, clock: Clock, reason: str = "",
          notifier: Notifier | None = None) -> dict[str, Any]:
    """Close a campaign: nothing changes any more and no key is revealed (told as ``recovery.closed``)."""
    actor.require(Role.OPERATOR, "closing a recovery campaign")
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        store.close_campaign(conn, campaign_id, c.version, now)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.close", target=f"recovery/{campaign_id}",
                           source=actor.source, reason=reason, details={})
        counts = store.state_counts(conn, campaign_id)
    total = sum(counts.values())
    verified = counts.get(HostState.VERIFIED.value, 0)
    _tell(notifier, Event.RECOVERY_CLOSED, campaign_id, f"recovery campaign {c.name} closed by {actor.name}",
          f"{verified:,} of {total:,} hosts verified" + (f"; reason: {reason}" if reason else ""), now,
          {"campaign": campaign_id, "verified": verified, "hosts": total, **{f"state.{k}": v for k, v in counts.items()}})
    return {"id": campaign_id, "state": "closed"}


def export_csv(db: Database, campaign_id: str, *, actor: Actor, clock: Clock, notifier: Notifier | None = None) -> str:
    """Work orders as CSV: host, hostname, site, state, runbook, path, assignee, key id (never the key)."""
    _check_reader(actor)
    sync_heartbeats(db, campaign_id, clock=clock, notifier=notifier)
    with db.transaction() as conn:
        store.get_campaign(conn, campaign_id)
        rows = store.hosts(conn, campaign_id, assignee=actor.name if actor.role is Role.TECHNICIAN else None)
        escrow = escrow_store.all_records(conn)
        info: dict[str, Host] = {h.id: h for h in (inventory_store.get_host(conn, r.host_id) for r in rows) if h is not None}
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["host_id", "hostname", "site", "state", "runbook", "path", "assignee", "key_id"])
    for r in rows:
        h = info.get(r.host_id)
        w.writerow([r.host_id, h.hostname if h else "", h.site if h else "", r.state, r.runbook, r.path, r.assignee,
                    escrow[r.host_id].key_id if r.host_id in escrow else ""])
    return out.getvalue()


# ------------------------------------------------------------------ keys


@dataclass(frozen=True, slots=True)
class KeyVault:
    """Encrypts and decrypts recovery keys at rest with a Fernet key (from ``RINGFENCE_RECOVERY_KEY``)."""

    key: str

    def _fernet(self) -> Fernet:
        if not self.key:
            raise UnavailableError("no recovery key source: set RINGFENCE_RECOVERY_KEY to a Fernet key "
                                   "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
        try:
            return Fernet(self.key.encode())
        except ValueError as e:
            raise UnavailableError("RINGFENCE_RECOVERY_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from e

    def seal(self, plaintext: str) -> str:
        """The ciphertext of a key."""
        return self._fernet().encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        """The key of a ciphertext."""
        try:
            return self._fernet().decrypt(ciphertext.encode()).decode()
        except InvalidToken as e:
            raise UnavailableError("a stored recovery key cannot be decrypted with RINGFENCE_RECOVERY_KEY "
                                   "(was the key changed?)") from e


def _key_rows(data: str | IO[bytes], where: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a recovery-key CSV after its header, with their line numbers.

    A binary stream (the upload where it is spooled) is decoded a buffer at a time: the file is never held
    whole in memory as bytes and again as text.
    """
    text: io.TextIOBase = (io.StringIO(data.lstrip("\ufeff"), newline="") if isinstance(data, str)
                           else io.TextIOWrapper(data, encoding="utf-8-sig", newline=""))  # a lone CR ends a line
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None or tuple(c.strip().lower().replace(" ", "") for c in header) != _CSV_COLUMNS:
            found = f"is {shown(', '.join(header), 200)}" if header else "is missing (the file is empty)"
            raise InputError.single("header", found,
                                    expected="Hostname, KeyID, RecoveryKey", location=where)
        return [(i + 2, r) for i, r in enumerate(reader) if any(c.strip() for c in r)]
    except csv.Error as e:  # e.g. a field over the csv module's 131,072 characters
        raise InputError.single("row", f"cannot be read as CSV: {e}", expected="Hostname, KeyID, RecoveryKey rows",
                                location=f"{where} line {reader.line_num}") from e
    except UnicodeDecodeError:
        raise InputError.single("body", "is not UTF-8", expected="a UTF-8 CSV file",
                                location=f"{where} line {reader.line_num + 1}") from None
    finally:
        if isinstance(text, io.TextIOWrapper):
            text.detach()  # the caller owns the stream


def import_keys(db: Database, data: str | IO[bytes], vault: KeyVault, *, actor: Actor, clock: Clock,
                where: str = "keys.csv", reason: str = "") -> int:
    """Import an escrow export ``Hostname, KeyID, RecoveryKey`` encrypted; all-or-nothing; returns how many.

    ``data`` is the file's text or a binary stream of it (read a buffer at a time, never whole).
    """
    actor.require(Role.ADMIN, "importing recovery keys")
    rows = _key_rows(data, where)
    now = clock()
    with db.transaction() as conn:
        by_name: dict[str, str] = {}
        for h in inventory_store.all_hosts(conn):
            by_name.setdefault(h.hostname.lower(), h.id)
        issues: list[FieldIssue] = []
        keys: list[tuple[str, str, str]] = []
        for line, r in rows:
            loc = f"{where} row {line}"
            if len(r) != 3:
                issues.append(FieldIssue("row", f"has {len(r)} columns", loc, "Hostname, KeyID, RecoveryKey"))
                continue
            name, kid, key = (c.strip() for c in r)
            hid = by_name.get(name.lower())
            if hid is None:
                issues.append(FieldIssue("Hostname", f"{shown(name)} is not in the inventory", loc, "a known hostname"))
            if not kid:
                issues.append(FieldIssue("KeyID", "is empty", loc, "the key protector id"))
            if not _KEY.match(key):
                issues.append(FieldIssue("RecoveryKey", "is not a 48-digit recovery password", loc,
                                         "eight groups of six digits separated by '-'"))
            if hid is not None and kid and _KEY.match(key):
                keys.append((hid, kid, vault.seal(key)))
        if issues:
            raise InputError("recovery keys rejected; nothing imported", issues[:50])
        n = store.replace_keys(conn, keys, now, actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.keys.import", target="recovery/keys",
                           source=actor.source, reason=reason, details={"keys": n})
    return n


class KeySource(Protocol):
    """Where recovery keys are read from at reveal time (instead of the encrypted import), e.g. Microsoft Graph."""

    name: str

    def fetch(self, *, host_id: str, key_id: str, device_id: str) -> tuple[str, str] | None:
        """``(key id, recovery key)`` for the host (its escrow key id and Entra device id given), or None."""
        ...


#: Host label with the host's Microsoft Entra device id (for a key source that looks keys up by device).
DEVICE_ID_LABEL = "entra_device_id"


def reveal_key(db: Database, campaign_id: str, host_id: str, vault: KeyVault, *, actor: Actor,
               clock: Clock, source: KeySource | None = None) -> dict[str, Any]:
    """One host's recovery key, to the technician assigned to it; refusals raise PermissionDeniedError.

    The key comes from the encrypted import, or from ``source`` (e.g. Microsoft Graph) when one is configured;
    a source is asked only after the rules allowed the reveal.  Every reveal and every refusal is audited (never
    the key itself).
    """
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        try:
            h = store.get_host(conn, campaign_id, host_id)
            assignee, state = h.assignee, HostState(h.state)
        except NotFoundError:
            assignee, state = "", HostState.QUEUED
        recent = store.recent_reveals(conn, actor.name, now - REVEAL_WINDOW)
        refusal = reveal_refusal(campaign_open=c.state == "open", assignee=assignee, state=state, actor=actor.name,
                                 recent=recent, now=now, limit=REVEAL_LIMIT, window=REVEAL_WINDOW)
        stored = store.key_of(conn, host_id) if not refusal and source is None else None
        escrow = escrow_store.all_records(conn).get(host_id) if not refusal and source is not None else None
        inv = inventory_store.get_host(conn, host_id) if not refusal and source is not None else None
        if refusal:
            _record_reveal(conn, campaign_id, host_id, actor, now, refusal, "", "import")
    if refusal:
        raise PermissionDeniedError(f"recovery key for {host_id} not revealed: {refusal}")
    found: tuple[str, str] | None
    if source is None:
        found = (stored[0], vault.open(stored[1])) if stored is not None else None
    else:
        found = source.fetch(host_id=host_id, key_id=escrow.key_id if escrow else "",
                             device_id=(inv.labels.get(DEVICE_ID_LABEL, "") if inv else ""))
        if found is not None and not _KEY.match(found[1]):
            found = None
    refusal = "" if found is not None else (
        "no recovery key was imported for this host" if source is None else f"{source.name} holds no recovery key for it")
    with db.transaction() as conn:
        _record_reveal(conn, campaign_id, host_id, actor, now, refusal, found[0] if found else "",
                       source.name if source is not None else "import")
    if found is None:
        raise PermissionDeniedError(f"recovery key for {host_id} not revealed: {refusal}")
    return {"host_id": host_id, "key_id": found[0], "recovery_key": found[1]}


def _record_reveal(conn: Any, campaign_id: str, host_id: str, actor: Actor, now: datetime, refusal: str, key_id: str,
                   source: str) -> None:
    store.record_reveal(conn, campaign_id=campaign_id, host_id=host_id, actor=actor.name, at=now,
                        revealed=not refusal, reason=refusal)
    audit_store.append(conn, at=now, actor=actor.name, action="recovery.key.reveal" if not refusal
                       else "recovery.key.refused", target=f"recovery/{campaign_id}/{host_id}", source=actor.source,
                       reason=refusal, details={"key_id": key_id, "key_source": source})


def work_order(db: Database, campaign_id: str, host_id: str, *, actor: Actor, clock: Clock,
               vault: KeyVault | None = None, source: KeySource | None = None) -> dict[str, Any]:
    """One host's work order: host, runbook steps, key id; with ``vault``, the key too (through :func:`reveal_key`)."""
    _check_reader(actor)
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        h = store.get_host(conn, campaign_id, host_id)
        if actor.role is Role.TECHNICIAN and h.assignee != actor.name:
            raise PermissionDeniedError(f"host {host_id} is not in a work order assigned to {actor.name}")
        inv = inventory_store.get_host(conn, host_id)
        escrow = escrow_store.all_records(conn).get(host_id)
        stored = store.key_of(conn, host_id)
    books = {b.name: b for b in runbooks_from_mapping(c.runbooks, where=f"campaign {c.id} runbooks")}
    book = books.get(h.runbook)
    out: dict[str, Any] = {
        "campaign": {"id": c.id, "name": c.name, "state": c.state},
        "host": {"host_id": h.host_id, "hostname": inv.hostname if inv else "", "site": inv.site if inv else "",
                 "state": h.state, "runbook": h.runbook, "path": h.path, "assignee": h.assignee},
        "steps": [{"name": s.name, "executor": s.executor} for s in (book.steps if book else ())],
        "key_id": stored[0] if stored else (escrow.key_id if escrow else ""),
        "key": None,
    }
    if vault is not None:
        shown = reveal_key(db, campaign_id, host_id, vault, actor=actor, clock=clock, source=source)
        out["key"], out["key_id"] = shown["recovery_key"], shown["key_id"]
    return out
