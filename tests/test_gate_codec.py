"""Gate v2's evidence and the HOLD deadline survive the status's JSON form (kill -9, restart)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ringfence.domain.gate import GateConfig
from ringfence.domain.logrank import RiskTick, Signal, accumulate
from ringfence.domain.rollout import RolloutState, RolloutStatus
from ringfence.services.codec import status_from_doc, status_to_doc


def test_the_ledger_and_the_hold_deadline_round_trip() -> None:
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    ledger, _ = accumulate((), [RiskTick(Signal.SILENT, "SurfaceLaptop5", 2, 1, 3, 170, 0.5, 3)], GateConfig())
    status = RolloutStatus(state=RolloutState.HOLD, gate_ledger=ledger, gate_as_of=at,
                           bake_deadline_at=at + timedelta(hours=2), message="hold: …")
    again = status_from_doc(json.loads(json.dumps(status_to_doc(status))))
    assert again == status
    assert status_from_doc(json.loads(json.dumps(status_to_doc(RolloutStatus())))) == RolloutStatus()
