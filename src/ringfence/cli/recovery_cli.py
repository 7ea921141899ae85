"""CLI verbs for recovery campaigns (over the HTTP API); ``run`` executes a runbook step on this machine.

``ringfence recovery run`` drives the existing engines from where the operator sits (ansible-runner against
the host, Redfish through sushy against its BMC) and streams the engine's events into the campaign; cloud
steps print the provider's exact commands and are never recorded as done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, err, out
from ringfence.domain.words import state_word
from ringfence.errors import InputError, shown

__all__ = ["install"]

recovery_app = typer.Typer(help="Recovery campaigns: bring every host back, in order, with the keys at hand.",
                           no_args_is_help=True)
_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "recovery" / "default.yaml"  # examples/recovery/


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _print(data: Any, as_json: bool) -> bool:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    return as_json


def _read(path: Path, what: str) -> str:
    if not path.is_file():
        raise InputError.single(what, f"{path} does not exist", expected="a readable file")
    return path.read_text(encoding="utf-8")


@recovery_app.command("create")
def create(name: Annotated[str, typer.Option(help="A name people recognise, e.g. 'channel 291'.")],
           runbooks: Annotated[Path, typer.Option(help="Runbook YAML (see examples/recovery/default.yaml).")] = _EXAMPLE,
           from_rollout: Annotated[str, typer.Option("--from-rollout", help="Hosts of this rollout that crashed, "
                                                     "failed or went silent.")] = "",
           where: Annotated[str, typer.Option("--where", help="Hosts matching a selector.")] = "",
           hosts: Annotated[Path | None, typer.Option("--hosts", help="A file of host ids, one a line.")] = None,
           model: Annotated[Path | None, typer.Option(help="YAML/JSON: minutes per class, technicians, shifts.")] = None,
           reason: ReasonOpt = "", as_json: JsonOpt = False,
           config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Create a campaign from a rollout, a selector or a host list (exactly one)."""
    from ringfence.adapters.yamlfile import load_yaml  # noqa: PLC0415 - only this verb reads a model file

    body: dict[str, Any] = {"name": name, "runbooks": _read(runbooks, "runbooks"), "from_rollout": from_rollout,
                            "where": where, "reason": reason,
                            "hosts": _read(hosts, "hosts").split() if hosts else []}
    if model is not None:
        parsed = load_yaml(_read(model, "model"), what="model", expected="minutes, technicians and shifts")
        if not isinstance(parsed, dict):
            raise InputError.single("model", "is not a mapping", expected="minutes, technicians and shifts")
        body["model"] = parsed
    with _client(config, server, token) as api, err.status("creating the campaign…"):
        data = api.post("/v1/recovery/campaigns", body)
    if not _print(data, as_json):
        paths = ", ".join(f"{k} {v:,}" for k, v in data["paths"].items())
        out.print(f"campaign {data['id']}: {data['hosts']:,} hosts ({paths})", highlight=False)


@recovery_app.command("list")
def list_campaigns(as_json: JsonOpt = False, config: ConfigOpt = None, server: ServerOpt = None,
                   token: TokenOpt = None) -> None:
    """Every campaign with its hosts per state."""
    with _client(config, server, token) as api:
        data = api.get("/v1/recovery/campaigns")
    if not _print(data, as_json):
        for c in data["campaigns"]:
            counts = ", ".join(f"{state_word(k)} {v:,}" for k, v in c["counts"].items())
            out.print(f"{c['id']}  {c['state']:6}  {c['name']}  ({counts})", highlight=False)


@recovery_app.command("plan")
def plan(campaign: Annotated[str, typer.Argument(help="Campaign id.")], as_json: JsonOpt = False,
         config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Re-plan from now: ETA per site and service, waves, critical path, RTO/MTD breaches."""
    with _client(config, server, token) as api, err.status("planning…"):
        p = api.get(f"/v1/recovery/campaigns/{campaign}/plan")
    if _print(p, as_json):
        return
    eta = "never (a site has no technicians)" if p["eta_hours"] is None else f"{p['eta_hours']:,.1f} h after the start"
    out.print(f"{p['to_do']:,} of {p['hosts']:,} hosts to do; planned end {eta}", highlight=False)
    if p.get("observed_eta_hours"):
        out.print(f"at the observed {p['observed_per_hour']:,.1f} hosts/h: {p['observed_eta_hours']:,.1f} h",
                  highlight=False)
    table = Table(title="ETA per site (hours after the start)")
    table.add_column("site")
    table.add_column("ETA", justify="right")
    for site, h in p["eta_hours_by_site"].items():
        table.add_row(site, "never" if h is None else f"{h:,.2f}")
    out.print(table)
    for line in p["critical_path"]:
        out.print(f"  critical path: {line}", highlight=False)
    for b in p["rto_breaches"]:
        out.print(f"  breaks its {b['breaks'].upper()}: {b['service']} (tier {b['tier']})", highlight=False)
    _paths(p)


def _paths(p: dict[str, Any]) -> None:
    """The burn-down per recovery path: hosts not yet back, planned from the start against observed, now."""
    burn = p.get("burn_down_by_path") or {}
    if not burn:
        return
    now = float(p.get("hours_since_start") or 0.0)
    table = Table(title=f"Burn-down per recovery path, {now:,.2f} h after the start (hosts not yet back)")
    for col in ("path", "hosts", "planned by now", "observed", "planned end (h)"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for path, b in sorted(burn.items()):
        planned = [(h, n) for h, n in b["planned"] if h is not None]
        due = next((n for h, n in reversed(planned) if h <= now), planned[0][1] if planned else 0)
        end = next((h for h, n in planned if n == 0), None)
        seen = b["observed"][-1][1] if b["observed"] else planned[0][1] if planned else 0
        table.add_row(path, f"{planned[0][1] if planned else 0:,}", f"{due:,}", f"{seen:,}",
                      "never" if end is None else f"{end:,.2f}")
    out.print(table)


@recovery_app.command("show")
def show(campaign: Annotated[str, typer.Argument(help="Campaign id.")], as_json: JsonOpt = False,
         config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """A campaign and its hosts (a technician sees only its own work orders)."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/recovery/campaigns/{campaign}")
    if _print(data, as_json):
        return
    out.print(f"{data['id']} {data['name']} ({data['state']}); " + ", ".join(
        f"{state_word(k)} {v:,}" for k, v in data["counts"].items()), highlight=False)
    table = Table()
    for col in ("host", "state", "path", "runbook", "technician"):
        table.add_column(col)
    for h in data["hosts"][:200]:
        table.add_row(h["host_id"], state_word(h["state"]), h["path"], h["runbook"], h["assignee"])
    out.print(table)


@recovery_app.command("assign")
def assign(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
           hosts: Annotated[list[str], typer.Argument(help="Host ids.")],
           technician: Annotated[str, typer.Option(help="The technician's token name.")],
           reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Give hosts to a technician as work orders."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/recovery/campaigns/{campaign}/assign",
                        {"hosts": hosts, "technician": technician, "reason": reason})
    out.print(f"assigned {data['assigned']:,} hosts to {data['technician']}", highlight=False)


@recovery_app.command("mark")
def mark(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
         host: Annotated[str, typer.Argument(help="Host id.")],
         state: Annotated[str, typer.Argument(help="start, fixed, failed, escalate or unassign.")],
         message: Annotated[str, typer.Option(help="What happened.")] = "",
         config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Mark a host's step; it is verified only when it reports healthy by itself."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/recovery/campaigns/{campaign}/hosts/{host}/mark", {"state": state, "message": message})
    out.print(f"{data['host_id']}: {state_word(data['state'])}", highlight=False)


@recovery_app.command("reveal-key")
def reveal_key(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
               host: Annotated[str, typer.Argument(help="Host id.")],
               work_order: Annotated[Path | None, typer.Option(help="Write the work order page (key as QR) here "
                                                               "instead of printing the key.")] = None,
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Show one host's recovery key to the technician assigned to it (audited, rate-limited)."""
    with _client(config, server, token) as api:
        if work_order is not None:
            html = api.get_text(f"/v1/recovery/campaigns/{campaign}/hosts/{host}/work-order", reveal="true")
            work_order.write_text(html, encoding="utf-8")
            err.print(f"wrote {work_order}", highlight=False)
            return
        data = api.post(f"/v1/recovery/campaigns/{campaign}/hosts/{host}/reveal-key")
    out.print(f"{data['host_id']} key {data['key_id']}: {data['recovery_key']}", highlight=False)


@recovery_app.command("export")
def export(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
           output: Annotated[Path | None, typer.Option("--output", "-o", help="CSV file (default: stdout).")] = None,
           config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Work orders as CSV (never the keys)."""
    with _client(config, server, token) as api:
        text = api.get_text(f"/v1/recovery/campaigns/{campaign}/export.csv")
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@recovery_app.command("report")
def report(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
           output: Annotated[Path, typer.Option("--output", "-o", help="HTML file.")] = Path("recovery-report.html"),
           config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """The HTML report for management: progress, ETA per site and service, breaches, burn-down per site and per
    recovery path (planned against observed); the per-path table is printed too."""
    with _client(config, server, token) as api, err.status("writing the report…"):
        html = api.get_text(f"/v1/recovery/campaigns/{campaign}/report")
        p = api.get(f"/v1/recovery/campaigns/{campaign}/plan")
    output.write_text(html, encoding="utf-8")
    err.print(f"wrote {output}", highlight=False)
    _paths(p)


@recovery_app.command("close")
def close(campaign: Annotated[str, typer.Argument(help="Campaign id.")], reason: ReasonOpt = "",
          config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Close a campaign: nothing changes any more and no key is revealed."""
    with _client(config, server, token) as api:
        api.request("POST", f"/v1/recovery/campaigns/{campaign}/close", headers={"X-Ringfence-Reason": reason})
    out.print(f"closed {campaign}", highlight=False)


@recovery_app.command("import-keys")
def import_keys(file: Annotated[Path, typer.Argument(help="Escrow export CSV: Hostname, KeyID, RecoveryKey.")],
                reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                token: TokenOpt = None) -> None:
    """Import recovery keys, encrypted at rest with the server's RINGFENCE_RECOVERY_KEY (admin)."""
    text = _read(file, "file")
    with _client(config, server, token) as api:
        data = api.request("POST", "/v1/recovery/keys", content=text.encode(),
                           headers={"Content-Type": "text/csv", "X-Ringfence-Reason": reason})
    out.print(f"imported {data['keys']:,} recovery keys (encrypted)", highlight=False)


@recovery_app.command("run")
def run(campaign: Annotated[str, typer.Argument(help="Campaign id.")],
        host: Annotated[str, typer.Argument(help="Host id.")],
        runbooks: Annotated[Path, typer.Option(help="The campaign's runbook YAML.")] = _EXAMPLE,
        step: Annotated[int, typer.Option(help="Step number of the host's runbook (1 = first).")] = 1,
        playbooks: Annotated[Path, typer.Option(help="Directory of the playbooks.")] = Path("playbooks"),
        target: Annotated[str, typer.Option(help="ansible: the machine to run against.")] = "localhost",
        extra_var: Annotated[list[str] | None, typer.Option("--extra-var", "-e",
                                                            help="ansible: KEY=VALUE (repeatable).")] = None,
        bmc: Annotated[str, typer.Option(help="redfish: the BMC's URL, e.g. https://10.0.0.5.")] = "",
        system: Annotated[str, typer.Option(help="redfish: the system id at the BMC.")] = "",
        bmc_user: Annotated[str, typer.Option(help="redfish: user (or RINGFENCE_BMC_USER).",
                                              envvar="RINGFENCE_BMC_USER")] = "",
        bmc_password: Annotated[str, typer.Option(help="redfish: password (or RINGFENCE_BMC_PASSWORD).",
                                                  envvar="RINGFENCE_BMC_PASSWORD")] = "",
        insecure: Annotated[bool, typer.Option(help="redfish: do not verify the BMC's TLS certificate.")] = False,
        vm: Annotated[list[str] | None, typer.Option(help="cloud: name=…, resource_group=…, zone=…, project=…, "
                                                     "instance_id=… (repeatable).")] = None,
        config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Execute one runbook step for one host here; its events go into the campaign; cloud steps are dry-run."""
    from ringfence.adapters.recovery_executors import Bmc, cloud_commands, run_ansible, run_redfish  # noqa: PLC0415
    from ringfence.services.recovery import load_runbooks  # noqa: PLC0415

    _, books = load_runbooks(_read(runbooks, "runbooks"), where=str(runbooks))
    with _client(config, server, token) as api:
        mine = next((h for h in api.get(f"/v1/recovery/campaigns/{campaign}")["hosts"] if h["host_id"] == host), None)
        if mine is None:
            raise InputError.single("host", f"{shown(host)} is not in campaign {campaign}", expected="a host of the campaign")
        book = next((b for b in books if b.name == mine["runbook"]), None)
        if book is None or not 1 <= step <= len(book.steps):
            raise InputError.single("step", f"is {step}", expected=f"1..{len(book.steps) if book else 0} of runbook "
                                                                  f"{shown(mine['runbook'])}")
        st = book.steps[step - 1]
        events: list[dict[str, Any]] = []
        if st.executor == "ansible":
            extras = dict(kv.split("=", 1) for kv in (extra_var or []) if "=" in kv)
            with err.status(f"ansible-runner: {st.playbook} against {target}…"):
                result = run_ansible(st, playbooks, host, lambda e: events.append(dict(e)), target=target,
                                     extravars=extras)
        elif st.executor == "redfish":
            if not bmc or not system:
                raise InputError.single("bmc", "is missing", expected="--bmc URL and --system ID for a Redfish step")
            result = run_redfish(st, Bmc(bmc, system, bmc_user, bmc_password, verify=not insecure))
            events.append({"event": result.status, "detail": result.detail, "action": st.action})
        elif st.executor == "cloud":
            fields = dict(kv.split("=", 1) for kv in (vm or []) if "=" in kv)
            for cmd in cloud_commands(st, fields):
                out.print(" ".join(cmd), highlight=False, soft_wrap=True)
            api.post(f"/v1/recovery/campaigns/{campaign}/hosts/{host}/events",
                     {"step": st.name, "events": [{"event": "generated (dry run, not executed)"}]})
            err.print("cloud steps are printed, not run: run them, then `ringfence recovery mark … fixed`")
            return
        else:
            raise InputError.single("step", f"{shown(st.name)} is a {st.executor} step", expected="an automated step")
        api.post(f"/v1/recovery/campaigns/{campaign}/hosts/{host}/events",
                 {"step": st.name, "events": [*events, {"event": "result", "status": result.status,
                                                        "ok": result.ok, "detail": result.detail}]})
    out.print(f"{host} step {step} ({st.name}): {result.status} — {result.detail}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    """Add ``recovery`` to the main CLI."""
    app.add_typer(recovery_app, name="recovery")
