"""Fleet resilience assessment and key-escrow import."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.adapters.api.problems import Body
from ringfence.adapters.reports.assessment import render_html, render_json, render_markdown
from ringfence.domain.access import Role
from ringfence.domain.assessment_model import RecoveryModel
from ringfence.errors import InputError
from ringfence.services import assessment
from ringfence.services.context import Actor

router = APIRouter(tags=["assessment"])


class AssessmentRequest(Body):
    """Which what-if scenarios to assess."""

    scenarios: list[str] = Field(default_factory=list, description="Selectors, e.g. agent.vendor=CrowdStrike")
    top: int = Field(default=0, ge=0, le=1000, description="Also rank the N single points whose failure hurts most.")
    formats: list[str] = Field(default_factory=lambda: ["json"], description="json, html and/or markdown")
    technicians_per_site: int = Field(default=2, ge=1, le=10_000)
    technicians: dict[str, int] = Field(default_factory=dict, description="Per-site technician counts")


@router.post("/v1/assessments", summary="What if everything matching a selector failed at once?")
def run(body: AssessmentRequest, state: AppState = Depends(get_state),
        actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Hosts and services down, concentration, SPOFs, recovery effort and ETA, recommendations."""
    bad = [f for f in body.formats if f not in ("json", "html", "markdown")]
    if bad:
        raise InputError.single("formats", f"has {bad[0]!r}", expected="json, html or markdown")
    if any(n < 1 for n in body.technicians.values()):
        raise InputError.single("technicians", "has a site with fewer than 1 technician", expected="≥ 1 per site")
    model = RecoveryModel(technicians_per_site=body.technicians_per_site, technicians=dict(body.technicians))
    results, ranked = assessment.run(state.db, body.scenarios, top_n=body.top, actor=actor, recovery=model)
    out: dict[str, Any] = json.loads(render_json(results, top=ranked))
    if "html" in body.formats:
        out["html"] = render_html(results, top=ranked, generated_at=state.clock())
    if "markdown" in body.formats:
        out["markdown"] = render_markdown(results, top=ranked)
    return out


@router.post("/v1/escrow", summary="Import key-escrow records (CSV: host_id,key_id,location,verified)",
             openapi_extra={"requestBody": {"content": {
                 "text/csv": {"schema": {"type": "string"}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
async def escrow(request: Request, state: AppState = Depends(get_state),
                 actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """All-or-nothing; the recovery keys themselves are never accepted."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    files: list[tuple[str, bytes]] = []
    reason = reason_of(request)
    if ctype == "multipart/form-data":
        form = await request.form(max_files=100)
        try:
            files = [(v.filename or "escrow.csv", await v.read()) for v in form.getlist("files")
                     if isinstance(v, UploadFile)]
            reason = reason or str(form.get("reason") or "")
        finally:
            await form.close()
    elif ctype == "text/csv":
        files = [("escrow.csv", await request.body())]
    else:
        raise InputError.single("content-type", f"is {ctype or '(none)'!r}", expected="text/csv or multipart/form-data")
    return await run_in_threadpool(assessment.import_escrow, state.db, files, actor=actor, clock=state.clock,
                                   reason=reason)
