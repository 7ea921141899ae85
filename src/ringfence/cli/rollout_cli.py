"""CLI verbs for releases, plans, tenant policies, rollouts and the kill switch (all over the HTTP API)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, err, out
from ringfence.domain.words import state_label, state_word
from ringfence.errors import InputError

__all__ = ["install"]


release_app = typer.Typer(help="Releases: versions of a product with their artifacts.", no_args_is_help=True)
plan_app = typer.Typer(help="Plans: waves, change windows, freezes, budgets, gate (YAML).", no_args_is_help=True)
policy_app = typer.Typer(help="Tenant policies: ring, delay and pin per tenant and host group.", no_args_is_help=True)
rollout_app = typer.Typer(help="Rollouts: a release spreading through the fleet under a plan.", no_args_is_help=True)


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- releases ---------------------------------------------------------------------------------

@release_app.command("create")
def release_create(product: Annotated[str, typer.Option(help="Product name, e.g. falcon-content.")],
                   version: Annotated[str, typer.Option(help="Version, e.g. 291.")],
                   kind: Annotated[str, typer.Option(help="agent, content, os-patch or app.")],
                   platform: Annotated[list[str], typer.Option(help="windows, linux or macos (repeatable).")],
                   file: Annotated[list[Path], typer.Option(help="Artifact file (repeatable).")],
                   sbom: Annotated[Path | None, typer.Option(help="SBOM (CycloneDX JSON/XML, SPDX JSON).")] = None,
                   content_schema: Annotated[Path | None, typer.Option(
                       help="Agent releases: JSON Schema of the content this agent version accepts.")] = None,
                   for_agent: Annotated[str, typer.Option(
                       help="Content releases: the agent product that loads this content.")] = "",
                   reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Create a release; artifacts are stored content-addressed (SHA-256)."""
    missing = [f for f in [*file, *(p for p in (sbom, content_schema) if p is not None)] if not f.is_file()]
    if missing:
        raise InputError.single("file", f"{missing[0]} does not exist", expected="a path to an artifact")
    handles = [f.open("rb") for f in file]
    try:
        with _client(config, server, token) as api:
            parts: list[tuple[str, Any]] = [("files", (f.name, h, "application/octet-stream"))
                                            for f, h in zip(file, handles, strict=True)]
            parts += [(k, (p.name, p.read_bytes(), "application/octet-stream"))  # supply chain (optional)
                      for k, p in (("sbom", sbom), ("content_schema", content_schema)) if p is not None]
            data = api.request("POST", "/v1/releases", files=parts,
                               data={"product": product, "version": version, "kind": kind, "platforms": platform,
                                     "reason": reason, "for_agent": for_agent})
    finally:
        for h in handles:
            h.close()
    if as_json:
        _json(data)
        return
    out.print(f"release {data['id']} ({data['kind']}, {', '.join(data['platforms'])}): "
              + ", ".join(f"{a['name']} sha256:{a['sha256'][:16]}…" for a in data["artifacts"]), highlight=False)


@release_app.command("list")
def release_list(product: Annotated[str, typer.Option(help="Only this product.")] = "", config: ConfigOpt = None,
                 server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List releases, newest first."""
    with _client(config, server, token) as api:
        data = api.get("/v1/releases", product=product or None)
    if as_json:
        _json(data)
        return
    table = Table(title="releases")
    for col in ("id", "kind", "platforms", "artifacts", "created", "by"):
        table.add_column(col)
    for r in data["releases"]:
        table.add_row(r["id"], r["kind"], ",".join(r["platforms"]), str(len(r["artifacts"])),
                      (r["created_at"] or "")[:19], r["created_by"])
    out.print(table)


@release_app.command("show")
def release_show(release_id: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Show one release and its artifacts."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/releases/{release_id}")
    if as_json:
        _json(data)
        return
    out.print(f"{data['id']} ({data['kind']}) for {', '.join(data['platforms'])}, created {data['created_at']} "
              f"by {data['created_by']}", highlight=False)
    for a in data["artifacts"]:
        out.print(f"  {a['name']}  {a['size']:,} bytes  sha256:{a['sha256']}", highlight=False)


# --- plans ------------------------------------------------------------------------------------

@plan_app.command("apply")
def plan_apply(file: Annotated[Path, typer.Option("-f", "--file", help="Plan YAML (see examples/plans/).")],
               reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Validate a plan and store it under its name."""
    if not file.is_file():
        raise InputError.single("file", f"{file} does not exist", expected="a plan YAML file")
    with _client(config, server, token) as api:
        data = api.request("PUT", "/v1/plans", content=file.read_bytes(),
                           headers={"content-type": "application/yaml", "x-ringfence-reason": reason})
    if as_json:
        _json(data)
    else:
        out.print(f"plan {data['name']} applied (version {data['version']}, {len(data['plan']['waves'])} waves)")


@plan_app.command("list")
def plan_list(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
              as_json: JsonOpt = False) -> None:
    """List plans."""
    with _client(config, server, token) as api:
        data = api.get("/v1/plans")
    if as_json:
        _json(data)
        return
    for p in data["plans"]:
        out.print(f"{p['name']}  version {p['version']}  by {p['updated_by']}", highlight=False)


@plan_app.command("show")
def plan_show(name: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Show a plan as JSON."""
    with _client(config, server, token) as api:
        _json(api.get(f"/v1/plans/{name}"))


@plan_app.command("check")
def plan_check(name: Annotated[str, typer.Argument(help="Plan name.")],
               release: Annotated[str, typer.Option(help="Release id, product@version.")],
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Wave sizes for a release under a plan; lists strata the first wave misses (exit 1 if any).

    Advice, not a gate: ``rollout start`` does not refuse a plan whose first wave misses strata; the health gate
    then has no canary evidence for them until a later wave reaches them.
    """
    with _client(config, server, token) as api:
        data = api.get(f"/v1/plans/{name}/check", release=release)
    missing = data["missing_in_first_wave"]
    if as_json:
        _json(data)
    else:
        out.print(f"plan {name} for {release}: waves {data['wave_sizes']}, {data['strata']} strata", highlight=False)
        if missing:
            err.print(f"[bold]the first wave misses {len(missing)} of {data['strata']} strata[/bold] "
                      "(OS build | hardware model | kernel-mode agents):", highlight=False)
            for s in missing[:_SHOWN]:
                err.print(f"  - {s}", highlight=False, soft_wrap=True)
            if len(missing) > _SHOWN:
                err.print(f"  … and {len(missing) - _SHOWN} more (--json lists them all)", highlight=False)
            err.print("This is advice: `ringfence rollout start` does not refuse it, but the gate sees no canary "
                      "host of these strata until a later wave reaches them. To cover them, raise the first "
                      "wave's count or fraction in the plan.", highlight=False)
        else:
            out.print("the first wave covers every stratum")
    if missing:
        raise typer.Exit(1)


#: How many missed strata ``plan check`` lists before "… and N more".
_SHOWN = 10


# --- policies ---------------------------------------------------------------------------------

@policy_app.command("set")
def policy_set(tenant: Annotated[str, typer.Option(help="Tenant id.")],
               ring: Annotated[str, typer.Option(help="early, general or pause.")] = "general",
               delay_hours: Annotated[float, typer.Option(help="Receive releases this many hours late.")] = 0.0,
               pin: Annotated[str, typer.Option(help="latest, n-1 or exact:VERSION.")] = "latest",
               product: Annotated[str, typer.Option(help="Product, or * for all.")] = "*",
               host_group: Annotated[str, typer.Option(help="Selector for a group of the tenant's hosts.")] = "",
               reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Set a tenant's ring, delay and pin (for a product and host group)."""
    body = {"tenant": tenant, "ring": ring, "delay_hours": delay_hours, "pin": pin, "product": product,
            "host_group": host_group, "reason": reason}
    with _client(config, server, token) as api:
        data = api.request("PUT", "/v1/policies", json=body)
    if as_json:
        _json(data)
    else:
        out.print(f"policy for {tenant}{' / ' + host_group if host_group else ''} ({product}): ring {ring}, "
                  f"delay {delay_hours} h, pin {pin}", highlight=False)


@policy_app.command("list")
def policy_list(tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", config: ConfigOpt = None,
                server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List tenant policies."""
    with _client(config, server, token) as api:
        data = api.get("/v1/policies", tenant=tenant or None)
    if as_json:
        _json(data)
        return
    for p in data["policies"]:
        out.print(f"{p['tenant']}  group={p['host_group'] or '*'}  product={p['product']}  ring={p['ring']}  "
                  f"delay={p['delay_hours']}h  pin={p['pin']}", highlight=False)


# --- rollouts -----------------------------------------------------------------------------------

def _print_status(data: dict[str, Any]) -> None:
    state = state_label(data["state"], data["message"])  # the real reason: a change window, offline hosts, a budget
    out.print(f"[bold]{data['id']}[/bold]  {data['release']} under plan {data['plan']}: "
              f"[bold]{state}[/bold] (wave {data['wave']}), {data['exposed']:,} of {data['hosts']:,} "
              "hosts exposed", highlight=False)
    out.print(f"  {data['message']}", highlight=False, soft_wrap=True, markup=False)
    if data.get("halt_reason") and data["halt_reason"] not in data["message"]:  # rolling back: why it halted
        out.print(f"  halted because: {data['halt_reason']}", highlight=False, soft_wrap=True, markup=False)
    for w in data["waves"]:
        approval = " needs approval" + (f" (approved by {w['approved_by']})" if w["approved_by"] else "") \
            if w["needs_approval"] else ""
        out.print(f"  wave {w['index']} {w['name']:<10} {state_word(w['state']):<12} {w['exposed']:>7,} / {w['hosts']:<7,}"
                  f"{approval}", highlight=False)
    for p in data["policies_holding"]:
        out.print(f"  held by policy: tenant {p['tenant']} ring={p['ring']} pin={p['pin']} "
                  f"delay={p['delay_hours']}h", highlight=False)
    if data.get("gates"):  # release gates (supply chain), run at start
        from ringfence.cli.supply_cli import print_gates  # noqa: PLC0415

        print_gates(data["gates"])


@rollout_app.command("start")
def rollout_start(release: Annotated[str, typer.Option(help="Release id, product@version.")],
                  plan: Annotated[str, typer.Option(help="Plan name.")] = "default",
                  create_only: Annotated[bool, typer.Option("--create-only", help="Create without starting.")] = False,
                  quiet: Annotated[bool, typer.Option("--quiet", "-q", help=(
                      "Print only the rollout id, for scripts: R=$(ringfence rollout start … -q). It is printed as "
                      "soon as the rollout exists, so a start the release gates refuse still names it."))] = False,
                  reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                  as_json: JsonOpt = False) -> None:
    """Create a rollout of a release under a plan and start it."""
    with _client(config, server, token) as api:
        if quiet:
            data = api.post("/v1/rollouts", {"release": release, "plan": plan, "start": False, "reason": reason})
            out.print(data["id"], highlight=False)
            sys.stdout.flush()
            if not create_only:
                api.post(f"/v1/rollouts/{data['id']}/start", {"reason": reason})
            return
        data = api.post("/v1/rollouts", {"release": release, "plan": plan, "start": not create_only, "reason": reason})
    if as_json:
        _json(data)
    else:
        _print_status(data)


@rollout_app.command("list")
def rollout_list(active: Annotated[bool, typer.Option(help="Only rollouts that are not finished.")] = False,
                 config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """List rollouts, newest first: state in words with its real reason, the latest decision wrapped in its column."""
    with _client(config, server, token) as api:
        data = api.get("/v1/rollouts", active=active)
    if as_json:
        _json(data)
        return
    table = Table(box=None, show_edge=False, pad_edge=False)
    table.add_column("rollout", no_wrap=True)
    table.add_column("release", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("wave", justify="right", no_wrap=True)
    table.add_column("latest decision", ratio=1, overflow="fold", min_width=30)
    for r in data["rollouts"]:
        table.add_row(r["id"], r["release"], state_label(r["state"], r["message"]), str(r["wave"]),
                      Text(r["message"]))  # the engine's words as text: "[olga]" is not a style tag
    out.print(table, highlight=False)


@rollout_app.command("status")
def rollout_status(rollout_id: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Show a rollout's state, waves, holds and the gate's latest word."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/rollouts/{rollout_id}")
    if as_json:
        _json(data)
    else:
        _print_status(data)


@rollout_app.command("explain")
def rollout_explain(rollout_id: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                    as_json: JsonOpt = False) -> None:
    """Print the decision history with reasons and the numbers behind them."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/rollouts/{rollout_id}/decisions")
    if as_json:
        _json(data)
        return
    for d in data["decisions"]:
        out.print(f"{d['at'][:19]}  {state_word(d['state']):<20} wave {d['wave']}  {d['message']}  [{d['actor']}]",
                  highlight=False, soft_wrap=True, markup=False)  # "[olga]" is text, not a rich style tag


def _op(op: str) -> Any:
    def run(rollout_id: Annotated[str, typer.Argument(help="Rollout id.")], reason: ReasonOpt = "",
            config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
            as_json: JsonOpt = False) -> None:
        with _client(config, server, token) as api:
            data = api.post(f"/v1/rollouts/{rollout_id}/{op}", {"reason": reason})
        if as_json:
            _json(data)
        else:
            _print_status(data)

    run.__doc__ = {
        "pause": "Pause a rollout: no new exposure until resumed.",
        "resume": "Resume a paused or halted rollout.",
        "approve": "Approve the current wave (four-eyes: not by whoever started the rollout); on hold, promote it.",
        "extend": "Extend the bake of a wave on hold by its max_bake_minutes.",
        "halt": "Halt a rollout: no new exposure; takes effect at the agents' next poll.",
        "rollback": "Roll back: every exposed host goes back to its last known good version.",
        "abort": "Abort: no further exposure; exposed hosts keep what they have.",
    }[op]
    return run


def install(app: typer.Typer, hosts_app: typer.Typer) -> None:
    """Add the verbs to the main CLI."""
    app.add_typer(release_app, name="release")
    app.add_typer(plan_app, name="plan")
    app.add_typer(policy_app, name="policy")
    app.add_typer(rollout_app, name="rollout")
    for op in ("pause", "resume", "approve", "extend", "halt", "rollback", "abort"):
        rollout_app.command(op)(_op(op))

    @app.command("killswitch")
    def killswitch(product: Annotated[str, typer.Argument(help="Product whose rollouts all halt.")],
                   release: Annotated[bool, typer.Option("--release", help="Disengage the switch.")] = False,
                   yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
                   reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                   token: TokenOpt = None, as_json: JsonOpt = False) -> None:
        """Halt every rollout of a product and send its hosts back to their last known good version."""
        if not release and not yes and sys.stdin.isatty() and not typer.confirm(
                f"Halt every rollout of {product} and roll its hosts back?"):
            raise typer.Abort
        with _client(config, server, token) as api:
            data = api.request("POST", f"/v1/killswitch/{product}", params={"release": release},
                               json={"reason": reason})
        if as_json:
            _json(data)
        elif release:
            out.print(f"kill switch for {product} released")
        else:
            out.print(f"kill switch for {product} engaged; halted {len(data['halted_rollouts'])} rollouts: "
                      + ", ".join(data["halted_rollouts"]), highlight=False)

    @hosts_app.command("desired")
    def hosts_desired(host_id: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                      as_json: JsonOpt = False) -> None:
        """What each product should be on a host, and why."""
        with _client(config, server, token) as api:
            data = api.get(f"/v1/hosts/{host_id}/desired")
        if as_json:
            _json(data)
            return
        for product, d in data["products"].items():
            out.print(f"{product}: {d['version'] or '(none)'}  — {d['reason']}", highlight=False)

    @hosts_app.command("credential")
    def hosts_credential(host_id: str, reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                         token: TokenOpt = None, as_json: JsonOpt = False) -> None:
        """Issue a host credential (printed once) with which that host reports health."""
        with _client(config, server, token) as api:
            data = api.request("POST", f"/v1/hosts/{host_id}/credentials", headers={"x-ringfence-reason": reason})
        if as_json:
            _json(data)
        else:
            out.print(data["credential"], highlight=False, soft_wrap=True)
