"""Test support for the agent: a static file server on loopback and a signed channel built by the real publisher.

The channel is ringfence's own :class:`ChannelRepository` (python-tuf Metadata
API, securesystemslib signers) with a clock the test chooses, exported to a
directory that :class:`StaticServer` serves like any CDN would, so a test can
tamper with the served files exactly as an attacker in the middle would.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ringfence.adapters.channel import keys
from ringfence.adapters.channel.repository import ChannelConfig, ChannelRepository, CohortContent, TargetSpec
from ringfence.agent.config import AgentConfig
from ringfence.domain.channel import artifact_path, cohort_of, cohort_role, remediation_path

__all__ = ["Channel", "StaticServer", "agent_config"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """Serves a directory over HTTP on 127.0.0.1 in a thread (what `ringfence channel export` is meant for)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class Channel:
    """A signed channel with ``bins`` cohorts, published at a chosen time and exported to ``served``."""

    def __init__(self, root: Path, served: Path, *, bins: int = 4, now: datetime | None = None) -> None:
        self.repo = ChannelRepository(root)
        self.served = served
        self.bins = bins
        self.now = now or datetime.now(UTC)
        self.root_signers = [keys.generate()]
        self.repo.initialise(root_signers=self.root_signers, root_threshold=1,
                             online={r: keys.generate() for r in keys.ONLINE_ROLES},
                             config=ChannelConfig(bins=bins), now=self.now)
        self.content: dict[str, CohortContent] = {}
        self.export()

    @property
    def trusted_root(self) -> Path:
        """The root.json an agent ships with."""
        return self.repo.metadata_dir / "1.root.json"

    def role_of(self, host: str) -> str:
        """The cohort role of a host."""
        return cohort_role(cohort_of(host, self.bins), self.bins)

    def other_role(self, host: str) -> str:
        """Some cohort role that is not the host's."""
        mine = cohort_of(host, self.bins)
        return cohort_role((mine + 1) % self.bins, self.bins)

    def offer(self, host: str, product: str, version: str, data: bytes, *, rollback: bool = False,
              rollout: str = "ro_test", role: str | None = None, name: str = "C-00000291.sys",
              platform: str = "windows", not_before: str | None = None) -> str:
        """Name ``version`` for ``host`` in its cohort's manifest, with the artifact signed in ``role``
        (default: the host's own cohort); return the artifact's target path."""
        mine = self.role_of(host)
        where = role or mine
        path = artifact_path(where, product, version, platform, name)
        spec = TargetSpec(path=path, sha256=hashlib.sha256(data).hexdigest(), length=len(data), data=data,
                          custom={"product": product, "version": version, "kind": "content", "rollout": rollout,
                                  "wave": 0, "rollback": rollback, "not_before": not_before})
        self._add_target(where, spec)
        manifest = dict(self._cohort(mine).manifest)
        hosts = {h: dict(e) for h, e in manifest.get("hosts", {}).items()}
        hosts.setdefault(host, {})[product] = {"version": version, "rollback": rollback, "rollout": rollout, "wave": 0,
                                               "reason": f"exposed in rollout {rollout}",
                                               "files": {platform: [path]}}
        self.content[mine] = CohortContent(manifest={**manifest, "hosts": hosts}, targets=self._cohort(mine).targets)
        return path

    def remediation(self, host: str, rid: str, script: bytes, *, hosts: list[str] | str = "*") -> str:
        """Publish a remediation script for the host's cohort; return its target path."""
        role = self.role_of(host)
        path = remediation_path(role, rid, "fix.sh")
        self._add_target(role, TargetSpec(path=path, sha256=hashlib.sha256(script).hexdigest(), length=len(script),
                                          data=script, custom={"remediation": rid, "run_once": True}))
        current = self._cohort(role)
        rems = [*current.manifest.get("remediations", []), {"id": rid, "path": path, "hosts": hosts}]
        self.content[role] = CohortContent(manifest={**current.manifest, "remediations": rems}, targets=current.targets)
        return path

    def _cohort(self, role: str) -> CohortContent:
        return self.content.get(role, CohortContent(manifest={"hosts": {}, "remediations": []}))

    def _add_target(self, role: str, spec: TargetSpec) -> None:
        current = self._cohort(role)
        targets = (*tuple(t for t in current.targets if t.path != spec.path), spec)
        self.content[role] = CohortContent(manifest=current.manifest, targets=targets)

    def publish(self, *, at: datetime | None = None) -> None:
        """Sign what changed (new cohort versions, snapshot, timestamp) and export it to the served directory."""
        self.repo.publish(dict(self.content), at or self.now, refresh=True)
        self.export()

    def rotate(self, role: str, *, at: datetime) -> None:
        """Rotate one role's key (root: signed by the old and the new root key) and export."""
        new = [keys.generate()]
        self.repo.rotate(role, new, root_signers=self.root_signers, now=at)
        if role == "root":
            self.root_signers = new
        self.export()

    def export(self) -> None:
        """The served tree, as `ringfence channel export` writes it."""
        self.repo.export(self.served)

    def served_target(self, path: str) -> Path:
        """The served file of a target path (``<dir>/<sha256>.<name>``)."""
        dirname, _, name = path.rpartition("/")
        matches = sorted((self.served / "targets" / dirname).glob(f"*.{name}"))
        assert len(matches) == 1, matches
        return matches[0]

    def later(self, **delta: float) -> datetime:
        """A time after the channel's start."""
        return self.now + timedelta(**delta)

    def copy_metadata(self, name: str, dest: Path) -> Path:
        """Keep a copy of a served metadata file (to replay it later)."""
        shutil.copyfile(self.served / "metadata" / name, dest)
        return dest


def agent_config(tmp_path: Path, *, host: str, channel: Channel, server: StaticServer | None = None,
                 server_url: str = "http://127.0.0.1:9", **extra: Any) -> AgentConfig:
    """An agent that reads the channel from the static server (or the ringfence server's /tuf/)."""
    raw: dict[str, Any] = {
        "server": server_url, "state_dir": tmp_path / f"agent-{host}", "trusted_root": channel.trusted_root,
        "host_id": host, "platform": "windows", "poll_interval_seconds": 0.2, "request_timeout_seconds": 5,
        "installers": {"falcon-content": {"kind": "file", "target_dir": tmp_path / f"installed-{host}"}},
        **extra}
    if server is not None:
        raw["metadata_url"] = f"{server.url}/metadata/"
        raw["targets_url"] = f"{server.url}/targets/"
    return AgentConfig.model_validate(raw)
