"""Tenant policies: the rules live in :mod:`ringfence.domain.policies`; this name is kept for callers."""

from __future__ import annotations

from ringfence.domain.policies import HOLD_DELAYED, HOLD_HELD, TenantPolicies, TenantPolicy, policy_hold

__all__ = ["HOLD_DELAYED", "HOLD_HELD", "TenantPolicies", "TenantPolicy", "policy_hold"]
