"""The selector language: parsing, errors, and Python/SQL agreement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as store
from ringfence.domain.model import DiskEncryption, Host, HostId, InstalledAgent, OsFamily, Platform, ServiceId, TenantId
from ringfence.domain.selector import compile_predicate, parse
from ringfence.errors import InputError

CS = InstalledAgent("CrowdStrike", "Falcon Sensor", "7.16.18605", kernel_mode=True, boot_start=True)
DEF = InstalledAgent("Microsoft", "Defender for Endpoint", "4.18.24090", kernel_mode=True, boot_start=False)
VPN = InstalledAgent("Zscaler", "Client Connector", "4.4", kernel_mode=False)

HOSTS = [
    Host(id=HostId("w1"), hostname="ams1-ws-001", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS, os_build="22631",
         site="ams-1", country="NL", tier=3, agents=(CS,), labels={"canary": "", "role": "workstation"},
         encryption=DiskEncryption.BITLOCKER, recovery_key_escrowed=True),
    Host(id=HostId("w2"), hostname="fra2-sql-004", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS,
         os_build="20348", site="fra-2", country="DE", tier=0, agents=(DEF, VPN), labels={"role": "server"},
         services=(ServiceId("payments"),), platform=Platform.CLOUD, cloud_provider="azure", cloud_region="westeurope"),
    Host(id=HostId("l1"), hostname="nyc1-web-010", tenant=TenantId("globex"), os_family=OsFamily.LINUX,
         os_build="5.15.0-122", site="nyc-1", country="US", tier=1, agents=(VPN, CS),
         platform=Platform.CLOUD, cloud_provider="aws", cloud_region="us-east-1", labels={"role": "server"}),
    Host(id=HostId("m1"), hostname="lon1-mac_01", tenant=TenantId("globex"), os_family=OsFamily.MACOS, tier=3,
         agents=(), labels={}),
]

CASES = [
    ("os_family=windows", {"w1", "w2"}),
    ("OS_FAMILY=WINDOWS", {"w1", "w2"}),
    ("os_family=windows and agent.vendor=CrowdStrike", {"w1"}),
    ("agent.vendor=crowdstrike", {"w1", "l1"}),
    # Agent conditions joined by `and` hold for the same agent: l1's Zscaler is not kernel-mode.
    ("agent.kernel_mode=true and agent.vendor=Zscaler", set()),
    ("agent.kernel_mode=true and agent.vendor=CrowdStrike", {"w1", "l1"}),
    ("cloud.region=eastus", set()),
    ("cloud.region=us-east-1", {"l1"}),
    ("tier<=1", {"w2", "l1"}),
    ("tier>1 or site=fra-2", {"w1", "w2", "m1"}),
    ("not label=canary", {"w2", "l1", "m1"}),
    ("label=canary", {"w1"}),
    ("labels.role=server", {"w2", "l1"}),
    ("labels.role!=server", {"w1"}),
    ("service=payments", {"w2"}),
    ("service!=payments", {"w1", "l1", "m1"}),
    ("hostname~'*-ws-*'", {"w1"}),
    ("hostname~'lon1-mac_0?'", {"m1"}),
    ("hostname~'lon1-mac%01'", set()),
    ("country in (DE, us)", {"w2", "l1"}),
    ("encryption=bitlocker and recovery_key_escrowed=yes", {"w1"}),
    ("(os_family=linux or os_family=macos) and tenant=globex", {"l1", "m1"}),
    ("not (agent.vendor=CrowdStrike or agent.vendor=Microsoft)", {"m1"}),
    ('hostname="ams1-ws-001"', {"w1"}),
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0] for c in CASES])
def test_python_predicate(expr: str, expected: set[str]) -> None:
    """Each expression selects exactly the expected hosts."""
    pred = compile_predicate(expr)
    assert {h.id for h in HOSTS if pred(h)} == expected


def _seed(db: Database, hosts: list[Host]) -> None:
    from ringfence.domain.model import Tenant

    now = datetime(2026, 11, 24, tzinfo=UTC)
    with db.transaction() as conn:
        store.upsert_tenants(conn, [Tenant(TenantId(t), t) for t in {h.tenant for h in hosts}], now)
        store.upsert_hosts(conn, hosts, now)


def test_sql_agrees_with_python(db: Database) -> None:
    """The SQL translation selects the same hosts as the Python predicate, for every case."""
    _seed(db, HOSTS)
    for expr, expected in CASES:
        with db.transaction() as conn:
            got = {h.id for h in store.list_hosts(conn, parse(expr), limit=100)}
        assert got == expected, expr


BAD = [
    ("", "selector"),
    ("color=red", "unknown field"),
    ("tier<x", "compares numbers"),
    ("hostname<a", "ordering operator"),
    ("os_family=", "ends too early"),
    ("os_family=windows and", "ends too early"),
    ("(os_family=windows", "missing ')'"),
    ("usb_boot=maybe", "true or false"),
    ("os_family windows", "expected an operator"),
    ("tier in 1,2", "needs a list"),
]


@pytest.mark.parametrize(("expr", "message"), BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_selectors_name_the_problem(expr: str, message: str) -> None:
    """Every malformed selector raises InputError naming the field 'selector' and what is wrong."""
    with pytest.raises(InputError) as info:
        parse(expr)
    assert info.value.issues[0].field == "selector"
    assert message in str(info.value)


_fields = st.sampled_from(["os_family=windows", "os_family=linux", "tier<=1", "tier=3", "label=canary",
                           "agent.vendor=CrowdStrike", "agent.kernel_mode=true", "agent.vendor=Zscaler",
                           "labels.role=server", "service=payments", "hostname~'*web*'", "country in (DE,NL)",
                           "cloud.provider=aws", "encryption=bitlocker"])


@st.composite
def _exprs(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 2 or draw(st.booleans()):
        return draw(_fields)
    op = draw(st.sampled_from(["and", "or"]))
    left, right = draw(_exprs(depth + 1)), draw(_exprs(depth + 1))
    expr = f"({left} {op} {right})"
    return f"not {expr}" if draw(st.booleans()) else expr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expr=_exprs())
def test_sql_and_python_agree_on_random_expressions(db: Database, expr: str) -> None:
    """Property: for any combination of conditions, SQL and Python select the same hosts."""
    if not getattr(db, "_seeded", False):
        _seed(db, HOSTS)
        db._seeded = True  # type: ignore[attr-defined]
    pred = compile_predicate(expr)
    with db.transaction() as conn:
        got = {h.id for h in store.list_hosts(conn, parse(expr), limit=100)}
    assert got == {h.id for h in HOSTS if pred(h)}
