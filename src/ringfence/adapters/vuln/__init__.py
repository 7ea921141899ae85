"""Vulnerability data at the edge: reading OSV records (:mod:`.osv`).

The rules for matching live in :mod:`ringfence.domain.vulns`.
"""

from __future__ import annotations

from ringfence.adapters.vuln.osv import load_path, merge_aliases, parse_record, version_vector_agreement

__all__ = ["load_path", "merge_aliases", "parse_record", "version_vector_agreement"]
