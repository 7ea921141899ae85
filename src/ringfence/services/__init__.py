"""Use cases: call the domain, persist through the stores, append to the audit log."""

__all__: list[str] = []
