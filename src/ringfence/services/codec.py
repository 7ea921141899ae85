"""JSON forms of rollout status and gate evidence, as stored in the database and shown by the API."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from ringfence.domain.gate import GateResult
from ringfence.domain.logrank import ledger_from_doc
from ringfence.domain.rollout import Reason, RolloutState, RolloutStatus, WaveState, WaveStatus

__all__ = ["gate_to_doc", "reason_to_doc", "status_from_doc", "status_to_doc"]


def _dt(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def status_to_doc(status: RolloutStatus) -> dict[str, Any]:
    """JSON form of a status."""
    out: dict[str, Any] = {}
    for f in fields(RolloutStatus):
        value = getattr(status, f.name)
        if f.name == "waves":
            value = [{"state": w.state.value, "opened_at": _dt(w.opened_at), "bake_started_at": _dt(w.bake_started_at),
                      "passed_at": _dt(w.passed_at), "approved_by": w.approved_by} for w in value]
        elif isinstance(value, datetime):
            value = _dt(value)
        elif isinstance(value, RolloutState):
            value = value.value
        out[f.name] = value
    return out


def status_from_doc(doc: dict[str, Any]) -> RolloutStatus:
    """Status from its JSON form."""
    waves = tuple(WaveStatus(state=WaveState(w["state"]), opened_at=_parse_dt(w.get("opened_at")),
                             bake_started_at=_parse_dt(w.get("bake_started_at")),
                             passed_at=_parse_dt(w.get("passed_at")), approved_by=w.get("approved_by", ""))
                  for w in doc.get("waves", []))
    return RolloutStatus(
        state=RolloutState(doc["state"]), wave=int(doc.get("wave", 0)), waves=waves,
        started_at=_parse_dt(doc.get("started_at")), started_by=doc.get("started_by", ""),
        paused_from=RolloutState(doc["paused_from"]) if doc.get("paused_from") else None,
        halted_at=_parse_dt(doc.get("halted_at")), halt_reason=doc.get("halt_reason", ""),
        finished_at=_parse_dt(doc.get("finished_at")), last_tick_at=_parse_dt(doc.get("last_tick_at")),
        rate_anchor_at=_parse_dt(doc.get("rate_anchor_at")), rate_anchor_exposed=int(doc.get("rate_anchor_exposed", 0)),
        message=doc.get("message", ""),
        # Gate v2's evidence and the HOLD deadline persist with the status, so a restart resumes them.
        gate_ledger=ledger_from_doc(doc.get("gate_ledger")), gate_as_of=_parse_dt(doc.get("gate_as_of")),
        bake_deadline_at=_parse_dt(doc.get("bake_deadline_at")),
    )


def reason_to_doc(reason: Reason) -> dict[str, Any]:
    """JSON form of a reason."""
    return {"code": reason.code, "message": reason.message, "numbers": dict(reason.numbers)}


def gate_to_doc(gate: GateResult | None) -> dict[str, Any]:
    """JSON form of the gate's evidence (every stream that is not plainly fine comes first)."""
    if gate is None:
        return {}
    streams = []
    for ev in gate.streams:
        c = ev.counts
        streams.append({
            "signal": c.signal.value, "stratum": c.stratum, "verdict": ev.verdict.value,
            "treated_hosts": c.treated_hosts, "treated_failed": c.treated_failed,
            "control_hosts": c.control_hosts, "control_failed": c.control_failed,
            "treated_host_hours": round(c.treated_host_hours, 3), "control_host_hours": round(c.control_host_hours, 3),
            "e_value": _finite(getattr(ev, "e_value", None)), "threshold": _finite(getattr(ev, "threshold", None)),
            "reason": ev.reason,
        })
    return {"verdict": gate.verdict.value, "reason": gate.reason, "streams": streams[:200]}


def _finite(value: Any) -> float | str | None:
    if value is None:
        return None
    number = float(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return number
