"""Storage: SQLAlchemy 2 tables, stores that own every query, Alembic migrations."""

__all__: list[str] = []
