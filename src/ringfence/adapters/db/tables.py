"""Table classes (SQLAlchemy 2 declarative, ``Mapped[...]``).

These are kept apart from the domain dataclasses in
:mod:`ringfence.domain.model`; stores convert between them.  Alembic owns
the schema (``migrations/``); a test checks that the migrations produce
exactly these tables.  Tables whose rows change state carry a ``version``
column for optimistic concurrency (see :mod:`ringfence.adapters.db.stores.base`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiTokenRow",
    "AuditHeadRow",
    "AuditRow",
    "Base",
    "DecisionRow",
    "EnrolmentTokenRow",
    "HostAgentRow",
    "HostCredentialRow",
    "HostDayRow",
    "HostEventRow",
    "HostHealthRow",
    "HostLabelRow",
    "HostRow",
    "HostServiceRow",
    "HostVersionRow",
    "KeyEscrowRow",
    "KillSwitchRow",
    "NotifyDeliveryRow",
    "NotifyRulesRow",
    "PlanRow",
    "RedundancyGroupRow",
    "ReleaseRow",
    "RemediationRow",
    "RolloutHostRow",
    "RolloutRow",
    "ServiceRow",
    "TenantPolicyRow",
    "TenantRow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class TenantRow(Base):
    """A customer organisation."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)


class HostRow(Base):
    """One host; agents, labels and services are child rows."""

    __tablename__ = "hosts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(200), ForeignKey("tenants.id"), index=True)
    os_family: Mapped[str] = mapped_column(String(16), index=True)
    os_name: Mapped[str] = mapped_column(String(200), default="")
    os_version: Mapped[str] = mapped_column(String(100), default="")
    os_build: Mapped[str] = mapped_column(String(100), default="")
    arch: Mapped[str] = mapped_column(String(32), default="x86_64")
    hardware_vendor: Mapped[str] = mapped_column(String(200), default="")
    hardware_model: Mapped[str] = mapped_column(String(200), default="")
    platform: Mapped[str] = mapped_column(String(16), default="physical")
    cloud_provider: Mapped[str] = mapped_column(String(32), default="")
    cloud_region: Mapped[str] = mapped_column(String(64), default="", index=True)
    cloud_zone: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[str] = mapped_column(String(100), default="", index=True)
    country: Mapped[str] = mapped_column(String(2), default="")
    subdivision: Mapped[str] = mapped_column(String(10), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    tier: Mapped[int] = mapped_column(Integer, default=3)
    encryption: Mapped[str] = mapped_column(String(16), default="none")
    recovery_key_escrowed: Mapped[bool] = mapped_column(Boolean, default=False)
    recovery_key_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    oob_management: Mapped[bool] = mapped_column(Boolean, default=False)
    local_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    usb_boot: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)


class HostAgentRow(Base):
    """Software installed on a host (EDR, VPN, backup …)."""

    __tablename__ = "host_agents"
    host_id: Mapped[str] = mapped_column(String(200), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    vendor: Mapped[str] = mapped_column(String(200), index=True)
    product: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100), default="")
    kernel_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    boot_start: Mapped[bool] = mapped_column(Boolean, default=False)


class HostLabelRow(Base):
    """One label ``key=value`` of a host."""

    __tablename__ = "host_labels"
    host_id: Mapped[str] = mapped_column(String(200), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), default="")
    __table_args__ = (Index("ix_host_labels_key_value", "key", "value"),)


class HostServiceRow(Base):
    """A host serves a business service."""

    __tablename__ = "host_services"
    host_id: Mapped[str] = mapped_column(String(200), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class ServiceRow(Base):
    """A business service."""

    __tablename__ = "services"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    tenant: Mapped[str] = mapped_column(String(200), ForeignKey("tenants.id"), index=True)
    tier: Mapped[int] = mapped_column(Integer, default=3)
    rto_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mtd_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    regulatory_function: Mapped[str] = mapped_column(String(200), default="")
    depends_on: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RedundancyGroupRow(Base):
    """``min_healthy`` of the group's hosts must survive."""

    __tablename__ = "redundancy_groups"
    service_id: Mapped[str] = mapped_column(String(200), ForeignKey("services.id", ondelete="CASCADE"),
                                            primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    min_healthy: Mapped[int] = mapped_column(Integer)
    selector: Mapped[str] = mapped_column(Text, default="")
    hosts: Mapped[list[Any]] = mapped_column(JSON, default=list)


class ApiTokenRow(Base):
    """An operator API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class AuditRow(Base):
    """One entry of the hash-chained, append-only audit log."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(400))
    source: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The last entry's sequence and hash; its row lock serialises appends."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    #: the switch-over entry from which the chain is keyed (HMAC), and the fingerprint of its key
    keyed_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)


# --- releases, plans, rollouts (engine) -------------------------------------------------

class ReleaseRow(Base):
    """A product version and its artifacts (files stored content-addressed by SHA-256)."""

    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    product: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    platforms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    artifacts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)  # order of creation within the product (N, N-1 …)


class PlanRow(Base):
    """A named plan; ``document`` is its validated mapping."""

    __tablename__ = "plans"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(TZ)
    updated_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)


class TenantPolicyRow(Base):
    """A tenant's (or one of its host groups') ring, delay and pin for one product or all products."""

    __tablename__ = "tenant_policies"
    tenant: Mapped[str] = mapped_column(String(200), primary_key=True)
    host_group: Mapped[str] = mapped_column(String(400), primary_key=True)  # "" = the whole tenant; else a selector
    product: Mapped[str] = mapped_column(String(200), primary_key=True)     # "*" = every product
    ring: Mapped[str] = mapped_column(String(16), default="general")
    delay_hours: Mapped[float] = mapped_column(default=0.0)
    pin: Mapped[str] = mapped_column(String(200), default="latest")
    updated_at: Mapped[datetime] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RolloutRow(Base):
    """A release under a plan: the spec (fixed) and the status (replaced by each decision)."""

    __tablename__ = "rollouts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(200), ForeignKey("releases.id"), index=True)
    product: Mapped[str] = mapped_column(String(200), index=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    salt: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)


class RolloutHostRow(Base):
    """One targeted host of a rollout: its wave, bucket, stratum and exposure."""

    __tablename__ = "rollout_hosts"
    rollout_id: Mapped[str] = mapped_column(String(64), ForeignKey("rollouts.id", ondelete="CASCADE"),
                                            primary_key=True)
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    wave: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[int] = mapped_column(Integer)
    stratum: Mapped[str] = mapped_column(String(400))
    exposed_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    exposed_wave: Mapped[int | None] = mapped_column(Integer, nullable=True)
    from_version: Mapped[str] = mapped_column(String(100), default="")  # what it ran when offered: the way back
    rolled_back_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    __table_args__ = (Index("ix_rollout_hosts_rollout_wave", "rollout_id", "wave", "bucket"),)


class DecisionRow(Base):
    """The decision log of a rollout: every state change with its reasons and evidence."""

    __tablename__ = "rollout_decisions"
    rollout_id: Mapped[str] = mapped_column(String(64), ForeignKey("rollouts.id", ondelete="CASCADE"),
                                            primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(TZ)
    state: Mapped[str] = mapped_column(String(32))
    wave: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class HostHealthRow(Base):
    """The latest heartbeat of a host and what it reports running."""

    __tablename__ = "host_health"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_heartbeat: Mapped[datetime] = mapped_column(TZ, index=True)
    first_heartbeat: Mapped[datetime] = mapped_column(TZ)  # fixes which hosts can be control hosts of a rollout
    reports: Mapped[int] = mapped_column(BigInteger, default=0)
    # Gate v2 (docs/gate.md, "In the server"): when the server *received* the last report, the last going-away
    # notice, the latest reported crash (its arrival), and the host's own recent absences after notices.
    last_seen: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    notice_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    notice_reason: Mapped[str] = mapped_column(String(32), default="")
    crash_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    away_recent: Mapped[list[Any]] = mapped_column(JSON, default=list)  # seconds away, newest last (bounded)


class HostDayRow(Base):
    """A host's own record per UTC day (self-control's pre-update history), kept for the look-back only."""

    __tablename__ = "host_days"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    hours: Mapped[float] = mapped_column(Float, default=0.0)  # host-hours at risk of silence (reporting)
    silences: Mapped[int] = mapped_column(Integer, default=0)  # silences past the grace without a notice
    crashes: Mapped[int] = mapped_column(Integer, default=0)
    notices: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_host_days_day", "day"),)


class IngestedReportRow(Base):
    """A health report a stream consumer has written (its message id): redelivered copies are skipped."""

    __tablename__ = "ingested_reports"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(TZ, index=True)  # the report's time: rows past the report age are pruned


class HostRevocationRow(Base):
    """A host's credential was revoked or replaced at ``at``: its host tokens issued before then are refused."""

    __tablename__ = "host_revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(TZ, index=True)


class HostVersionRow(Base):
    """What a host runs of a product, and its last known good version."""

    __tablename__ = "host_versions"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    product: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    last_known_good: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(TZ)


class HostEventRow(Base):
    """A host had at least one event of a kind under a rollout (hosts, not events, are counted)."""

    __tablename__ = "host_events"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rollout_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(TZ)
    last_at: Mapped[datetime] = mapped_column(TZ)
    count: Mapped[int] = mapped_column(Integer, default=1)
    __table_args__ = (Index("ix_host_events_rollout_kind", "rollout_id", "kind"),)


class HostCredentialRow(Base):
    """A per-host credential (hash only) with which an agent reports for itself."""

    __tablename__ = "host_credentials"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    revoked_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class KillSwitchRow(Base):
    """A product whose rollouts are all halted and whose hosts go back to their last known good version."""

    __tablename__ = "kill_switches"
    product: Mapped[str] = mapped_column(String(200), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, default=1)


class KeyEscrowRow(Base):
    """Where a host's disk recovery key is escrowed and whether that was verified (never the key itself)."""

    __tablename__ = "key_escrow"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    location: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(TZ)


# --- supply chain (SBOMs, advisories, VEX, signatures, content contracts, release gates) ------------

class SbomRow(Base):
    """The SBOM of a release (one per release; importing another replaces it)."""

    __tablename__ = "sboms"
    release_id: Mapped[str] = mapped_column(String(200), ForeignKey("releases.id", ondelete="CASCADE"),
                                            primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    spec_version: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(400), default="")
    serial_number: Mapped[str] = mapped_column(String(200), default="", index=True)
    bom_version: Mapped[int] = mapped_column(Integer, default=1)
    subject_ref: Mapped[str] = mapped_column(String(400), default="")  # bom-ref of metadata.component
    source: Mapped[str] = mapped_column(String(400), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    components: Mapped[int] = mapped_column(Integer, default=0)
    incomplete: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    imported_at: Mapped[datetime] = mapped_column(TZ)
    imported_by: Mapped[str] = mapped_column(String(200))


class SbomComponentRow(Base):
    """One component of a release's SBOM, normalised (ecosystem and name as the matcher keys them)."""

    __tablename__ = "sbom_components"
    release_id: Mapped[str] = mapped_column(String(200), ForeignKey("sboms.release_id", ondelete="CASCADE"),
                                            primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    version: Mapped[str] = mapped_column(String(200), default="")
    purl: Mapped[str] = mapped_column(Text, default="")
    ecosystem: Mapped[str] = mapped_column(String(64), default="")
    package: Mapped[str] = mapped_column(String(400), default="")  # normalised name in the ecosystem
    group: Mapped[str] = mapped_column(String(400), default="")
    bom_ref: Mapped[str] = mapped_column(String(400), default="")
    hashes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    __table_args__ = (Index("ix_sbom_components_package", "ecosystem", "package"),)


class AdvisoryRow(Base):
    """One OSV advisory (aliases merged), with what matching needs; re-import replaces it."""

    __tablename__ = "advisories"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    modified: Mapped[datetime] = mapped_column(TZ)
    published: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    withdrawn: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    severity: Mapped[str] = mapped_column(String(16), default="unknown")
    score: Mapped[float | None] = mapped_column(nullable=True)
    vector: Mapped[str] = mapped_column(Text, default="")
    severity_source: Mapped[str] = mapped_column(String(64), default="")
    affected: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[datetime] = mapped_column(TZ)


class AdvisoryAliasRow(Base):
    """Every id and alias of an advisory, for look-ups by CVE, GHSA, PYSEC … id."""

    __tablename__ = "advisory_aliases"
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    advisory_id: Mapped[str] = mapped_column(String(200), ForeignKey("advisories.id", ondelete="CASCADE"),
                                             primary_key=True, index=True)


class VulnGenerationRow(Base):
    """A counter bumped by every advisory import: a process's cached index is valid while it is unchanged."""

    __tablename__ = "vuln_generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(TZ)


class VexStatementRow(Base):
    """A VEX statement about one vulnerability and one product (purl, release id or BOM-Link)."""

    __tablename__ = "vex_statements"
    vulnerability: Mapped[str] = mapped_column(String(200), primary_key=True)
    product: Mapped[str] = mapped_column(String(400), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    justification: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[str] = mapped_column(String(400), default="")
    format: Mapped[str] = mapped_column(String(16))
    imported_at: Mapped[datetime] = mapped_column(TZ)
    imported_by: Mapped[str] = mapped_column(String(200))


class ReleaseSignerRow(Base):
    """A trusted release-signing public key (securesystemslib key dict)."""

    __tablename__ = "release_signers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    keyid: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[dict[str, Any]] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(TZ)
    added_by: Mapped[str] = mapped_column(String(200))


class ReleaseSignatureRow(Base):
    """A detached signature over one artifact's SHA-256 by one key."""

    __tablename__ = "release_signatures"
    release_id: Mapped[str] = mapped_column(String(200), ForeignKey("releases.id", ondelete="CASCADE"),
                                            primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    signature: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(TZ)
    uploaded_by: Mapped[str] = mapped_column(String(200))


class ReleaseContractRow(Base):
    """An agent release's content schema, or the agent product a content release is loaded by."""

    __tablename__ = "release_contracts"
    release_id: Mapped[str] = mapped_column(String(200), ForeignKey("releases.id", ondelete="CASCADE"),
                                            primary_key=True)
    content_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    for_agent: Mapped[str] = mapped_column(String(200), default="", index=True)


class GatePolicyRow(Base):
    """The release-gate policy (severity threshold, allow-list); one row."""

    __tablename__ = "gate_policy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(TZ)
    updated_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)


class GateResultRow(Base):
    """The latest result of one release gate for one rollout."""

    __tablename__ = "gate_results"
    rollout_id: Mapped[str] = mapped_column(String(64), ForeignKey("rollouts.id", ondelete="CASCADE"),
                                            primary_key=True)
    gate: Mapped[str] = mapped_column(String(32), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(TZ)


class GateOverrideRow(Base):
    """An approver's override of a rollout's failed release gates (four eyes, with a reason)."""

    __tablename__ = "gate_overrides"
    rollout_id: Mapped[str] = mapped_column(String(64), ForeignKey("rollouts.id", ondelete="CASCADE"),
                                            primary_key=True)
    approver: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    gates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(TZ)


# --- channel and enrolment -------------------------------------------------------------------

class EnrolmentTokenRow(Base):
    """A one-time (or few-times) enrolment token for agents of one tenant; only its hash is stored."""

    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(200), ForeignKey("tenants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    uses: Mapped[int] = mapped_column(Integer)
    uses_left: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: set for an operator-issued re-enrolment token: it enrols this one host only (which may hold a credential)
    host_id: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)


class RemediationRow(Base):
    """A remediation script published over the signed channel to the cohorts of the hosts it names."""

    __tablename__ = "remediations"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    selector: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    hosts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))


# --- notifications ---------------------------------------------------------------------------

class NotifyRulesRow(Base):
    """A tenant's notification rules (the ``notify:`` YAML as parsed); tenant "" applies to every tenant."""

    __tablename__ = "notify_rules"
    tenant: Mapped[str] = mapped_column(String(200), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    updated_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)


class NotifyDeliveryRow(Base):
    """One notification to one target: the outbox row the delivery worker drains, and its delivery log."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (Index("ix_notify_deliveries_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))      # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ)
    next_attempt_at: Mapped[datetime] = mapped_column(TZ)
    delivered_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
# --- recovery campaigns ----------------------------------------------------------------------

class RecoveryCampaignRow(Base):
    """A recovery campaign: the hosts to bring back, the runbooks and model it was planned with."""

    __tablename__ = "recovery_campaigns"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # open | closed
    source: Mapped[str] = mapped_column(String(16))  # rollout | selector | hosts
    source_ref: Mapped[str] = mapped_column(Text)
    runbooks: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(TZ)
    created_by: Mapped[str] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RecoveryHostRow(Base):
    """One host of a campaign: its state, runbook and technician."""

    __tablename__ = "recovery_hosts"
    campaign_id: Mapped[str] = mapped_column(String(64), ForeignKey("recovery_campaigns.id", ondelete="CASCADE"),
                                             primary_key=True)
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    state: Mapped[str] = mapped_column(String(32))
    runbook: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(32))
    assignee: Mapped[str] = mapped_column(String(200), default="", index=True)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    fixed_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class RecoveryEventRow(Base):
    """What happened to one host of a campaign: a state change or an executor's event."""

    __tablename__ = "recovery_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), ForeignKey("recovery_campaigns.id", ondelete="CASCADE"),
                                             index=True)
    host_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # state | step
    state_from: Mapped[str] = mapped_column(String(32), default="")
    state_to: Mapped[str] = mapped_column(String(32), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RecoveryKeyRow(Base):
    """A disk recovery key imported from an escrow export, encrypted at rest (never stored in the clear)."""

    __tablename__ = "recovery_keys"
    host_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(200))
    ciphertext: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(TZ)
    imported_by: Mapped[str] = mapped_column(String(200))


class RecoveryRevealRow(Base):
    """One request to reveal a recovery key: who, which host, and whether it was revealed (for the rate limit)."""

    __tablename__ = "recovery_reveals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    host_id: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(TZ)
    revealed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
