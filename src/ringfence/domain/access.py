"""Roles and what they allow.

Roles are ordered; each includes the rights of those below it::

    viewer < operator < approver < admin

* technician — below viewer and outside the order: sees and changes only the recovery work orders
  assigned to it (and reveals their keys); nothing else;
* viewer — read everything;
* operator — change state (import inventory, start and halt rollouts);
* approver — in addition approve what someone else started (four-eyes);
* admin — in addition manage tokens and verify the audit log.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    """An operator token's role."""

    TECHNICIAN = "technician"
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < approver < admin."""
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        """True when this role includes ``required``."""
        return self.rank >= required.rank


_RANK = {Role.TECHNICIAN: -1, Role.VIEWER: 0, Role.OPERATOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}
