"""A clock that runs faster than real time, for the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["FastClock"]


class FastClock:
    """Demo time: starts at ``start`` (default: now) and advances ``speed`` seconds per real second.

    It is a :data:`~ringfence.services.context.Clock` (call it for an aware UTC datetime), so the
    app factory, the reconciler and the services run on it unchanged.
    """

    def __init__(self, speed: float = 60.0, *, start: datetime | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 0 < speed <= 3600:
            from ringfence.errors import InputError  # noqa: PLC0415 - only on bad input

            raise InputError.single("demo_speed", f"is {speed}", expected="a speed-up between 0 and 3600 (e.g. 60)")
        self.speed = speed
        self._mono = monotonic
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._mono0 = monotonic()

    @property
    def started_at(self) -> datetime:
        """Demo time when the clock was made."""
        return self._start

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=(self._mono() - self._mono0) * self.speed)

    def real_seconds(self, demo: timedelta) -> float:
        """How many real seconds a span of demo time takes."""
        return demo.total_seconds() / self.speed
