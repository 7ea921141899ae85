"""Supply chain end to end: the documented CLI verbs against a real `ringfence serve` over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server
from tests.supply_support import LOG4J, OSV, cdx

EXAMPLE_POLICY = Path(__file__).parent.parent / "examples" / "release-gates" / "default.yaml"


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    srv = Server(tmp_path, db_url)
    yield srv
    srv.stop()


def test_cli_import_sign_find_gate_override_and_where(server: Server) -> None:
    """vulns import (dir + file) → release create --sbom → sign → findings → gates block → override → where."""
    w = server.workdir
    hosts = [{"id": f"h{i}", "hostname": f"h{i}", "tenant": "acme", "os_family": "windows", "services": ["web"],
              "agents": [{"vendor": "Acme", "product": "shop", "version": "1"}]} for i in range(4)]
    (w / "fleet.json").write_text(json.dumps({"services": [{"id": "web", "name": "Web", "tenant": "acme"}],
                                              "tenants": [{"id": "acme", "name": "ACME"}], "hosts": hosts}))
    server.cli("inventory", "import", str(w / "fleet.json"))

    imported = server.cli("vulns", "import", str(OSV / "ghsa-conversion"),
                          str(OSV / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json"), "--reason", "feed")
    assert "imported 12 advisories (12 new, 0 updated, 1 withdrawn)" in imported.stdout
    bad = server.cli("vulns", "import", str(w / "missing-dir"), check=False)
    assert bad.returncode == 2 and "does not exist" in bad.stderr

    server.cli("signers", "keygen", str(w / "release.key"))
    assert (w / "release.key").stat().st_mode & 0o777 == 0o600
    assert "signer rel-eng trusted" in server.cli("signers", "add", "rel-eng", str(w / "release.key.pub")).stdout

    (w / "bom.cdx.json").write_bytes(cdx(LOG4J.format("2.14.1"), "pkg:npm/lodash", name="shop"))
    (w / "shop.tar").write_bytes(b"shop build 1")
    created = server.cli("release", "create", "--product", "shop", "--version", "1", "--kind", "app",
                         "--platform", "windows", "--file", str(w / "shop.tar"), "--sbom", str(w / "bom.cdx.json"))
    assert "release shop@1" in created.stdout
    shown = server.cli("sbom", "show", "shop@1")
    assert "1 incomplete components" in shown.stdout and "no version" in shown.stdout
    server.cli("sbom", "export", "shop@1", "--out", str(w / "exported.cdx.json"))
    exported = json.loads((w / "exported.cdx.json").read_text())
    assert exported["specVersion"] == "1.5" and len(exported["components"]) == 2
    findings = server.cli("release", "findings", "shop@1", "--json")
    log4shell = [f for f in json.loads(findings.stdout)["findings"] if "CVE-2021-44228" in f["aliases"]]
    assert log4shell and log4shell[0]["fixed"] == "2.15.0"
    assert "GHSA-jfh8-c2jp-5v3q" in server.cli("release", "findings", "shop@1").stdout

    assert "enforce signature, sbom, vulnerabilities, content" in server.cli(
        "gates", "policy", "apply", str(EXAMPLE_POLICY)).stdout
    blocked = server.cli("rollout", "start", "--release", "shop@1", check=False)
    assert blocked.returncode == 1
    assert "signature (failed)" in blocked.stderr and "vulnerabilities (failed)" in blocked.stderr
    assert "gate-override" in blocked.stderr
    signed = server.cli("release", "sign", "shop@1", "--key", str(w / "release.key"))
    assert "signed 1 artifacts of shop@1 as rel-eng" in signed.stdout
    rollout_id = json.loads(server.cli("rollout", "list", "--json").stdout)["rollouts"][0]["id"]
    status = server.cli("rollout", "status", rollout_id)
    assert "gate signature" in status.stdout and "gate vulnerabilities" in status.stdout

    own = server.cli("rollout", "gate-override", rollout_id, "--reason", "mine", check=False)
    assert own.returncode == 1 and "four eyes" in own.stderr  # the admin token created this rollout
    approver = server.cli("token", "create", "--name", "ciso", "--role", "approver").stdout.strip()
    overridden = server.cli("rollout", "gate-override", rollout_id, "--reason", "log4j lookups disabled (RISK-9)",
                            "--start", "--token", approver)
    assert "overridden by ciso: vulnerabilities" in overridden.stdout and "progressing" in overridden.stdout
    status = server.cli("rollout", "status", rollout_id)
    assert "gate signature       passed" in status.stdout and "overridden by ciso" in status.stdout

    where = server.cli("vulns", "where", "CVE-2021-44228")
    assert "release shop@1: 4 hosts" in where.stdout and "fixed in 2.15.0" in where.stdout
    assert "web: 4 hosts" in where.stdout
    comp = json.loads(server.cli("components", "where", "pkg:maven/org.apache.logging.log4j/log4j-core", "--json").stdout)
    assert comp["hosts"] == 4 and comp["by_tenant"]["acme"]["web"] == ["h0", "h1", "h2", "h3"]

    vex = {"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
        {"vulnerability": {"name": "CVE-2021-44228"}, "status": "not_affected",
         "justification": "vulnerable_code_cannot_be_controlled_by_adversary", "products": [{"@id": "shop@1"}]}]}
    (w / "shop.openvex.json").write_text(json.dumps(vex))
    assert "1 waive findings" in server.cli("vex", "import", str(w / "shop.openvex.json")).stdout
    after = json.loads(server.cli("release", "findings", "shop@1", "--json").stdout)["findings"]
    assert [f["waived"] for f in after if "CVE-2021-44228" in f["aliases"]] == [True]
    audit = server.cli("audit", "verify")
    assert "intact" in audit.stdout
