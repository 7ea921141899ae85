"""HTML for recovery campaigns: the management report (burn-down per site) and one work order per host.

A work order shows the host, its runbook's steps, the key id and, when the key was revealed to the
technician, the key as a QR code (segno, inline SVG) so that a USB scanner types it; the page is not
cached by the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import segno
from markupsafe import Markup

from ringfence.adapters.reports.assessment import fmt_hours, fmt_num, step_chart

__all__ = ["path_chart", "planned_left", "qr_svg", "render_report", "render_work_order"]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ringfence.adapters.reports", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=fmt_num, hours=fmt_hours, planned_now=planned_left)
    return env


def qr_svg(text: str) -> Markup:
    """``text`` as an inline SVG QR code (error correction M, 4 px modules)."""
    svg = segno.make(text, error="m", micro=False).svg_inline(scale=4, title="recovery key")
    return Markup(svg)  # noqa: S704 - segno's own SVG markup, no user input in it besides the encoded text


def planned_left(burn: Mapping[str, Any], hours: float) -> int:
    """Hosts of one path the plan from the start still had to do at ``hours`` (its step at or before it)."""
    left = int(burn["planned"][0][1]) if burn["planned"] else 0
    for h, n in burn["planned"]:
        if h is not None and h <= hours:
            left = int(n)
    return left


def path_chart(plan: Mapping[str, Any]) -> Markup:
    """The burn-down per recovery path: hosts not yet back, planned from the start against observed so far."""
    burn = plan.get("burn_down_by_path", {})
    lines: list[tuple[str, list[tuple[float, float]]]] = []
    for path in sorted(burn, key=lambda x: -(burn[x]["planned"][0][1] if burn[x]["planned"] else 0)):
        for kind in ("planned", "observed"):
            pts = [(float(h), float(n)) for h, n in burn[path][kind] if h is not None]
            if pts:
                lines.append((f"{path} {kind}", pts))
    return step_chart("hosts not yet back per recovery path: planned from the start, observed so far", lines,
                      x_label="hours after the start", y_label="hosts") if lines else Markup("")


def render_work_order(campaign: Mapping[str, Any], host: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
                      *, key_id: str, key: str | None, generated_at: datetime) -> str:
    """One work order page; ``key`` None shows the key id only."""
    return _environment().get_template("recovery_workorder.html.j2").render(
        campaign=campaign, host=host, steps=steps, key_id=key_id, key=key, qr=qr_svg(key) if key else Markup(""),
        generated_at=generated_at.isoformat(timespec="seconds"))


def render_report(campaign: Mapping[str, Any], plan: Mapping[str, Any], *, generated_at: datetime) -> str:
    """The campaign report for management: counts, ETA per site and service, breaches, burn-down chart."""
    burn = plan.get("burn_down_by_site", {})
    top = sorted(burn, key=lambda s: -(burn[s][0][1] if burn[s] else 0))[:12]
    chart = step_chart("hosts still to recover per site (planned)",
                       [(s, [(float(h), float(n)) for h, n in burn[s] if h is not None]) for s in top],
                       x_label="hours from now", y_label="hosts") if top else Markup("")
    return _environment().get_template("recovery_report.html.j2").render(
        campaign=campaign, plan=plan, chart=chart, path_chart=path_chart(plan),
        generated_at=generated_at.isoformat(timespec="seconds"))
