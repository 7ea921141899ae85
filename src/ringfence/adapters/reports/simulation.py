"""Render a simulation run as one self-contained HTML page (inline CSS and SVG; no script, no CDN).

Per plan: the headline figures (the JSON's keys), a chart of hosts exposed and hosts crashed (down
because of the release) over simulated time with a table of the same numbers, the gate's evidence at
the halt in words and per stream, and the decision log.  Jinja2 autoescapes every value; the SVG is
built from escaped text.  The same run renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ringfence.sim.runner import RESULT_KEYS
from ringfence.sim.service import SimulationRun

__all__ = ["format_value", "render_html", "series_chart"]

_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 640, 260, 70, 36, 14, 16
#: Points kept per line (the rest are thinned evenly; the first and last always stay).
MAX_POINTS = 400


def _thin(points: Sequence[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    step = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * step)] for i in range(MAX_POINTS)]


def series_chart(points: Sequence[tuple[float, int, int]], title: str) -> Markup:
    """An SVG line chart of (hours, exposed, crashed) points: exposed solid, crashed dashed."""
    pts = _thin(points)
    if not pts:
        return Markup("")
    x_max = max(p[0] for p in pts) or 1.0
    y_max = max(max(p[1], p[2]) for p in pts) or 1
    mag = 10 ** max(0, math.floor(math.log10(y_max)))
    y_top = math.ceil(y_max / mag) * mag

    def x(v: float) -> float:
        return float(_PAD_L + (_W - _PAD_L - _PAD_R) * v / x_max)

    def y(v: float) -> float:
        return float(_H - _PAD_B - (_H - _PAD_B - _PAD_T) * v / y_top)

    def path(index: int) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{x(p[0]):.1f},{y(p[index]):.1f}" for i, p in enumerate(pts))

    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):
        v = y_top * i / 4
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{_PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:,.0f}</text>')
    for i in range(5):
        h = x_max * i / 4
        parts.append(f'<text x="{x(h):.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle" font-size="11">{h:,.1f} h</text>')
    parts.append(f'<path d="{path(1)}" fill="none" stroke="#1f4e9c" stroke-width="2"/>')
    parts.append(f'<path d="{path(2)}" fill="none" stroke="#b3261e" stroke-width="2" stroke-dasharray="6 3"/>')
    parts.append(f'<text x="{_PAD_L + 8}" y="{_PAD_T + 12}" font-size="12" fill="#1f4e9c">— exposed</text>')
    parts.append(f'<text x="{_PAD_L + 100}" y="{_PAD_T + 12}" font-size="12" fill="#b3261e">- - crashed (down)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _table_rows(points: Sequence[tuple[float, int, int]], rows: int = 12) -> list[tuple[str, str, str]]:
    if not points:
        return []
    step = max(1, len(points) // rows)
    chosen = list(points[::step])
    if chosen[-1] != points[-1]:
        chosen.append(points[-1])
    return [(f"{h:,.2f}", f"{e:,}", f"{c:,}") for h, e, c in chosen]


def format_value(v: Any) -> str:
    """A figure for people: — for none, yes/no, thousands separators."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render_html(run: SimulationRun, *, title: str = "") -> str:
    """The report for every plan of the run."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    plans = []
    for name, summary in zip(run.plans, run.summaries(), strict=True):
        first = run.results[name][0]
        halt = first.halt
        streams = []
        if halt is not None:
            for s in halt["evidence"].get("streams", []):
                if s.get("verdict") == "failed":
                    streams.append(s)
        plans.append({
            "name": name,
            "figures": [(k.replace("_", " "), format_value(summary[k])) for k in RESULT_KEYS],
            "chart": series_chart(first.series, f"{name}: hosts exposed and crashed over time"),
            "rows": _table_rows(first.series),
            "halt": halt, "streams": streams[:20],
            "log": first.log[:200], "log_more": max(0, len(first.log) - 200),
            "replications": len(run.results[name]),
        })
    sc = run.scenario
    return env.get_template("simulation.html.j2").render(
        title=title or f"Simulation: {sc.name}", scenario=sc, plans=plans)
