"""The signed channel as the agent reads it: every byte through python-tuf's ``ngclient.Updater``.

One :class:`ChannelSession` per poll (an ``Updater`` refreshes once in its
life): it refreshes root → timestamp → snapshot → targets, reads the verified
``cohorts.json`` to learn the number of cohort bins, computes this host's
cohort with :func:`ringfence.domain.channel.cohort_of`, and reads only its own
cohort's ``desired.json``.  Targets outside that cohort are refused before the
Updater is even asked for them.

Every byte goes through one python-tuf ``FetcherInterface``: by default a
``Urllib3Fetcher`` (HTTP with the agent's timeout and user agent); tests and
other transports pass their own, so the same agent code runs against an
in-memory repository as well as over the network.

python-tuf's errors are sorted into two kinds:

* :class:`Refused` — the repository (or someone in the middle) served
  something the trusted metadata does not allow: a tampered target, metadata
  older than what the agent already trusts (rollback), expired metadata
  (freeze), a signature by a key the trusted root does not name.  The agent
  logs one line with the reason, installs nothing and keeps its versions.
* :class:`Unreachable` — the network or server failed; the agent backs off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from tuf.api import exceptions
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from ringfence import __version__
from ringfence.domain.channel import COHORTS_TARGET, MAX_BINS, cohort_of, cohort_role, manifest_path
from ringfence.errors import shown

if TYPE_CHECKING:  # public as tuf.api.metadata.TargetFile, which mypy's strict mode does not see as exported
    from tuf.api._payload import TargetFile

__all__ = ["ChannelClient", "ChannelSession", "Desired", "Refused", "Unreachable", "classify"]


class Refused(Exception):
    """Verified metadata does not allow what was served; nothing is installed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Unreachable(Exception):
    """The channel cannot be read right now (network, server down, missing file)."""


def classify(error: Exception, what: str) -> Exception:
    """Turn a python-tuf or network error into :class:`Refused` (with a reason a person reads) or :class:`Unreachable`."""
    text = f"{what}: {error}" if str(error) else f"{what}: {type(error).__name__}"
    if isinstance(error, exceptions.ExpiredMetadataError):
        return Refused("expired metadata (a freeze attack, or a server that stopped re-signing its timestamp)", text)
    if isinstance(error, exceptions.BadVersionNumberError):
        return Refused("rollback attack: the server offered metadata older than what this agent already trusts", text)
    if isinstance(error, exceptions.UnsignedMetadataError):
        return Refused("untrusted signature: metadata not signed by the keys the trusted root names", text)
    if isinstance(error, exceptions.LengthOrHashMismatchError | exceptions.DownloadLengthMismatchError):
        return Refused("tampered file: its length or hash differs from the signed metadata", text)
    if isinstance(error, exceptions.RepositoryError):
        return Refused("invalid metadata", text)
    if isinstance(error, exceptions.DownloadError | urllib3.exceptions.HTTPError | OSError):
        return Unreachable(text)
    return error


@dataclass(frozen=True, slots=True)
class Desired:
    """This host's entry in its cohort's verified manifest."""

    role: str
    bins: int
    generation: int
    products: dict[str, dict[str, Any]]
    remediations: list[dict[str, Any]]


class ChannelClient:
    """Where the channel is, where its verified copies are cached, and how bytes are fetched.

    ``fetcher``: the transport every metadata and target download goes through (python-tuf's
    ``FetcherInterface``); ``None`` is HTTP(S) with ``timeout`` seconds per socket operation.
    """

    def __init__(self, *, metadata_dir: Path, targets_dir: Path, metadata_base: str, targets_base: str,
                 trusted_root: bytes, timeout: float = 10.0, fetcher: FetcherInterface | None = None) -> None:
        self.metadata_dir = metadata_dir
        self.targets_dir = targets_dir
        self.metadata_base = metadata_base
        self.targets_base = targets_base
        self.trusted_root = trusted_root
        self.timeout = timeout
        self.fetcher: FetcherInterface = fetcher or Urllib3Fetcher(socket_timeout=max(1, round(timeout)),
                                                                   app_user_agent=f"ringfence-agent/{__version__}")

    def session(self) -> ChannelSession:
        """A fresh Updater over the local trusted cache (the shipped root is the trust anchor)."""
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        try:
            updater = Updater(str(self.metadata_dir), self.metadata_base, str(self.targets_dir), self.targets_base,
                              fetcher=self.fetcher,
                              config=UpdaterConfig(app_user_agent=f"ringfence-agent/{__version__}"),
                              bootstrap=self.trusted_root)
        except Exception as e:
            raise classify(e, "trusted root") from e
        return ChannelSession(updater)


class ChannelSession:
    """One poll's view of the channel."""

    def __init__(self, updater: Updater) -> None:
        self.updater = updater
        self.role = ""

    def refresh(self) -> None:
        """Root, timestamp, snapshot, top-level targets: verified, or an error naming the attack."""
        try:
            self.updater.refresh()
        except Exception as e:
            raise classify(e, "metadata refresh") from e

    def _info(self, path: str) -> TargetFile:
        try:
            info = self.updater.get_targetinfo(path)
        except Exception as e:
            raise classify(e, path) from e
        if info is None:
            raise Refused("not signed", f"{path} is not a target of the verified metadata")
        return info

    def download(self, path: str) -> tuple[Path, TargetFile]:
        """A verified local copy of a target (the cache is used when its hash still matches)."""
        if self.role and not path.startswith(self.role + "/") and path != COHORTS_TARGET:
            raise Refused("target outside this agent's cohort", f"{path} is not under {self.role}/")
        info = self._info(path)
        try:
            cached = self.updater.find_cached_target(info)
            return Path(cached or self.updater.download_target(info)), info
        except Exception as e:
            raise classify(e, path) from e

    def _json(self, path: str) -> Any:
        local, _ = self.download(path)
        try:
            return json.loads(local.read_bytes())
        except ValueError as e:
            raise Refused("malformed signed file", f"{path} is not JSON: {e}") from e

    def desired(self, host_id: str) -> Desired:
        """Learn the bins, compute this host's cohort, read its manifest entry."""
        self.role = ""
        cohorts = self._json(COHORTS_TARGET)
        bins = cohorts.get("bins") if isinstance(cohorts, dict) else None
        if not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
            raise Refused("malformed signed file", f"{COHORTS_TARGET} has bins {shown(bins)}, not 1..{MAX_BINS}")
        self.role = cohort_role(cohort_of(host_id, bins), bins)
        manifest = self._json(manifest_path(self.role))
        if not isinstance(manifest, dict) or manifest.get("cohort") != self.role:
            cohort = manifest.get("cohort") if isinstance(manifest, dict) else None
            raise Refused("malformed signed file", f"{manifest_path(self.role)} is for cohort {shown(cohort)}")
        hosts = manifest.get("hosts") or {}
        entry = hosts.get(host_id) if isinstance(hosts, dict) else None
        products = {p: e for p, e in (entry or {}).items() if isinstance(e, dict)} if isinstance(entry, dict) else {}
        remediations = [r for r in manifest.get("remediations") or [] if isinstance(r, dict)]
        generation = manifest.get("generation", 0)
        return Desired(role=self.role, bins=bins, generation=generation if isinstance(generation, int) else 0,
                       products=products, remediations=remediations)
