"""``ringfence``: the command-line interface.

Verbs that read or change the fleet talk to the server's API with an
operator token (``--server``/``RINGFENCE_SERVER_URL``, ``--token``/
``RINGFENCE_TOKEN``), so the server enforces roles and writes the audit log.
Local verbs (``serve``, ``db``, ``fleet generate``, ``token create --local``,
``audit verify --local``) work on the database or files directly.  Every
failure leaves through one path (:func:`main`) that prints the error with
each bad field and exits 2 for bad input, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ringfence import __version__
from ringfence.cli import assess_cli, channel_cli, notify_cli, recovery_cli, rollout_cli, sim_cli, supply_cli
from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, DbOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, err, out
from ringfence.config import Settings, load_settings
from ringfence.errors import InputError, RingfenceError

__all__ = ["app", "main"]

app = typer.Typer(name="ringfence", help="Keep one bad update from taking down a whole fleet.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
token_app = typer.Typer(help="Operator API tokens.", no_args_is_help=True)
inventory_app = typer.Typer(help="Fleet inventory import.", no_args_is_help=True)
hosts_app = typer.Typer(help="Hosts in the inventory.", no_args_is_help=True)
services_app = typer.Typer(help="Business services.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
fleet_app = typer.Typer(help="Synthetic fleets for demos, simulations and benchmarks.", no_args_is_help=True)
for sub, name in ((db_app, "db"), (token_app, "token"), (inventory_app, "inventory"), (hosts_app, "hosts"),
                  (services_app, "services"), (tenants_app, "tenants"), (audit_app, "audit"), (fleet_app, "fleet")):
    app.add_typer(sub, name=name)

rollout_cli.install(app, hosts_app)
supply_cli.install(app)  # vulns, sbom, vex, signers, components, gates; release findings/sign
assess_cli.install(app)
recovery_cli.install(app)  # recovery create/plan/show/assign/mark/reveal-key/export/report/run
sim_cli.install(app)  # simulate
channel_cli.install(app, hosts_app)  # keys, channel, enrol, remediation; hosts revoke-credential
notify_cli.install(app)  # notify apply / show / log


def _settings(config: Path | None = None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    out.print(table)


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        out.print(f"ringfence {__version__}")
        raise typer.Exit


# --- server and database -----------------------------------------------------------

@app.command()
def serve(config: ConfigOpt = None,
          host: Annotated[str | None, typer.Option(help="Listen address (RINGFENCE_HOST).")] = None,
          port: Annotated[int | None, typer.Option(help="Listen port (RINGFENCE_PORT).")] = None,
          database_url: DbOpt = None,
          demo: Annotated[bool, typer.Option("--demo/--no-demo", help=(
              "Run the demo: a fresh SQLite database under DATA_DIR/demo, a simulated fleet, a fast clock "
              "and the 'Replay 19 July 2024' button (docs/dashboard.md)."))] = False,
          demo_speed: Annotated[float, typer.Option(help="Demo clock speed-up (demo seconds per real second, "
                                                          "at most 120).")] = 60.0,
          demo_hosts: Annotated[int, typer.Option(help="Simulated hosts in the demo (10 … 5,000).")] = 2000,
          role: Annotated[str | None, typer.Option(help=(
              "all (default), api, reconciler or ingest (RINGFENCE_ROLE; docs/scaling.md). Several servers on one "
              "PostgreSQL elect one reconciler among those with role all or reconciler."))] = None,
          workers: Annotated[int | None, typer.Option(help=(
              "Server processes on this port (RINGFENCE_WORKERS; more than 1 needs PostgreSQL)."))] = None,
          ) -> None:
    """Migrate the database, create the first admin token if there is none, and serve the API and dashboard."""
    from ringfence.adapters.api import asgi  # noqa: PLC0415 - only the server needs it
    from ringfence.adapters.api.app import create_app  # noqa: PLC0415
    from ringfence.adapters.db.engine import Database  # noqa: PLC0415
    from ringfence.services.context import Clock, system_clock  # noqa: PLC0415
    from ringfence.services.tokens import ensure_admin_token  # noqa: PLC0415

    settings = _settings(config, host=host, port=port, database_url=database_url, role=role, workers=workers)
    asgi.check(settings, demo=demo)
    clock: Clock = system_clock
    if demo:
        from ringfence.demo.serve import demo_settings  # noqa: PLC0415

        settings, clock = demo_settings(settings, speed=demo_speed, hosts=demo_hosts)
    db = Database(settings.database_url)
    db.upgrade()
    from ringfence.services.audit import audit_key, use_audit_key  # noqa: PLC0415

    use_audit_key(db, audit_key(settings, create=True), clock=clock)  # the audit chain is keyed from the start
    token = ensure_admin_token(db, clock=clock)
    if token:
        err.print("[bold]First start: created an admin token. It is shown only now; store it safely.[/bold]")
        err.print(f"  export RINGFENCE_TOKEN={token}", soft_wrap=True, highlight=False)
    app_ = create_app(settings, db=db, clock=clock)
    fleet = None
    if demo:
        from ringfence.demo.serve import start_demo  # noqa: PLC0415

        fleet = start_demo(app_, db, clock, hosts=demo_hosts, console=err)
    err.print(f"ringfence {__version__} serving on http://{settings.host}:{settings.port} "
              f"(dashboard at /, API docs at /docs, database {db.dialect}, role {settings.role}, "
              f"{settings.workers} worker{'s' if settings.workers > 1 else ''})", highlight=False)
    if settings.ingest_nats_url:
        writes = " and written by this server" if settings.role in ("all", "ingest") else ""
        err.print(f"health reports go through NATS JetStream stream {settings.ingest_nats_stream}{writes}",
                  highlight=False)  # not the URL: it may carry credentials
    try:
        asgi.serve(app_, db, settings)
    finally:
        if fleet is not None:
            fleet.stop()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, database_url: DbOpt = None,
               revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create or migrate the database schema."""
    from ringfence.adapters.db.engine import Database  # noqa: PLC0415

    db = Database(_settings(config, database_url=database_url).database_url)
    db.upgrade(revision)
    out.print(f"database at revision {db.current_revision()} ({db.dialect})")


@db_app.command("current")
def db_current(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Show the schema revision and whether it is the newest."""
    from ringfence.adapters.db.engine import Database  # noqa: PLC0415

    db = Database(_settings(config, database_url=database_url).database_url)
    current, head = db.current_revision(), db.head_revision()
    out.print(f"current {current or '(empty)'}, newest {head}: "
              + ("up to date" if current == head else "run `ringfence db upgrade`"))


# --- tokens ----------------------------------------------------------------------------

@token_app.command("create")
def token_create(name: Annotated[str, typer.Option(help="Who or what will use the token.")],
                 role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")],
                 reason: ReasonOpt = "", local: Annotated[bool, typer.Option(
                     "--local", help="Write to the database directly (recovery when no admin token is at hand).")] = False,
                 config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    if local:
        import getpass  # noqa: PLC0415

        from ringfence.adapters.db.engine import Database  # noqa: PLC0415
        from ringfence.domain.access import Role  # noqa: PLC0415
        from ringfence.services.audit import audit_key, use_audit_key  # noqa: PLC0415
        from ringfence.services.context import Actor, system_clock  # noqa: PLC0415
        from ringfence.services.tokens import create_token  # noqa: PLC0415

        settings = _settings(config, database_url=database_url)
        db = Database(settings.database_url)
        use_audit_key(db, audit_key(settings), clock=system_clock)
        actor = Actor(name=f"local:{getpass.getuser()}", role=Role.ADMIN, source="local")
        plaintext, record = create_token(db, name=name, role=role, actor=actor, clock=system_clock, reason=reason)
        result = {"token": plaintext, "id": record.id, "name": record.name, "role": record.role.value}
    else:
        with _client(config, server, token) as api:
            result = api.post("/v1/tokens", {"name": name, "role": role, "reason": reason})
    if as_json:
        _print_json(result)
        return
    err.print(f"token {result['id']} {result['name']!r} ({result['role']}); shown only now:")
    out.print(result["token"], highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """List tokens (never the tokens themselves)."""
    with _client(config, server, token) as api:
        data = api.get("/v1/tokens", include_revoked=include_revoked)
    if as_json:
        _print_json(data)
        return
    _table("tokens", ["id", "name", "role", "prefix", "created", "by", "last used", "state"],
           [[t["id"], t["name"], t["role"], t["prefix"] + "…", t["created_at"][:19], t["created_by"],
             (t["last_used_at"] or "")[:19], "active" if t["active"] else "revoked"] for t in data["tokens"]])


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")],
                 reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                 token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a token; it stops working at once."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/tokens/{token_id}/revoke", {"reason": reason})
    if as_json:
        _print_json(data)
    else:
        out.print(f"token {data['id']} {data['name']!r} revoked")


@app.command()
def whoami(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
           as_json: JsonOpt = False) -> None:
    """Show the name and role of the token in use."""
    with _client(config, server, token) as api:
        data = api.get("/v1/whoami")
    if as_json:
        _print_json(data)
    else:
        out.print(f"{data['name']} ({data['role']})")


# --- inventory -------------------------------------------------------------------------

@inventory_app.command("import")
def inventory_import(files: Annotated[list[Path], typer.Argument(help="CSV, JSON, JSONL, YAML files or osquery dirs.")],
                     reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                     token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Import inventory files: all of them or nothing; re-importing a host updates it."""
    from ringfence.cli.upload import prepare_uploads  # noqa: PLC0415

    uploads, cleanup = prepare_uploads(files)
    try:
        with _client(config, server, token) as api, err.status(f"importing {len(files)} file(s)…"):
            data = api.upload("/v1/inventory", uploads, reason=reason)
    finally:
        cleanup()
    if as_json:
        _print_json(data)
        return
    out.print(f"imported: {data['hosts_inserted']} new and {data['hosts_updated']} updated hosts, "
              f"{data['services_inserted']} new and {data['services_updated']} updated services, "
              f"{data['tenants_created']} new tenants (audit entry {data['audit_seq']})")


@hosts_app.command("list")
def hosts_list(where: Annotated[str, typer.Option(help="Selector, e.g. 'os_family=windows and "
                                                       "agent.vendor=CrowdStrike'.")] = "",
               limit: Annotated[int, typer.Option(help="Hosts per page.")] = 100,
               all_pages: Annotated[bool, typer.Option("--all", help="Fetch every page.")] = False,
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """List hosts matching a selector."""
    hosts: list[dict[str, Any]] = []
    with _client(config, server, token) as api:
        after = ""
        while True:
            page = api.get("/v1/hosts", where=where, limit=limit, after=after or None)
            hosts.extend(page["hosts"])
            after = page["next_after"]
            if not all_pages or not after:
                break
    if as_json:
        _print_json({"hosts": hosts, "total": page["total"], "next_after": page["next_after"]})
        return
    _table(f"{len(hosts)} of {page['total']} hosts" + (f" where {where}" if where else ""),
           ["id", "hostname", "tenant", "os", "build", "site", "tier", "kernel agents"],
           [[h["id"], h["hostname"], h["tenant"], h["os_family"], h["os_build"], h["site"], h["tier"],
             ", ".join(f"{a['vendor']} {a['version']}" for a in h["agents"] if a["kernel_mode"])] for h in hosts])
    if page["next_after"] and not all_pages:
        err.print(f"more: --all, or the API's after={page['next_after']}", highlight=False)


@hosts_app.command("show")
def hosts_show(host_id: str, config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Show one host."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/hosts/{host_id}")
    if as_json:
        _print_json(data)
        return
    for key, raw in data.items():
        value = raw
        if key == "agents":
            value = "; ".join(f"{a['vendor']}/{a['product']} {a['version']}"
                              + (" [kernel]" if a["kernel_mode"] else "") + (" [boot-start]" if a["boot_start"] else "")
                              for a in value)
        out.print(f"[bold]{key:>22}[/bold]  {value}", highlight=False)


@services_app.command("list")
def services_list(tenant: Annotated[str, typer.Option(help="Only this tenant's services.")] = "",
                  config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                  as_json: JsonOpt = False) -> None:
    """List business services with redundancy and dependencies."""
    with _client(config, server, token) as api:
        data = api.get("/v1/services", tenant=tenant or None)
    if as_json:
        _print_json(data)
        return
    _table(f"{len(data['services'])} services", ["id", "tenant", "tier", "RTO min", "groups (k of n)", "depends on"],
           [[s["id"], s["tenant"], s["tier"], s.get("rto_minutes", ""),
             ", ".join(f"{g['name']} {g['min_healthy']}/{len(g.get('hosts', [])) or 'sel'}"
                       for g in s["redundancy_groups"]), ", ".join(s["depends_on"])] for s in data["services"]])


@tenants_app.command("list")
def tenants_list(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """List tenants."""
    with _client(config, server, token) as api:
        data = api.get("/v1/tenants")
    if as_json:
        _print_json(data)
        return
    _table("tenants", ["id", "name"], [[t["id"], t["name"]] for t in data["tenants"]])


# --- audit -----------------------------------------------------------------------------

@audit_app.command("list")
def audit_list(limit: Annotated[int, typer.Option(help="How many entries.")] = 50,
               action: Annotated[str, typer.Option(help="Only this action, e.g. inventory.import.")] = "",
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Show the newest audit entries."""
    with _client(config, server, token) as api:
        data = api.get("/v1/audit", limit=limit, action=action or None)
    if as_json:
        _print_json(data)
        return
    _table("audit log", ["seq", "at", "actor", "action", "target", "from", "reason"],
           [[e["seq"], e["at"][:19], e["actor"], e["action"], e["target"], e["source"], e["reason"]]
            for e in data["entries"]])


def _fetch_checkpoint(url: str, token: str) -> str:
    """The text at ``url`` (the server's /v1/audit/checkpoint or any copy); an InputError when it cannot be read."""
    import httpx  # noqa: PLC0415

    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=30)
    except httpx.HTTPError as e:
        raise InputError.single("against", f"{url} cannot be fetched: {e}", expected="a reachable URL") from e
    if response.status_code != 200:
        raise InputError.single("against", f"{url} answered {response.status_code}",
                                expected="200 with a signed checkpoint (a viewer token for /v1/audit/checkpoint)")
    return response.text


@audit_app.command("verify")
def audit_verify(local: Annotated[bool, typer.Option(
                     "--local", help="Read the database directly instead of asking the server.")] = False,
                 against: Annotated[str | None, typer.Option(
                     help="A signed checkpoint: a FILE (from `audit checkpoint`, or a cohort manifest of the channel "
                          "holding one) or a URL (e.g. SERVER/v1/audit/checkpoint, or a mirror's copy): prove nothing "
                          "up to it was changed, dropped or appended (implies --local).")] = None,
                 public_key: Annotated[Path | None, typer.Option(
                     help="The checkpoint signer's public key (default: audit-checkpoint.pub of the settings).")] = None,
                 config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Check the audit log's keyed hash chain; exit 1 naming the first entry changed, deleted, reordered or forged."""
    if local or against is not None:
        from ringfence.adapters.db.engine import Database  # noqa: PLC0415
        from ringfence.services.audit import audit_key, parse_checkpoint, read_checkpoint, verify  # noqa: PLC0415

        settings = _settings(config, database_url=database_url)
        checkpoint = None
        if against is not None and against.startswith(("http://", "https://")):
            checkpoint = parse_checkpoint(_fetch_checkpoint(against, token or settings.token), against, settings,
                                          public_key_file=public_key)
        elif against is not None:
            checkpoint = read_checkpoint(Path(against), settings, public_key_file=public_key)
        db = Database(settings.database_url)
        try:
            data: dict[str, Any] = verify(db, key=audit_key(settings), checkpoint=checkpoint).as_dict()
        finally:
            db.dispose()
    else:
        with _client(config, server, token) as api:
            data = api.get("/v1/audit/verify")
    if as_json:
        _print_json(data)
    elif data["ok"]:
        upto = f"; nothing up to checkpoint {data['checkpoint_seq']} changed, dropped or appended" \
            if data.get("checkpoint_seq") is not None else ""
        out.print(f"audit log intact: {data['entries']} entries, chain verified{upto}")
    else:
        err.print(f"[bold red]audit log broken[/bold red] at entry {data['broken']['seq']} "
                  f"({data['broken']['kind']}): {data['broken']['message']}", highlight=False)
    if not data["ok"]:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(out_path: Annotated[Path | None, typer.Option(
                         "--out", help="File or directory to write (default: audit_checkpoint_dir).")] = None,
                     config: ConfigOpt = None, database_url: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Verify the chain and write a signed checkpoint of its head (keep copies away from the database)."""
    from ringfence.adapters.db.engine import Database  # noqa: PLC0415
    from ringfence.services.audit import audit_key, write_checkpoint  # noqa: PLC0415
    from ringfence.services.context import system_clock  # noqa: PLC0415

    settings = _settings(config, database_url=database_url)
    db = Database(settings.database_url)
    try:
        path, doc = write_checkpoint(db, settings, clock=system_clock, out=out_path, key=audit_key(settings))
    finally:
        db.dispose()
    if as_json:
        _print_json({"path": str(path), **doc})
    else:
        out.print(f"checkpoint of entry {doc['seq']} written to {path}", highlight=False)


# --- fleet -----------------------------------------------------------------------------

@fleet_app.command("generate")
def fleet_generate(hosts: Annotated[int, typer.Option(help="How many hosts.")],
                   out_path: Annotated[Path, typer.Option("--out", help="Output file: .json, .jsonl or .csv.")],
                   seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same fleet.")] = 0,
                   tenants: Annotated[int | None, typer.Option(help="Number of tenants (default: by size).")] = None,
                   ) -> None:
    """Generate a realistic synthetic fleet (tenants, hosts, services) to a file."""
    from ringfence.adapters.inventory.files import write_inventory  # noqa: PLC0415
    from ringfence.runtime import collector_paused  # noqa: PLC0415
    from ringfence.sim.fleetgen import generate_fleet  # noqa: PLC0415

    if out_path.suffix.lower() not in (".json", ".jsonl", ".ndjson", ".csv"):
        raise InputError.single("out", f"has suffix {out_path.suffix or '(none)'!r}", expected=".json, .jsonl or .csv")
    with err.status(f"generating {hosts:,} hosts…"), collector_paused():
        inv = generate_fleet(hosts, seed, tenants=tenants)
    with err.status(f"writing {out_path}…"):
        written = write_inventory(inv, out_path)
    out.print(f"{len(inv.hosts):,} hosts, {len(inv.services):,} services, {len(inv.tenants)} tenants → "
              + ", ".join(str(p) for p in written), highlight=False)


def main() -> None:
    """Entry point: usage errors exit 2 (Click); every RingfenceError leaves here with its fields listed."""
    try:
        app()
    except RingfenceError as e:
        if isinstance(e, InputError) and e.issues:
            err.print(f"[bold red]error:[/bold red] {e.headline}", highlight=False, soft_wrap=True)
            for issue in e.issues[:50]:
                err.print(f"  - {issue}", highlight=False, soft_wrap=True)
        else:
            err.print(f"[bold red]error:[/bold red] {e.message}", highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(e, InputError) else 1)
