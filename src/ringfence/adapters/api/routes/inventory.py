"""Fleet inventory: import files, list and show hosts, services and tenants."""

from __future__ import annotations

import contextlib
import tempfile
from typing import IO, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.adapters.inventory.files import parse_files
from ringfence.adapters.inventory.records import host_to_record, service_to_record
from ringfence.domain.access import Role
from ringfence.errors import InputError, RingfenceError, shown
from ringfence.services import inventory
from ringfence.services.context import Actor

router = APIRouter(tags=["inventory"])

_CONTENT_NAMES = {
    "application/json": "body.json",
    "application/x-ndjson": "body.jsonl",
    "application/jsonl": "body.jsonl",
    "text/csv": "body.csv",
    "application/yaml": "body.yaml",
    "application/x-yaml": "body.yaml",
    "text/yaml": "body.yaml",
}


#: A body up to this size stays in memory; a larger one is spooled to a temporary file.
_SPOOL = 1024 * 1024


class _TooLarge(RingfenceError):
    status = 413
    title = "Request too large"


@router.post("/v1/inventory", summary="Import inventory files (all-or-nothing)", openapi_extra={
    "requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "reason": {"type": "string"}}}},
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "application/yaml": {"schema": {"type": "string"}},
    }}})
async def import_(request: Request, state: AppState = Depends(get_state),
                  actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Import hosts, services and tenants.

    Send several files as ``multipart/form-data`` (field ``files``), or one
    document as the body with its content type (``application/json``,
    ``application/x-ndjson``, ``text/csv``, ``application/yaml``).  Either
    every record is valid and everything is imported in one transaction, or
    nothing changes and the problem lists each bad file, row and field.
    """
    limit = state.settings.max_upload_mb * 1024 * 1024
    length = int(request.headers.get("content-length") or 0)
    if length > limit:
        raise _TooLarge(f"upload is {length} bytes; the limit is {limit} (max_upload_mb)")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    reason = reason_of(request)
    # The files are read where they are (parts spooled to disk by the form parser, a body spooled here),
    # CSV and JSON Lines row by row (adapters.inventory.files): never copied into memory whole.
    async with contextlib.AsyncExitStack() as stack:
        files: list[tuple[str, IO[bytes]]] = []
        if ctype == "multipart/form-data":
            form = await request.form(max_files=10_000, max_part_size=limit)
            stack.push_async_callback(form.close)
            for value in form.getlist("files"):
                if isinstance(value, UploadFile):
                    await value.seek(0)
                    files.append((value.filename or "upload", value.file))
            reason = reason or str(form.get("reason") or "")
            if not files:
                raise InputError.single("files", "no file was sent",
                                        expected="one or more multipart parts named 'files'")
        elif ctype in _CONTENT_NAMES:
            name = request.query_params.get("name") or _CONTENT_NAMES[ctype]
            body = stack.enter_context(  # the stack closes it when the import is done
                tempfile.SpooledTemporaryFile(max_size=_SPOOL, prefix="ringfence-inventory-"))  # noqa: SIM115
            async for chunk in request.stream():
                body.write(chunk)
            body.seek(0)
            files.append((name, body))
        else:
            raise InputError.single("content-type", f"is {shown(ctype or '(none)')}",
                                    expected="multipart/form-data, " + ", ".join(sorted(set(_CONTENT_NAMES))))

        def work() -> dict[str, Any]:
            inv = parse_files(files)
            result = inventory.import_inventory(state.db, inv, actor=actor, clock=state.clock,
                                                sources=tuple(n for n, _ in files), reason=reason)
            return result.as_dict()

        return await run_in_threadpool(work)


@router.get("/v1/hosts", summary="List hosts, filtered by a selector")
def hosts(where: str = Query("", description="Selector, e.g. os_family=windows and agent.vendor=CrowdStrike"),
          limit: int = Query(100, ge=1, le=inventory.MAX_PAGE), after: str = Query("", description="Continue after this host id"),
          state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A page of hosts in id order; follow ``next_after`` for the next page."""
    page = inventory.list_hosts(state.db, actor=actor, where=where, limit=limit, after=after)
    return {"hosts": [host_to_record(h) for h in page.hosts], "total": page.total, "next_after": page.next_after,
            "where": page.where}


@router.get("/v1/hosts/{host_id}", summary="One host")
def host(host_id: str, state: AppState = Depends(get_state),
         actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A host's facts, agents, labels and services."""
    return host_to_record(inventory.get_host(state.db, host_id, actor=actor))


@router.get("/v1/services", summary="List business services")
def services(tenant: str = "", state: AppState = Depends(get_state),
             actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every service with redundancy groups and dependencies."""
    return {"services": [service_to_record(s) for s in inventory.list_services(state.db, actor=actor, tenant=tenant)]}


@router.get("/v1/services/{service_id}", summary="One business service")
def service(service_id: str, state: AppState = Depends(get_state),
            actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A service with its redundancy groups and dependencies."""
    return service_to_record(inventory.get_service(state.db, service_id, actor=actor))


@router.get("/v1/tenants", summary="List tenants")
def tenants(state: AppState = Depends(get_state), actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every tenant."""
    return {"tenants": [{"id": t.id, "name": t.name} for t in inventory.list_tenants(state.db, actor=actor)]}
