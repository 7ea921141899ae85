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

__all__ = ["qr_svg", "render_report", "render_work_order"]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ringfence.adapters.reports", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=fmt_num, hours=fmt_hours)
    return env


def qr_svg(text: str) -> Markup:
    """``text`` as an inline SVG QR code (error correction M, 4 px modules)."""
    svg = segno.make(text, error="m", micro=False).svg_inline(scale=4, title="recovery key")
    return Markup(svg)  # noqa: S704 - segno's own SVG markup, no user input in it besides the encoded text


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
        campaign=campaign, plan=plan, chart=chart, generated_at=generated_at.isoformat(timespec="seconds"))
