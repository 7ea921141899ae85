"""The clock type and the wall clock, shared by the server, the simulator and the endpoint agent.

Use cases take a :data:`Clock` (tests and the simulator pass their own); only entry points pass
:func:`system_clock`.  This module sits outside ``services`` so the agent can use it without
importing anything server-side.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

#: A clock is any function returning an aware UTC datetime; tests and the simulator pass their own.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, in UTC (used only at entry points)."""
    return datetime.now(UTC)
