"""The application context: what a process builds once at its entry point and passes to the use cases.

Instead of module-level registries and caches, ``ringfence serve`` (and the demo, which runs inside it)
builds one :class:`AppContext` from its settings and hands its parts to the use cases that need them:

* ``db`` — the database (SQLite file or PostgreSQL);
* ``artifacts`` — the content-addressed artifact store under ``DATA_DIR/artifacts``;
* ``advisories`` — the advisory index, kept until an import bumps the generation counter
  (:class:`ringfence.services.supply_chain.AdvisoryIndexCache`);
* ``inventory`` — the inventory between reconciler passes, reloaded when it changed
  (:class:`ringfence.adapters.db.fleet.InventoryCache`), one for the reconciler and the channel publisher;
* ``clock`` — the wall clock, or the demo's and the tests' own.

Two contexts in one process (two apps in a test, two databases) share nothing.  A use case called
without a cache builds what it needs afresh, which is correct and only slower.  Process-wide switches
that are not per context (pausing the garbage collector) live in :mod:`ringfence.runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.fleet import InventoryCache
from ringfence.config import Settings
from ringfence.services.context import Clock, system_clock
from ringfence.services.supply_chain import AdvisoryIndexCache

__all__ = ["AppContext"]


@dataclass(frozen=True, slots=True)
class AppContext:
    """The database, artifact store, advisory index and inventory caches and clock of one application."""

    db: Database
    artifacts: ArtifactStore
    advisories: AdvisoryIndexCache
    clock: Clock = system_clock
    inventory: InventoryCache = field(default_factory=InventoryCache)

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None, clock: Clock = system_clock) -> AppContext:
        """The context for these settings; ``db`` and ``clock`` may be injected (tests, the demo)."""
        database = db or Database(settings.database_url)
        return cls(db=database, artifacts=ArtifactStore(settings.data_dir / "artifacts"),
                   advisories=AdvisoryIndexCache(database), clock=clock)
