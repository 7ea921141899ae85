"""CLI verbs for the signed channel: keys, channel status/export/publish, enrolment tokens, remediation.

``keys init``, ``keys rotate`` and ``channel export`` work on the server's data directory directly
(the root keys are offline and never travel over the API); the other verbs talk to the API.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, DataDirOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, err, out
from ringfence.config import load_settings
from ringfence.errors import InputError

__all__ = ["install"]


keys_app = typer.Typer(help="Signing keys of the channel (TUF roles; root kept offline).", no_args_is_help=True)
channel_app = typer.Typer(help="The signed channel agents poll (TUF metadata and targets).", no_args_is_help=True)
enrol_app = typer.Typer(help="Agent enrolment.", no_args_is_help=True)
enrol_token_app = typer.Typer(help="One-time enrolment tokens for agents.", no_args_is_help=True)
remediation_app = typer.Typer(help="Signed remediation scripts sent over the channel.", no_args_is_help=True)
enrol_app.add_typer(enrol_token_app, name="token")


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
    return load_settings(config, data_dir=data_dir).data_dir


def _clock() -> datetime:
    from ringfence.services.context import system_clock  # noqa: PLC0415

    return system_clock()


# --- keys -------------------------------------------------------------------------------------

@keys_app.command("init")
def keys_init(root_keys: Annotated[int, typer.Option("--root-keys", help="How many root keys.")] = 1,
              root_threshold: Annotated[int, typer.Option("--root-threshold", help="Root signatures needed.")] = 1,
              bins: Annotated[int, typer.Option(help="Cohort bins (delegated roles).")] = 64,
              key_dir: Annotated[Path | None, typer.Option("--dir", help="Where to write the root keys (move them "
                                                           "offline afterwards); default <data>/channel/root-keys.")]
              = None,
              timestamp_expiry: Annotated[str, typer.Option(help="Timestamp validity.")] = "1h",
              timestamp_refresh: Annotated[str, typer.Option(help="Re-sign the timestamp when older than this.")]
              = "10m",
              snapshot_expiry: Annotated[str, typer.Option(help="Snapshot validity.")] = "1d",
              targets_expiry: Annotated[str, typer.Option(help="Targets and cohort roles validity.")] = "7d",
              root_expiry: Annotated[str, typer.Option(help="Root validity.")] = "365d",
              config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Create root, targets, snapshot, timestamp and cohort keys and version 1 of the channel's metadata."""
    from ringfence.services.channel import init_keys, parse_duration  # noqa: PLC0415

    expiry = {"timestamp": parse_duration(timestamp_expiry, "timestamp_expiry"),
              "snapshot": parse_duration(snapshot_expiry, "snapshot_expiry"),
              "targets": parse_duration(targets_expiry, "targets_expiry"),
              "cohorts": parse_duration(targets_expiry, "targets_expiry"),
              "root": parse_duration(root_expiry, "root_expiry")}
    created = init_keys(_data_dir(config, data_dir), root_keys=root_keys, root_threshold=root_threshold, bins=bins,
                        key_dir=key_dir, expiry=expiry,
                        timestamp_refresh=parse_duration(timestamp_refresh, "timestamp_refresh"), clock=_clock)
    if as_json:
        _json({"root_keys": [str(p) for p in created.root_keys], "root_threshold": created.root_threshold,
               "online_keys": [str(p) for p in created.online_keys], "metadata": str(created.metadata_dir),
               "versions": created.versions})
        return
    out.print(f"channel created: {bins} cohort roles, metadata in {created.metadata_dir}", highlight=False)
    out.print(f"root keys ({created.root_threshold} of {len(created.root_keys)} needed to sign a new root):",
              highlight=False)
    for p in created.root_keys:
        out.print(f"  {p}", highlight=False)
    err.print("[bold]Move the root key files to offline storage now[/bold] (one per custodian); bring them back "
              "only for `ringfence keys rotate`. See docs/channel.md.")


@keys_app.command("rotate")
def keys_rotate(role: Annotated[str, typer.Argument(help="root, targets, snapshot, timestamp or cohorts.")],
                root_key: Annotated[list[Path] | None, typer.Option(
                    "--root-key", help="A current root key file (repeatable; default: the files in --dir).")] = None,
                key_dir: Annotated[Path | None, typer.Option("--dir", help="Root key directory.")] = None,
                root_keys: Annotated[int, typer.Option("--root-keys", help="New root keys (root rotation).")] = 0,
                root_threshold: Annotated[int | None, typer.Option("--root-threshold",
                                                                   help="New root threshold.")] = None,
                config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Replace one role's key and revoke the old one (a new root version names the new key)."""
    from ringfence.services.channel import rotate_key  # noqa: PLC0415

    versions, written = rotate_key(_data_dir(config, data_dir), role, root_key_files=list(root_key or []),
                                   clock=_clock, new_root_keys=root_keys, root_threshold=root_threshold,
                                   key_dir=key_dir)
    if as_json:
        _json({"role": role, "versions": versions, "new_keys": [str(p) for p in written]})
        return
    out.print(f"{role} key rotated; root is now version {versions['root']}, timestamp {versions['timestamp']}",
              highlight=False)
    for p in written:
        out.print(f"  new key: {p}", highlight=False)


# --- channel ----------------------------------------------------------------------------------

@channel_app.command("status")
def channel_status(local: Annotated[bool, typer.Option("--local", help="Read the data directory directly.")] = False,
                   config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                   data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Version, expiry and keys of each TUF role."""
    if local:
        from ringfence.services.channel import status  # noqa: PLC0415

        data = status(_data_dir(config, data_dir))
    else:
        with _client(config, server, token) as api:
            data = api.get("/v1/channel/status")
    if as_json:
        _json(data)
        return
    if not data["initialised"]:
        out.print("the channel has no keys yet: run `ringfence keys init` on the server")
        return
    table = Table(title=f"signed channel ({data['bins']} cohort bins)")
    for c in ("role", "version", "expires", "keys", "threshold"):
        table.add_column(c)
    for r in data["roles"]:
        table.add_row(r["role"], str(r["version"]), r["expires"], str(r["keys"]), str(r["threshold"]))
    out.print(table)


@channel_app.command("export")
def channel_export(dest: Annotated[Path, typer.Argument(help="Directory to write metadata/ and targets/ into.")],
                   config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Write the served tree for nginx or a CDN (``DEST/metadata``, ``DEST/targets``)."""
    from ringfence.services.channel import export  # noqa: PLC0415

    with err.status(f"exporting the channel to {dest}…"):
        count = export(_data_dir(config, data_dir), dest)
    out.print(f"{count} files written to {dest}/metadata and {dest}/targets", highlight=False)


@channel_app.command("publish")
def channel_publish(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                    as_json: JsonOpt = False) -> None:
    """Publish desired state now (the server also does after every reconciler pass)."""
    with _client(config, server, token) as api:
        data = api.post("/v1/channel/publish", {})
    if as_json:
        _json(data)
    else:
        out.print(f"{len(data['changed'])} cohort(s) changed, snapshot {data['snapshot_version']}, "
                  f"timestamp {data['timestamp_version']}", highlight=False)


# --- enrolment --------------------------------------------------------------------------------

@enrol_token_app.command("create")
def enrol_token_create(tenant: Annotated[str, typer.Option(help="Tenant of the hosts that enrol with it.")],
                       uses: Annotated[int, typer.Option(help="How many hosts may enrol with it.")] = 1,
                       expires: Annotated[str, typer.Option(help="Validity, e.g. 30m, 24h, 7d.")] = "24h",
                       reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                       token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Create an enrolment token; it is printed once and only its hash is stored."""
    with _client(config, server, token) as api:
        data = api.post("/v1/enrolment-tokens", {"tenant": tenant, "uses": uses, "expires": expires,
                                                 "reason": reason})
    if as_json:
        _json(data)
        return
    err.print(f"enrolment token {data['id']} for tenant {data['tenant']!r}: {data['uses']} use(s), expires "
              f"{data['expires_at']}; shown only now:", highlight=False)
    out.print(data["token"], highlight=False, soft_wrap=True)


@enrol_app.command("reenrol-token")
def enrol_reenrol_token(host_id: Annotated[str, typer.Argument(help="The host to re-enrol (it may hold a credential).")],
                        expires: Annotated[str, typer.Option(help="Validity, e.g. 30m, 24h, 7d.")] = "24h",
                        reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                        token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Issue a one-use re-enrolment token bound to one host; it is printed once."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/hosts/{host_id}/reenrolment-token", {"expires": expires, "reason": reason})
    if as_json:
        _json(data)
        return
    err.print(f"re-enrolment token {data['id']} for host {data['host_id']!r}: one use, expires "
              f"{data['expires_at']}; shown only now:", highlight=False)
    out.print(data["token"], highlight=False, soft_wrap=True)


@enrol_token_app.command("list")
def enrol_token_list(tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", config: ConfigOpt = None,
                     server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List enrolment tokens (never the tokens themselves)."""
    with _client(config, server, token) as api:
        data = api.get("/v1/enrolment-tokens", tenant=tenant or None)
    if as_json:
        _json(data)
        return
    table = Table(title="enrolment tokens")
    for c in ("id", "tenant", "prefix", "uses left", "expires", "state"):
        table.add_column(c)
    for t in data["tokens"]:
        table.add_row(str(t["id"]), t["tenant"], t["prefix"] + "…", f"{t['uses_left']}/{t['uses']}",
                      t["expires_at"][:19], "revoked" if t["revoked_at"] else "active")
    out.print(table)


@enrol_token_app.command("revoke")
def enrol_token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see `enrol token list`).")],
                       reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                       token: TokenOpt = None) -> None:
    """Revoke an enrolment token."""
    with _client(config, server, token) as api:
        api.post(f"/v1/enrolment-tokens/{token_id}/revoke", {"reason": reason})
    out.print(f"enrolment token {token_id} revoked")


def _revoke_credential(host_id: Annotated[str, typer.Argument(help="The host whose credential to revoke.")],
                       reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                       token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a host's credential: every server refuses it at once (the agent must enrol again)."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/hosts/{host_id}/credentials/revoke", {"reason": reason})
    if as_json:
        _json(data)
    else:
        out.print(f"credential of host {data['host_id']} revoked at {data['revoked_at']}", highlight=False)


# --- remediation ------------------------------------------------------------------------------

@remediation_app.command("publish")
def remediation_publish(remediation_id: Annotated[str, typer.Option("--id", help="Unique id; agents run each once.")],
                        file: Annotated[Path, typer.Option(help="The script.")],
                        reason: Annotated[str, typer.Option(help="Why hosts must run it (audit log).")],
                        selector: Annotated[str, typer.Option(help="Hosts to run it, e.g. 'os_family=windows'.")] = "",
                        product: Annotated[str, typer.Option(help="Or: every host running this product.")] = "",
                        config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                        as_json: JsonOpt = False) -> None:
    """Publish a signed remediation script to the cohorts of the matching hosts."""
    if not file.is_file():
        raise InputError.single("file", f"{file} does not exist", expected="a path to the script")
    with file.open("rb") as handle, _client(config, server, token) as api:
        data = api.request("POST", "/v1/remediations", files=[("file", (file.name, handle, "application/octet-stream"))],
                           data={"id": remediation_id, "selector": selector, "product": product, "reason": reason})
    if as_json:
        _json(data)
    else:
        out.print(f"remediation {data['id']} ({data['file']}, sha256:{data['sha256'][:16]}…) for {data['hosts']} "
                  f"host(s) matching {data['selector']!r}", highlight=False)


@remediation_app.command("list")
def remediation_list(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                     as_json: JsonOpt = False) -> None:
    """List remediation scripts."""
    with _client(config, server, token) as api:
        data = api.get("/v1/remediations")
    if as_json:
        _json(data)
        return
    table = Table(title="remediation scripts")
    for c in ("id", "file", "selector", "hosts", "by", "reason"):
        table.add_column(c)
    for r in data["remediations"]:
        table.add_row(r["id"], r["file_name"], r["selector"], str(len(r["hosts"])), r["created_by"], r["reason"])
    out.print(table)


def install(app: typer.Typer, hosts_app: typer.Typer) -> None:
    """Register ``keys``, ``channel``, ``enrol``, ``remediation`` and ``hosts revoke-credential``."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(channel_app, name="channel")
    app.add_typer(enrol_app, name="enrol")
    app.add_typer(remediation_app, name="remediation")
    hosts_app.command("revoke-credential")(_revoke_credential)
