"""Render fleet resilience assessments as self-contained HTML, Markdown and JSON.

Rules the renderers keep:

* The HTML works offline: one file, inline CSS, charts drawn here as inline SVG
  (no script, no CDN, no web fonts).  Every ``href`` is an in-page anchor or a
  ``data:`` URI.
* Jinja2 autoescapes everything; selectors, names and ids are user data.  SVG
  text is escaped by :mod:`markupsafe` before it is marked safe.
* Colour is never the only carrier of meaning: bars carry text labels,
  concentration bands are written out, lines in the burn-down differ in dash
  pattern too, and every chart has a table with the same numbers beside it.
* Output is deterministic: the same input renders the same bytes (the time
  stamp appears only when the caller passes ``generated_at``).
* Long lists are capped in HTML and Markdown (:data:`DOWN_HOSTS_LIMIT`,
  :data:`TABLE_ROW_LIMIT`) and the report says so; the JSON always has all.
* Non-finite numbers (a site that never recovers) are written as ``null`` in
  JSON and as "never" in HTML and Markdown.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from ringfence.domain.assessment_model import (
    Assessment,
    Concentration,
    RtoBreach,
    ServiceImpact,
    TopEntry,
)

__all__ = [
    "DOWN_HOSTS_LIMIT",
    "SECTION_TITLES",
    "TABLE_ROW_LIMIT",
    "bar_chart",
    "render_html",
    "render_json",
    "render_markdown",
    "step_chart",
    "substitutability",
]

DEFAULT_TITLE = "Fleet resilience assessment"

#: Host ids listed inline (and in the download link); the JSON lists every one.
DOWN_HOSTS_LIMIT = 10_000
#: Rows shown in a per-item table (services, SPOFs, sites) before the report says "and N more".
TABLE_ROW_LIMIT = 1_000
#: Bars in one chart: supplier shares fold the rest into one "other" bar, hosts down leave the rest to the table.
MAX_BARS = 15
#: Sites drawn in the burn-down chart (the slowest first); the ETA table lists every site.
MAX_BURN_DOWN_LINES = 8

#: Section headings of each scenario, in order (HTML ``<h3>``, Markdown ``###``).
SECTION_TITLES: Mapping[str, str] = {
    "headline": "Headline numbers",
    "concentration": "Concentration by category",
    "exposure": "Kernel-mode and boot-start components",
    "blast": "Blast radius",
    "spofs": "Single points of failure",
    "recovery": "Recovery",
    "breaches": "RTO and MTD breaches",
    "recommendations": "Recommendations",
    "regulatory": "Regulatory summary",
    "down_hosts": "Hosts down",
}
TOP_TITLE = "Most damaging single failures"
COMPARE_TITLE = "Scenarios compared"

_BLAST_DIMENSIONS = {"tenant": "By tenant", "site": "By site", "os": "By OS", "tier": "By tier"}

# Okabe–Ito palette: distinguishable with the common colour-vision deficiencies.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F", "#000000")
_DASHES = ("", "7 3", "2 3", "9 3 2 3", "4 4", "1 2", "12 4", "6 2 2 2")
_CHAR_W = 6.8  # rough width of one 12 px sans-serif character, for layout only
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'

_SUBSTITUTABILITY = {
    "high": ("hard to substitute", "A fault here reaches most of the fleet at once, and moving away is a long migration."),
    "moderate": ("substitutable with effort", "Alternatives are in use, but one supplier still carries a large share."),
    "unconcentrated": ("readily substitutable", "The fleet already spreads this category across several suppliers."),
}


# --------------------------------------------------------------------------- formatting


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def fmt_num(value: float | None, digits: int = 1) -> str:
    """``1234`` → ``1,234``; ``12.345`` → ``12.3``; non-finite → ``never``; ``None`` → ``—``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "never"
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def fmt_pct(share: float | None) -> str:
    """A share 0..1 as a percentage with one decimal."""
    if share is None or not math.isfinite(share):
        return "—"
    return f"{share * 100:.1f}%"


def fmt_hours(hours: float | None) -> str:
    """Hours with one decimal and a unit; non-finite is "never"."""
    if hours is None:
        return "—"
    if not math.isfinite(hours):
        return "never"
    return f"{hours:,.1f} h"


def fmt_minutes_as_hours(minutes: int | None) -> str:
    """An RTO or MTD given in minutes, shown in hours."""
    return "—" if minutes is None else fmt_hours(minutes / 60)


def _fmt_value(value: float | str) -> str:
    return value if isinstance(value, str) else fmt_num(value)


# --------------------------------------------------------------------------- SVG charts


def _fit(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[: max(1, chars - 1)] + "…"


def _ticks(vmax: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``vmax``."""
    if not vmax > 0 or not math.isfinite(vmax):
        return [0.0, 1.0]
    raw = vmax / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            step = m * magnitude
            break
    return [i * step for i in range(math.ceil(vmax / step - 1e-9) + 1)]


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"


def _svg_open(title: str, width: float, height: float, desc: str = "") -> list[str]:
    parts = [
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'role="img" aria-label="{escape(title)}" {_FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    if desc:
        parts.append(f"<desc>{escape(desc)}</desc>")
    return parts


def _legend(series: Sequence[str], y: float, x0: float) -> list[str]:
    parts: list[str] = []
    x = x0
    for j, name in enumerate(series):
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" fill="{_PALETTE[j % len(_PALETTE)]}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="{y + 10:.1f}">{escape(name)}</text>')
        x += 16 + len(name) * _CHAR_W + 18
    return parts


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, Sequence[float], str]],
    *,
    series: Sequence[str] = (),
    grouped: bool = False,
    max_value: float | None = None,
    width: int = 720,
) -> Markup:
    """Horizontal bars, one row per ``(label, values, text)``; several values stack (or group side by side).

    ``text`` is written after the bar so the number never depends on reading a length or a colour.
    An empty ``rows`` gives an empty string.
    """
    if not rows:
        return Markup("")
    n_series = max(len(v) for _, v, _ in rows)
    label_chars = min(32, max(len(label) for label, _, _ in rows))
    label_w = max(60.0, label_chars * _CHAR_W + 10)
    text_w = min(320.0, max(len(text) for _, _, text in rows) * _CHAR_W + 14)
    plot_w = max(120.0, width - label_w - text_w)
    sub_h = 12.0 if grouped and n_series > 1 else 18.0
    bar_h = sub_h * n_series if grouped else sub_h
    row_h = bar_h + 8
    top = 26.0 if len(series) > 1 else 4.0
    height = top + row_h * len(rows) + 4

    def extent(values: Sequence[float]) -> float:
        clean = [v for v in values if _finite(v) and v > 0]
        return (max(clean, default=0.0)) if grouped else sum(clean)

    vmax = max_value if max_value and max_value > 0 else max((extent(v) for _, v, _ in rows), default=0.0)
    scale = plot_w / vmax if vmax > 0 else 0.0

    parts = _svg_open(title, width, height)
    if len(series) > 1:
        parts += _legend(series, 6, label_w)
    parts.append(f'<line x1="{label_w:.1f}" y1="{top - 2:.1f}" x2="{label_w:.1f}" y2="{height - 2:.1f}" stroke="#555"/>')
    for i, (label, values, text) in enumerate(rows):
        y = top + i * row_h
        parts.append(f"<g><title>{escape(label)}: {escape(text)}</title>")
        parts.append(
            f'<text x="{label_w - 6:.1f}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end">{escape(_fit(label, label_chars))}</text>'
        )
        x = label_w
        end = label_w
        for j, value in enumerate(values):
            w = value * scale if _finite(value) and value > 0 else 0.0
            colour = _PALETTE[j % len(_PALETTE)]
            if grouped:
                parts.append(
                    f'<rect x="{label_w:.1f}" y="{y + j * sub_h:.1f}" width="{w:.1f}" height="{sub_h - 1:.1f}" fill="{colour}"/>'
                )
                end = max(end, label_w + w)
            else:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar_h:.1f}" fill="{colour}"/>')
                x += w
                end = x
        parts.append(f'<text x="{end + 5:.1f}" y="{y + bar_h / 2 + 4:.1f}">{escape(text)}</text></g>')
    parts.append("</svg>")
    return Markup("\n".join(parts))  # noqa: S704 - all text in parts went through escape()


def step_chart(
    title: str,
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    width: int = 720,
) -> Markup:
    """Step lines (value holds until the next point), axes with round ticks, and a legend to the right."""
    lines = [(name, [(x, y) for x, y in pts if _finite(x) and _finite(y)]) for name, pts in lines]
    lines = [(name, pts) for name, pts in lines if pts]
    if not lines:
        return Markup("")
    legend_chars = min(28, max(len(name) for name, _ in lines))
    left, right, top, bottom = 64.0, 56 + legend_chars * _CHAR_W, 12.0, 44.0
    height = max(260.0, top + bottom + 20 * len(lines))
    plot_w, plot_h = width - left - right, height - top - bottom
    xticks = _ticks(max(x for _, pts in lines for x, _ in pts))
    yticks = _ticks(max(y for _, pts in lines for _, y in pts))
    xmax, ymax = xticks[-1], yticks[-1]

    def px(x: float) -> float:
        return left + x / xmax * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / ymax * plot_h

    parts = _svg_open(title, width, height)
    for t in yticks:
        parts.append(f'<line x1="{left:.1f}" y1="{py(t):.1f}" x2="{left + plot_w:.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{py(t) + 4:.1f}" text-anchor="end">{_tick_label(t)}</text>')
    for t in xticks:
        parts.append(
            f'<line x1="{px(t):.1f}" y1="{top + plot_h:.1f}" x2="{px(t):.1f}" y2="{top + plot_h + 4:.1f}" stroke="#555"/>'
        )
        parts.append(f'<text x="{px(t):.1f}" y="{top + plot_h + 17:.1f}" text-anchor="middle">{_tick_label(t)}</text>')
    parts.append(f'<path d="M{left:.1f},{top:.1f} V{top + plot_h:.1f} H{left + plot_w:.1f}" fill="none" stroke="#555"/>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6:.1f}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    for i, (name, pts) in enumerate(lines):
        colour = _PALETTE[i % len(_PALETTE)]
        dash = _DASHES[i % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        d = [f"M{px(pts[0][0]):.1f},{py(pts[0][1]):.1f}"]
        for x, y in pts[1:]:
            d.append(f"H{px(x):.1f}V{py(y):.1f}")
        last_x, last_y = pts[-1]
        parts.append(
            f"<g><title>{escape(name)}: {_tick_label(pts[0][1])} at hour {_tick_label(pts[0][0])}, "
            f"{_tick_label(last_y)} at hour {_tick_label(last_x)}</title>"
            f'<path d="{"".join(d)}" fill="none" stroke="{colour}" stroke-width="2.2"{dash_attr}/>'
            f'<circle cx="{px(last_x):.1f}" cy="{py(last_y):.1f}" r="3" fill="{colour}"/></g>'
        )
        ly = top + 6 + i * 20
        lx = left + plot_w + 12
        parts.append(
            f'<line x1="{lx:.1f}" y1="{ly:.1f}" x2="{lx + 22:.1f}" y2="{ly:.1f}" '
            f'stroke="{colour}" stroke-width="2.2"{dash_attr}/>'
            f'<text x="{lx + 27:.1f}" y="{ly + 4:.1f}">{escape(_fit(name, legend_chars))}</text>'
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))  # noqa: S704 - all text in parts went through escape()


def _top_n(counts: Iterable[tuple[str, float]], limit: int = MAX_BARS) -> tuple[list[tuple[str, float]], int]:
    """The ``limit - 1`` largest items plus one "other" item when there are more; returns (items, values folded)."""
    items = sorted(counts, key=lambda kv: (-kv[1], kv[0]))
    if len(items) <= limit:
        return items, 0
    head, tail = items[: limit - 1], items[limit - 1 :]
    return [*head, (f"other ({len(tail):,} values)", sum(v for _, v in tail))], len(tail)


# --------------------------------------------------------------------------- derived facts


def substitutability(concentration: Concentration) -> tuple[str, str]:
    """``(verdict, what the numbers mean)`` for one concentrated category, derived from its HHI band."""
    verdict, consequence = _SUBSTITUTABILITY.get(concentration.band, ("not assessed", "The band is not one ringfence knows."))
    if concentration.shares:
        leader, share = concentration.shares[0]
        lead = f"{leader} alone runs {fmt_pct(share)} of {concentration.of}"
        if concentration.of != "all hosts" and concentration.fleet_hosts:
            lead += f", {fmt_pct(concentration.fleet_share(share))} of all hosts"
        lead += "."
    else:
        lead = "No supplier recorded."
    meaning = (
        f"HHI {fmt_num(concentration.hhi)} of 10,000 is as concentrated as {fmt_num(concentration.effective_number)} "
        f"equally sized suppliers. {lead} {consequence}"
    )
    return verdict, meaning


def _blast_sort_key(dimension: str) -> Any:
    if dimension == "tier":
        return lambda kv: (int(kv[0]) if kv[0].lstrip("-").isdigit() else 99, kv[0])
    return lambda kv: (-kv[1], kv[0])


def _services_chart(title: str, groups: Mapping[str, list[ServiceImpact]], limit: int = MAX_BARS) -> Markup:
    rows: list[tuple[str, Sequence[float], str]] = []
    for label, impacts in list(groups.items())[:limit]:
        direct = sum(1 for s in impacts if s.status == "down" and s.cause == "direct")
        transitive = sum(1 for s in impacts if s.status == "down" and s.cause != "direct")
        degraded = sum(1 for s in impacts if s.status != "down")
        text = f"{direct} direct · {transitive} transitive · {degraded} degraded"
        rows.append((label, (direct, transitive, degraded), text))
    return bar_chart(title, rows, series=("down, direct", "down, transitive", "degraded"))


def _scenario_view(a: Assessment, index: int) -> dict[str, Any]:
    """Everything the templates show for one scenario, computed once so HTML and Markdown agree."""
    sid = f"s{index + 1}"
    impacts = [*a.services_down, *a.services_degraded]
    names = {s.service: s.name for s in impacts}
    rec = a.recovery

    concentration: list[dict[str, Any]] = []
    for category, c in sorted(a.hhi.items(), key=lambda kv: (-kv[1].hhi, kv[0])):
        shares, _ = _top_n(c.shares)
        chart = bar_chart(
            f"{category}: share of {c.of} per supplier (HHI {fmt_num(c.hhi)}, {c.band})",
            [(name, (share,), fmt_pct(share)) for name, share in shares],
            max_value=1.0,
        )
        verdict, meaning = substitutability(c)
        concentration.append({"category": category, "c": c, "chart": chart, "verdict": verdict, "meaning": meaning})

    exposure = sorted(a.exposure, key=lambda e: (-e.share, e.component))
    exposure_chart = bar_chart(
        "Share of the fleet running each kernel-mode or boot-start component",
        [
            (
                e.component,
                (e.share, e.tier_weighted_share),
                f"{fmt_pct(e.share)} · tier-weighted {fmt_pct(e.tier_weighted_share)}",
            )
            for e in exposure[:MAX_BARS]
        ],
        series=("share of hosts", "tier-weighted share"),
        grouped=True,
        max_value=1.0,
    )

    by_tier: dict[str, list[ServiceImpact]] = {}
    for s in sorted(impacts, key=lambda s: s.tier):
        by_tier.setdefault(f"tier {s.tier}", []).append(s)
    by_tenant: dict[str, list[ServiceImpact]] = {}
    for s in impacts:
        by_tenant.setdefault(s.tenant, []).append(s)
    by_tenant = dict(sorted(by_tenant.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    services_sorted = sorted(impacts, key=lambda s: (s.status != "down", s.tier, s.cause != "direct", s.name))

    dims = [d for d in _BLAST_DIMENSIONS if d in a.blast_radius] + sorted(d for d in a.blast_radius if d not in _BLAST_DIMENSIONS)
    blast = []
    for dim in dims:
        counts = a.blast_radius[dim]
        ordered = sorted(counts.items(), key=_blast_sort_key(dim))
        # Only the largest values are drawn: an "other" bar summing hundreds of sites would squash the rest.
        shown = ordered if dim == "tier" else ordered[:MAX_BARS]
        bars = [(f"tier {k}" if dim == "tier" else k, float(v)) for k, v in shown]
        folded = len(ordered) - len(bars)
        folded_hosts = sum(v for _, v in ordered[len(bars) :])
        total = sum(counts.values()) or 1
        chart = bar_chart(
            f"Hosts down by {dim}",
            [(k, (v,), f"{fmt_num(int(v))} ({fmt_pct(v / total)})") for k, v in bars],
        )
        blast.append(
            {
                "dimension": dim,
                "title": _BLAST_DIMENSIONS.get(dim, f"By {dim}"),
                "chart": chart,
                "folded": folded,
                "folded_hosts": folded_hosts,
                "rows": [(k, v, v / total) for k, v in ordered][:TABLE_ROW_LIMIT],
                "count": len(ordered),
            }
        )

    sites_by_eta = sorted(rec.eta_hours_by_site.items(), key=lambda kv: (-kv[1] if _finite(kv[1]) else -math.inf, kv[0]))
    site_hosts = a.blast_radius.get("site", {})
    burn_sites = [s for s, _ in sites_by_eta if s in rec.burn_down_by_site]
    burn_sites += sorted(s for s in rec.burn_down_by_site if s not in rec.eta_hours_by_site)
    burn_chart = step_chart(
        "Hosts still down per site over time",
        [
            (
                f"{site} · {fmt_hours(rec.eta_hours_by_site.get(site))}",
                [(float(h), float(n)) for h, n in rec.burn_down_by_site[site]],
            )
            for site in burn_sites[:MAX_BURN_DOWN_LINES]
        ],
        x_label="hours since the outage began",
        y_label="hosts still down",
    )
    eta_rows = [
        {
            "site": site,
            "eta": eta,
            "hosts": site_hosts.get(site, rec.burn_down_by_site[site][0][1] if rec.burn_down_by_site.get(site) else None),
        }
        for site, eta in sites_by_eta
    ]

    breaches = [
        {"b": b, "name": names.get(b.service, b.service), "target": _breach_target(b)}
        for b in sorted(rec.rto_breaches, key=lambda b: (b.tier, -b.restore_hours if _finite(b.restore_hours) else -math.inf))
    ]

    functions = []
    for fn in a.critical_functions:
        fn_services = [s for s in impacts if s.regulatory_function == fn]
        ids = {s.service for s in fn_services}
        fn_breaches = [b for b in rec.rto_breaches if b.service in ids]
        functions.append(
            {
                "function": fn,
                "services": fn_services,
                "down": sum(1 for s in fn_services if s.status == "down"),
                "degraded": sum(1 for s in fn_services if s.status != "down"),
                "breaches": fn_breaches,
                "mtd": sum(1 for b in fn_breaches if b.breaks == "mtd"),
            }
        )

    shown_hosts = a.down_hosts[:DOWN_HOSTS_LIMIT]
    view: dict[str, Any] = {
        "id": sid,
        "a": a,
        "services_down_share": len(a.services_down) / a.services_total if a.services_total else 0.0,
        "concentration": concentration,
        "concentrated": [c for c in concentration if c["c"].band in {"high", "moderate"}],
        "exposure": exposure,
        "exposure_chart": exposure_chart,
        "services_by_tier_chart": _services_chart("Services down or degraded by tier", by_tier),
        "services_by_tenant_chart": _services_chart("Services down or degraded by tenant (largest first)", by_tenant),
        "services": services_sorted[:TABLE_ROW_LIMIT],
        "services_count": len(services_sorted),
        "direct_down": sum(1 for s in a.services_down if s.cause == "direct"),
        "transitive_down": sum(1 for s in a.services_down if s.cause != "direct"),
        "blast": blast,
        "spofs": sorted(a.spofs, key=lambda s: (s.tier, s.service, s.kind, s.name))[:TABLE_ROW_LIMIT],
        "effort": sorted(rec.effort_hours_by_class.items()),
        "burn_chart": burn_chart,
        "burn_shown": min(len(burn_sites), MAX_BURN_DOWN_LINES),
        "burn_total": len(burn_sites),
        "eta_rows": eta_rows[:TABLE_ROW_LIMIT],
        "eta_count": len(eta_rows),
        "breaches": breaches,
        "rto_count": sum(1 for b in rec.rto_breaches if b.breaks == "rto"),
        "mtd_count": sum(1 for b in rec.rto_breaches if b.breaks == "mtd"),
        "recommendations": sorted(a.recommendations, key=lambda r: r.rank),
        "functions": functions,
        "down_hosts_shown": shown_hosts,
        "down_hosts_href": "data:text/plain;charset=utf-8," + quote("\n".join(shown_hosts) + "\n", safe=""),
        "down_hosts_file": f"down-hosts-{sid}.txt",
    }
    view["regulatory_lead"] = _regulatory_lead(view)
    return view


def _breach_target(b: RtoBreach) -> str:
    if b.breaks == "mtd":
        return f"MTD {fmt_minutes_as_hours(b.mtd_minutes)}"
    return f"RTO {fmt_minutes_as_hours(b.rto_minutes)}"


# --------------------------------------------------------------------------- HTML


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ringfence.adapters.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(num=fmt_num, pct=fmt_pct, hours=fmt_hours, minutes_h=fmt_minutes_as_hours, value=_fmt_value)
    return env


def render_html(
    assessments: Sequence[Assessment],
    *,
    title: str = DEFAULT_TITLE,
    generated_at: datetime | None = None,
    top: Sequence[TopEntry] = (),
) -> str:
    """One self-contained HTML page: a section per scenario with inline SVG charts, plus ``top`` when given."""
    template = _environment().get_template("assessment.html.j2")
    return template.render(
        title=title,
        generated_at=generated_at,
        top=list(top),
        scenarios=[_scenario_view(a, i) for i, a in enumerate(assessments)],
        sections=SECTION_TITLES,
        top_title=TOP_TITLE,
        compare_title=COMPARE_TITLE,
        limits={"hosts": DOWN_HOSTS_LIMIT, "rows": TABLE_ROW_LIMIT},
    )


# --------------------------------------------------------------------------- Markdown


def _md_cell(value: object) -> str:
    text = value if isinstance(value, str) else fmt_num(value) if isinstance(value, int | float) else str(value)
    text = " ".join(text.split())
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`")):
        text = text.replace(raw, safe)
    return text


def _md_table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[object]], *, total: int | None = None) -> list[str]:
    body = [list(r) for r in rows]
    out = [f"*{_md_cell(caption)}*", ""]
    if not body:
        return [*out, "None.", ""]
    out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    if total is not None and total > len(body):
        out.append("")
        out.append(f"{len(body):,} of {total:,} rows shown; the JSON report has all.")
    out.append("")
    return out


def render_markdown(assessments: Sequence[Assessment], *, title: str = DEFAULT_TITLE, top: Sequence[TopEntry] = ()) -> str:
    """The same sections as the HTML report, as Markdown tables (no charts)."""
    out = [f"# {_md_cell(title)}", ""]
    if top:
        out += [f"## {TOP_TITLE}", ""]
        out += _md_table(
            "Single failures ranked by critical (tier 0–1) services down",
            ("Rank", "Kind", "Name", "Selector", "Critical services down", "Services down", "Hosts down"),
            ((t.rank, t.kind, t.name, t.selector, t.critical_services_down, t.services_down, t.hosts_down) for t in top),
        )
    views = [_scenario_view(a, i) for i, a in enumerate(assessments)]
    if len(views) > 1:
        out += [f"## {COMPARE_TITLE}", ""]
        out += _md_table(
            "One row per scenario",
            ("Scenario", "Hosts down", "Share", "Services down", "Degraded", "Recovery", "RTO/MTD breaches", "SPOFs"),
            (
                (
                    v["a"].scenario,
                    v["a"].hosts_down,
                    fmt_pct(v["a"].hosts_down_share),
                    len(v["a"].services_down),
                    len(v["a"].services_degraded),
                    fmt_hours(v["a"].recovery.recovery_hours),
                    len(v["breaches"]),
                    len(v["a"].spofs),
                )
                for v in views
            ),
        )
    for v in views:
        out += _md_scenario(v)
    return "\n".join(out).rstrip() + "\n"


def _md_scenario(v: dict[str, Any]) -> list[str]:
    a: Assessment = v["a"]
    rec = a.recovery
    t = SECTION_TITLES
    out = [f"## Scenario: {_md_cell(a.scenario)}", "", f"### {t['headline']}", ""]
    out += _md_table(
        "The scenario at a glance",
        ("Measure", "Value"),
        [
            ("Hosts down", f"{fmt_num(a.hosts_down)} of {fmt_num(a.hosts_total)} ({fmt_pct(a.hosts_down_share)})"),
            (
                "Services down",
                f"{len(a.services_down):,} of {a.services_total:,} ({fmt_pct(v['services_down_share'])}); "
                f"{v['direct_down']:,} direct, {v['transitive_down']:,} transitive",
            ),
            ("Services degraded", len(a.services_degraded)),
            ("Critical functions affected", len(a.critical_functions)),
            ("Recovery (last site done)", fmt_hours(rec.recovery_hours)),
            ("Key readiness", f"{fmt_pct(rec.key_readiness)} of {fmt_num(rec.encrypted_hosts)} encrypted hosts affected"),
            ("Hands-on share", fmt_pct(rec.hands_on_share)),
            ("Single points of failure", len(a.spofs)),
            ("RTO / MTD breaches", f"{v['rto_count']:,} RTO, {v['mtd_count']:,} MTD"),
        ],
    )
    out += [f"### {t['concentration']}", ""]
    out += _md_table(
        "Herfindahl–Hirschman index per category (bands: < 1,500 unconcentrated, 1,500–2,500 moderate, > 2,500 high)",
        ("Category", "HHI", "Effective number", "Band", "Largest supplier", "Share"),
        (
            (
                c["category"],
                fmt_num(c["c"].hhi),
                fmt_num(c["c"].effective_number),
                c["c"].band,
                c["c"].shares[0][0] if c["c"].shares else "—",
                fmt_pct(c["c"].shares[0][1]) if c["c"].shares else "—",
            )
            for c in v["concentration"]
        ),
    )
    out += [f"### {t['exposure']}", ""]
    out += _md_table(
        "Components that load in the kernel or at boot",
        ("Component", "Kernel mode", "Boot start", "Hosts", "Share", "Tier-weighted share"),
        (
            (
                e.component,
                "yes" if e.kernel_mode else "no",
                "yes" if e.boot_start else "no",
                e.hosts,
                fmt_pct(e.share),
                fmt_pct(e.tier_weighted_share),
            )
            for e in v["exposure"]
        ),
    )
    out += [f"### {t['blast']}", "", "#### By service", ""]
    out += _md_table(
        "Services down or degraded (direct: its own redundancy groups fail; transitive: through a dependency)",
        ("Service", "Tenant", "Tier", "Status", "Cause", "Via", "Regulatory function"),
        (
            (s.name, s.tenant, s.tier, s.status, s.cause, " → ".join(s.via) or "—", s.regulatory_function or "—")
            for s in v["services"]
        ),
        total=v["services_count"],
    )
    for b in v["blast"]:
        out += [f"#### {b['title']}", ""]
        out += _md_table(
            f"Hosts down by {b['dimension']}",
            (b["dimension"].capitalize(), "Hosts down", "Share of hosts down"),
            ((k, int(n), fmt_pct(s)) for k, n, s in b["rows"]),
            total=b["count"],
        )
    out += [f"### {t['spofs']}", ""]
    out += _md_table(
        "Components or vendors on every surviving path of a tier-0/1 service",
        ("Service", "Tier", "Kind", "Name", "Replicas", "Why"),
        ((s.service, s.tier, s.kind, s.name, s.replicas, s.message) for s in v["spofs"]),
        total=len(a.spofs),
    )
    out += [f"### {t['recovery']}", ""]
    out += _md_table(
        "Hands-on effort by host class",
        ("Host class", "Effort"),
        ((k, fmt_hours(h)) for k, h in v["effort"]),
    )
    out += _md_table(
        "Estimated time until each site is fully recovered (slowest first)",
        ("Site", "Hosts down", "ETA"),
        ((r["site"], r["hosts"] if r["hosts"] is not None else "—", fmt_hours(r["eta"])) for r in v["eta_rows"]),
        total=v["eta_count"],
    )
    if rec.first:
        out += ["Recover first: " + ", ".join(_md_cell(s) for s in rec.first), ""]
    out += [f"### {t['breaches']}", ""]
    out += _md_table(
        "Services whose modelled restore time exceeds their RTO or MTD",
        ("Service", "Tier", "Restore", "Target", "Breaks"),
        ((r["name"], r["b"].tier, fmt_hours(r["b"].restore_hours), r["target"], r["b"].breaks.upper()) for r in v["breaches"]),
    )
    out += [f"### {t['recommendations']}", ""]
    if v["recommendations"]:
        for r in v["recommendations"]:
            numbers = "; ".join(f"{k}: {_fmt_value(x)}" for k, x in r.numbers.items())
            out.append(f"{r.rank}. **{_md_cell(r.action)}** — {_md_cell(r.why)}" + (f" ({_md_cell(numbers)})" if numbers else ""))
        out.append("")
    else:
        out += ["None.", ""]
    out += [f"### {t['regulatory']}", ""]
    out += [_md_cell(v["regulatory_lead"]), ""]
    out += _md_table(
        "Critical or important functions affected",
        ("Function", "Services down", "Degraded", "RTO/MTD breaches"),
        ((f["function"], f["down"], f["degraded"], len(f["breaches"])) for f in v["functions"]),
    )
    out += _md_table(
        "Substitutability of each category's suppliers, from its concentration band",
        ("Category", "Band", "Substitutability", "What the numbers mean"),
        ((c["category"], c["c"].band, c["verdict"], c["meaning"]) for c in v["concentration"]),
    )
    out += [f"### {t['down_hosts']}", ""]
    shown = v["down_hosts_shown"]
    note = f"{len(a.down_hosts):,} hosts down"
    if len(shown) < len(a.down_hosts):
        note += f"; the first {len(shown):,} are listed, the JSON report has all"
    out += [note + ".", ""]
    if shown:
        longest = max((len(run) for host in shown for run in re.findall("`+", host)), default=0)
        fence = "`" * max(3, longest + 1)  # a host id can never close the block
        out += [f"{fence}text", *shown, fence, ""]
    return out


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _regulatory_lead(v: dict[str, Any]) -> str:
    a: Assessment = v["a"]
    high = [c["category"] for c in v["concentration"] if c["c"].band == "high"]
    return (
        f"{_count(len(a.critical_functions), 'critical or important function')} affected; "
        f"{_count(v['rto_count'], 'service')} past {'its' if v['rto_count'] == 1 else 'their'} RTO and "
        f"{_count(v['mtd_count'], 'service')} past {'its' if v['mtd_count'] == 1 else 'their'} MTD. "
        + (f"Highly concentrated, hard to substitute: {', '.join(high)}. " if high else "No category is highly concentrated. ")
        + "Structured after EU DORA Art. 28–29 (ICT third-party and concentration risk); an input to the register of "
        "information and exit plans, not a compliance determination."
    )


# --------------------------------------------------------------------------- JSON


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def render_json(assessments: Sequence[Assessment], *, top: Sequence[TopEntry] = ()) -> str:
    """``{"assessments": [a.as_json(), ...], "top": [...]}`` — always a list, every host id, strict JSON.

    :meth:`Assessment.as_json` leaves the host ids out; they are added here as ``down_hosts`` (all of them,
    where the HTML and Markdown stop at :data:`DOWN_HOSTS_LIMIT`).
    """
    documents = []
    for a in assessments:
        doc = a.as_json()
        doc.setdefault("down_hosts", list(a.down_hosts))
        documents.append(doc)
    document = {"assessments": documents, "top": [asdict(t) for t in top]}
    return json.dumps(_clean(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
