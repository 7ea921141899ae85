"""Adapters: the database, the HTTP API and file formats around the pure core."""

__all__: list[str] = []
