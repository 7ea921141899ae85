"""Service disruption budgets: scenarios, reasons and the never-below-min_healthy property."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.budgets import BudgetLedger, GroupBudget, budgets_from_services
from ringfence.domain.model import HostId, RedundancyGroup, Service, ServiceId, TenantId
from ringfence.errors import ConflictError, InputError


def group(service: str, name: str, members: str, min_healthy: int) -> GroupBudget:
    return GroupBudget(service, name, frozenset(members.split()), min_healthy)


@dataclass(frozen=True)
class Case:
    name: str
    budgets: tuple[GroupBudget, ...]
    candidates: tuple[str, ...]
    limit: int
    selected: list[str]
    exposed: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    headroom: dict[tuple[str, str], int] = field(default_factory=dict)


CASES = [
    Case("group of 3 with min_healthy 2: at most 1 exposed",
         (group("web", "fra", "a b c", 2),), ("a", "b", "c"), 10, ["a"], headroom={("web", "fra"): 0}),
    Case("a host in two groups is limited by the tighter one",
         (group("web", "fra", "a b c d", 1), group("db", "fra", "a x", 1)), ("x", "a", "b", "c", "d"), 10,
         ["x", "b", "c", "d"], headroom={("web", "fra"): 0, ("db", "fra"): 0}),
    Case("min_healthy == n: nothing exposable",
         (group("payments", "db", "a b", 2),), ("a", "b"), 10, [], headroom={("payments", "db"): 0}),
    Case("hosts outside any group are unlimited",
         (group("web", "fra", "a b", 1),), ("p", "q", "a", "b", "r"), 10, ["p", "q", "a", "r"],
         headroom={("web", "fra"): 0}),
    Case("the limit stops selection, in candidate order",
         (), ("c", "b", "a"), 2, ["c", "b"]),
    Case("already exposed hosts use the budget and are not selected again",
         (group("web", "fra", "a b c d", 2),), ("a", "b", "c"), 10, ["b"], exposed=("a",),
         headroom={("web", "fra"): 0}),
    Case("hosts already down count against the budget and cost nothing more to expose",
         (group("web", "fra", "a b c d", 2),), ("a", "b", "c", "d"), 10, ["a", "d"], down=("d",),
         headroom={("web", "fra"): 0}),
    Case("repeated candidates are taken once",
         (group("web", "fra", "a b c", 1),), ("a", "a", "b", "c"), 10, ["a", "b"], headroom={("web", "fra"): 0}),
    Case("a group already over budget blocks its members",
         (group("web", "fra", "a b c", 2),), ("c", "z"), 10, ["z"], exposed=("a", "b"), headroom={("web", "fra"): -1}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenarios(case: Case) -> None:
    ledger = BudgetLedger(case.budgets, case.exposed, down=case.down)
    assert ledger.select(case.candidates, case.limit) == case.selected
    assert ledger.headroom() == case.headroom
    assert ledger.exposed == frozenset(case.exposed) | frozenset(case.selected)


REASONS = [
    ("names the full group", (group("payments", "fra-2", "a b", 1),), ("a",), "b",
     False, "payments/fra-2: 1 of 2 exposed, min_healthy 1"),
    ("says when min_healthy leaves no member", (group("payments", "db", "a b", 2),), (), "a",
     False, "payments/db: 0 of 2 exposed, min_healthy 2 (every member must stay healthy: no member may be exposed)"),
    ("says when the group is smaller than min_healthy", (group("payments", "db", "a b", 3),), (), "a",
     False, "payments/db: 0 of 2 exposed, min_healthy 3 (only 2 members: no member may be exposed)"),
    ("names every blocking group", (group("web", "x", "a b", 1), group("db", "y", "a c", 1)), ("b", "c"), "a",
     False, "db/y: 1 of 2 exposed, min_healthy 1; web/x: 1 of 2 exposed, min_healthy 1"),
    ("allowed names the tightest group", (group("web", "x", "a b c d", 1), group("db", "y", "a c", 1)), (), "a",
     True, "within budget: db/y: 0 of 2 exposed, min_healthy 1"),
    ("no group", (group("web", "x", "a b", 1),), (), "z", True, "z is in no redundancy group"),
    ("already exposed", (group("web", "x", "a b", 1),), ("a",), "a", True, "a is already exposed"),
    ("over budget says by how much", (group("web", "x", "a b c", 2),), ("a", "b"), "c",
     False, "web/x: 2 of 3 exposed, min_healthy 2 (over budget by 1)"),
]


@pytest.mark.parametrize(("name", "budgets", "exposed", "host", "ok", "reason"), REASONS, ids=[r[0] for r in REASONS])
def test_reasons(name, budgets, exposed, host, ok, reason) -> None:
    assert BudgetLedger(budgets, exposed).can_expose(host) == (ok, reason)


def test_reason_mentions_hosts_down() -> None:
    ledger = BudgetLedger([group("web", "x", "a b c", 1)], ["a"], down=["b"])
    assert ledger.can_expose("c") == (False, "web/x: 1 of 3 exposed, 1 down, min_healthy 1")
    assert ledger.can_expose("b")[0]  # exposing a host already counted as down changes nothing
    ledger.expose("b")
    assert ledger.headroom() == {("web", "x"): 0}


def test_expose_refuses_with_the_reason() -> None:
    ledger = BudgetLedger([group("payments", "fra-2", "a b", 1)], [])
    ledger.expose("a")
    ledger.expose("a")  # idempotent
    with pytest.raises(ConflictError, match=r"cannot expose b: payments/fra-2: 1 of 2 exposed, min_healthy 1"):
        ledger.expose("b")
    assert ledger.exposed == {"a"}


def test_allowance() -> None:
    assert group("s", "g", "a b c", 2).allowance == 1
    assert group("s", "g", "a b", 5).allowance == 0
    assert group("s", "g", "a b", 0).allowance == 2


def test_budgets_from_services() -> None:
    pay = Service(ServiceId("payments"), "Payments", TenantId("acme"), redundancy_groups=(
        RedundancyGroup("fra-2", 1, hosts=(HostId("h1"), HostId("h2"))),
        RedundancyGroup("ams-1", 2, selector="site=ams-1"),
    ))
    web = Service(ServiceId("web"), "Web", TenantId("acme"))
    sites = {"site=ams-1": ["h3", "h4", "h5"]}

    def members_of(g: RedundancyGroup) -> list[str]:
        return list(g.hosts) if g.hosts else sites[g.selector]

    assert budgets_from_services([pay, web], members_of) == [
        GroupBudget("payments", "fra-2", frozenset({"h1", "h2"}), 1),
        GroupBudget("payments", "ams-1", frozenset({"h3", "h4", "h5"}), 2),
    ]


def test_invalid_configuration_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        GroupBudget("s", "g", frozenset({"a"}), -1)
    assert err.value.issues[0].field == "min_healthy"
    twice = Service(ServiceId("s"), "S", TenantId("t"), redundancy_groups=(RedundancyGroup("g", 1), RedundancyGroup("g", 2)))
    with pytest.raises(InputError) as err:
        budgets_from_services([twice], lambda g: ())
    assert err.value.issues[0].field == "redundancy_groups"
    with pytest.raises(InputError) as err:
        BudgetLedger([group("s", "g", "a", 0), group("s", "g", "b", 0)], [])
    assert err.value.issues[0].field == "budgets"
    with pytest.raises(InputError) as err:
        BudgetLedger([], []).select(["a"], -1)
    assert err.value.issues[0].field == "limit"


# --------------------------------------------------------------------------- property

HOSTS = [f"h{i}" for i in range(16)]


@st.composite
def budgets_strategy(draw: st.DrawFn) -> list[GroupBudget]:
    out = []
    for k in range(draw(st.integers(0, 6))):
        members = frozenset(draw(st.sets(st.sampled_from(HOSTS), min_size=1, max_size=8)))
        out.append(GroupBudget(f"svc{k % 3}", f"g{k}", members, draw(st.integers(0, len(members) + 1))))
    return out


operations = st.lists(
    st.one_of(
        st.tuples(st.just("select"), st.lists(st.sampled_from([*HOSTS, "outsider"]), max_size=12), st.integers(0, 6)),
        st.tuples(st.just("expose"), st.sampled_from([*HOSTS, "outsider"]), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(budgets=budgets_strategy(), ops=operations, down=st.sets(st.sampled_from(HOSTS), max_size=3))
def test_exposure_never_exceeds_any_allowance(budgets, ops, down) -> None:
    ledger = BudgetLedger(budgets, [], down=down)
    for op, arg, limit in ops:
        if op == "select":
            before = ledger.exposed
            chosen = ledger.select(arg, limit)
            assert len(chosen) <= limit
            assert len(set(chosen)) == len(chosen)
            assert not set(chosen) & before
            assert ledger.exposed == before | set(chosen)
        else:
            ok, reason = ledger.can_expose(arg)
            assert reason
            if ok:
                ledger.expose(arg)
            else:
                with pytest.raises(ConflictError):
                    ledger.expose(arg)
        for b in budgets:
            at_risk = len((ledger.exposed | down) & b.members)
            # Exposure never pushes a group past its allowance (down hosts alone may already have).
            assert len((ledger.exposed - down) & b.members) == 0 or at_risk <= b.allowance
            assert ledger.headroom()[b.key] == b.allowance - at_risk
    assert "outsider" in ledger.exposed or not any(
        op == "expose" and arg == "outsider" for op, arg, _ in ops
    )


@settings(max_examples=200, deadline=None)
@given(budgets=budgets_strategy(), candidates=st.lists(st.sampled_from(HOSTS), max_size=20), limit=st.integers(0, 20))
def test_select_is_greedy_and_maximal(budgets, candidates, limit) -> None:
    ledger = BudgetLedger(budgets, [])
    chosen = ledger.select(candidates, limit)
    for b in budgets:
        assert len(set(chosen) & b.members) <= b.allowance
    if len(chosen) < limit:
        # Every candidate left out is blocked by some budget now.
        for host in set(candidates) - set(chosen):
            assert not ledger.can_expose(host)[0]
