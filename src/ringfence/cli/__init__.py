"""The ``ringfence`` command (Typer): thin over the HTTP API, or over the services for local verbs."""

__all__: list[str] = []
