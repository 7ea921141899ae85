"""Everything the agent must remember across restarts, kept in its state directory.

::

    state_dir/
      lock                 held while an agent runs (one agent per state dir)
      host_id              the generated host id (when neither config nor osquery gives one)
      credential           the host credential (rfh_…), mode 0600
      state.json           per product: running, committed, pending marker, bad versions; remediations run
      queue.json           events not yet accepted by the server
      versions/<product>/<version>/<file>   verified copies of installed versions (the last known good among them)
      metadata/            python-tuf's trusted metadata cache
      targets/             python-tuf's verified targets cache

Every file is replaced atomically (:mod:`ringfence.agent.files`), so a crash
or power cut leaves the previous state or the next one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ringfence.agent.files import atomic_write, read_json, write_json

__all__ = ["MAX_QUEUE", "AgentState", "Pending", "ProductState", "StateDir", "StateLocked", "version_key"]

#: Events kept while the server is unreachable; the oldest go first beyond this.
MAX_QUEUE = 1000
_PART = re.compile(r"(\d+)|(\D+)")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally, numbers as numbers: "291" > "290", "7.10.0" > "7.9.2".

    Suffixes are compared as text after the numbers they follow, so "2.0-rc1" sorts *after* "2.0"; release
    versions that need prerelease ordering should not rely on the downgrade check to rank them.
    """
    return tuple((0, int(num)) if num else (1, text) for num, text in _PART.findall(version))


@dataclass
class Pending:
    """An installed version waiting for its health probe: the commit protocol's marker."""

    version: str
    previous: str
    rollout: str
    files: list[str]
    starts: int = 0
    installed_at: str = ""


@dataclass
class ProductState:
    """One product on this host."""

    running: str = ""
    committed: str = ""
    rollout: str = ""
    bad: list[str] = field(default_factory=list)
    pending: Pending | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ProductState:
        """Load from state.json."""
        pending = raw.get("pending")
        return cls(running=raw.get("running", ""), committed=raw.get("committed", ""), rollout=raw.get("rollout", ""),
                   bad=list(raw.get("bad", [])), pending=Pending(**pending) if pending else None)


@dataclass
class AgentState:
    """The contents of state.json."""

    products: dict[str, ProductState] = field(default_factory=dict)
    remediations: dict[str, dict[str, Any]] = field(default_factory=dict)
    cohort: str = ""
    last_poll: dict[str, str] = field(default_factory=dict)

    def product(self, name: str) -> ProductState:
        """The state of one product (created empty on first use)."""
        return self.products.setdefault(name, ProductState())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"products": {k: asdict(v) for k, v in sorted(self.products.items())},
                "remediations": self.remediations, "cohort": self.cohort, "last_poll": self.last_poll}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AgentState:
        """Load from the JSON form."""
        return cls(products={k: ProductState.from_dict(v) for k, v in raw.get("products", {}).items()},
                   remediations=dict(raw.get("remediations", {})), cohort=raw.get("cohort", ""),
                   last_poll=dict(raw.get("last_poll", {})))


class StateLocked(Exception):
    """Another agent process holds this state directory."""


class StateDir:
    """The state directory: files, the lock, the event queue."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata = root / "metadata"
        self.targets = root / "targets"
        self.versions = root / "versions"
        self._lock: IO[bytes] | None = None

    def create(self) -> None:
        """Create the directory tree (private to the agent's user)."""
        for d in (self.root, self.metadata, self.targets, self.versions):
            d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.root, 0o700)

    # -- one agent at a time -------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the state directory's lock, or raise :class:`StateLocked`."""
        self.create()
        handle = (self.root / "lock").open("ab")
        try:
            import fcntl  # noqa: PLC0415 - POSIX only; elsewhere the lock is advisory by convention

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError as e:
            handle.close()
            raise StateLocked(f"another ringfence-agent is running with state dir {self.root}") from e
        self._lock = handle

    def unlock(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> StateDir:
        self.lock()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.unlock()

    # -- small files ---------------------------------------------------------------------------------
    def load(self) -> AgentState:
        """Read state.json (empty state on first start)."""
        return AgentState.from_dict(read_json(self.root / "state.json", {}))

    def save(self, state: AgentState) -> None:
        """Write state.json atomically."""
        write_json(self.root / "state.json", state.to_dict())

    def read_text(self, name: str) -> str:
        """A small text file's content, or "" when it does not exist."""
        try:
            return (self.root / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def write_secret(self, name: str, value: str) -> None:
        """Write a secret (the host credential) readable by the agent's user only."""
        atomic_write(self.root / name, (value + "\n").encode(), mode=0o600)

    # -- event queue ---------------------------------------------------------------------------------
    def queued(self) -> list[dict[str, str]]:
        """Events waiting to be sent, oldest first."""
        events: list[dict[str, str]] = read_json(self.root / "queue.json", [])
        return events

    def enqueue(self, kind: str, rollout: str, at: str) -> None:
        """Queue an event on disk before trying to send it."""
        events = self.queued()
        events.append({"kind": kind, "rollout": rollout, "at": at})
        write_json(self.root / "queue.json", events[-MAX_QUEUE:])

    def dequeue(self, sent: int) -> None:
        """Drop the first ``sent`` events (the server accepted them)."""
        write_json(self.root / "queue.json", self.queued()[sent:])

    # -- installed versions --------------------------------------------------------------------------
    def version_dir(self, product: str, version: str) -> Path:
        """Where the verified files of one installed version are kept."""
        return self.versions / product / version

    def prune_versions(self, product: str, keep: set[str]) -> None:
        """Delete kept copies of versions other than ``keep`` (running, committed, pending)."""
        base = self.versions / product
        if not base.is_dir():
            return
        for d in base.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)
