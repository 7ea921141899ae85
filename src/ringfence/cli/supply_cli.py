"""CLI verbs for the supply chain: advisories, SBOMs, VEX, findings, signers and signatures, gate policy, overrides.

Everything goes through the HTTP API except ``signers keygen`` and the signing
half of ``release sign``: private keys never leave this machine, only the
signatures are uploaded.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported without __all__

from ringfence.cli.client import ApiClient, client_from_options
from ringfence.cli.options import ConfigOpt, JsonOpt, ReasonOpt, ServerOpt, TokenOpt, err, out
from ringfence.errors import InputError

__all__ = ["install"]


vulns_app = typer.Typer(help="Vulnerability advisories (OSV), imported for offline matching.", no_args_is_help=True)
sbom_app = typer.Typer(help="SBOMs of releases (CycloneDX JSON/XML, SPDX JSON).", no_args_is_help=True)
vex_app = typer.Typer(help="VEX statements (CycloneDX VEX, OpenVEX) that waive findings.", no_args_is_help=True)
signers_app = typer.Typer(help="Trusted release signers and their ed25519 keys.", no_args_is_help=True)
components_app = typer.Typer(help="Components in releases' SBOMs.", no_args_is_help=True)
gates_app = typer.Typer(help="Release gates run before wave 0.", no_args_is_help=True)
gate_policy_app = typer.Typer(help="The release-gate policy (YAML).", no_args_is_help=True)

_OSV_SUFFIXES = (".json", ".yaml", ".yml")


def _client(config: Path | None, server: str | None, token: str | None) -> ApiClient:
    return client_from_options(config, server, token)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError.single("file", f"{path} does not exist", expected=what)
    return path.read_bytes()


def _progress() -> Progress:
    # Off when stderr is not a terminal: a transient bar there leaves only blank lines behind.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def _bundle(paths: list[Path], tmp: Path) -> list[Path]:
    """Files as they are; each directory's OSV records packed into one zip (with a progress bar)."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError("vulns import rejected, nothing was changed",
                         [InputError.single("path", f"{p} does not exist", expected="an OSV file, directory or all.zip")
                          .issues[0] for p in missing])
    uploads: list[Path] = []
    for k, path in enumerate(paths):
        if not path.is_dir():
            uploads.append(path)
            continue
        records = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _OSV_SUFFIXES)
        target = tmp / f"{k:03d}-{path.name or 'osv'}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive, _progress() as bar:
            task = bar.add_task(f"packing {path}", total=len(records))
            for rec in records:
                archive.write(rec, rec.relative_to(path).as_posix())
                bar.advance(task)
        uploads.append(target)
    return uploads


# --- vulns ---------------------------------------------------------------------------------------------

@vulns_app.command("import")
def vulns_import(paths: Annotated[list[Path], typer.Argument(help="OSV JSON/YAML files, directories or all.zip.")],
                 reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Import OSV records; all or nothing; re-importing a record replaces it."""
    with tempfile.TemporaryDirectory(prefix="ringfence-vulns-") as tmp:
        uploads = _bundle(paths, Path(tmp))
        with _client(config, server, token) as api, _progress() as bar:
            task = bar.add_task(f"uploading {len(uploads)} files and importing", total=None)
            data = api.upload("/v1/vulns/import", uploads, reason=reason)
            bar.update(task, total=1, completed=1)
    if as_json:
        _json(data)
        return
    out.print(f"imported {data['records']:,} advisories ({data['inserted']:,} new, {data['updated']:,} updated, "
              f"{data['withdrawn']:,} withdrawn); generation {data['generation']}", highlight=False)
    for dupe in data.get("duplicates", []):
        out.print(f"  duplicate id {dupe['id']}: {dupe['records']} records ({', '.join(dupe['sources'])}); "
                  "the last one was kept", highlight=False)
    for bad in data.get("not_evaluable", []):
        out.print(f"  not evaluable {bad['id']} ({bad['source']}): {'; '.join(bad['problems'])}", highlight=False)


@vulns_app.command("where")
def vulns_where(vuln_id: Annotated[str, typer.Argument(help="Advisory id or alias: CVE-…, GHSA-…, PYSEC-….")],
                config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
    """Releases whose SBOM contains an affected component, and the hosts running them by tenant and service."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/vulns/{vuln_id}/where")
    if as_json:
        _json(data)
        return
    for a in data["advisories"]:
        note = " (withdrawn: never matches)" if a["withdrawn"] else ""
        out.print(f"{a['id']} {('aka ' + ', '.join(a['aliases'])) if a['aliases'] else ''} [{a['severity']}]{note}",
                  highlight=False)
    if not data["releases"]:
        out.print("no release's SBOM contains an affected component")
    for r in data["releases"]:
        out.print(f"release {r['release']}: {len(r['hosts'])} hosts", highlight=False)
        for c in r["components"]:
            out.print(f"  {c['name']} {c['version']} ({c['purl'] or 'no purl'}) — fixed in {c['fixed'] or 'no fix'}",
                      highlight=False)
    _print_by_tenant(data["by_tenant"])


def _print_by_tenant(by_tenant: dict[str, dict[str, list[str]]]) -> None:
    for tenant, services in by_tenant.items():
        out.print(f"tenant {tenant}:", highlight=False)
        for service, hosts in services.items():
            shown = ", ".join(hosts[:8]) + (f" … (+{len(hosts) - 8})" if len(hosts) > 8 else "")
            out.print(f"  {service}: {len(hosts)} hosts ({shown})", highlight=False)


@components_app.command("where")
def components_where(purl: Annotated[str, typer.Argument(help="Package URL, with or without @version.")],
                     config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                     as_json: JsonOpt = False) -> None:
    """Which releases contain this component and which hosts run them."""
    with _client(config, server, token) as api:
        data = api.get("/v1/components/where", purl=purl)
    if as_json:
        _json(data)
        return
    out.print(f"{data['query']}: {len(data['releases'])} releases, {data['hosts']} hosts", highlight=False)
    for r in data["releases"]:
        versions = ", ".join(sorted({c["version"] for c in r["components"]}))
        out.print(f"  release {r['release']} ({versions}): {len(r['hosts'])} hosts", highlight=False)
    _print_by_tenant(data["by_tenant"])


# --- SBOMs and findings ---------------------------------------------------------------------------------------

def _print_incomplete(items: list[dict[str, Any]]) -> None:
    if items:
        out.print(f"{len(items)} incomplete components (kept, cannot all be matched):", highlight=False)
        for c in items[:50]:
            out.print(f"  {c['name']} {c['version'] or '(no version)'} {c['purl'] or '(no purl)'}: "
                      f"{', '.join(c['problems'])}", highlight=False)


@sbom_app.command("import")
def sbom_import(release: Annotated[str, typer.Argument(help="Release id, product@version.")],
                file: Annotated[Path, typer.Argument(help="CycloneDX JSON/XML or SPDX JSON.")],
                reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
    """Attach an SBOM to a release (validated; replaces an earlier one)."""
    data = _read(file, "an SBOM file")
    with _client(config, server, token) as api:
        result = api.request("POST", f"/v1/releases/{release}/sbom", files=[("file", (file.name, data))],
                             data={"reason": reason})
    if as_json:
        _json(result)
        return
    out.print(f"SBOM {result['format']} {result['spec_version']} attached to {release}: {result['components']:,} "
              f"components", highlight=False)
    for w in result["warnings"][:10]:
        err.print(f"  warning: {w}", highlight=False)
    _print_incomplete(result["incomplete"])


@sbom_app.command("show")
def sbom_show(release: Annotated[str, typer.Argument(help="Release id, product@version.")], config: ConfigOpt = None,
              server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show a release's SBOM: components and the incomplete ones."""
    with _client(config, server, token) as api:
        data = api.get(f"/v1/releases/{release}/sbom")
    if as_json:
        _json(data)
        return
    out.print(f"{release}: {data['format']} {data['spec_version']} {data['name']!r}, {len(data['components']):,} "
              f"components, imported {data['imported_at']} by {data['imported_by']}", highlight=False)
    table = Table()
    for col in ("name", "version", "purl"):
        table.add_column(col)
    for c in data["components"][:200]:
        table.add_row(c["name"], c["version"], c["purl"])
    out.print(table)
    _print_incomplete(data["incomplete"])


@sbom_app.command("export")
def sbom_export(release: Annotated[str, typer.Argument(help="Release id, product@version.")],
                out_file: Annotated[Path, typer.Option("--out", help="Where to write the CycloneDX 1.5 JSON.")],
                config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Write a release's stored SBOM as CycloneDX 1.5 JSON."""
    with _client(config, server, token) as api:
        doc = api.get(f"/v1/releases/{release}/sbom/cyclonedx")
    out_file.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    out.print(f"wrote {out_file} ({len(doc.get('components', []))} components)", highlight=False)


_FINDINGS_PAGE = 5000


def release_findings(release: Annotated[str, typer.Argument(help="Release id, product@version.")],
                     config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                     as_json: JsonOpt = False) -> None:
    """Known vulnerabilities in a release's SBOM (component, advisory, severity, fixed version, waived?)."""
    with _client(config, server, token) as api, _progress() as bar:
        task = bar.add_task(f"reading the findings of {release}", total=None)
        data = api.get(f"/v1/releases/{release}/findings", limit=_FINDINGS_PAGE)
        while data.get("next_offset") is not None:  # the server pages large SBOMs' findings
            bar.update(task, total=max(data["findings_total"], data["not_evaluated_total"]),
                       completed=data["next_offset"])
            page = api.get(f"/v1/releases/{release}/findings", offset=data["next_offset"], limit=_FINDINGS_PAGE)
            data["findings"] += page["findings"]
            data["not_evaluated"] += page["not_evaluated"]
            data["next_offset"] = page["next_offset"]
    for key in ("offset", "limit", "next_offset"):
        data.pop(key, None)
    if as_json:
        _json(data)
        return
    out.print(f"{len(data['findings'])} findings in {release} ({data['advisories_loaded']:,} advisories loaded)",
              highlight=False)
    for f in data["findings"]:
        c = f["component"]
        aka = f" aka {', '.join(f['aliases'][:3])}" if f["aliases"] else ""
        waived = f"  — {f['waived_by']}" if f["waived"] else ""
        out.print(f"  [{f['severity']}] {f['advisory']}{aka}: {c['name']} {c['version']}, fixed in "
                  f"{f['fixed'] or 'no fixed version'}{waived}", highlight=False, soft_wrap=True)
    if data["not_evaluated"]:
        out.print(f"{len(data['not_evaluated'])} matches could not be evaluated (e.g. "
                  f"{data['not_evaluated'][0]['reason']})", highlight=False)


def release_sign(release: Annotated[str, typer.Argument(help="Release id, product@version.")],
                 key: Annotated[Path, typer.Option("--key", help="Private key PEM from `ringfence signers keygen`.")],
                 reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Sign each artifact's SHA-256 locally with a release-signing key and upload the signatures."""
    from ringfence.services.supply_chain import artifact_payload  # noqa: PLC0415 - the payload definition

    try:
        private = load_pem_private_key(_read(key, "a private key PEM"), password=None)
        signer = CryptoSigner(private)
    except (ValueError, TypeError) as e:
        raise InputError.single("key", f"{key} cannot be used: {e}", expected="an unencrypted ed25519 private key PEM "
                                "from `ringfence signers keygen`") from e
    with _client(config, server, token) as api:
        rel = api.get(f"/v1/releases/{release}")
        sigs = []
        for a in rel["artifacts"]:
            sig = signer.sign(artifact_payload(a["sha256"]))
            sigs.append({"sha256": a["sha256"], "keyid": sig.keyid, "sig": sig.signature})
        data = api.post(f"/v1/releases/{release}/signatures", {"signatures": sigs, "reason": reason})
    if as_json:
        _json(data)
    else:
        out.print(f"signed {data['stored']} artifacts of {release} as {', '.join(data['signers'])}", highlight=False)


# --- VEX ----------------------------------------------------------------------------------------------------------

@vex_app.command("import")
def vex_import(file: Annotated[Path, typer.Argument(help="CycloneDX VEX JSON or OpenVEX JSON.")], reason: ReasonOpt = "",
               config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Import VEX statements; not_affected with a justification waives findings for the products named."""
    data = _read(file, "a VEX document")
    with _client(config, server, token) as api:
        result = api.request("POST", "/v1/vex", files=[("file", (file.name, data))], data={"reason": reason})
    if as_json:
        _json(result)
    else:
        out.print(f"{result['statements']} VEX statements from {file.name} ({result['waiving']} waive findings)",
                  highlight=False)


@vex_app.command("list")
def vex_list(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List stored VEX statements."""
    with _client(config, server, token) as api:
        data = api.get("/v1/vex")
    if as_json:
        _json(data)
        return
    for s in data["statements"]:
        out.print(f"{s['vulnerability']}  {s['status']}  {s['justification'] or '-'}  {s['product']}", highlight=False)


# --- signers ---------------------------------------------------------------------------------------------------------

@signers_app.command("keygen")
def signers_keygen(out_path: Annotated[Path, typer.Argument(metavar="OUT", help="Writes OUT (private PEM) and OUT.pub.")],
                   force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False) -> None:
    """Write a new ed25519 release-signing key pair (private key mode 0600; the .pub goes to `signers add`)."""
    pub_path = out_path.with_name(out_path.name + ".pub")
    if not force and (out_path.exists() or pub_path.exists()):
        raise InputError.single("OUT", f"{out_path} or {pub_path} exists", expected="a new path, or --force")
    signer = CryptoSigner.generate_ed25519()
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer.private_bytes)
    pub_path.write_text(json.dumps({"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}, indent=2) + "\n",
                        encoding="utf-8")
    out.print(f"wrote {out_path} (private, keep it safe) and {pub_path} (keyid {signer.public_key.keyid[:16]}…)",
              highlight=False)


@signers_app.command("add")
def signers_add(name: Annotated[str, typer.Argument(help="Signer name, e.g. release-eng.")],
                public_key_file: Annotated[Path, typer.Argument(help="OUT.pub from keygen, or a PEM public key.")],
                reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
    """Trust a release-signing public key (admin)."""
    key = _read(public_key_file, "a public key file").decode("utf-8", errors="replace")
    with _client(config, server, token) as api:
        data = api.post("/v1/signers", {"name": name, "public_key": key, "reason": reason})
    if as_json:
        _json(data)
    else:
        out.print(f"signer {data['name']} trusted (keyid {data['keyid']})", highlight=False)


@signers_app.command("list")
def signers_list(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """List trusted release signers."""
    with _client(config, server, token) as api:
        data = api.get("/v1/signers")
    if as_json:
        _json(data)
        return
    for s in data["signers"]:
        out.print(f"{s['name']}  {s['keyid']}  added by {s['added_by']} at {s['added_at']}", highlight=False)


# --- gate policy and overrides -------------------------------------------------------------------------------------------

@gate_policy_app.command("apply")
def gate_policy_apply(file: Annotated[Path, typer.Argument(help="Policy YAML (see examples/release-gates/).")],
                      reason: ReasonOpt = "", config: ConfigOpt = None, server: ServerOpt = None,
                      token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Set the release-gate policy: enforced gates, severity threshold, allow-list with expiry."""
    body = _read(file, "a gate policy YAML file")
    with _client(config, server, token) as api:
        data = api.request("PUT", "/v1/gate-policy", content=body,
                           headers={"content-type": "application/yaml", "x-ringfence-reason": reason})
    if as_json:
        _json(data)
    else:
        p = data["policy"]
        out.print(f"gate policy version {data['version']}: enforce {', '.join(p['enforce']) or 'nothing'}, threshold "
                  f"{p['severity_threshold']}, {len(p['allow'])} allow-list entries", highlight=False)


@gate_policy_app.command("show")
def gate_policy_show(config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Show the policy in force (JSON)."""
    with _client(config, server, token) as api:
        _json(api.get("/v1/gate-policy"))


def rollout_gate_override(rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
                           reason: Annotated[str, typer.Option("--reason", help="Why the failed gates may be ignored.")],
                           start: Annotated[bool, typer.Option("--start", help="Start the rollout after the override.")]
                           = False,
                           config: ConfigOpt = None, server: ServerOpt = None, token: TokenOpt = None,
                           as_json: JsonOpt = False) -> None:
    """Override a rollout's failed release gates (approver; not the rollout's creator); audited."""
    with _client(config, server, token) as api:
        data = api.post(f"/v1/rollouts/{rollout_id}/gate-override", {"reason": reason})
        started = api.post(f"/v1/rollouts/{rollout_id}/start", {"reason": reason}) if start else None
    if as_json:
        _json({"override": data, "rollout": started})
        return
    out.print(f"gates of {rollout_id} overridden by {data['approver']}: {', '.join(data['gates']) or 'none had failed'}",
              highlight=False)
    if started is not None:
        out.print(f"{rollout_id} is {started['state']}: {started['message']}", highlight=False)


def print_gates(gates: list[dict[str, Any]]) -> None:
    """The release gates of a rollout status, one line each."""
    colours = {"passed": "green", "failed": "red", "inconclusive": "yellow", "skipped": "dim"}
    for g in gates:
        colour = colours.get(g["verdict"], "white")
        mark = ""
        if not g["enforced"]:  # an advisory gate blocks nothing: never a red "failed" without saying so
            blocking = g["verdict"] in ("failed", "inconclusive")
            mark, colour = (" (advisory, not blocking)", "yellow") if blocking else (" (advisory)", colour)
        over = f" \\[overridden by {escape(g['overridden_by'])}]" if g.get("overridden_by") else ""
        out.print(f"  gate {g['gate']:<15} [{colour}]{g['verdict']}[/]{mark}{over}: "
                  f"{escape(g['message'])}", highlight=False, soft_wrap=True)


def install(app: typer.Typer) -> None:
    """Add the supply-chain verbs to the main CLI (and to `release` and `rollout`)."""
    from ringfence.cli.rollout_cli import release_app, rollout_app  # noqa: PLC0415 - shared sub-apps

    app.add_typer(vulns_app, name="vulns")
    app.add_typer(sbom_app, name="sbom")
    app.add_typer(vex_app, name="vex")
    app.add_typer(signers_app, name="signers")
    app.add_typer(components_app, name="components")
    gates_app.add_typer(gate_policy_app, name="policy")
    app.add_typer(gates_app, name="gates")
    release_app.command("findings")(release_findings)
    release_app.command("sign")(release_sign)
    # One word per idea (docs/glossary.md): the CLI verb mirrors the API's POST /v1/rollouts/{id}/gate-override;
    # the older spelling stays as a hidden alias for one release.
    rollout_app.command("gate-override")(rollout_gate_override)
    rollout_app.command("override-gates", hidden=True)(rollout_gate_override)
