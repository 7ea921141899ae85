"""Assessment reports: HTML (self-contained, escaped, every section), Markdown tables and JSON keys."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources

import pytest

from ringfence.adapters import reports
from ringfence.adapters.reports import SECTION_TITLES, render_html, render_json, render_markdown
from ringfence.adapters.reports.assessment import (
    DOWN_HOSTS_LIMIT,
    TOP_TITLE,
    bar_chart,
    step_chart,
    substitutability,
)
from ringfence.domain.assessment_model import (
    Assessment,
    ComponentExposure,
    Concentration,
    Recommendation,
    RecoveryResult,
    RtoBreach,
    ServiceImpact,
    Spof,
    TopEntry,
)

EVIL = "<script>alert(1)</script>"


def make_assessment(*, scenario: str = 'edr.vendor == "CrowdStrike"', down_hosts: int = 3) -> Assessment:
    """A small hand-built assessment: 1,234 of 5,000 hosts down, one service named with a script tag."""
    down = (
        ServiceImpact(
            "svc-pay", "Payments", "retail", 0, "down", "direct", failed_groups=("pay-web",), regulatory_function="payments"
        ),
        ServiceImpact(
            "svc-ledger", EVIL, "retail", 1, "down", "transitive", via=("svc-ledger", "svc-pay"), regulatory_function="payments"
        ),
        ServiceImpact("svc-hr", "HR portal", "corp", 3, "down", "direct", failed_groups=("hr",)),
    )
    degraded = (ServiceImpact("svc-dns", "DNS", "corp", 0, "degraded", "direct", detail="2 of 3 replicas left"),)
    hhi = {
        "edr": Concentration("edr", 6_800.0, 1.47, "high", (("CrowdStrike", 0.8), ("Defender", 0.2))),
        "os_build": Concentration(
            "os_build", 2_000.0, 5.0, "moderate", (("win-22H2", 0.35), ("rhel-9", 0.25), ("win-21H2", 0.2), ("ubuntu-22", 0.2))
        ),
        "cloud_region": Concentration(
            "cloud_region", 900.0, 11.1, "unconcentrated", tuple((f"region-{i}", 1 / 11) for i in range(11))
        ),
    }
    recovery = RecoveryResult(
        key_readiness=0.875,
        encrypted_hosts=800,
        hands_on_share=0.62,
        effort_hours_by_class={"pc": 53.3, "server": 40.0, "cloud_vm": 12.75},
        recovery_hours=36.5,
        eta_hours_by_site={"FRA1": 36.5, "LON2": 20.25, "NYC3": math.inf},
        burn_down_by_site={
            "FRA1": ((0.0, 700), (12.0, 400), (24.0, 120), (36.5, 0)),
            "LON2": ((0.0, 500), (10.0, 200), (20.25, 0)),
            "NYC3": ((0.0, 34), (5.0, 34)),
        },
        rto_breaches=(
            RtoBreach("svc-pay", 0, 9.5, 240, 480, "mtd"),
            RtoBreach("svc-ledger", 1, 6.0, 120, None, "rto"),
        ),
        first=("svc-keyvault", "svc-ad"),
    )
    return Assessment(
        scenario=scenario,
        hosts_total=5_000,
        hosts_down=1_234,
        hosts_down_share=1_234 / 5_000,
        blast_radius={
            "tenant": {"retail": 1_000, "corp": 234},
            "site": {"FRA1": 700, "LON2": 500, "NYC3": 34},
            "os": {"windows": 1_234},
            "tier": {"0": 100, "1": 300, "3": 834},
        },
        down_hosts=(*(f"host-{i:05d}" for i in range(down_hosts)), EVIL),
        services_total=40,
        services_down=down,
        services_degraded=degraded,
        hhi=hhi,
        exposure=(
            ComponentExposure("CrowdStrike Falcon", True, True, 4_000, 0.8, 0.91),
            ComponentExposure("Acme BootGuard", False, True, 250, 0.05, 0.02),
        ),
        spofs=(Spof("svc-pay", 0, "vendor", "CrowdStrike", 4, "every replica of pay-web runs Falcon sensor 7.11"),),
        recovery=recovery,
        recommendations=(
            Recommendation(
                2,
                "Verify escrowed BitLocker keys",
                "100 encrypted hosts have no verified key",
                {"hosts": 100, "hours_saved": 8.5},
            ),
            Recommendation(
                1,
                "Run a second EDR on one payments replica",
                "removes the only SPOF on tier 0",
                {"services_protected": 2, "vendor": "Defender"},
            ),
        ),
        critical_functions=("payments",),
    )


TOP = (
    TopEntry(1, "vendor", "CrowdStrike", 'edr.vendor == "CrowdStrike"', 2, 3, 1_234),
    TopEntry(2, "cloud_region", "region-1", f"cloud.region == '{EVIL}'", 0, 1, 90),
)


@pytest.fixture(scope="module")
def html() -> str:
    return render_html([make_assessment()], generated_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC), top=TOP)


def test_template_ships_inside_the_package() -> None:
    files = resources.files("ringfence.adapters.reports") / "templates" / "assessment.html.j2"
    assert files.is_file()


def test_exported_names() -> None:
    assert sorted(reports.__all__) == ["SECTION_TITLES", "render_html", "render_json", "render_markdown"]


def test_html_is_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Fleet resilience assessment</title>" in html
    assert html.count("<svg") >= 6
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    for attr in re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"' >]*)""", html):
        assert attr.startswith(("#", "data:")), attr


def test_html_escapes_user_strings(html: str) -> None:
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # service name, host id, selector, SVG text
    assert "<svg" in html and "&lt;svg" not in html  # charts themselves are not escaped


def test_html_has_every_section_and_the_numbers(html: str) -> None:
    for heading in SECTION_TITLES.values():
        assert f">{heading}</h3>" in html, heading
    for heading in ("By service", "By tenant", "By site", "By OS", "By tier"):
        assert f"<h4>{heading}</h4>" in html
    assert f">{TOP_TITLE}</h2>" in html
    assert "Scenarios compared" not in html  # one scenario: no comparison table
    for number in (
        "1,234",
        "5,000",
        "24.7%",
        "36.5 h",
        "87.5%",
        "6,800",
        "1.5",
        "80.0%",
        "9.5 h",
        "never",
        'Generated <time datetime="2026-01-02T03:04:00+00:00">',
    ):
        assert number in html, number
    assert "hard to substitute" in html and "readily substitutable" in html and "substitutable with effort" in html
    assert html.count("<caption>") >= 10
    assert re.search(r'<svg [^>]*role="img" aria-label="[^"]+"', html)
    assert ">HIGH<" not in html and ">high</span>" in html  # band written out (CSS upper-cases it)
    assert 'download="down-hosts-s1.txt" href="data:text/plain;charset=utf-8,host-00000%0Ahost-00001' in html
    # recommendations ranked by rank, with their numbers
    assert html.index("Run a second EDR") < html.index("Verify escrowed BitLocker keys")
    assert "hours_saved</dt><dd>8.5</dd>" in html


def test_html_charts_separate_direct_and_transitive(html: str) -> None:
    assert "down, direct" in html and "down, transitive" in html
    assert "1 direct · 0 transitive · 1 degraded" in html  # tier 0: Payments (direct) and DNS (degraded)
    assert "1 direct · 1 transitive · 0 degraded" in html  # tenant retail: Payments and the ledger through it
    assert "Hosts still down per site over time" in html


def test_several_scenarios_get_a_comparison_and_unique_ids() -> None:
    out = render_html([make_assessment(), make_assessment(scenario="os.build == 'win-22H2'")])
    assert ">Scenarios compared</h2>" in out
    ids = re.findall(r'\bid="([^"]+)"', out)
    assert len(ids) == len(set(ids))
    assert "Generated" not in out  # no generated_at: deterministic output
    assert out == render_html([make_assessment(), make_assessment(scenario="os.build == 'win-22H2'")])


def test_down_host_list_is_capped() -> None:
    big = make_assessment(down_hosts=DOWN_HOSTS_LIMIT + 5)
    out = render_html([big])
    assert f"Only the first {DOWN_HOSTS_LIMIT:,} are listed" in out
    assert f"host-{DOWN_HOSTS_LIMIT - 1:05d}" in out and f"host-{DOWN_HOSTS_LIMIT:05d}" not in out
    doc = json.loads(render_json([big]))
    assert len(doc["assessments"][0]["down_hosts"]) == DOWN_HOSTS_LIMIT + 6


def test_markdown_has_the_sections_as_tables() -> None:
    md = render_markdown([make_assessment()], top=TOP)
    assert md.startswith("# Fleet resilience assessment\n")
    for heading in SECTION_TITLES.values():
        assert f"\n### {heading}\n" in md, heading
    assert f"\n## {TOP_TITLE}\n" in md
    assert "| Category | HHI | Effective number | Band | Largest supplier | Share |" in md
    assert "| edr | 6,800 | 1.5 | high | CrowdStrike | 80.0% |" in md
    assert "| FRA1 | 700 | 36.5 h |" in md and "| NYC3 | 34 | never |" in md
    assert "| Payments | 9.5 h |" not in md and "| Payments | 0 | 9.5 h | MTD 8.0 h | MTD |" in md
    assert "1. **Run a second EDR on one payments replica**" in md
    outside_code = re.sub(r"```text\n.*?\n```", "", md, flags=re.S)
    assert EVIL not in outside_code and "&lt;script&gt;" in outside_code  # host ids sit verbatim in a code block
    assert "<svg" not in md
    # pipes in user data do not break the table
    piped = render_markdown([replace(make_assessment(), scenario="a | b")])
    assert "## Scenario: a \\| b" in piped


def test_json_has_the_issue_keys_and_is_strict() -> None:
    text = render_json([make_assessment()], top=TOP)
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert isinstance(doc["assessments"], list) and len(doc["assessments"]) == 1
    a = doc["assessments"][0]
    for key in (
        "hosts_down",
        "hosts_down_share",
        "services_down",
        "services_degraded",
        "hhi",
        "spofs",
        "recovery_hours",
        "eta_hours_by_site",
        "rto_breaches",
        "recommendations",
    ):
        assert key in a, key
    assert a["hosts_down"] == 1_234
    assert a["eta_hours_by_site"]["NYC3"] is None  # never recovers: null, not Infinity
    assert a["hhi"]["edr"]["band"] == "high"
    assert doc["top"][0] == {
        "rank": 1,
        "kind": "vendor",
        "name": "CrowdStrike",
        "selector": 'edr.vendor == "CrowdStrike"',
        "critical_services_down": 2,
        "services_down": 3,
        "hosts_down": 1_234,
    }
    assert json.loads(render_json([]))["assessments"] == []


@pytest.mark.parametrize(
    ("band", "verdict"),
    [
        ("high", "hard to substitute"),
        ("moderate", "substitutable with effort"),
        ("unconcentrated", "readily substitutable"),
        ("weird", "not assessed"),
    ],
)
def test_substitutability_follows_the_band(band: str, verdict: str) -> None:
    got, meaning = substitutability(Concentration("edr", 3_000.0, 3.3, band, (("Acme", 0.5),)))
    assert got == verdict
    assert "HHI 3,000" in meaning and "Acme alone runs 50.0%" in meaning


def test_a_share_of_part_of_the_fleet_says_what_it_is_a_share_of() -> None:
    """57.7 % of the virtual and cloud hosts is about 11.5 % of all hosts (issue 17): the report says both."""
    hypervisors = Concentration("hypervisor", 4_000.0, 2.5, "high", (("VMware, Inc.", 0.577), ("KVM", 0.423)),
                                of="virtual and cloud hosts", base_hosts=6_000.0, fleet_hosts=30_000)
    _, meaning = substitutability(hypervisors)
    assert "VMware, Inc. alone runs 57.7% of virtual and cloud hosts, 11.5% of all hosts." in meaning
    fleet_wide = Concentration("os_family", 5_000.0, 2.0, "high", (("windows", 0.5),), base_hosts=30_000.0,
                               fleet_hosts=30_000)
    assert "windows alone runs 50.0% of all hosts." in substitutability(fleet_wide)[1]  # said once, not twice


def test_charts_escape_labels_and_handle_empty_input() -> None:
    svg = bar_chart(EVIL, [(EVIL, (1.0, 2.0), "3")], series=("a", "b"))
    assert EVIL not in svg and svg.count("<rect") == 4  # two legend swatches, two bar segments
    assert bar_chart("empty", []) == ""
    assert step_chart("empty", [("x", [])], x_label="h", y_label="n") == ""
    line = step_chart("one", [("site", [(0.0, 10.0), (2.0, 0.0)])], x_label="h", y_label="n")
    assert "<path" in line and "H" in line
