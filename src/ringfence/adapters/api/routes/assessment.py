"""Fleet resilience assessment and key-escrow import."""

from __future__ import annotations

import contextlib
import json
import tempfile
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ringfence.adapters.api.deps import AppState, get_state, reason_of, require
from ringfence.adapters.api.problems import Body
from ringfence.adapters.reports.assessment import render_html, render_json, render_markdown
from ringfence.domain.access import Role
from ringfence.domain.assessment_model import RecoveryModel
from ringfence.errors import InputError, shown
from ringfence.services import assessment
from ringfence.services.context import Actor

router = APIRouter(tags=["assessment"])

ReportFormat = Literal["json", "html", "markdown"]


class AssessmentRequest(Body):
    """Which what-ifs to assess: each a selector of hosts that fail at once."""

    what_ifs: list[str] | None = Field(default=None, description="Selectors, e.g. agent.vendor=CrowdStrike")
    scenarios: list[str] | None = Field(default=None, json_schema_extra={"deprecated": True},
                                        description="Deprecated: the former name of what_ifs (docs/api.md)")
    top: int = Field(default=0, ge=0, le=1000, description="Also rank the N single points whose failure hurts most.")
    formats: list[ReportFormat] = Field(default_factory=lambda: list[ReportFormat](["json"]),
                                        description="json, html and/or markdown")
    technicians_per_site: int = Field(default=2, ge=1, le=10_000)
    technicians: dict[str, Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=dict, description="Per-site technician counts (each 1 to 10,000)")

    # Rules across fields, stated in the document (issue 14, item 10): what_ifs and its deprecated name are
    # never given together, and at least one what-if or top ≥ 1 is asked for.
    model_config = ConfigDict(**Body.model_config, json_schema_extra={
        "not": {"required": ["what_ifs", "scenarios"]},
        "anyOf": [{"required": ["what_ifs"], "properties": {"what_ifs": {"type": "array", "minItems": 1}}},
                  {"required": ["scenarios"], "properties": {"scenarios": {"type": "array", "minItems": 1}}},
                  {"required": ["top"], "properties": {"top": {"minimum": 1}}}]})


@router.post("/v1/assessments", summary="What if everything matching a selector failed at once?")
def run(body: AssessmentRequest, state: AppState = Depends(get_state),
        actor: Actor = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Hosts and services down, concentration, SPOFs, recovery effort and ETA, recommendations."""
    if body.what_ifs is not None and body.scenarios is not None:
        raise InputError.single("what_ifs", "is given together with its deprecated name scenarios",
                                expected="what_ifs alone")
    field, what_ifs = ("scenarios", body.scenarios) if body.scenarios is not None else ("what_ifs", body.what_ifs or [])
    model = RecoveryModel(technicians_per_site=body.technicians_per_site, technicians=dict(body.technicians))
    results, ranked = assessment.run(state.db, what_ifs, top_n=body.top, actor=actor, recovery=model, field=field)
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
    reason = reason_of(request)
    # Read where they are spooled (the form parser's parts, or the body spooled here), row by row.
    async with contextlib.AsyncExitStack() as stack:
        files: list[tuple[str, bytes | IO[bytes]]] = []
        if ctype == "multipart/form-data":
            form = await request.form(max_files=100)
            stack.push_async_callback(form.close)
            for v in form.getlist("files"):
                if isinstance(v, UploadFile):
                    await v.seek(0)
                    files.append((v.filename or "escrow.csv", v.file))
            reason = reason or str(form.get("reason") or "")
        elif ctype == "text/csv":
            body = stack.enter_context(  # the stack closes it when the import is done
                tempfile.SpooledTemporaryFile(max_size=1024 * 1024, prefix="ringfence-escrow-"))  # noqa: SIM115
            async for chunk in request.stream():
                body.write(chunk)
            body.seek(0)
            files.append(("escrow.csv", body))
        else:
            raise InputError.single("content-type", f"is {shown(ctype or '(none)')}",
                                    expected="text/csv or multipart/form-data")
        return await run_in_threadpool(assessment.import_escrow, state.db, files, actor=actor, clock=state.clock,
                                       reason=reason)
