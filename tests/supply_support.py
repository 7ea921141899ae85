"""Builders shared by the supply-chain tests: valid CycloneDX SBOMs, releases through the API, the real OSV data."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from tests.api_support import Api
from tests.conftest import SHARED_DATA

__all__ = ["LOG4J", "OSV", "cdx", "osv_uploads", "release"]

OSV = SHARED_DATA / "osv"
LOG4J = "pkg:maven/org.apache.logging.log4j/log4j-core@{}"


def cdx(*purls: str, name: str = "demo-app", serial: str | None = None, extra: list[dict[str, Any]] | None = None) -> bytes:
    """A CycloneDX 1.5 JSON SBOM (schema-valid) with one library component per purl."""
    comps: list[dict[str, Any]] = []
    for i, purl in enumerate(purls):
        base, at, version = purl.rpartition("@")
        base = base if at else purl
        comp = {"type": "library", "bom-ref": f"c{i}", "name": base.rsplit("/", 1)[-1], "purl": purl}
        comps.append({**comp, "version": version} if at else comp)
    comps += extra or []
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "serialNumber": f"urn:uuid:{serial or uuid.uuid4()}",
           "metadata": {"component": {"type": "application", "name": name, "bom-ref": name}}, "components": comps}
    return json.dumps(doc).encode()


def release(api: Api, product: str, version: str, *, kind: str = "app", sbom: bytes | None = None,
            files: list[tuple[str, bytes]] | None = None, role: str = "operator", **fields: Any) -> Any:
    """POST /v1/releases with optional supply-chain parts; returns the response."""
    parts: list[tuple[str, Any]] = [("files", (n, d, "application/octet-stream"))
                                    for n, d in (files or [(f"{product}-{version}.bin", f"{product} {version}".encode())])]
    if sbom is not None:
        parts.append(("sbom", ("bom.cdx.json", sbom, "application/json")))
    if "content_schema" in fields:
        parts.append(("content_schema", ("schema.json", fields.pop("content_schema"), "application/json")))
    data = {"product": product, "version": version, "kind": kind, "platforms": ["windows"], **fields}
    return api.call("POST", "/v1/releases", role=role, files=parts, data=data)


def osv_uploads(*, pypa: bool = True) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Every real OSV record under shared/data/osv as upload parts; the PyPA tree packed into one zip."""
    parts = [("files", (p.name, p.read_bytes(), "application/json"))
             for p in sorted([*OSV.glob("*.json"), *(OSV / "ghsa-conversion").glob("*.json"),
                              *(OSV / "github-advisories").glob("*.json")])]
    if pypa:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for p in sorted((OSV / "pypa").rglob("*.yaml")):
                archive.write(p, p.relative_to(OSV / "pypa").as_posix())
        parts.append(("files", ("pypa-all.zip", buf.getvalue(), "application/zip")))
    return parts
