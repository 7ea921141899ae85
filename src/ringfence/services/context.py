"""Who is acting, and the clock: passed into every use case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ringfence.domain.access import Role
from ringfence.errors import PermissionDeniedError

__all__ = ["Actor", "Clock", "system_clock"]

#: A clock is any function returning an aware UTC datetime; tests and the simulator pass their own.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, in UTC (used only at entry points)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller: a token's name and role, and where the request came from."""

    name: str
    role: Role
    source: str = ""

    def require(self, role: Role, action: str) -> None:
        """Raise :class:`PermissionDeniedError` unless this actor's role includes ``role``."""
        if not self.role.allows(role):
            raise PermissionDeniedError(f"{action} needs role {role.value} or higher; "
                                        f"{self.name!r} has {self.role.value}")
