"""Release gates, run when a rollout is started: signature, SBOM present, severity policy, content contract.

Rules
=====

1. **When.**  :func:`check_before_start` runs from ``rollouts.operate(op="start")``
   (and so from ``create_rollout(start=True)``) while the rollout is still
   pending, before wave 0 opens.  Every gate is evaluated, its result is stored
   (``GET /v1/rollouts/{id}`` shows them under ``gates``), written to the
   decision log and the audit log, and the start is refused with a
   :class:`~ringfence.errors.ConflictError` that names the failed gates and the
   override command when an *enforced* gate did not pass.
2. **Verdicts.**  ``passed``, ``failed``, ``inconclusive`` (data that cannot be
   judged: an advisory that could not be evaluated, an agent version with no
   declared schema) and ``skipped`` (the gate does not apply). Inconclusive
   blocks like failed: the gates fail closed.
3. **Enforcement.**  The gate policy (``PUT /v1/gate-policy``, YAML, see
   ``examples/release-gates/default.yaml``) lists the enforced gates.  Without
   a stored policy only the content contract is enforced and the other gates
   are evaluated and shown as advisory, so that installs that have not set up
   signers, SBOMs and advisories keep working; applying a policy turns them on.
4. **Gates.**

   * ``signature``: every artifact carries a signature over its SHA-256 that
     verifies with a trusted signer's key (``ringfence signers add``).
   * ``sbom``: the release has an SBOM.
   * ``vulnerabilities``: no finding at or above ``severity_threshold`` that is
     neither waived by VEX ``not_affected`` nor allow-listed by an unexpired
     entry; findings of unknown severity count as at the threshold unless
     ``unknown_severity: ignore``; *not evaluated* matches make the gate
     inconclusive unless ``not_evaluated: ignore``.
   * ``content``: for a content release that names its agent product
     (``--for-agent``), every artifact's JSON instances validate against the
     content schema of **every version of that agent the rollout's target
     hosts run** (reported in host_versions or installed per the inventory).
5. **Override.**  ``POST /v1/rollouts/{id}/gate-override`` needs the approver
   role and an approver who did not create the rollout (four eyes) and a
   reason; it is audited and the next start proceeds with the failed gates
   shown as overridden.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import rollouts as release_store
from ringfence.adapters.db.stores import supply_chain as store
from ringfence.adapters.yamlfile import load_yaml
from ringfence.domain.access import Role
from ringfence.domain.rollout import Release, ReleaseKind, RolloutState
from ringfence.domain.vulns import SeverityLabel
from ringfence.errors import ConflictError, FieldIssue, InputError, NotFoundError, describe, shown
from ringfence.services import supply_chain
from ringfence.services.codec import status_from_doc
from ringfence.services.context import Actor, Clock

if TYPE_CHECKING:  # jsonschema costs ~5 s of CPU to import (its format checkers compile an RFC 3987 grammar):
    import jsonschema  # imported where a content schema is checked, so a server starts without it

__all__ = [
    "GATES",
    "AllowEntry",
    "GatePolicy",
    "apply_gate_policy",
    "check_before_start",
    "gate_policy_view",
    "gates_of",
    "override_gates",
    "parse_gate_policy",
    "run_release_gates",
]

GATES: Final = ("signature", "sbom", "vulnerabilities", "content")
_MAX_CONTENT_ERRORS = 10


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """An advisory (id or alias) accepted until ``expires``, with the reason."""

    id: str
    reason: str
    expires: date


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Which gates block and how the severity gate judges findings."""

    enforce: tuple[str, ...] = ("content",)
    severity_threshold: SeverityLabel = SeverityLabel.HIGH
    unknown_severity: str = "block"
    not_evaluated: str = "block"
    allow: tuple[AllowEntry, ...] = ()
    stored: bool = False


def parse_gate_policy(source: str) -> GatePolicy:
    """Parse the policy YAML; InputError names every bad field."""
    doc = load_yaml(source, what="policy", expected="see examples/release-gates/default.yaml")
    if not isinstance(doc, dict):
        raise InputError.single("policy", f"is {describe(doc)}", expected="a YAML mapping of enforce, severity_threshold, "
                                "unknown_severity, not_evaluated and allow (see examples/release-gates/default.yaml)")
    issues: list[FieldIssue] = []
    known = {"enforce", "severity_threshold", "unknown_severity", "not_evaluated", "allow"}
    issues += [FieldIssue(str(k), "is not a policy field", "gate policy", ", ".join(sorted(known)))
               for k in doc if k not in known]
    enforce = doc.get("enforce", list(GATES))
    if not isinstance(enforce, list) or any(g not in GATES for g in enforce):
        issues.append(FieldIssue("enforce", f"is {shown(enforce)}", "gate policy", f"a list of {', '.join(GATES)}"))
        enforce = []
    raw_threshold = doc.get("severity_threshold", "high")
    threshold_text = str(raw_threshold).lower()
    labels = [s.value for s in SeverityLabel if s not in (SeverityLabel.UNKNOWN,)]
    if not isinstance(raw_threshold, str) or threshold_text not in labels:
        issues.append(FieldIssue("severity_threshold", f"is {shown(raw_threshold)}", "gate policy", ", ".join(labels)))
        threshold_text = "high"
    modes = {}
    for key in ("unknown_severity", "not_evaluated"):
        raw_mode = doc.get(key, "block")
        modes[key] = str(raw_mode)
        if not isinstance(raw_mode, str) or modes[key] not in ("block", "ignore"):
            issues.append(FieldIssue(key, f"is {shown(raw_mode)}", "gate policy", "block or ignore"))
    allow: list[AllowEntry] = []
    raw_allow = doc.get("allow") or []
    if not isinstance(raw_allow, list):
        issues.append(FieldIssue("allow", f"is {shown(raw_allow)}", "gate policy", "a list of {id, reason, expires}"))
        raw_allow = []
    for i, entry in enumerate(raw_allow):
        where = f"allow[{i}]"
        if not isinstance(entry, dict):
            issues.append(FieldIssue(where, f"is {shown(entry)}", "gate policy", "{id, reason, expires}"))
            continue
        aid, reason, expires = entry.get("id"), entry.get("reason"), entry.get("expires")
        if not isinstance(aid, str) or not aid.strip():
            issues.append(FieldIssue(f"{where}.id", f"is {shown(aid)}", "gate policy", "an advisory id or alias"))
        if not isinstance(reason, str) or not reason.strip():
            issues.append(FieldIssue(f"{where}.reason", "is missing", "gate policy", "why the finding is accepted"))
        if isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError:
                expires = None
        if not isinstance(expires, date) or isinstance(expires, datetime):
            issues.append(FieldIssue(f"{where}.expires", f"is {shown(entry.get('expires'))}", "gate policy",
                                     "a date such as 2027-01-31"))
            continue
        if isinstance(aid, str) and isinstance(reason, str) and aid.strip() and reason.strip():
            allow.append(AllowEntry(id=aid.strip(), reason=reason.strip(), expires=expires))
    if issues:
        raise InputError("gate policy rejected", issues)
    return GatePolicy(enforce=tuple(g for g in GATES if g in enforce), severity_threshold=SeverityLabel(threshold_text),
                      unknown_severity=modes["unknown_severity"], not_evaluated=modes["not_evaluated"],
                      allow=tuple(allow), stored=True)


def _policy_doc(p: GatePolicy) -> dict[str, Any]:
    return {"enforce": list(p.enforce), "severity_threshold": p.severity_threshold.value,
            "unknown_severity": p.unknown_severity, "not_evaluated": p.not_evaluated,
            "allow": [{"id": a.id, "reason": a.reason, "expires": a.expires.isoformat()} for a in p.allow]}


def _load_plan(conn: Any) -> GatePolicy:
    row = store.gate_policy(conn)
    if row is None:
        return GatePolicy()
    return parse_gate_policy(row["source"])


def apply_gate_policy(db: Database, source: str, *, actor: Actor, clock: Clock, reason: str = "") -> dict[str, Any]:
    """Validate and store the gate policy (operator)."""
    actor.require(Role.OPERATOR, "setting the gate policy")
    policy = parse_gate_policy(source)
    now = clock()
    with db.transaction() as conn:
        version = store.put_gate_policy(conn, _policy_doc(policy), source, now, actor.name)
        audit_store.append(conn, at=now, actor=actor.name, action="gates.policy", target="gate-policy",
                           source=actor.source, reason=reason, details={"version": version, **_policy_doc(policy)})
    return {"version": version, "policy": _policy_doc(policy)}


def gate_policy_view(db: Database, *, actor: Actor) -> dict[str, Any]:
    """The policy in force (the built-in default when none was applied)."""
    actor.require(Role.VIEWER, "reading the gate policy")
    with db.transaction() as conn:
        row = store.gate_policy(conn)
        policy = _load_plan(conn)
    return {"stored": row is not None, "version": row["version"] if row else 0, "policy": _policy_doc(policy)}


# --- evaluation ---------------------------------------------------------------------------------------------

@dataclass
class ReleaseGateResult:
    """One release gate's outcome (stored and shown under the wire name ``verdict``), sentence and details."""

    gate: str
    verdict: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_doc(self) -> dict[str, Any]:
        """Stored form."""
        return {"gate": self.gate, "verdict": self.verdict, "message": self.message, "details": self.details}


def _signature_gate(conn: Any, release: Release) -> ReleaseGateResult:
    keys = supply_chain._trusted_keys(conn)
    sigs = store.signatures_for(conn, release.id)
    missing: list[str] = []
    signed_by: dict[str, list[str]] = {}
    for a in release.artifacts:
        names = [keys[s["keyid"]][0] for s in sigs if s["sha256"] == a.sha256 and s["keyid"] in keys
                 and supply_chain.verify_signature(keys[s["keyid"]][1], a.sha256, s["signature"])]
        if names:
            signed_by[a.name] = sorted(set(names))
        else:
            missing.append(a.name)
    if missing:
        return ReleaseGateResult("signature", "failed", f"{len(missing)} of {len(release.artifacts)} artifacts carry no valid "
                          f"signature from a trusted signer: {', '.join(missing[:5])}; sign with "
                          f"`ringfence release sign {release.id} --key KEY`",
                          {"unsigned": missing, "signed_by": signed_by})
    return ReleaseGateResult("signature", "passed", f"every artifact is signed by a trusted signer "
                      f"({', '.join(sorted({n for v in signed_by.values() for n in v}))})", {"signed_by": signed_by})


def _sbom_gate(conn: Any, release: Release) -> ReleaseGateResult:
    sbom = store.get_sbom(conn, release.id)
    if sbom is None:
        return ReleaseGateResult("sbom", "failed", f"{release.id} has no SBOM; import one with "
                          f"`ringfence sbom import {release.id} FILE`")
    return ReleaseGateResult("sbom", "passed", f"SBOM present ({sbom['format']} {sbom['spec_version']}, "
                      f"{sbom['components']} components, {sbom['incomplete']} incomplete)",
                      {"components": sbom["components"], "incomplete": sbom["incomplete"]})


def _vuln_gate(conn: Any, release: Release, policy: GatePolicy, index: Any, today: date) -> ReleaseGateResult:
    result = supply_chain.release_findings(conn, release, index)
    if not result["sbom"]:
        return ReleaseGateResult("vulnerabilities", "inconclusive", "no SBOM, so known vulnerabilities cannot be checked")
    threshold = policy.severity_threshold.rank
    blocking, waived, allowed, expired, below = [], [], [], [], 0
    for f in result["findings"]:
        label = SeverityLabel(f["severity"])
        counts = label.rank >= threshold or (label is SeverityLabel.UNKNOWN and policy.unknown_severity == "block")
        name = f"{f['advisory']} in {f['component']['name']} {f['component']['version']} ({f['severity']})"
        if f["waived"]:
            waived.append(f"{name}: {f['waived_by']}")
            continue
        if not counts:
            below += 1
            continue
        ids = {f["advisory"], *f["aliases"]}
        entries = [a for a in policy.allow if a.id in ids]
        live = [a for a in entries if a.expires >= today]
        if live:
            allowed.append(f"{name}: allowed until {live[0].expires} ({live[0].reason})")
        else:
            if entries:
                expired.append(f"{name}: allow-list entry expired on {entries[0].expires}, no longer waives")
            blocking.append(name + (f", fixed in {f['fixed']}" if f.get("fixed") else ""))
    details = {"blocking": blocking, "waived": waived, "allowed": allowed, "expired": expired,
               "below_threshold": below, "not_evaluated": len(result["not_evaluated"]),
               "threshold": policy.severity_threshold.value, "advisories": len(index)}
    if blocking:
        return ReleaseGateResult("vulnerabilities", "failed", f"{len(blocking)} unwaived findings at or above "
                          f"{policy.severity_threshold.value}: {'; '.join(blocking[:3])}"
                          + (f"; {'; '.join(expired[:2])}" if expired else ""), details)
    if result["not_evaluated"] and policy.not_evaluated == "block":
        first = result["not_evaluated"][0]
        return ReleaseGateResult("vulnerabilities", "inconclusive", f"{len(result['not_evaluated'])} matches could not be "
                          f"evaluated (e.g. {first['reason']})", details)
    return ReleaseGateResult("vulnerabilities", "passed", f"no unwaived finding at or above "
                      f"{policy.severity_threshold.value} ({len(waived)} waived by VEX, {len(allowed)} allow-listed, "
                      f"{below} below the threshold)", details)


def _instances(name: str, data: bytes) -> Iterator[tuple[str, Any]]:
    """JSON content: one document (an object, or an array of instances) or JSON lines (one instance a line)."""
    text = data.decode("utf-8-sig")
    try:
        doc = json.loads(text)
    except ValueError:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield f"{name} line {n}", json.loads(line)
                except ValueError as e:
                    raise InputError.single("content", f"line {n} is not JSON: {e}", location=name,
                                            expected="a JSON document or JSON lines") from e
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"{name} [{i}]", item
    else:
        yield name, doc


def _field_of(error: jsonschema.ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in error.instance if k not in props]
        return "/".join(p for p in (path, ",".join(extra)) if p)
    return path or "(document)"


def _content_gate(conn: Any, release: Release, target_hosts: Callable[[], Sequence[str]],
                  artifacts: ArtifactStore | None) -> ReleaseGateResult:
    contract = store.get_contract(conn, release.id)
    if release.kind is not ReleaseKind.CONTENT or contract is None or not contract["for_agent"]:
        return ReleaseGateResult("content", "skipped", "not a content release with a declared agent (--for-agent)")
    agent = contract["for_agent"]
    versions = store.agent_versions_on(conn, target_hosts(), agent)
    if not versions:
        return ReleaseGateResult("content", "inconclusive", f"no target host runs {agent}, so no agent version's content "
                          "schema can be checked", {"agent": agent})
    schemas: dict[str, Any] = {}
    missing: list[str] = []
    for v in sorted(versions):
        row = store.get_contract(conn, f"{agent}@{v}")
        if row is None or row["content_schema"] is None:
            missing.append(v)
        else:
            schemas[v] = row["content_schema"]
    errors: list[str] = []
    failing_versions: set[str] = set()
    if artifacts is None:
        return ReleaseGateResult("content", "inconclusive", "the artifact store is not available to read the content",
                          {"agent": agent})
    for a in release.artifacts:
        try:
            data = artifacts.get(a.sha256)
        except (OSError, NotFoundError):
            errors.append(f"{a.name}: artifact {a.sha256[:16]}… cannot be read from the artifact store")
            continue
        try:
            instances = list(_instances(a.name, data))
        except (InputError, UnicodeDecodeError) as e:
            errors.append(f"{a.name}: {e}")
            continue
        import jsonschema  # noqa: PLC0415 - slow to import (see the top of the module)

        for where, inst in instances:
            for v, schema in schemas.items():
                validator = jsonschema.validators.validator_for(schema)(schema)
                for err in sorted(validator.iter_errors(inst), key=lambda e: list(e.absolute_path))[:3]:
                    failing_versions.add(v)
                    if len(errors) < _MAX_CONTENT_ERRORS:
                        errors.append(f"{where}: field {_field_of(err)}: {err.message} "
                                      f"(content schema of {agent} {v})")
    details = {"agent": agent, "versions": {v: len(h) for v, h in sorted(versions.items())},
               "errors": errors, "no_schema": missing}
    if errors:
        bad = sorted(failing_versions) or sorted(versions)
        return ReleaseGateResult("content", "failed", f"content does not validate against the schema of {agent} "
                          f"{', '.join(bad)} run by {sum(len(versions[v]) for v in bad if v in versions)} target hosts: "
                          + "; ".join(errors[:3]), details)
    if missing:
        return ReleaseGateResult("content", "inconclusive", f"{agent} {', '.join(missing)} on target hosts declared no "
                          "content schema (create those agent releases with --content-schema)", details)
    return ReleaseGateResult("content", "passed", f"every instance validates against the content schema of {agent} "
                      f"{', '.join(sorted(schemas))}", details)


def run_release_gates(conn: Any, release: Release, target_hosts: Callable[[], Sequence[str]], *, policy: GatePolicy, index: Any,
             artifacts: ArtifactStore | None, today: date) -> list[ReleaseGateResult]:
    """Every gate's result for a release going to the hosts ``target_hosts()`` returns."""
    return [_signature_gate(conn, release), _sbom_gate(conn, release), _vuln_gate(conn, release, policy, index, today),
            _content_gate(conn, release, target_hosts, artifacts)]


def _blocking(results: Sequence[ReleaseGateResult], policy: GatePolicy) -> list[ReleaseGateResult]:
    return [r for r in results if r.gate in policy.enforce and r.verdict in ("failed", "inconclusive")]


def _evaluate_rollout(conn: Any, row: Any, *, index: Any, artifacts: ArtifactStore | None,
                      today: date) -> tuple[list[ReleaseGateResult], GatePolicy]:
    release = release_store.get_release(conn, row.release_id)
    assert release is not None

    def targets() -> list[str]:  # read only when a content contract needs the target fleet
        return [r.host_id for r in release_store.rollout_host_rows(conn, row.id)]

    policy = _load_plan(conn)
    return run_release_gates(conn, release, targets, policy=policy, index=index, artifacts=artifacts, today=today), policy


def check_before_start(db: Database, rollout_id: str, *, actor: Actor, clock: Clock,
                       artifacts: ArtifactStore | None = None,
                       advisory_cache: supply_chain.AdvisoryIndexCache | None = None) -> None:
    """Run the gates for a pending rollout; record them; ConflictError naming the failed gates when blocked.

    ``artifacts`` and ``advisory_cache`` come from the application context.  Without an artifact store the
    content gate cannot read the content and is inconclusive (it fails closed); without a cache the advisory
    index is built afresh.
    """
    index = supply_chain.advisory_index(db, advisory_cache)
    now = clock()
    with db.transaction() as conn:
        row = release_store.get_rollout_row(conn, rollout_id)
        if row is None:
            raise NotFoundError(f"rollout {shown(rollout_id)} not found")
        if status_from_doc(row.status).state is not RolloutState.PENDING:
            return  # the engine answers for starting a rollout that is not pending
        results, policy = _evaluate_rollout(conn, row, index=index, artifacts=artifacts, today=now.date())
        blocked = _blocking(results, policy)
        override = store.gate_override(conn, rollout_id)
        for r in results:
            r.details["enforced"] = r.gate in policy.enforce
            if r in blocked and override is not None:
                r.details["overridden_by"] = override["approver"]
                r.message += f" — overridden by {override['approver']}: {override['reason']}"
        store.save_gate_results(conn, rollout_id, [r.as_doc() for r in results], now)
        summary = "; ".join(f"{r.gate} {r.verdict}" for r in results)
        if blocked and override is None:
            message = ("blocked by release gates before wave 0: "
                       + "; ".join(f"{r.gate} {r.verdict}: {r.message}" for r in blocked))
        elif blocked:
            message = f"release gates overridden by {override['approver'] if override else ''}: {summary}"
        else:
            message = f"release gates: {summary}"
        if blocked:  # a passing start is shown by the gates in its status; blocks and overrides are logged
            release_store.add_decision(conn, rollout_id, at=now, state=row.state, wave=0, actor=actor.name,
                                       message=message[:4000], reasons=[],
                                       evidence={"gates": [r.as_doc() for r in results]})
            audit_store.append(conn, at=now, actor=actor.name, action="rollout.gates", target=f"rollout/{rollout_id}",
                               source=actor.source, reason="",
                               details={"blocked": override is None, "gates": {r.gate: r.verdict for r in results},
                                        "overridden_by": override["approver"] if override else None})
    if blocked and override is None:
        names = ", ".join(f"{r.gate} ({r.verdict})" for r in blocked)
        raise ConflictError(f"rollout {rollout_id} not started: release gates failed: {names}. "
                            + " ".join(f"{r.gate}: {r.message}." for r in blocked)
                            + f" An approver other than {row.created_by} can override and start it with "
                            f"`ringfence rollout gate-override {rollout_id} --reason WHY --start`")


def override_gates(db: Database, rollout_id: str, *, actor: Actor, clock: Clock, reason: str,
                   artifacts: ArtifactStore | None = None,
                   advisory_cache: supply_chain.AdvisoryIndexCache | None = None) -> dict[str, Any]:
    """Record an approver's override of a rollout's failed gates (four eyes, reason required), audited.

    ``artifacts`` and ``advisory_cache`` come from the application context (see :func:`check_before_start`).
    """
    actor.require(Role.APPROVER, "overriding release gates")
    if not reason.strip():
        raise InputError.single("reason", "is empty", expected="why the failed gates may be overridden")
    index = supply_chain.advisory_index(db, advisory_cache)  # before the transaction: it may read the advisories itself
    now = clock()
    with db.transaction() as conn:
        row = release_store.get_rollout_row(conn, rollout_id)
        if row is None:
            raise NotFoundError(f"rollout {shown(rollout_id)} not found")
        if row.created_by == actor.name:
            raise ConflictError(f"four eyes: {actor.name} created rollout {rollout_id} and cannot override its gates; "
                                "another approver must")
        if status_from_doc(row.status).state is not RolloutState.PENDING:
            raise ConflictError(f"rollout {rollout_id} is {row.state}; gates are overridden before it starts")
        # The gates that block now (re-evaluated: a release signed since the last start no longer needs it).
        results, policy = _evaluate_rollout(conn, row, index=index, artifacts=artifacts, today=now.date())
        failed = [r.gate for r in _blocking(results, policy)]
        store.save_gate_override(conn, rollout_id, approver=actor.name, reason=reason, gates=failed, now=now)
        release_store.add_decision(conn, rollout_id, at=now, state=row.state, wave=0, actor=actor.name,
                                   message=f"release gates overridden by {actor.name}: {reason}", reasons=[],
                                   evidence={"overridden": failed})
        audit_store.append(conn, at=now, actor=actor.name, action="rollout.gate-override",
                           target=f"rollout/{rollout_id}", source=actor.source, reason=reason,
                           details={"gates": failed, "created_by": row.created_by})
    return {"rollout": rollout_id, "approver": actor.name, "reason": reason, "gates": failed, "at": now.isoformat()}


def gates_of(conn: Any, rollout_id: str) -> list[dict[str, Any]]:
    """A rollout's gate results for its status (empty before the first start)."""
    override = store.gate_override(conn, rollout_id)
    out = []
    for r in sorted(store.gate_results(conn, rollout_id), key=lambda r: GATES.index(r["gate"]) if r["gate"] in GATES else 9):
        out.append({"gate": r["gate"], "verdict": r["verdict"], "message": r["message"],
                    "enforced": bool(r["details"].get("enforced")), "details": r["details"],
                    "overridden_by": r["details"].get("overridden_by") or (
                        override["approver"] if override and r["gate"] in override["gates"] else None),
                    "at": r["at"].isoformat() if r["at"] else None})
    return out
