"""Helpers for channel tests (no tests here): a fleet with a channel, and a real TUF client over the app.

* :class:`AppFetcher` is a python-tuf ``FetcherInterface`` over a Starlette ``TestClient``, so a real
  ``ngclient.Updater`` verifies what the real app serves, without a network (fast unit tests).
* :func:`make_channel` creates keys and version 1 of the metadata with a given clock (``now`` may be in
  the past, e.g. to produce an expired timestamp).
* :func:`tuf_client` builds an Updater that trusts the channel's first root.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from ringfence.domain.channel import COHORTS_TARGET, cohort_of, cohort_role, manifest_path
from ringfence.services.channel import KeysCreated, channel_dir, init_keys
from tests.conftest import FakeClock

__all__ = ["Agent", "AppFetcher", "desired_of", "make_channel", "now_clock", "tuf_client"]


def now_clock() -> FakeClock:
    """A hand-moved clock that starts at the real time (python-tuf's client checks expiry on the wall clock)."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


class AppFetcher(FetcherInterface):
    """Fetches through a TestClient (the app's real /tuf/ serving, no sockets)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.urls: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.urls.append(url)
        response = self.client.get(url)
        if response.status_code != 200:
            raise DownloadHTTPError(f"GET {url}: {response.status_code}", response.status_code)
        return iter([response.content])


def make_channel(data_dir: Path, clock: FakeClock, *, bins: int = 4, root_keys: int = 1, root_threshold: int = 1,
                 **kwargs: Any) -> KeysCreated:
    """``ringfence keys init`` for tests."""
    return init_keys(data_dir, root_keys=root_keys, root_threshold=root_threshold, bins=bins, clock=clock, **kwargs)


def tuf_client(data_dir: Path, workdir: Path, *, base: str = "http://testserver",
               fetcher: FetcherInterface | None = None, root: bytes | None = None) -> Updater:
    """An Updater that trusts ``root`` (default: version 1 of the channel's root)."""
    meta = workdir / "metadata"
    targets = workdir / "targets"
    meta.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    if not (meta / "root.json").exists():
        if root is None:
            shutil.copyfile(channel_dir(data_dir) / "metadata" / "1.root.json", meta / "root.json")
        else:
            (meta / "root.json").write_bytes(root)
    return Updater(metadata_dir=str(meta), metadata_base_url=f"{base}/tuf/metadata/", target_dir=str(targets),
                   target_base_url=f"{base}/tuf/targets/", fetcher=fetcher, bootstrap=None)


def desired_of(updater: Updater, host_id: str) -> tuple[str, dict[str, Any]]:
    """What an agent does at each poll: refresh, learn the bins, read its cohort's manifest; return (role, manifest).

    An Updater refreshes once: poll again with a new one (:class:`Agent` does).
    """
    updater.refresh()
    info = updater.get_targetinfo(COHORTS_TARGET)
    assert info is not None
    bins = json.loads(Path(updater.download_target(info)).read_bytes())["bins"]
    role = cohort_role(cohort_of(host_id, bins), bins)
    minfo = updater.get_targetinfo(manifest_path(role))
    assert minfo is not None, f"{role} lists no manifest"
    path = updater.find_cached_target(minfo) or updater.download_target(minfo)
    return role, json.loads(Path(path).read_bytes())


class Agent:
    """A polling client with its own trusted-metadata directory: each :meth:`poll` is a new Updater."""

    def __init__(self, data_dir: Path, workdir: Path, fetcher: FetcherInterface | None = None,
                 base: str = "http://testserver") -> None:
        self.data_dir, self.workdir, self.fetcher, self.base = data_dir, workdir, fetcher, base
        self.updater: Updater | None = None

    def poll(self, host_id: str) -> tuple[str, dict[str, Any]]:
        """Refresh and read this host's cohort manifest."""
        self.updater = tuf_client(self.data_dir, self.workdir, base=self.base, fetcher=self.fetcher)
        return desired_of(self.updater, host_id)

    def entry(self, host_id: str, product: str) -> dict[str, Any]:
        """This host's entry for a product in its cohort manifest."""
        entry: dict[str, Any] = self.poll(host_id)[1]["hosts"][host_id][product]
        return entry
