"""SBOMs at the edge: reading CycloneDX and SPDX documents (:mod:`.parse`).

Matching the components against advisories lives in :mod:`ringfence.domain.vulns`.
"""

from ringfence.adapters.sbom.parse import Sbom, SbomComponent, parse_sbom, to_components

__all__ = ["Sbom", "SbomComponent", "parse_sbom", "to_components"]
