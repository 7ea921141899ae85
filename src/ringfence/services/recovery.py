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
from typing import Any

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
from ringfence.domain.recovery import RecoveryModel, Runbook, model_from_mapping, runbooks_from_mapping
from ringfence.domain.recovery_campaign import HostState, next_state, reveal_refusal, verified_by_heartbeat
from ringfence.domain.selector import parse as parse_selector
from ringfence.errors import FieldIssue, InputError, NotFoundError, PermissionDeniedError, UnavailableError
from ringfence.services.context import Actor, Clock

__all__ = [
    "MAX_RUNBOOK_BYTES",
    "REVEAL_LIMIT",
    "REVEAL_WINDOW",
    "KeyVault",
    "assign",
    "close",
    "create_campaign",
    "export_csv",
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
_NAME = re.compile(r"^[\w .:@/-]{1,200}$")
_CSV_COLUMNS = ("hostname", "keyid", "recoverykey")


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


# ------------------------------------------------------------------ create


def _from_rollout(conn: Any, rollout_id: str, now: datetime) -> list[str]:
    row = rollout_store.get_rollout_row(conn, rollout_id)
    if row is None:
        raise NotFoundError(f"rollout {rollout_id!r} not found")
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
        raise InputError("unknown hosts", [FieldIssue("hosts", f"{h!r} is not in the inventory", location=f"line {i + 1}",
                                                      expected="host ids from the inventory, one a line")
                                           for i, h in enumerate(wanted) if h in set(missing)][:50])
    return sorted(set(wanted))


def _fleet(conn: Any) -> Fleet:
    return Fleet(inventory_store.all_hosts(conn), inventory_store.list_services(conn), escrow_store.all_records(conn))


def create_campaign(db: Database, *, actor: Actor, clock: Clock, name: str, runbooks: str | bytes,
                    model: Mapping[str, Any] | None = None, from_rollout: str = "", where: str = "",
                    hosts: Sequence[str] | None = None, reason: str = "") -> dict[str, Any]:
    """Create a campaign; returns its summary.  Exactly one of ``from_rollout``, ``where``, ``hosts``."""
    actor.require(Role.OPERATOR, "creating a recovery campaign")
    sources = [k for k, v in (("from_rollout", from_rollout), ("where", where), ("hosts", hosts)) if v]
    if len(sources) != 1:
        raise InputError.single("source", f"got {', '.join(sources) or 'none'}",
                                expected="exactly one of --from-rollout, --where, --hosts")
    if not _NAME.match(name):
        raise InputError.single("name", f"is {name!r}", expected="1-200 letters, digits, spaces and . : @ / -")
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
        store.add_events(conn, cid, [{"host_id": "", "at": now, "actor": actor.name, "kind": "campaign",
                                      "message": f"created from {source} {ref}: {len(ids)} hosts"}])
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.create", target=f"recovery/{cid}",
                           source=actor.source, reason=reason, details={"source": source, "ref": ref, "hosts": len(ids)})
    return {"id": cid, "name": name, "source": source, "source_ref": ref, "hosts": len(ids),
            "paths": _count(m[2] for m in members)}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ read


def _check_reader(actor: Actor) -> None:
    if actor.role is not Role.TECHNICIAN:
        actor.require(Role.VIEWER, "reading recovery campaigns")


def show(db: Database, campaign_id: str, *, actor: Actor, clock: Clock) -> dict[str, Any]:
    """A campaign with its counts and hosts (a technician sees only the hosts assigned to it)."""
    _check_reader(actor)
    sync_heartbeats(db, campaign_id, clock=clock)
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


def plan(db: Database, campaign_id: str, *, actor: Actor, clock: Clock, waves_limit: int = 200) -> dict[str, Any]:
    """Re-plan the hosts not yet verified, from now: ETA per site and service, waves, critical path, breaches."""
    actor.require(Role.VIEWER, "planning a recovery campaign")
    sync_heartbeats(db, campaign_id, clock=clock)
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        rows = store.hosts(conn, campaign_id)
        fleet = _fleet(conn)
    books = runbooks_from_mapping(c.runbooks, where=f"campaign {c.id} runbooks")
    model = _model(c.model)
    todo = [h.host_id for h in rows if h.state != HostState.VERIFIED and h.host_id in fleet.index]
    elapsed = max(0.0, (now - c.started_at).total_seconds() / 3600.0)
    idx = np.asarray([fleet.index[h] for h in todo], np.int64)
    p = plan_recovery(fleet, idx, model, books, start=c.started_at, start_hours=elapsed)
    verified = sum(1 for h in rows if h.state == HostState.VERIFIED)
    observed = verified / elapsed if elapsed > 0 and verified else 0.0
    return {"id": c.id, "hosts": len(rows), "to_do": len(todo), "verified": verified,
            "hours_since_start": round(elapsed, 3), **_plan_json(p, c.started_at, waves_limit),
            "observed_per_hour": round(observed, 3),
            "observed_eta_hours": round(elapsed + len(todo) / observed, 3) if observed else None}


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
           reason: str = "") -> dict[str, Any]:
    """Assign hosts to a technician (a work order per host); all or nothing."""
    actor.require(Role.OPERATOR, "assigning recovery work")
    if not _NAME.match(technician):
        raise InputError.single("technician", f"is {technician!r}", expected="a technician's token name")
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
    return {"assigned": len(evs), "technician": technician}


def mark(db: Database, campaign_id: str, host_id: str, move: str, *, actor: Actor, clock: Clock,
         message: str = "") -> dict[str, Any]:
    """A person's move for one host (start, fixed, failed, escalate, unassign); never ``verified``."""
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
        store.add_events(conn, campaign_id, [_event(h, to, actor.name, now, message)])
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.mark", target=f"recovery/{campaign_id}/{host_id}",
                           source=actor.source, reason=message, details={"from": h.state, "to": to.value})
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


def sync_heartbeats(db: Database, campaign_id: str, *, clock: Clock) -> int:
    """Verify the hosts whose own heartbeat says they are back; return how many were newly verified."""
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        if c.state != "open":
            return 0
        rows = [h for h in store.hosts(conn, campaign_id) if h.state != HostState.VERIFIED]
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
        store.add_events(conn, campaign_id, evs)
    return len(evs)


def close(db: Database, campaign_id: str, *, actor: Actor, clock: Clock, reason: str = "") -> dict[str, Any]:
    """Close a campaign: nothing changes any more and no key is revealed."""
    actor.require(Role.OPERATOR, "closing a recovery campaign")
    now = clock()
    with db.transaction() as conn:
        c = store.get_campaign(conn, campaign_id)
        store.close_campaign(conn, campaign_id, c.version, now)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.close", target=f"recovery/{campaign_id}",
                           source=actor.source, reason=reason, details={})
    return {"id": campaign_id, "state": "closed"}


def export_csv(db: Database, campaign_id: str, *, actor: Actor, clock: Clock) -> str:
    """Work orders as CSV: host, hostname, site, state, runbook, path, assignee, key id (never the key)."""
    _check_reader(actor)
    sync_heartbeats(db, campaign_id, clock=clock)
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


def import_keys(db: Database, data: str, vault: KeyVault, *, actor: Actor, clock: Clock, where: str = "keys.csv",
                reason: str = "") -> int:
    """Import an escrow export ``Hostname, KeyID, RecoveryKey`` encrypted; all-or-nothing; returns how many."""
    actor.require(Role.ADMIN, "importing recovery keys")
    reader = csv.reader(io.StringIO(data.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or tuple(c.strip().lower().replace(" ", "") for c in header) != _CSV_COLUMNS:
        raise InputError.single("header", f"is {header!r}", expected="Hostname, KeyID, RecoveryKey", location=where)
    rows = [(i + 2, r) for i, r in enumerate(reader) if any(c.strip() for c in r)]
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
                issues.append(FieldIssue("Hostname", f"{name!r} is not in the inventory", loc, "a known hostname"))
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


def reveal_key(db: Database, campaign_id: str, host_id: str, vault: KeyVault, *, actor: Actor,
               clock: Clock) -> dict[str, Any]:
    """One host's recovery key, to the technician assigned to it; refusals raise PermissionDeniedError.

    Every reveal and every refusal is audited (never the key itself).
    """
    now = clock()
    refusal = ""
    result: dict[str, Any] = {}
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
        stored = store.key_of(conn, host_id) if not refusal else None
        if not refusal and stored is None:
            refusal = "no recovery key was imported for this host"
        if not refusal and stored is not None:
            result = {"host_id": host_id, "key_id": stored[0], "recovery_key": vault.open(stored[1])}
        store.record_reveal(conn, campaign_id=campaign_id, host_id=host_id, actor=actor.name, at=now,
                            revealed=not refusal, reason=refusal)
        audit_store.append(conn, at=now, actor=actor.name, action="recovery.key.reveal" if not refusal
                           else "recovery.key.refused", target=f"recovery/{campaign_id}/{host_id}", source=actor.source,
                           reason=refusal, details={"key_id": stored[0] if stored else ""})
    if refusal:
        raise PermissionDeniedError(f"recovery key for {host_id} not revealed: {refusal}")
    return result


def work_order(db: Database, campaign_id: str, host_id: str, *, actor: Actor, clock: Clock,
               vault: KeyVault | None = None) -> dict[str, Any]:
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
        out["key"] = reveal_key(db, campaign_id, host_id, vault, actor=actor, clock=clock)["recovery_key"]
    return out
