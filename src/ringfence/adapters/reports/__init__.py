"""Reports: render domain results for people (HTML, Markdown) and programs (JSON).

The renderers take finished domain objects and return strings; they read no
files except their own packaged templates, open no network connections and do
not read the clock.
"""

from ringfence.adapters.reports.assessment import SECTION_TITLES, render_html, render_json, render_markdown

__all__ = ["SECTION_TITLES", "render_html", "render_json", "render_markdown"]
