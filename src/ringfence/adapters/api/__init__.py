"""The HTTP API (FastAPI): versioned routes under ``/v1``, RFC 9457 problems, metrics."""

__all__: list[str] = []
