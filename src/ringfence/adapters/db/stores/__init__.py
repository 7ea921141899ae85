"""Store modules: every query ringfence makes lives here, never in routes or services."""

__all__: list[str] = []
