"""Agent enrolment: enrolment tokens (operators), ``POST /v1/enrol`` and facts (agents), credential revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ringfence.adapters.api.deps import AppState, get_state, reason_of, reporting_host, require
from ringfence.adapters.api.problems import MAX_ID, MAX_REASON, Body
from ringfence.adapters.inventory.records import ID_PATTERN
from ringfence.domain.access import Role
from ringfence.errors import AuthenticationError
from ringfence.services import enrolment
from ringfence.services.channel import parse_duration
from ringfence.services.context import Actor

__all__ = ["router"]

router = APIRouter(tags=["enrolment"])
#: A host id in the path: at most the hosts.id column's 200 characters (the same on SQLite and PostgreSQL).
_HOST_ID = PathParam(min_length=1, max_length=200, description="The host's id (osquery system_info.uuid).")
#: What services/enrolment takes as a validity, between 1 minute and 365 days: 1-365d, 1-999h or 1-9999m.
_EXPIRES = r"^(([1-9]|[1-9][0-9]|[12][0-9]{2}|3[0-5][0-9]|36[0-5])d|[1-9][0-9]{0,2}h|[1-9][0-9]{0,3}m)$"
#: An enrolment token id: an INTEGER column, so at most 2**31 - 1 on both databases.
_TOKEN_ID = PathParam(ge=1, le=MAX_ID, description="The enrolment token's id.")
_bearer = HTTPBearer(auto_error=False, description="An enrolment token (rfe_…) or a host credential (rfh_…).")


class TokenCreate(Body):
    """A new enrolment token."""

    tenant: str = Field(min_length=1, max_length=200, pattern=ID_PATTERN, description="Tenant the enrolled hosts belong to.")
    uses: int = Field(default=1, ge=1, le=100_000, description="How many hosts may enrol with it.")
    expires: str = Field(default="24h", max_length=16, pattern=_EXPIRES,
                         description="Validity: 30m, 24h, 7d … (1 minute to 365 days)")
    reason: str = Field(default="", max_length=MAX_REASON, description="Why (goes to the audit log).")


class ReenrolmentTokenCreate(Body):
    """A re-enrolment token for one host."""

    expires: str = Field(default="24h", max_length=16, pattern=_EXPIRES,
                         description="Validity: 30m, 24h, 7d … (1 minute to 365 days)")
    reason: str = Field(default="", max_length=MAX_REASON, description="Why (goes to the audit log).")


class Enrolment(BaseModel):
    """What an agent sends to enrol or to refresh its facts.

    Not a :class:`Body`: the host record is checked field by field (NUL characters, the column lengths)
    by the inventory record parser, which names the field inside it (``host.hostname``), all before the
    enrolment token is used.
    """

    host: dict[str, Any] = Field(description="An inventory host record (id, hostname, os_family, … as accepted by "
                                             "the JSON inventory import).")
    credential: str = Field(default="", max_length=104, pattern=r"^(rfh_[A-Za-z0-9_-]{43,100})?$",
                            description="Enrolment only: the host credential the agent generated and kept before "
                                        "asking (rfh_ and 43–100 URL-safe characters). Asking again with the same "
                                        "one after a lost answer returns the same enrolment instead of 409. Empty: "
                                        "the server makes one.")


class Reason(Body):
    """Why an action was taken."""

    reason: str = Field(default="", max_length=MAX_REASON, description="Why (goes to the audit log).")


def _credential(creds: HTTPAuthorizationCredentials | None, what: str) -> str:
    if creds is None:
        raise AuthenticationError(f"needs 'Authorization: Bearer {what}'")
    return creds.credentials


@router.post("/v1/enrolment-tokens", status_code=201, summary="Create an enrolment token; shown in this response only")
def token_create(body: TokenCreate, request: Request, state: AppState = Depends(get_state),
                 actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Agents enrol with it (``POST /v1/enrol``); only its hash is stored."""
    seconds = parse_duration(body.expires, "expires")
    plaintext, record = enrolment.create_enrolment_token(
        state.db, tenant=body.tenant, uses=body.uses, expires_in=timedelta(seconds=seconds), actor=actor,
        clock=state.clock, reason=reason_of(request, body.reason))
    return {"token": plaintext, **record.as_dict()}


@router.get("/v1/enrolment-tokens", summary="List enrolment tokens (never the tokens)")
def token_list(tenant: str = "", state: AppState = Depends(get_state),
               actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Every enrolment token with its uses left and expiry."""
    return {"tokens": [t.as_dict() for t in enrolment.list_enrolment_tokens(state.db, actor=actor, tenant=tenant)]}


@router.post("/v1/enrolment-tokens/{token_id}/revoke", summary="Revoke an enrolment token")
def token_revoke(request: Request, token_id: int = _TOKEN_ID, body: Reason | None = None,
                 state: AppState = Depends(get_state),
                 actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """No agent can enrol with it any more (hosts it enrolled keep their credentials)."""
    enrolment.revoke_enrolment_token(state.db, token_id, actor=actor, clock=state.clock,
                                     reason=reason_of(request, body.reason if body else ""))
    return {"id": token_id, "revoked": True}


@router.post("/v1/hosts/{host_id}/reenrolment-token", status_code=201,
             summary="Issue a one-use re-enrolment token bound to this host; shown in this response only")
def reenrolment_token_create(request: Request, host_id: str = _HOST_ID, body: ReenrolmentTokenCreate | None = None,
                             state: AppState = Depends(get_state),
                             actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """The only enrolment token that can re-enrol a host which still holds an active credential."""
    body = body or ReenrolmentTokenCreate()
    seconds = parse_duration(body.expires, "expires")
    plaintext, record = enrolment.create_reenrolment_token(
        state.db, host_id, expires_in=timedelta(seconds=seconds), actor=actor, clock=state.clock,
        reason=reason_of(request, body.reason))
    return {"token": plaintext, **record.as_dict()}


@router.post("/v1/enrol", status_code=201, summary="Enrol a host with an enrolment token (agent)",
             responses={409: {"description": "The host holds an active credential: re-enrol it with that "
                                             "credential or a re-enrolment token bound to it"}})
def enrol(body: Enrolment, request: Request, state: AppState = Depends(get_state),
          creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """Uses the token once, upserts the host under the token's tenant, returns its credential (rfh_…) once.

    A host that holds an active credential is re-enrolled only with ``Bearer rfh_…`` (its current
    credential, which is rotated) or a re-enrolment token bound to it; otherwise 409.
    """
    token = _credential(creds, "rfe_… (an enrolment token) or rfh_… (the host's current credential)")
    return enrolment.enrol(state.db, token, body.host, clock=state.clock,
                           source=request.client.host if request.client else "", proposed=body.credential)


@router.post("/v1/agent/facts", summary="Refresh the calling host's inventory facts (host credential)")
def facts(body: Enrolment, state: AppState = Depends(get_state),
          creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """Replaces the host's facts; tenant, services, tier and operator labels are kept."""
    host = reporting_host(state, _credential(creds, "rfh_… (a host credential) or rft_… (a host token)"))
    return enrolment.refresh_facts(state.db, host, body.host, clock=state.clock)


@router.post("/v1/hosts/{host_id}/credentials/revoke", summary="Revoke a host's credential (effective at once)")
def credential_revoke(request: Request, host_id: str = _HOST_ID, body: Reason | None = None,
                      state: AppState = Depends(get_state),
                      actor: Actor = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Every server process refuses the credential from the next request on."""
    return enrolment.revoke_credential(state.db, host_id, actor=actor, clock=state.clock,
                                       reason=reason_of(request, body.reason if body else ""))
