"""Notification use cases: set a tenant's rules (audited), read them without secrets, read the delivery log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import notify as store
from ringfence.adapters.db.stores.base import utc
from ringfence.adapters.notify.rules import Rules, parse_rules, plan_rules, rules_from_doc, rules_to_doc
from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.access import Role
from ringfence.services.context import Actor, Clock

__all__ = ["Delivery", "apply_rules", "deliveries", "list_rules"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One line of the delivery log."""

    id: int
    event: str
    subject: str
    tenant: str
    title: str
    target: str
    kind: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"id": self.id, "event": self.event, "subject": self.subject, "tenant": self.tenant,
                "title": self.title, "target": self.target, "kind": self.kind, "state": self.state,
                "attempts": self.attempts, "created_at": self.created_at.isoformat(),
                "next_attempt_at": self.next_attempt_at.isoformat(),
                "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
                "last_error": self.last_error}


def apply_rules(db: Database, text: str, *, actor: Actor, clock: Clock, reason: str = "") -> tuple[Rules, int]:
    """Validate and store one tenant's ``notify:`` rules YAML (all or nothing); return them and their version."""
    actor.require(Role.ADMIN, "setting notification rules")
    document = load_yaml(text, what="body", expected="a notify rules file (examples/notify.yaml)")
    rules = parse_rules(document)
    now = clock()
    with db.transaction() as conn:
        version = store.put_rules(conn, rules.tenant, rules_to_doc(rules), now=now, actor=actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="notify.rules", target=f"notify/{rules.tenant or '*'}",
                           source=actor.source, reason=reason,
                           details={"version": version, "targets": [t.shown() for t in rules.targets.values()],
                                    "rules": [{"events": list(r.events), "targets": list(r.targets)} for r in rules.rules]})
    return rules, version


def list_rules(db: Database, *, actor: Actor) -> list[tuple[Rules, int]]:
    """Every tenant's rules with their version, then every plan's (``Rules.tenant`` is ``plan:<name>``, the
    version the plan's); secrets are the caller's to hide: use ``Target.shown``."""
    actor.require(Role.VIEWER, "reading notification rules")
    with db.transaction() as conn:
        tenants = [(rules_from_doc(r.document), int(r.version)) for r in store.all_rules(conn)]
        plans = store.plan_rules(conn)
    return tenants + [(plan_rules(name, section), version) for name, (section, version) in plans.items()]


def deliveries(db: Database, *, actor: Actor, limit: int = 100, state: str = "") -> list[Delivery]:
    """The delivery log, newest first (optionally only pending, delivered or failed)."""
    actor.require(Role.VIEWER, "reading the notification log")
    with db.transaction() as conn:
        rows = store.list_deliveries(conn, limit=limit, state=state)
    return [Delivery(id=r.id, event=r.event, subject=r.subject, tenant=r.tenant, title=r.title, target=r.target,
                     kind=r.kind, state=r.state, attempts=r.attempts, created_at=utc(r.created_at) or r.created_at,
                     next_attempt_at=utc(r.next_attempt_at) or r.next_attempt_at, delivered_at=utc(r.delivered_at),
                     last_error=r.last_error) for r in rows]
