"""Database connections: one :class:`Database` per process, built from the URL in the settings.

SQLite (the embedded default) is opened with foreign keys on, WAL journaling
and ``BEGIN IMMEDIATE`` transactions, so concurrent writers queue instead of
failing half-way.  PostgreSQL is reached through psycopg 3.  Schema changes
go through Alembic only (:func:`upgrade`).

The database also carries the process's audit key (:attr:`Database.audit_key`, set from the settings by the
entry point through :func:`ringfence.services.audit.use_audit_key`): every transaction hands it to the audit
store on its connection (:func:`audit_key_of`), so two databases in one process, or two apps on one
database file, never see each other's key and no module keeps one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ringfence.errors import ConflictError, InputError, UnavailableError, shown

__all__ = ["Database", "audit_key_of", "normalise_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_AUDIT_KEY = "ringfence_audit_key"  # the execution option that carries Database.audit_key to the audit store


def audit_key_of(conn: Connection) -> bytes | None:
    """The audit key of the :class:`Database` whose transaction ``conn`` is (None: unkeyed, or not opened by one)."""
    key = conn.get_execution_options().get(_AUDIT_KEY)
    return key if isinstance(key, bytes) else None


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _is_transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01"}  # serialization failure, deadlock


def _is_duplicate(exc: IntegrityError) -> bool:
    """A unique or primary-key violation: another transaction inserted the same key first (not a bug in the input)."""
    if getattr(exc.orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return getattr(exc.orig, "sqlite_errorname", "") in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


class Database:
    """A connection pool plus the transaction boundary every store uses."""

    def __init__(self, url: str, *, echo: bool = False, audit_key: bytes | None = None) -> None:
        self.url = normalise_url(url)
        #: The HMAC key audit entries written through this database are keyed with (None: unkeyed).
        self.audit_key = audit_key
        try:
            parsed = make_url(self.url)
        except Exception as e:  # SQLAlchemy raises ArgumentError subclasses for bad URLs
            raise InputError.single("database_url", f"cannot be read: {e}",
                                    expected="sqlite:///path.db or postgresql+psycopg://user@host/db") from e
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise InputError.single("database_url", f"uses {shown(self.dialect)}", expected="sqlite or postgresql")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            db_path = parsed.database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        #: The same pool in autocommit mode, for :meth:`read` (PostgreSQL only).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.dialect == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on error; it carries the audit key."""
        try:
            with self.engine.begin() as conn:
                if self.audit_key is not None:
                    conn.execution_options(**{_AUDIT_KEY: self.audit_key})
                yield conn
        except OperationalError as e:
            if _is_transient(e):
                raise ConflictError("a concurrent change conflicted with this one; retry") from e
            raise UnavailableError(f"database unavailable: {e.orig}") from e
        except IntegrityError as e:
            # Check-then-insert under READ COMMITTED: two requests that create the same key at once both find it
            # absent and the second insert fails. That is a conflict the caller can retry, never a server error.
            if _is_duplicate(e):
                raise ConflictError("a concurrent change created the same thing first; reload and retry") from e
            raise
        except DBAPIError as e:
            if _is_transient(e):
                raise ConflictError("a concurrent change conflicted with this one; retry") from e
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for one read that needs no transaction.

        On PostgreSQL it is an autocommit connection (one round trip instead of BEGIN, SELECT, COMMIT: half the
        cost of a per-request lookup such as a host credential); on SQLite, a transaction like any other.
        """
        if self.is_sqlite:
            with self.transaction() as conn:
                yield conn
            return
        try:
            with self._autocommit.connect() as conn:
                yield conn
        except OperationalError as e:
            raise UnavailableError(f"database unavailable: {e.orig}") from e

    def same_database(self, other: Database) -> bool:
        """True when ``other`` reaches the same database as this one (same URL, whichever object)."""
        return self.url == other.url

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return str(self.engine.url)

    def ping(self) -> None:
        """Raise :class:`UnavailableError` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as e:
            raise UnavailableError(f"database unavailable: {e.orig}") from e

    def alembic_config(self) -> Config:
        """Alembic configuration pointing at the packaged migrations."""
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` (Alembic)."""
        cfg = self.alembic_config()
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except OperationalError as e:
            raise UnavailableError(f"database unavailable: {e.orig}") from e

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None when empty)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision the code knows."""
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def is_current(self) -> bool:
        """True when the schema is at the newest revision."""
        return self.current_revision() == self.head_revision()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
