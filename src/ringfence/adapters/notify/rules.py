"""Notification rules: which events go to which targets, per tenant (the ``notify:`` YAML).

::

    tenant: acme                 # optional; omitted or "" means every tenant
    notify:
      targets:
        oncall:                  # a signed webhook (HMAC-SHA256, see docs/notifications.md)
          webhook: http://127.0.0.1:9000/ringfence
          secret_env: RINGFENCE_WEBHOOK_SECRET     # read by the server at delivery time; or `secret: …`
        chat:                    # any Apprise URL: slack://…, msteams://…, mailtos://…, pagerduty://…, json://…
          apprise: json://127.0.0.1:9001/ringfence
      rules:
        - events: [rollout.halted, rollout.rolled_back, killswitch]
          targets: [oncall, chat]
        - events: ["*"]          # every event
          targets: [chat]

A plan may carry the same ``notify:`` section (targets and rules, no ``tenant``): its rules apply to every
rollout under that plan (:func:`plan_rules`).  Plans are readable by every viewer, so a plan's webhook names
its secret with ``secret_env`` only.

Parsing checks everything and names the field and the fix; a bad document changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ringfence.errors import FieldIssue, InputError, shown
from ringfence.services.notify import Event

__all__ = ["Rule", "Rules", "Target", "parse_rules", "plan_rules", "rules_from_doc", "rules_to_doc"]

EVENTS = tuple(e.value for e in Event)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a notification goes: a signed webhook or an Apprise URL."""

    name: str
    kind: str                 # "webhook" or "apprise"
    url: str
    secret: str = ""          # webhook HMAC key given inline
    secret_env: str = ""      # or the name of the server's environment variable holding it

    def shown(self) -> dict[str, str]:
        """The target without secrets: the webhook URL, an Apprise URL cut to its scheme and host."""
        if self.kind == "webhook":
            return {"name": self.name, "kind": self.kind, "url": self.url,
                    "secret": "inline" if self.secret else f"${self.secret_env}" if self.secret_env else "none"}
        parts = urlsplit(self.url)
        return {"name": self.name, "kind": self.kind, "url": f"{parts.scheme}://{parts.hostname or '…'}/…"}


@dataclass(frozen=True, slots=True)
class Rule:
    """Events (or ``*``) sent to targets."""

    events: tuple[str, ...]
    targets: tuple[str, ...]

    def matches(self, event: str) -> bool:
        """Whether this rule selects ``event``; a gate inconclusive past its limit is also a hold."""
        return ("*" in self.events or event in self.events
                or (event == Event.GATE_INCONCLUSIVE and Event.ROLLOUT_HOLD.value in self.events))


@dataclass(frozen=True, slots=True)
class Rules:
    """One tenant's targets and rules."""

    tenant: str
    targets: Mapping[str, Target]
    rules: tuple[Rule, ...]

    def targets_for(self, event: str) -> list[Target]:
        """Every target some rule sends ``event`` to, each once, in the order first named."""
        names: list[str] = []
        for rule in self.rules:
            if rule.matches(event):
                names.extend(n for n in rule.targets if n not in names)
        return [self.targets[n] for n in names]


def _issue(field: str, message: str, expected: str = "") -> FieldIssue:
    return FieldIssue(field=field, message=message, expected=expected, location="notify rules")


def plan_rules(plan: str, section: Any) -> Rules:
    """Validate the ``notify:`` section of plan ``plan``: like a tenant's rules, with secrets only by
    environment variable (a plan is shown to every viewer); ``Rules.tenant`` is ``plan:<name>``."""
    issues: list[FieldIssue] = []
    if isinstance(section, Mapping) and isinstance(section.get("targets"), Mapping):
        issues += [_issue(f"notify.targets.{name}.secret", "is inline in a plan, which every viewer can read",
                          "secret_env: the name of the server's environment variable holding the HMAC key")
                   for name, spec in section["targets"].items() if isinstance(spec, Mapping) and "secret" in spec]
    try:
        rules = parse_rules({"notify": section})
    except InputError as e:
        issues += e.issues
        rules = None
    if issues or rules is None:
        raise InputError(f"invalid notify rules in plan {plan}",
                         [replace(i, location=f"plan {plan}") for i in issues])
    return replace(rules, tenant=f"{PLAN_SCOPE}{plan}")


#: ``Rules.tenant`` (and the delivery log's target prefix) of a plan's rules: ``plan:<name>``.
PLAN_SCOPE = "plan:"


def parse_rules(doc: Any) -> Rules:
    """Validate a parsed ``notify:`` YAML document; every problem is listed, nothing is half-applied."""
    issues: list[FieldIssue] = []
    if not isinstance(doc, Mapping) or not isinstance(doc.get("notify"), Mapping):
        raise InputError("invalid notification rules", [_issue("notify", "is missing",
                                                               "a mapping with `targets` and `rules`")])
    tenant = doc.get("tenant") or ""
    if not isinstance(tenant, str):
        issues.append(_issue("tenant", f"is {shown(tenant)}", "a tenant id, or omit it for every tenant"))
        tenant = ""
    if tenant.startswith(PLAN_SCOPE):
        issues.append(_issue("tenant", f"is {shown(tenant)}: {PLAN_SCOPE}… names a plan's rules",
                             "a tenant id; put a plan's rules in the plan's YAML under notify:"))
    unknown = sorted(set(doc) - {"tenant", "notify"}) + sorted(set(doc["notify"]) - {"targets", "rules"})
    issues += [_issue(k, "is not a known key", "tenant, notify.targets, notify.rules") for k in unknown]
    raw_targets = doc["notify"].get("targets") or {}
    targets: dict[str, Target] = {}
    if not isinstance(raw_targets, Mapping):
        issues.append(_issue("notify.targets", "is not a mapping", "name: {webhook: URL} or name: {apprise: URL}"))
        raw_targets = {}
    for name, spec in raw_targets.items():
        field = f"notify.targets.{name}"
        target = _target(str(name), spec, field, issues)
        if target is not None:
            targets[target.name] = target
    rules: list[Rule] = []
    raw_rules = doc["notify"].get("rules") or []
    if not isinstance(raw_rules, list):
        issues.append(_issue("notify.rules", "is not a list", "- {events: [...], targets: [...]}"))
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        field = f"notify.rules[{i}]"
        if not isinstance(raw, Mapping):
            issues.append(_issue(field, "is not a mapping", "{events: [...], targets: [...]}"))
            continue
        events, names = raw.get("events"), raw.get("targets")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            issues.append(_issue(f"{field}.events", f"is {shown(events)}", f"a list of: *, {', '.join(EVENTS)}"))
            continue
        bad = [e for e in events if e != "*" and e not in EVENTS]
        if bad:
            issues.append(_issue(f"{field}.events", f"names unknown events {shown(bad)}", f"*, {', '.join(EVENTS)}"))
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            issues.append(_issue(f"{field}.targets", f"is {shown(names)}", "a list of target names"))
            continue
        missing = [n for n in names if n not in raw_targets]
        if missing:
            defined = ", ".join(sorted(map(str, raw_targets))) or "the targets defined under notify.targets"
            issues.append(_issue(f"{field}.targets", f"names undefined targets {shown(missing)}", f"one of {defined}"))
        rules.append(Rule(events=tuple(events), targets=tuple(names)))
    if issues:
        raise InputError("invalid notification rules", issues)
    return Rules(tenant=tenant, targets=targets, rules=tuple(rules))


def _target(name: str, spec: Any, field: str, issues: list[FieldIssue]) -> Target | None:
    if not isinstance(spec, Mapping) or len({"webhook", "apprise"} & set(spec)) != 1:
        issues.append(_issue(field, "needs exactly one of webhook or apprise", "{webhook: URL} or {apprise: URL}"))
        return None
    extra = sorted(set(spec) - {"webhook", "apprise", "secret", "secret_env"})
    if extra:
        issues.append(_issue(field, f"has unknown keys {', '.join(map(str, extra))}", "webhook, apprise, secret, secret_env"))
    if "webhook" in spec:
        url = str(spec["webhook"])
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            issues.append(_issue(f"{field}.webhook", f"is {shown(spec['webhook'])}", "an http:// or https:// URL"))
        secret, secret_env = str(spec.get("secret") or ""), str(spec.get("secret_env") or "")
        if bool(secret) == bool(secret_env):
            issues.append(_issue(field, "needs exactly one of secret or secret_env",
                                 "the HMAC key inline (secret) or the server's environment variable (secret_env)"))
        return Target(name=name, kind="webhook", url=url, secret=secret, secret_env=secret_env)
    url = str(spec["apprise"])
    if "://" not in url:
        issues.append(_issue(f"{field}.apprise", f"is {shown(spec['apprise'])}", "an Apprise URL such as slack://… or json://host/path"))
    if "secret" in spec or "secret_env" in spec:
        issues.append(_issue(field, "secret applies to webhooks only", "put an Apprise target's credentials in its URL"))
    return Target(name=name, kind="apprise", url=url)


def rules_to_doc(rules: Rules) -> dict[str, Any]:
    """The stored form (the YAML's shape, secrets included: it stays in the database)."""
    targets: dict[str, Any] = {}
    for t in rules.targets.values():
        spec: dict[str, str] = {t.kind: t.url}
        if t.secret:
            spec["secret"] = t.secret
        if t.secret_env:
            spec["secret_env"] = t.secret_env
        targets[t.name] = spec
    return {"tenant": rules.tenant, "notify": {"targets": targets, "rules": [
        {"events": list(r.events), "targets": list(r.targets)} for r in rules.rules]}}


def rules_from_doc(doc: Mapping[str, Any]) -> Rules:
    """Read back what :func:`rules_to_doc` stored."""
    return parse_rules(doc)
