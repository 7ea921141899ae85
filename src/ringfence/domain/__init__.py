"""The pure domain core: model, rules and decisions.

Nothing here touches a database, the network, files or the wall clock; a
test (``tests/test_architecture.py``) fails if it imports sqlalchemy,
fastapi, httpx or tuf.
"""

__all__: list[str] = []
