"""CLI verbs for the fleet resilience assessment and key-escrow import (over the HTTP API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, ServerOpt, TokenOpt, err, out
from ringfence.errors import InputError

__all__ = ["install"]


escrow_app = typer.Typer(help="Disk recovery-key escrow records (never the keys).", no_args_is_help=True)


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _summary(a: dict[str, Any]) -> None:
    out.print(f"[bold]what if {a['scenario']}[/bold]", highlight=False)
    out.print(f"  hosts down {a['hosts_down']:,} of {a['hosts_total']:,} ({a['hosts_down_share']:.1%}); "
              f"services down {len(a['services_down'])} "
              f"({sum(1 for s in a['services_down'] if s['cause'] == 'direct')} direct, "
              f"{sum(1 for s in a['services_down'] if s['cause'] != 'direct')} through dependencies), "
              f"degraded {len(a['services_degraded'])}", highlight=False)
    out.print(f"  recovery {a['recovery_hours']:,.1f} h by hand; key readiness {a['key_readiness']:.0%}; "
              f"hands-on {a['hands_on_share']:.0%}; {len(a['rto_breaches'])} RTO/MTD breaches; "
              f"{len(a['spofs'])} common-mode SPOFs", highlight=False)
    for r in a["recommendations"][:5]:
        out.print(f"  {r['rank']}. {r['action']} — {r['why']}", highlight=False, soft_wrap=True)


def install(app: typer.Typer) -> None:
    """Add ``assess`` and ``escrow`` to the main CLI."""
    app.add_typer(escrow_app, name="escrow")

    @app.command("assess")
    def assess(what_if: Annotated[list[str] | None, typer.Option(
                   "--what-if", help="Selector of what fails, e.g. 'agent.vendor=CrowdStrike' (repeatable).")] = None,
               top: Annotated[int, typer.Option(help="Rank the N single vendors/components/builds/regions "
                                                     "whose failure hurts most.")] = 0,
               report: Annotated[Path | None, typer.Option(help="Write the HTML report (with charts) here.")] = None,
               json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
               markdown: Annotated[Path | None, typer.Option(help="Write the Markdown report here.")] = None,
               technicians_per_site: Annotated[int, typer.Option(help="Technicians per site for the ETA.")] = 2,
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               scenario: Annotated[list[str] | None, typer.Option(
                   "--scenario", hidden=True, help="The former name of --what-if (docs/glossary.md).")] = None) -> None:
        """What if everything matching a selector failed at once? Hosts, services, SPOFs, recovery, advice."""
        formats = ["json"] + (["html"] if report else []) + (["markdown"] if markdown else [])
        with _client(config, server, token) as api, err.status("assessing…"):
            data = api.post("/v1/assessments", {"what_ifs": [*(what_if or []), *(scenario or [])], "top": top,
                                                "formats": formats,
                                                "technicians_per_site": technicians_per_site})
        html = data.pop("html", None)
        md = data.pop("markdown", None)
        if report and html is not None:
            report.write_text(html, encoding="utf-8")
        if markdown and md is not None:
            markdown.write_text(md, encoding="utf-8")
        if json_out:
            json_out.write_text(json.dumps(data, indent=2), encoding="utf-8")
        for a in data["assessments"]:
            _summary(a)
        if data.get("top"):
            table = Table(title=f"top {len(data['top'])} single points of failure")
            for col in ("rank", "kind", "name", "tier-0/1 services down", "services down", "hosts down", "selector"):
                table.add_column(col)
            for t in data["top"]:
                table.add_row(str(t["rank"]), t["kind"], t["name"], str(t["critical_services_down"]),
                              str(t["services_down"]), f"{t['hosts_down']:,}", t["selector"])
            out.print(table)
        written = [str(p) for p in (report, json_out, markdown) if p]
        if written:
            err.print("wrote " + ", ".join(written), highlight=False)

    @escrow_app.command("import")
    def escrow_import(files: Annotated[list[Path], typer.Argument(help="CSV: host_id,key_id,location,verified.")],
                      reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
                      config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                      as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """Import which hosts have an escrowed (and verified) recovery key; all-or-nothing."""
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise InputError.single("file", f"{missing[0]} does not exist", expected="a CSV file")
        with _client(config, server, token) as api:
            data = api.upload("/v1/escrow", files, reason=reason)
        if as_json:
            sys.stdout.write(json.dumps(data) + "\n")
        else:
            out.print(f"escrow records for {data['hosts']:,} hosts ({data['verified']:,} verified)")
