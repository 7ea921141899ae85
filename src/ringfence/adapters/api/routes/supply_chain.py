"""Supply chain: advisories, SBOMs, VEX, findings, signers and signatures, the gate policy, gate overrides, fleet queries."""

from __future__ import annotations

from typing import IO, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.adapters.api.problems import NON_BLANK_PATTERN, Body, check_form_fields
from ringfence.adapters.db.stores import supply_chain as store
from ringfence.adapters.db.stores.base import utc
from ringfence.domain.access import Role
from ringfence.errors import InputError, shown
from ringfence.services import release_gates, supply_chain
from ringfence.services.context import Actor

__all__ = ["read_files", "router"]

router = APIRouter()
#: Package URLs that packageurl-python always parses: pkg:type/[namespace/]name[@version], unescaped.
_PURL_PATTERN = r"^pkg:[a-z][a-z0-9._-]{0,30}/([A-Za-z0-9._~-]+/){0,3}[A-Za-z0-9._~-]+(@[A-Za-z0-9._~+-]+)?$"

_MULTIPART = {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}, "reason": {"type": "string"}}}}}


async def read_files(request: Request, state: AppState, *, field: str = "files",
                     max_files: int = 1000) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The uploaded files of one multipart field and the form's text fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise InputError.single("content-type", f"is {shown(ctype or '(none)')}", expected="multipart/form-data")
    form = await request.form(max_files=max_files, max_part_size=state.settings.max_upload_mb * 1024 * 1024)
    try:
        files = [(v.filename or field, await v.read()) for v in form.getlist(field) if isinstance(v, UploadFile)]
        fields = check_form_fields({k: str(v) for k, v in form.items() if not isinstance(v, UploadFile)})
    finally:
        await form.close()
    return files, fields


# --- advisories and fleet queries ---------------------------------------------------------------------

@router.post("/v1/vulns/import", tags=["supply chain"], summary="Import OSV records (JSON/YAML files or all.zip)",
             openapi_extra={"requestBody": {"content": _MULTIPART}})
async def import_vulns(request: Request, state: AppState = Depends(get_state),
                       actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """All or nothing: every record is parsed before any is written; re-import replaces records by id."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise InputError.single("content-type", f"is {shown(ctype or '(none)')}", expected="multipart/form-data")
    # The parts stay where the form parser spooled them (disk past 1 MiB) until the import is done: an
    # all.zip is copied to the import's work directory a buffer at a time and read entry by entry.
    form = await request.form(max_files=1000, max_part_size=state.settings.max_upload_mb * 1024 * 1024)
    try:
        files: list[tuple[str, bytes | IO[bytes]]] = []
        for value in form.getlist("files"):
            if isinstance(value, UploadFile):
                await value.seek(0)
                files.append((value.filename or "files", value.file))
        fields = check_form_fields({k: str(v) for k, v in form.items() if not isinstance(v, UploadFile)})
        return await run_in_threadpool(lambda: supply_chain.import_vulns(
            state.db, files, actor=actor, clock=state.clock, reason=reason_of(request, fields.get("reason", ""))))
    finally:
        await form.close()


@router.get("/v1/vulns/{vuln_id}/where", tags=["supply chain"], summary="Releases and hosts an advisory affects")
def vulns_where(vuln_id: str, state: AppState = Depends(get_state),
                actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Releases whose SBOM has an affected component (with the fixed version), hosts by tenant and service."""
    return supply_chain.vulns_where(state.db, vuln_id, actor=actor, advisory_cache=state.context.advisories)


@router.get("/v1/components/where", tags=["supply chain"], summary="Which hosts run a component")
def components_where(purl: str = Query(..., min_length=5, max_length=2000, pattern=_PURL_PATTERN,
                                     description="Package URL, version optional"),
                     state: AppState = Depends(get_state),
                     actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Releases whose SBOM contains the purl, and the hosts running those releases."""
    return supply_chain.components_where(state.db, purl, actor=actor)


# --- SBOMs and findings ---------------------------------------------------------------------------------------

@router.post("/v1/releases/{release_id}/sbom", tags=["supply chain"], summary="Attach an SBOM to a release",
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"},
                                                  "reason": {"type": "string"}}}}}}})
async def import_sbom(release_id: str, request: Request, state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """CycloneDX 1.2–1.6 JSON/XML or SPDX 2.2/2.3 JSON, validated; incomplete components are listed."""
    files, fields = await read_files(request, state, field="file", max_files=1)
    if len(files) != 1:
        raise InputError.single("file", f"{len(files)} files given", expected="exactly one SBOM file")
    name, data = files[0]

    def work() -> dict[str, Any]:
        prepared = supply_chain.prepare_sbom(name, data)
        return supply_chain.attach_sbom(state.db, release_id, prepared, actor=actor, clock=state.clock,
                                        reason=reason_of(request, fields.get("reason", "")))

    return await run_in_threadpool(work)


@router.get("/v1/releases/{release_id}/sbom", tags=["supply chain"], summary="A release's SBOM")
def show_sbom(release_id: str, state: AppState = Depends(get_state),
              actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Summary, components and the incomplete ones."""
    return supply_chain.sbom_view(state.db, release_id, actor=actor)


@router.get("/v1/releases/{release_id}/sbom/cyclonedx", tags=["supply chain"], response_class=Response,
            summary="A release's SBOM written as CycloneDX 1.5 JSON")
def export_sbom(release_id: str, state: AppState = Depends(get_state),
                actor: Actor = Depends(require(Role.VIEWER))) -> Response:
    """The stored components as a CycloneDX document (cyclonedx-python-lib), the release as its subject."""
    return Response(supply_chain.sbom_export(state.db, release_id, actor=actor),
                    media_type="application/vnd.cyclonedx+json")


@router.get("/v1/releases/{release_id}/findings", tags=["supply chain"], summary="Known vulnerabilities in a release")
def findings(release_id: str, offset: int = Query(0, ge=0, le=10_000_000, description="First entry of the page"),
             limit: int = Query(supply_chain.FINDINGS_PAGE, ge=1, le=supply_chain.MAX_FINDINGS_PAGE,
                                description="Entries per page (findings and not_evaluated each)"),
             state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Component, advisory and aliases, severity, fixed version, waived by VEX or not; paged (``next_offset``)."""
    return supply_chain.findings(state.db, release_id, actor=actor, offset=offset, limit=limit,
                                 advisory_cache=state.context.advisories)


# --- signatures and signers ------------------------------------------------------------------------------------

class SignatureIn(Body):
    """A detached signature over one artifact's SHA-256."""

    sha256: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    keyid: str = Field(min_length=1, max_length=64)
    sig: str = Field(min_length=1, max_length=1024)


class SignaturesIn(Body):
    """Signatures made by `ringfence release sign`."""

    signatures: list[SignatureIn] = Field(min_length=1, max_length=1000)
    reason: str = Field(default="", max_length=2000)


@router.post("/v1/releases/{release_id}/signatures", tags=["supply chain"], summary="Upload artifact signatures")
def upload_signatures(release_id: str, body: SignaturesIn, request: Request, state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Each signature must verify with a trusted signer's key; all or nothing."""
    return supply_chain.upload_signatures(state.db, release_id, [s.model_dump() for s in body.signatures], actor=actor,
                                          clock=state.clock, reason=reason_of(request, body.reason))


class SignerIn(Body):
    """A trusted release signer."""

    name: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=1, max_length=20_000, description="Key JSON or PEM public key.")
    reason: str = Field(default="", max_length=2000)


@router.post("/v1/signers", status_code=201, tags=["supply chain"], summary="Trust a release-signing key (admin)")
def add_signer(body: SignerIn, request: Request, state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """An ed25519 public key whose signatures satisfy the signature gate."""
    return supply_chain.add_signer(state.db, body.name, body.public_key.encode(), actor=actor, clock=state.clock,
                                   reason=reason_of(request, body.reason))


@router.get("/v1/signers", tags=["supply chain"], summary="Trusted release signers")
def list_signers(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Names and key ids."""
    return {"signers": supply_chain.list_signers(state.db, actor=actor)}


# --- VEX ------------------------------------------------------------------------------------------------------------

@router.post("/v1/vex", tags=["supply chain"], summary="Import a CycloneDX VEX or OpenVEX document",
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"},
                                                  "reason": {"type": "string"}}}}}}})
async def import_vex(request: Request, state: AppState = Depends(get_state),
                     actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """``not_affected`` with a justification waives findings for the products named."""
    files, fields = await read_files(request, state, field="file", max_files=1)
    if len(files) != 1:
        raise InputError.single("file", f"{len(files)} files given", expected="exactly one VEX document")
    name, data = files[0]
    return await run_in_threadpool(lambda: supply_chain.import_vex(
        state.db, name, data, actor=actor, clock=state.clock, reason=reason_of(request, fields.get("reason", ""))))


@router.get("/v1/vex", tags=["supply chain"], summary="Stored VEX statements")
def list_vex(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every statement."""
    with state.db.transaction() as conn:
        rows = store.list_vex(conn)
    return {"statements": [{**r, "imported_at": supply_chain.as_of(utc(r["imported_at"]))} for r in rows]}


# --- gate policy and overrides ------------------------------------------------------------------------------------------

@router.put("/v1/gate-policy", tags=["supply chain"], summary="Set the release-gate policy (YAML body)",
            openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}})
async def put_gate_policy(request: Request, state: AppState = Depends(get_state),
                          actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Enforced gates, severity threshold, allow-list with expiry dates and reasons."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return await run_in_threadpool(lambda: release_gates.apply_gate_policy(
        state.db, body, actor=actor, clock=state.clock, reason=reason_of(request)))


@router.get("/v1/gate-policy", tags=["supply chain"], summary="The release-gate policy in force")
def get_gate_policy(state: AppState = Depends(get_state),
                    actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """The stored policy, or the built-in default."""
    return release_gates.gate_policy_view(state.db, actor=actor)


class OverrideIn(Body):
    """Why the failed gates may be overridden."""

    reason: str = Field(min_length=1, max_length=2000, json_schema_extra={"pattern": NON_BLANK_PATTERN},
                        description="Why (goes to the audit log); not blank.")


@router.post("/v1/rollouts/{rollout_id}/gate-override", tags=["supply chain"],
             summary="Override a rollout's failed release gates (approver, four eyes)")
def gate_override(rollout_id: str, body: OverrideIn, state: AppState = Depends(get_state),
                  actor: Actor = Depends(require(Role.APPROVER))) -> dict[str, Any]:
    """Recorded and audited; the next start proceeds with the failed gates shown as overridden."""
    return release_gates.override_gates(state.db, rollout_id, actor=actor, clock=state.clock, reason=body.reason,
                                        artifacts=state.context.artifacts, advisory_cache=state.context.advisories)
