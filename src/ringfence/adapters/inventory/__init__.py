"""Inventory file formats: ringfence's own CSV/JSON/JSON Lines, services YAML, osquery results."""

__all__: list[str] = []
