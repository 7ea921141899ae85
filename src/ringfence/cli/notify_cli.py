"""CLI verbs for notifications: rules per tenant (the ``notify:`` YAML) and the delivery log (over the HTTP API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ringfence.cli.client import client_from_options
from ringfence.cli.options import ConfigOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, out
from ringfence.errors import InputError

__all__ = ["install"]

notify_app = typer.Typer(help="Notifications: signed webhooks and Apprise targets, rules per tenant, delivery log.",
                         no_args_is_help=True)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _print_rules(r: dict[str, Any]) -> None:
    out.print(f"[bold]{r['tenant'] or 'every tenant'}[/bold] (version {r['version']})", highlight=False)
    for t in r["targets"]:
        secret = f", secret {t['secret']}" if t["kind"] == "webhook" else ""
        out.print(f"  target {t['name']}: {t['kind']} {t['url']}{secret}", highlight=False)
    for rule in r["rules"]:
        out.print(f"  {', '.join(rule['events'])} → {', '.join(rule['targets'])}", highlight=False)


@notify_app.command("apply")
def notify_apply(file: Annotated[Path, typer.Argument(help="Rules YAML (see examples/notify.yaml).")],
                 reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Set a tenant's notification targets and which events go to them (admin; all or nothing; audited)."""
    if not file.is_file():
        raise InputError.single("file", f"{file} does not exist", expected="a notify rules YAML file")
    with client_from_options(config, server, token) as api:
        data = api.request("PUT", "/v1/notify/rules", content=file.read_bytes(),
                           headers={"content-type": "application/yaml", "x-ringfence-reason": reason})
    if as_json:
        _json(data)
    else:
        _print_rules(data)


@notify_app.command("show")
def notify_show(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
    """Every tenant's notification rules (secrets are never shown)."""
    with client_from_options(config, server, token) as api:
        data = api.get("/v1/notify/rules")
    if as_json:
        _json(data)
        return
    if not data["rules"]:
        out.print("no notification rules; set some with `ringfence notify apply FILE` (see examples/notify.yaml)")
    for r in data["rules"]:
        _print_rules(r)


@notify_app.command("log")
def notify_log(state: Annotated[str, typer.Option(help="Only pending, delivered or failed.")] = "",
               limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """The delivery log: each notification per target, its state, attempts, next attempt and last error."""
    with client_from_options(config, server, token) as api:
        data = api.get("/v1/notify/deliveries", state=state or None, limit=limit)
    if as_json:
        _json(data)
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    for col in ("id", "when", "event", "target", "state", "tries"):
        table.add_column(col, no_wrap=True)
    table.add_column("what", ratio=1, overflow="fold", min_width=30)
    for d in data["deliveries"]:
        what = d["title"] + (f" — last error: {d['last_error']}" if d["last_error"] else "")
        if d["state"] == "pending" and d["attempts"]:
            what += f" (next try {d['next_attempt_at'][11:19]} UTC)"
        table.add_row(str(d["id"]), d["created_at"][:19].replace("T", " "), d["event"], d["target"], d["state"],
                      str(d["attempts"]), what)
    if data["deliveries"]:
        out.print(table, highlight=False)
    else:
        out.print("no notifications sent yet", highlight=False)


def install(app: typer.Typer) -> None:
    """Register ``notify apply / show / log``."""
    app.add_typer(notify_app, name="notify")
