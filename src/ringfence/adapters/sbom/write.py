"""Writing a release's stored SBOM as CycloneDX 1.5 JSON with cyclonedx-python-lib.

The release is the subject (``metadata.component``, an application whose
bom-ref is the release id); every stored component becomes a library
component that the subject depends on.  Hashes whose content the CycloneDX
schema would refuse (wrong length, not hex) are left out rather than
written invalid; a purl that cannot be parsed is left out (the component
keeps its name and version).  The output is validated against the schema by
the caller's tests, not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

__all__ = ["to_cyclonedx_json"]

_HEX = re.compile(r"^([a-fA-F0-9]{32}|[a-fA-F0-9]{40}|[a-fA-F0-9]{64}|[a-fA-F0-9]{96}|[a-fA-F0-9]{128})$")


def _hashes(raw: Sequence[Sequence[str]]) -> list[HashType]:
    out = []
    for alg, content in raw:
        try:
            algorithm = HashAlgorithm(alg)
        except ValueError:
            continue
        if _HEX.match(content):
            out.append(HashType(alg=algorithm, content=content.lower()))
    return out


def _purl(text: str) -> PackageURL | None:
    try:
        return PackageURL.from_string(text) if text else None
    except ValueError:
        return None


def to_cyclonedx_json(release_id: str, product: str, version: str, components: Sequence[Mapping[str, Any]]) -> str:
    """A CycloneDX 1.5 JSON document for the release and its stored components."""
    bom = Bom()
    root = Component(name=product, version=version, type=ComponentType.APPLICATION, bom_ref=release_id)
    bom.metadata.component = root
    children = []
    for k, c in enumerate(components):
        comp = Component(name=c["name"] or "(unnamed)", version=c.get("version") or None, group=c.get("group") or None,
                         purl=_purl(c.get("purl") or ""), hashes=_hashes(c.get("hashes") or ()),
                         type=ComponentType.LIBRARY, bom_ref=f"{release_id}#{k}")
        bom.components.add(comp)
        children.append(comp)
    bom.register_dependency(root, children)
    return str(JsonV1Dot5(bom).output_as_string(indent=None))
