"""Who is acting, and the clock: passed into every use case."""

from __future__ import annotations

from dataclasses import dataclass

from ringfence.clock import Clock, system_clock
from ringfence.domain.access import Role
from ringfence.errors import PermissionDeniedError, shown

__all__ = ["Actor", "Clock", "system_clock"]

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
                                        f"{shown(self.name)} has {self.role.value}")
