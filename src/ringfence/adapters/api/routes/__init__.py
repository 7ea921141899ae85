"""Route modules, one per resource; each exposes ``router``."""

__all__: list[str] = []
