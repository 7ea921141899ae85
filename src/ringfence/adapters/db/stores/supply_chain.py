"""Supply-chain storage: SBOMs and their components, advisories, VEX, signers and signatures, content
contracts, the gate policy, gate results and gate overrides.

Advisories are stored with exactly what matching needs (``affected`` as JSON);
:func:`load_advisories` rebuilds :class:`~ringfence.domain.vulns.Advisory`
objects from them, and :func:`generation` is the counter that every import
bumps, so a process keeps its index until the counter moves.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ringfence.adapters.db.stores.base import chunks, stage_rows, utc
from ringfence.adapters.db.tables import (
    AdvisoryAliasRow,
    AdvisoryRow,
    GateOverrideRow,
    GatePolicyRow,
    GateResultRow,
    HostAgentRow,
    HostRow,
    HostServiceRow,
    HostVersionRow,
    ReleaseContractRow,
    ReleaseSignatureRow,
    ReleaseSignerRow,
    SbomComponentRow,
    SbomRow,
    VexStatementRow,
    VulnGenerationRow,
)
from ringfence.domain.vulns import (
    Advisory,
    AffectedPackage,
    EventKind,
    Range,
    RangeType,
    Severity,
    SeverityLabel,
)

__all__ = [
    "add_signatures",
    "add_signer",
    "advisory_ids_for",
    "affected_to_json",
    "agent_versions_on",
    "bump_generation",
    "gate_override",
    "gate_policy",
    "gate_results",
    "generation",
    "get_contract",
    "get_sbom",
    "hosts_running",
    "list_signers",
    "list_vex",
    "load_advisories",
    "put_gate_policy",
    "replace_sbom",
    "save_gate_override",
    "save_gate_results",
    "sbom_components",
    "sbom_components_by_package",
    "set_contract",
    "signatures_for",
    "upsert_advisories",
    "upsert_vex",
]


# --- advisories ---------------------------------------------------------------------------------

def affected_to_json(affected: Iterable[AffectedPackage]) -> list[dict[str, Any]]:
    """``affected`` entries as stored: what :func:`load_advisories` needs to rebuild them."""
    return [{"ecosystem": a.ecosystem, "name": a.name, "purl": a.purl, "versions": list(a.versions),
             "ranges": [{"type": r.type.value, "repo": r.repo, "events": [[k.value, v] for k, v in r.events]}
                        for r in a.ranges]} for a in affected]


_KINDS = {k.value: k for k in EventKind}
_TYPES = {t.value: t for t in RangeType}


def _affected_from_json(doc: Sequence[Mapping[str, Any]]) -> tuple[AffectedPackage, ...]:
    # Hot path of the index load (200k advisories): dict look-ups instead of Enum calls, tuples built once.
    kinds, types = _KINDS, _TYPES
    return tuple(AffectedPackage(
        ecosystem=a["ecosystem"], name=a["name"], purl=a.get("purl"), versions=tuple(a.get("versions") or ()),
        ranges=tuple(Range(type=types[r["type"]], repo=r.get("repo"),
                           events=tuple([(kinds[k], v) for k, v in r["events"]])) for r in a.get("ranges") or ()))
        for a in doc)


def upsert_advisories(conn: Connection, advisories: Sequence[Advisory], now: datetime) -> tuple[int, int]:
    """Insert or replace advisories by id (and their alias rows); return (inserted, updated).

    PostgreSQL: COPY into staging tables, then one set-based delete and insert per table.
    """
    rows = [{"id": a.id, "aliases": list(a.aliases), "summary": a.summary, "modified": a.modified,
             "published": a.published, "withdrawn": a.withdrawn, "severity": a.severity.label.value,
             "score": a.severity.score, "vector": a.severity.vector or "", "severity_source": a.severity.source,
             "affected": affected_to_json(a.affected), "source": a.source, "imported_at": now} for a in advisories]
    aliases = [{"alias": x, "advisory_id": a.id} for a in advisories for x in dict.fromkeys(a.ids)]
    if conn.dialect.name == "postgresql":
        return _upsert_advisories_pg(conn, rows, aliases)
    ids = [a.id for a in advisories]
    existing: set[str] = set()
    for part in chunks(ids, 500):
        existing |= set(conn.execute(select(AdvisoryRow.id).where(AdvisoryRow.id.in_(part))).scalars())
        conn.execute(delete(AdvisoryAliasRow).where(AdvisoryAliasRow.advisory_id.in_(part)))
        conn.execute(delete(AdvisoryRow).where(AdvisoryRow.id.in_(part)))
    for part in chunks(rows, 2000):
        conn.execute(insert(AdvisoryRow), list(part))
    for part in chunks(aliases, 5000):
        conn.execute(insert(AdvisoryAliasRow), list(part))
    return len(ids) - len(existing), len(existing)


_JSON_COLS = ("aliases", "affected")


def _upsert_advisories_pg(conn: Connection, rows: Sequence[dict[str, Any]],
                          aliases: Sequence[dict[str, Any]]) -> tuple[int, int]:
    raw = conn.connection.driver_connection
    assert raw is not None
    cols = tuple(rows[0]) if rows else ()
    with raw.cursor() as cur:
        stage_rows(cur, "_stage_advisories", "advisories", cols,
                   (tuple(Json(r[c]) if c in _JSON_COLS else r[c] for c in cols) for r in rows))
        stage_rows(cur, "_stage_advisory_aliases", "advisory_aliases", ("alias", "advisory_id"),
                   ((a["alias"], a["advisory_id"]) for a in aliases))
        cur.execute("SELECT count(*) FROM _stage_advisories s JOIN advisories a ON a.id = s.id")
        found = cur.fetchone()
        existing = int(found[0]) if found else 0
        if existing:
            cur.execute("DELETE FROM advisory_aliases a USING _stage_advisories s WHERE a.advisory_id = s.id")
            cur.execute("DELETE FROM advisories a USING _stage_advisories s WHERE a.id = s.id")
        names = ", ".join(cols)
        cur.execute(f"INSERT INTO advisories ({names}) SELECT {names} FROM _stage_advisories ORDER BY id")  # noqa: S608
        cur.execute("INSERT INTO advisory_aliases (alias, advisory_id) SELECT alias, advisory_id "
                    "FROM _stage_advisory_aliases")
    return len(rows) - existing, existing


def load_advisories(conn: Connection, *, page: int = 20_000) -> list[Advisory]:
    """Every stored advisory as a domain object (withdrawn ones included)."""
    out: list[Advisory] = []
    cols = (AdvisoryRow.id, AdvisoryRow.aliases, AdvisoryRow.summary, AdvisoryRow.modified, AdvisoryRow.published,
            AdvisoryRow.withdrawn, AdvisoryRow.severity, AdvisoryRow.score, AdvisoryRow.vector,
            AdvisoryRow.severity_source, AdvisoryRow.affected, AdvisoryRow.source)
    after = ""
    while True:
        rows = conn.execute(select(*cols).where(AdvisoryRow.id > after).order_by(AdvisoryRow.id).limit(page)).all()
        for r in rows:
            modified = utc(r.modified)
            assert modified is not None
            out.append(Advisory(
                id=r.id, modified=modified, aliases=tuple(r.aliases), summary=r.summary, published=utc(r.published),
                withdrawn=utc(r.withdrawn), source=r.source, affected=_affected_from_json(r.affected),
                severity=Severity(label=SeverityLabel(r.severity), score=r.score, vector=r.vector or None,
                                  source=r.severity_source)))
        if len(rows) < page:
            return out
        after = rows[-1].id


def advisory_ids_for(conn: Connection, alias: str) -> list[str]:
    """Ids of the advisories that have ``alias`` as their id or one of their aliases."""
    return sorted(conn.execute(select(AdvisoryAliasRow.advisory_id).where(AdvisoryAliasRow.alias == alias)).scalars())


def generation(conn: Connection) -> int:
    """The advisory generation counter (0 before any import)."""
    value = conn.execute(select(VulnGenerationRow.generation).where(VulnGenerationRow.id == 1)).scalar()
    return int(value or 0)


def bump_generation(conn: Connection, now: datetime) -> int:
    """Increase the generation counter (after an import); return the new value.

    When the row is missing (a database emptied by hand) the counter restarts at a random value, so a
    process that cached the index of the old contents cannot mistake the new ones for them.
    """
    # One statement, so two imports that find the row missing at once cannot both insert it (a 500 once).
    stmt = _ins(conn)(VulnGenerationRow).values(id=1, generation=secrets.randbelow(2**40) + 1, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
        "generation": VulnGenerationRow.generation + 1, "updated_at": stmt.excluded.updated_at}))
    return generation(conn)


def _ins(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# --- SBOMs -----------------------------------------------------------------------------------------

def replace_sbom(conn: Connection, release_id: str, meta: Mapping[str, Any], components: Sequence[Mapping[str, Any]]) -> bool:
    """Store a release's SBOM and components, replacing any earlier one; True if one was replaced."""
    replaced = conn.execute(select(SbomRow.release_id).where(SbomRow.release_id == release_id)).first() is not None
    conn.execute(delete(SbomComponentRow).where(SbomComponentRow.release_id == release_id))
    conn.execute(delete(SbomRow).where(SbomRow.release_id == release_id))
    conn.execute(insert(SbomRow).values(release_id=release_id, **meta))
    rows = [{"release_id": release_id, "idx": i, **c} for i, c in enumerate(components)]
    for part in chunks(rows, 2000):
        conn.execute(insert(SbomComponentRow), list(part))
    return replaced


def get_sbom(conn: Connection, release_id: str) -> dict[str, Any] | None:
    """A release's SBOM summary row, or None."""
    row = conn.execute(select(SbomRow).where(SbomRow.release_id == release_id)).first()
    return dict(row._mapping) if row is not None else None


def sbom_components(conn: Connection, release_id: str) -> list[dict[str, Any]]:
    """A release's SBOM components in document order."""
    rows = conn.execute(select(SbomComponentRow).where(SbomComponentRow.release_id == release_id)
                        .order_by(SbomComponentRow.idx)).all()
    return [dict(r._mapping) for r in rows]


def sbom_components_by_package(conn: Connection, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Components of every release's SBOM whose (ecosystem, normalised package) is one of ``keys``."""
    out: list[dict[str, Any]] = []
    by_eco: dict[str, set[str]] = {}
    for eco, pkg in keys:
        by_eco.setdefault(eco, set()).add(pkg)
    for eco, pkgs in sorted(by_eco.items()):
        for part in chunks(sorted(pkgs), 500):
            rows = conn.execute(select(SbomComponentRow).where(SbomComponentRow.ecosystem == eco,
                                                               SbomComponentRow.package.in_(part))
                                .order_by(SbomComponentRow.release_id, SbomComponentRow.idx)).all()
            out += [dict(r._mapping) for r in rows]
    return out


# --- VEX -----------------------------------------------------------------------------------------------

def upsert_vex(conn: Connection, statements: Sequence[Mapping[str, Any]], now: datetime, actor: str) -> int:
    """Insert or replace VEX statements keyed by (vulnerability, product); return how many."""
    for s in statements:
        conn.execute(delete(VexStatementRow).where(VexStatementRow.vulnerability == s["vulnerability"],
                                                   VexStatementRow.product == s["product"]))
    rows = [{**s, "imported_at": now, "imported_by": actor} for s in statements]
    for part in chunks(rows, 2000):
        conn.execute(insert(VexStatementRow), list(part))
    return len(rows)


def list_vex(conn: Connection) -> list[dict[str, Any]]:
    """Every VEX statement."""
    rows = conn.execute(select(VexStatementRow).order_by(VexStatementRow.vulnerability, VexStatementRow.product))
    return [dict(r._mapping) for r in rows]


# --- signers and signatures -----------------------------------------------------------------------------

def add_signer(conn: Connection, name: str, keyid: str, public_key: Mapping[str, Any], now: datetime,
               actor: str) -> None:
    """Trust a release-signing key under a name (the caller checks name and keyid are new)."""
    conn.execute(insert(ReleaseSignerRow).values(name=name, keyid=keyid, public_key=dict(public_key), added_at=now,
                                                 added_by=actor))


def list_signers(conn: Connection) -> list[dict[str, Any]]:
    """Every trusted signer."""
    return [dict(r._mapping) for r in conn.execute(select(ReleaseSignerRow).order_by(ReleaseSignerRow.name))]


def add_signatures(conn: Connection, release_id: str, signatures: Sequence[tuple[str, str, str]], now: datetime,
                   actor: str) -> None:
    """Store ``(sha256, keyid, signature hex)`` for a release, replacing the same key's earlier signature."""
    for sha, keyid, _sig in signatures:
        conn.execute(delete(ReleaseSignatureRow).where(ReleaseSignatureRow.release_id == release_id,
                                                       ReleaseSignatureRow.sha256 == sha,
                                                       ReleaseSignatureRow.keyid == keyid))
    if signatures:
        conn.execute(insert(ReleaseSignatureRow), [
            {"release_id": release_id, "sha256": sha, "keyid": keyid, "signature": sig, "uploaded_at": now,
             "uploaded_by": actor} for sha, keyid, sig in signatures])


def signatures_for(conn: Connection, release_id: str) -> list[dict[str, Any]]:
    """A release's stored signatures."""
    rows = conn.execute(select(ReleaseSignatureRow).where(ReleaseSignatureRow.release_id == release_id))
    return [dict(r._mapping) for r in rows]


# --- content contracts ------------------------------------------------------------------------------------

def set_contract(conn: Connection, release_id: str, *, content_schema: Mapping[str, Any] | None,
                 for_agent: str) -> None:
    """Record an agent release's content schema or the agent product a content release is for."""
    conn.execute(delete(ReleaseContractRow).where(ReleaseContractRow.release_id == release_id))
    conn.execute(insert(ReleaseContractRow).values(release_id=release_id, for_agent=for_agent,
                                                   content_schema=dict(content_schema) if content_schema else None))


def get_contract(conn: Connection, release_id: str) -> dict[str, Any] | None:
    """A release's contract row, or None."""
    row = conn.execute(select(ReleaseContractRow).where(ReleaseContractRow.release_id == release_id)).first()
    return dict(row._mapping) if row is not None else None


# --- gate policy, results, overrides -----------------------------------------------------------------------

def put_gate_policy(conn: Connection, document: Mapping[str, Any], source: str, now: datetime, actor: str) -> int:
    """Store the gate policy; return its new version."""
    # An upsert, not select-delete-insert: two PUTs at once on PostgreSQL both inserted id 1 and one got a 500.
    stmt = _ins(conn)(GatePolicyRow).values(id=1, document=dict(document), source=source, updated_at=now,
                                            updated_by=actor, version=1)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
        "document": stmt.excluded.document, "source": stmt.excluded.source, "updated_at": stmt.excluded.updated_at,
        "updated_by": stmt.excluded.updated_by, "version": GatePolicyRow.version + 1}))
    return int(conn.execute(select(GatePolicyRow.version).where(GatePolicyRow.id == 1)).scalar_one())


def gate_policy(conn: Connection) -> dict[str, Any] | None:
    """The stored gate policy row, or None."""
    row = conn.execute(select(GatePolicyRow).where(GatePolicyRow.id == 1)).first()
    return dict(row._mapping) if row is not None else None


def save_gate_results(conn: Connection, rollout_id: str, results: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Replace a rollout's gate results."""
    conn.execute(delete(GateResultRow).where(GateResultRow.rollout_id == rollout_id))
    if results:
        conn.execute(insert(GateResultRow), [{"rollout_id": rollout_id, "gate": r["gate"], "verdict": r["verdict"],
                                              "message": r["message"], "details": dict(r.get("details") or {}),
                                              "at": now} for r in results])


def gate_results(conn: Connection, rollout_id: str) -> list[dict[str, Any]]:
    """A rollout's latest gate results."""
    rows = conn.execute(select(GateResultRow).where(GateResultRow.rollout_id == rollout_id))
    return [{**dict(r._mapping), "at": utc(r.at)} for r in rows]


def save_gate_override(conn: Connection, rollout_id: str, *, approver: str, reason: str, gates: list[str],
                       now: datetime) -> None:
    """Record an override of a rollout's failed gates (replacing an earlier one)."""
    conn.execute(delete(GateOverrideRow).where(GateOverrideRow.rollout_id == rollout_id))
    conn.execute(insert(GateOverrideRow).values(rollout_id=rollout_id, approver=approver, reason=reason, gates=gates,
                                                at=now))


def gate_override(conn: Connection, rollout_id: str) -> dict[str, Any] | None:
    """A rollout's gate override, or None."""
    row = conn.execute(select(GateOverrideRow).where(GateOverrideRow.rollout_id == rollout_id)).first()
    return {**dict(row._mapping), "at": utc(row.at)} if row is not None else None


# --- where things run ------------------------------------------------------------------------------------

def hosts_running(conn: Connection, releases: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Hosts that run one of the ``(product, version)`` pairs: reported (host_versions) or installed (inventory).

    One row per host and pair: ``host_id, hostname, tenant, services, product, version, source``.
    """
    pairs = sorted(set(releases))
    found: dict[tuple[str, str, str], set[str]] = {}
    for product, version in pairs:
        for hid in conn.execute(select(HostVersionRow.host_id).where(HostVersionRow.product == product,
                                                                     HostVersionRow.version == version)).scalars():
            found.setdefault((hid, product, version), set()).add("reported")
        for hid in conn.execute(select(HostAgentRow.host_id).where(HostAgentRow.product == product,
                                                                   HostAgentRow.version == version)).scalars():
            found.setdefault((hid, product, version), set()).add("inventory")
    ids = sorted({k[0] for k in found})
    hosts: dict[str, tuple[str, str]] = {}
    services: dict[str, list[str]] = {}
    for part in chunks(ids, 900):
        for r in conn.execute(select(HostRow.id, HostRow.hostname, HostRow.tenant).where(HostRow.id.in_(part))):
            hosts[r.id] = (r.hostname, r.tenant)
        for s in conn.execute(select(HostServiceRow.host_id, HostServiceRow.service_id)
                              .where(HostServiceRow.host_id.in_(part)).order_by(HostServiceRow.service_id)):
            services.setdefault(s.host_id, []).append(s.service_id)
    out = []
    for (hid, product, version), sources in sorted(found.items()):
        hostname, tenant = hosts.get(hid, ("", ""))
        out.append({"host_id": hid, "hostname": hostname, "tenant": tenant, "services": services.get(hid, []),
                    "product": product, "version": version, "source": "+".join(sorted(sources))})
    return out


def agent_versions_on(conn: Connection, host_ids: Sequence[str], product: str) -> dict[str, set[str]]:
    """``version -> hosts`` of an agent product on the given hosts (reported versions and installed agents)."""
    out: dict[str, set[str]] = {}
    for part in chunks(sorted(set(host_ids)), 900):
        for r in conn.execute(select(HostVersionRow.host_id, HostVersionRow.version)
                              .where(HostVersionRow.product == product, HostVersionRow.host_id.in_(part))):
            if r.version:
                out.setdefault(r.version, set()).add(r.host_id)
        for r in conn.execute(select(HostAgentRow.host_id, HostAgentRow.version)
                              .where(HostAgentRow.product == product, HostAgentRow.host_id.in_(part))):
            if r.version:
                out.setdefault(r.version, set()).add(r.host_id)
    return out
