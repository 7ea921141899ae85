"""The TUF repository of the channel on disk, built with python-tuf's Metadata API.

Layout (the same tree is served under ``/tuf/`` and written by ``ringfence channel export``)::

    <channel>/metadata/root.json, N.root.json      root (offline keys, threshold)
    <channel>/metadata/N.targets.json              top-level targets: cohorts.json + delegations
    <channel>/metadata/N.cohort-NNN.json           one delegated role per cohort bin (one online key)
    <channel>/metadata/N.snapshot.json             versions of targets and every cohort role
    <channel>/metadata/timestamp.json              version of the snapshot; short expiry
    <channel>/targets/<dir>/<sha256>.<name>        target files (consistent snapshots)
    <channel>/keys/<role>.key                      online keys (0600)
    <channel>/channel.json                         bins and expiry periods

Rules this module keeps:

* Every file is written to a temporary name, fsynced and renamed; target files first, then
  cohort roles, then top-level targets, then the snapshot, and the timestamp last.  A crash
  at any point leaves the previous timestamp in place, which names only complete files.
* Versioned files are never rewritten: a change is a new version.
* A cohort whose manifest and targets are unchanged is not re-signed (only expiry refreshes
  re-sign unchanged roles).
* The repository is read back from its own files (timestamp → snapshot → roles), so several
  processes or a restarted one continue the version sequence; a file lock serialises writers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer  # type: ignore[attr-defined]  # re-exported without __all__
from tuf.api.metadata import (  # type: ignore[attr-defined]  # re-exported from tuf.api._payload
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from ringfence.adapters.channel import keys as keyfiles
from ringfence.domain.channel import COHORTS_TARGET, cohort_patterns, cohort_role, manifest_path
from ringfence.errors import ConflictError, InputError, NotFoundError, shown

__all__ = [
    "DEFAULT_EXPIRY",
    "ChannelConfig",
    "ChannelRepository",
    "CohortContent",
    "PublishResult",
    "TargetSpec",
    "iso",
]

#: Default validity of each role's metadata, in seconds (docs/channel.md).
DEFAULT_EXPIRY: dict[str, int] = {"root": 365 * 86400, "targets": 7 * 86400, "cohorts": 7 * 86400,
                                  "snapshot": 86400, "timestamp": 3600}
#: The timestamp is re-signed when it is older than this (so it never has less than 50 min left by default).
DEFAULT_TIMESTAMP_REFRESH = 600
_SERIALIZER = JSONSerializer(compact=True)


def iso(at: datetime) -> str:
    """``2026-11-29T21:00:00Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """How many cohort bins, and how long each role's metadata stays valid (seconds)."""

    bins: int
    expiry: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EXPIRY))
    timestamp_refresh: int = DEFAULT_TIMESTAMP_REFRESH

    def to_json(self) -> dict[str, Any]:
        """The ``channel.json`` document."""
        return {"bins": self.bins, "expiry_seconds": self.expiry, "timestamp_refresh_seconds": self.timestamp_refresh}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ChannelConfig:
        """Read ``channel.json``."""
        return cls(bins=int(doc["bins"]), expiry={**DEFAULT_EXPIRY, **{k: int(v) for k, v in
                                                                       doc.get("expiry_seconds", {}).items()}},
                   timestamp_refresh=int(doc.get("timestamp_refresh_seconds", DEFAULT_TIMESTAMP_REFRESH)))

    def validate(self) -> None:
        """Raise InputError naming the bad period."""
        for role, seconds in self.expiry.items():
            if seconds < 60:
                raise InputError.single(f"expiry.{role}", f"is {seconds} s", expected="at least 60 seconds")
        if not 0 < self.timestamp_refresh < self.expiry["timestamp"]:
            raise InputError.single("timestamp_refresh", f"is {self.timestamp_refresh} s",
                                    expected=f"between 1 s and the timestamp expiry ({self.expiry['timestamp']} s)")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One target file of a cohort: its path, digest, size, ``custom`` fields and where its bytes are."""

    path: str
    sha256: str
    length: int
    custom: dict[str, Any]
    source: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class CohortContent:
    """What one cohort role should list: its manifest body (without generation/published_at) and its targets."""

    manifest: dict[str, Any]
    targets: tuple[TargetSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publication changed."""

    changed: tuple[str, ...] = ()
    refreshed: tuple[str, ...] = ()
    snapshot_version: int = 0
    timestamp_version: int = 0

    @property
    def wrote(self) -> bool:
        """True when a new timestamp was written."""
        return bool(self.changed or self.refreshed)


def _fingerprint(manifest: Mapping[str, Any], targets: Sequence[TargetSpec] | Mapping[str, TargetFile]) -> str:
    body = {k: v for k, v in manifest.items() if k not in ("cohort", "generation", "published_at")}
    if isinstance(targets, Mapping):
        items = sorted((p, t.hashes.get("sha256", ""), t.length, t.custom) for p, t in targets.items())
    else:
        items = sorted((t.path, t.sha256, t.length, t.custom) for t in targets)
    return hashlib.sha256(json.dumps([body, items], sort_keys=True, default=str).encode()).hexdigest()


class ChannelRepository:
    """A TUF repository in a directory (see the module docstring for the layout and the rules)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata_dir = root / "metadata"
        self.targets_dir = root / "targets"
        self.keys_dir = root / "keys"
        self.config_path = root / "channel.json"
        self._fingerprints: dict[tuple[str, int], str] = {}

    # --- state ------------------------------------------------------------------------------

    @property
    def initialised(self) -> bool:
        """True once ``keys init`` wrote the first metadata."""
        return self.config_path.is_file() and (self.metadata_dir / "timestamp.json").is_file()

    def require(self) -> None:
        """Raise NotFoundError with the fix when the channel has no keys yet."""
        if not self.initialised:
            raise NotFoundError(f"the channel in {self.root} has no keys or metadata yet; run `ringfence keys init`")

    def config(self) -> ChannelConfig:
        """The channel's bins and expiry periods."""
        self.require()
        return ChannelConfig.from_json(json.loads(self.config_path.read_text()))

    def signer(self, role: str) -> Signer:
        """The online key of ``targets``, ``snapshot``, ``timestamp`` or ``cohorts``."""
        return keyfiles.load(self.keys_dir / f"{role}.key")

    def read(self, name: str) -> Metadata[Any]:
        """A metadata file by its served name (``timestamp.json``, ``3.cohort-007.json`` …)."""
        path = self.metadata_dir / name
        if not path.is_file():
            raise NotFoundError(f"metadata {name} not found in {self.metadata_dir}")
        return Metadata.from_file(str(path))

    def versions(self) -> dict[str, int]:
        """Current version of every role: timestamp → snapshot → the roles the snapshot names."""
        ts = self.read("timestamp.json")
        assert isinstance(ts.signed, Timestamp)
        snap_v = ts.signed.snapshot_meta.version
        snap = self.read(f"{snap_v}.snapshot.json")
        assert isinstance(snap.signed, Snapshot)
        out = {"timestamp": ts.signed.version, "snapshot": snap_v}
        out.update({name.removesuffix(".json"): mf.version for name, mf in snap.signed.meta.items()})
        out["root"] = self.root_md().signed.version
        return out

    def root_md(self) -> Metadata[Root]:
        """The newest root."""
        md = self.read("root.json")
        assert isinstance(md.signed, Root)
        return md

    def load(self, role: str, versions: Mapping[str, int] | None = None) -> Metadata[Any]:
        """The current metadata of a role."""
        if role == "root":
            return self.root_md()
        if role == "timestamp":
            return self.read("timestamp.json")
        v = (versions or self.versions())[role]
        return self.read(f"{v}.{role}.json")

    def cohort_roles(self) -> list[str]:
        """Names of the delegated cohort roles."""
        bins = self.config().bins
        return [cohort_role(i, bins) for i in range(bins)]

    def target_file(self, path: str, sha256: str) -> Path:
        """Where the bytes of a target live (consistent snapshots: ``<dir>/<sha256>.<name>``)."""
        dirname, _, name = path.rpartition("/")
        return self.targets_dir / dirname / f"{sha256}.{name}" if dirname else self.targets_dir / f"{sha256}.{name}"

    # --- writing ----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock on the repository (one writer at a time, across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _sync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_md(self, md: Metadata[Any], name: str) -> None:
        self._atomic_write(self.metadata_dir / name, md.to_bytes(_SERIALIZER))

    def _write_target(self, spec: TargetSpec) -> None:
        dest = self.target_file(spec.path, spec.sha256)
        if dest.exists():
            return
        if spec.data is not None:
            self._atomic_write(dest, spec.data)
            return
        if spec.source is None:
            raise ValueError(f"target {spec.path} has neither data nor a source file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(spec.source, dest)  # same bytes, no copy (the artifact store is content-addressed too)
        except OSError:
            tmp = dest.with_name(f".incoming-{dest.name}")
            shutil.copyfile(spec.source, tmp)
            os.replace(tmp, dest)

    @staticmethod
    def _sign(md: Metadata[Any], signers: Sequence[Signer]) -> None:
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)

    def _manifest_spec(self, role: str, manifest: dict[str, Any]) -> TargetSpec:
        data = json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8")
        return TargetSpec(path=manifest_path(role), sha256=hashlib.sha256(data).hexdigest(), length=len(data),
                          custom={"manifest": True}, data=data)

    @staticmethod
    def _target_file(spec: TargetSpec) -> TargetFile:
        return TargetFile(length=spec.length, hashes={"sha256": spec.sha256}, path=spec.path,
                          unrecognized_fields={"custom": spec.custom})

    def _cohort_md(self, role: str, version: int, content: CohortContent, now: datetime,
                   config: ChannelConfig) -> tuple[Metadata[Targets], list[TargetSpec]]:
        manifest = {"cohort": role, "generation": version, "published_at": iso(now), **content.manifest}
        specs = [self._manifest_spec(role, manifest), *content.targets]
        for spec in specs:
            if not spec.path.startswith(role + "/"):
                raise ValueError(f"target {spec.path} is outside cohort {role}")
        md = Metadata(Targets(version=version, expires=now + timedelta(seconds=config.expiry["cohorts"]),
                              targets={s.path: self._target_file(s) for s in specs}))
        return md, specs

    def initialise(self, *, root_signers: Sequence[Signer], root_threshold: int, online: Mapping[str, Signer],
                   config: ChannelConfig, now: datetime) -> dict[str, int]:
        """Write version 1 of every role: root, targets (+ cohorts.json and delegations), cohorts, snapshot, timestamp."""
        config.validate()
        if self.config_path.exists() or (self.metadata_dir / "root.json").exists():
            raise ConflictError(f"the channel in {self.root} is initialised already; rotate keys with "
                                "`ringfence keys rotate ROLE` instead")
        if not 1 <= root_threshold <= len(root_signers):
            raise InputError.single("root_threshold", f"is {root_threshold} for {len(root_signers)} root keys",
                                    expected=f"1 … {len(root_signers)}")
        with self.locked():
            written: list[Path] = []
            try:
                for role, signer in online.items():  # first: an existing key file stops everything early
                    written.append(keyfiles.write(self.keys_dir / f"{role}.key", signer))  # type: ignore[arg-type]
                return self._initialise(root_signers=root_signers, root_threshold=root_threshold, online=online,
                                        config=config, now=now)
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise

    def _initialise(self, *, root_signers: Sequence[Signer], root_threshold: int, online: Mapping[str, Signer],
                    config: ChannelConfig, now: datetime) -> dict[str, int]:
        exp = config.expiry
        root = Root(expires=now + timedelta(seconds=exp["root"]), consistent_snapshot=True)
        for s in root_signers:
            root.add_key(s.public_key, Root.type)
        root.roles[Root.type].threshold = root_threshold
        for role in (Targets.type, Snapshot.type, Timestamp.type):
            root.add_key(online[role].public_key, role)
        cohort_key = online["cohorts"].public_key
        roles = [cohort_role(i, config.bins) for i in range(config.bins)]
        delegations = Delegations(keys={cohort_key.keyid: cohort_key}, roles={
            r: DelegatedRole(name=r, keyids=[cohort_key.keyid], threshold=1, terminating=True,
                             paths=cohort_patterns(r)) for r in roles})
        bins_doc = json.dumps({"bins": config.bins}).encode()
        bins_spec = TargetSpec(path=COHORTS_TARGET, sha256=hashlib.sha256(bins_doc).hexdigest(),
                               length=len(bins_doc), custom={"bins": config.bins}, data=bins_doc)
        targets = Targets(expires=now + timedelta(seconds=exp["targets"]), delegations=delegations,
                          targets={COHORTS_TARGET: self._target_file(bins_spec)})
        self._write_target(bins_spec)
        snapshot = Snapshot(expires=now + timedelta(seconds=exp["snapshot"]))
        snapshot.meta = {"targets.json": MetaFile(1)}
        for r in roles:
            md, specs = self._cohort_md(r, 1, CohortContent(manifest={"hosts": {}, "remediations": []}), now,
                                        config)
            for spec in specs:
                self._write_target(spec)
            self._sign(md, [online["cohorts"]])
            self._write_md(md, f"1.{r}.json")
            snapshot.meta[f"{r}.json"] = MetaFile(1)
        targets_md = Metadata(targets)
        self._sign(targets_md, [online[Targets.type]])
        self._write_md(targets_md, "1.targets.json")
        snap_md = Metadata(snapshot)
        self._sign(snap_md, [online[Snapshot.type]])
        self._write_md(snap_md, "1.snapshot.json")
        root_md = Metadata(root)
        self._sign(root_md, root_signers)
        self._write_md(root_md, "1.root.json")
        self._write_md(root_md, "root.json")
        ts_md = Metadata(Timestamp(expires=now + timedelta(seconds=exp["timestamp"]), snapshot_meta=MetaFile(1)))
        self._sign(ts_md, [online[Timestamp.type]])
        self._write_md(ts_md, "timestamp.json")
        self._atomic_write(self.config_path, json.dumps(config.to_json(), indent=2).encode())
        self._sync_dir(self.metadata_dir)
        return self.versions()

    def _current_fingerprint(self, role: str, version: int) -> str:
        key = (role, version)
        if key not in self._fingerprints:
            md = self.read(f"{version}.{role}.json")
            assert isinstance(md.signed, Targets)
            mpath = manifest_path(role)
            info = md.signed.targets.get(mpath)
            manifest: dict[str, Any] = {}
            if info is not None:
                manifest = json.loads(self.target_file(mpath, info.hashes["sha256"]).read_bytes())
            others = {p: t for p, t in md.signed.targets.items() if p != mpath}
            self._fingerprints[key] = _fingerprint(manifest, others)
        return self._fingerprints[key]

    def publish(self, cohorts: Mapping[str, CohortContent], now: datetime, *, refresh: bool = True) -> PublishResult:
        """Sign a new version of every cohort whose content changed, then snapshot and timestamp.

        With ``refresh``, metadata close to expiry is re-signed too (timestamp older than the refresh
        period, other roles with less than half their validity left).  Without any change or refresh,
        nothing is written.
        """
        self.require()
        config = self.config()
        exp = config.expiry
        with self.locked():
            versions = self.versions()
            changed: list[str] = []
            refreshed: list[str] = []
            snapshot_md = self.load(Snapshot.type, versions)
            snapshot = snapshot_md.signed
            assert isinstance(snapshot, Snapshot)
            cohort_signer: Signer | None = None
            for role in sorted(cohorts):
                if role not in versions:
                    raise ValueError(f"{role} is not a cohort role of this channel ({config.bins} bins)")
                content = cohorts[role]
                current = versions[role]
                new_fp = _fingerprint(content.manifest, content.targets)
                expiring = False
                if new_fp == self._current_fingerprint(role, current):
                    if not refresh:
                        continue
                    md_now = self.read(f"{current}.{role}.json")
                    expiring = md_now.signed.expires - now < timedelta(seconds=exp["cohorts"] / 2)
                    if not expiring:
                        continue
                cohort_signer = cohort_signer or self.signer("cohorts")
                md, specs = self._cohort_md(role, current + 1, content, now, config)
                for spec in specs:
                    self._write_target(spec)
                self._sign(md, [cohort_signer])
                self._write_md(md, f"{current + 1}.{role}.json")
                self._fingerprints[(role, current + 1)] = new_fp
                snapshot.meta[f"{role}.json"] = MetaFile(current + 1)
                (refreshed if expiring else changed).append(role)
            if refresh:
                refreshed += self._refresh_unlisted(versions, set(cohorts), snapshot, now, config)
            ts_md = self.load(Timestamp.type)
            snap_due = refresh and snapshot_md.signed.expires - now < timedelta(seconds=exp["snapshot"] / 2)
            ts_due = refresh and now - (ts_md.signed.expires - timedelta(seconds=exp["timestamp"])) >= timedelta(
                seconds=config.timestamp_refresh)
            if not (changed or refreshed or snap_due or ts_due):
                return PublishResult(snapshot_version=versions["snapshot"], timestamp_version=versions["timestamp"])
            snap_v = versions["snapshot"]
            if changed or refreshed or snap_due:
                snap_v += 1
                snapshot.version = snap_v
                snapshot.expires = now + timedelta(seconds=exp["snapshot"])
                self._sign(snapshot_md, [self.signer(Snapshot.type)])
                self._write_md(snapshot_md, f"{snap_v}.snapshot.json")
                if snap_due and not (changed or refreshed):
                    refreshed.append("snapshot")
            timestamp = ts_md.signed
            assert isinstance(timestamp, Timestamp)
            timestamp.version += 1
            timestamp.expires = now + timedelta(seconds=exp["timestamp"])
            timestamp.snapshot_meta = MetaFile(snap_v)
            self._sign(ts_md, [self.signer(Timestamp.type)])
            self._sync_dir(self.metadata_dir)
            self._write_md(ts_md, "timestamp.json")
            if ts_due and not (changed or refreshed):
                refreshed.append("timestamp")
            return PublishResult(changed=tuple(changed), refreshed=tuple(refreshed), snapshot_version=snap_v,
                                 timestamp_version=timestamp.version)

    def _refresh_unlisted(self, versions: Mapping[str, int], listed: set[str], snapshot: Snapshot, now: datetime,
                          config: ChannelConfig) -> list[str]:
        """Re-sign top-level targets and cohorts not in this publication when they are close to expiry."""
        out: list[str] = []
        half = {r: timedelta(seconds=s / 2) for r, s in config.expiry.items()}
        targets_md = self.load(Targets.type, versions)
        if targets_md.signed.expires - now < half["targets"]:
            self._resign(targets_md, Targets.type, now, config, snapshot)
            out.append(Targets.type)
        signer: Signer | None = None
        for role in self.cohort_roles():
            if role in listed:
                continue
            md = self.read(f"{versions[role]}.{role}.json")
            if md.signed.expires - now < half["cohorts"]:
                signer = signer or self.signer("cohorts")
                self._resign(md, role, now, config, snapshot, signer)
                out.append(role)
        return out

    def _resign(self, md: Metadata[Any], role: str, now: datetime, config: ChannelConfig, snapshot: Snapshot,
                signer: Signer | None = None) -> None:
        md.signed.version += 1
        md.signed.expires = now + timedelta(seconds=config.expiry["targets" if role == Targets.type else "cohorts"])
        self._sign(md, [signer or self.signer(role)])
        self._write_md(md, f"{md.signed.version}.{role}.json")
        snapshot.meta[f"{role}.json"] = MetaFile(md.signed.version)

    def prune(self, now: datetime, keep: timedelta) -> int:
        """Delete superseded metadata and manifests not modified for ``keep``; return how many files.

        Root versions are never deleted (clients walk the chain from the root they trust); artifact
        and remediation targets are kept (content-addressed, shared between versions).  ``keep``
        should exceed the timestamp expiry, so a client that read an older timestamp still finds
        every file it names.
        """
        self.require()
        cutoff = (now - keep).timestamp()
        removed = 0
        with self.locked():
            versions = self.versions()
            for path in self.metadata_dir.glob("*.json"):
                number, _, rest = path.name.partition(".")
                role = rest.removesuffix(".json")
                if not number.isdigit() or role == Root.type or int(number) >= versions.get(role, 0):
                    continue
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            for role in self.cohort_roles():
                md = self.read(f"{versions[role]}.{role}.json")
                info = md.signed.targets.get(manifest_path(role))
                current = self.target_file(manifest_path(role), info.hashes["sha256"]).name if info else ""
                for path in (self.targets_dir / role).glob("*.desired.json"):
                    if path.name != current and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    # --- keys -----------------------------------------------------------------------------------

    def write_root(self, root_md: Metadata[Root]) -> None:
        """Write a new root version (``N.root.json`` and ``root.json``)."""
        self._write_md(root_md, f"{root_md.signed.version}.root.json")
        self._write_md(root_md, "root.json")

    def rotate(self, role: str, new_signers: Sequence[Signer], *, root_signers: Sequence[Signer],
               now: datetime, root_threshold: int | None = None) -> dict[str, int]:
        """Replace one role's key(s) and revoke the old ones.

        * ``root``: a new root version listing the new root keys, signed by a threshold of the old
          root keys **and** of the new ones (clients that trust the old root can verify it).
        * ``targets``/``snapshot``/``timestamp``: a new root version (signed by the root threshold)
          names the new key; the role is re-signed with it, then snapshot and timestamp follow.
        * ``cohorts``: top-level targets delegates to the new key; every cohort role is re-signed.
        """
        self.require()
        config = self.config()
        with self.locked():
            versions = self.versions()
            root_md = self.root_md()
            root = root_md.signed
            if role in (Root.type, Targets.type, Snapshot.type, Timestamp.type):
                old_root_signers = self._check_root_signers(root, root_signers)
                old_ids = list(root.roles[role].keyids)
                for keyid in old_ids:
                    root.revoke_key(keyid, role)
                for s in new_signers:
                    root.add_key(s.public_key, role)
                if role == Root.type:
                    root.roles[Root.type].threshold = root_threshold or root.roles[Root.type].threshold
                    if root.roles[Root.type].threshold > len(new_signers):
                        raise InputError.single("root_threshold", f"is {root.roles[Root.type].threshold} for "
                                                f"{len(new_signers)} new root keys", expected="≤ the number of keys")
                root.version += 1
                root.expires = now + timedelta(seconds=config.expiry["root"])
                self._sign(root_md, [*old_root_signers, *(new_signers if role == Root.type else ())])
                self.write_root(root_md)
                if role != Root.type:
                    keyfiles.write(self.keys_dir / f"{role}.key", new_signers[0], replace=True)  # type: ignore[arg-type]
            elif role == "cohorts":
                new = new_signers[0]
                keyfiles.write(self.keys_dir / "cohorts.key", new, replace=True)  # type: ignore[arg-type]
            else:
                raise InputError.single("role", f"is {shown(role)}", expected="root, targets, snapshot, timestamp or cohorts")
            # Re-sign what the new key covers, as new versions; snapshot and timestamp follow.
            self._resign_after_rotation(role, versions, now, config)
        return self.versions()

    @staticmethod
    def _check_root_signers(root: Root, signers: Sequence[Signer]) -> list[Signer]:
        allowed = set(root.roles[Root.type].keyids)
        usable = {s.public_key.keyid: s for s in signers if s.public_key.keyid in allowed}
        if len(usable) < root.roles[Root.type].threshold:
            raise InputError.single("root_key", f"{len(usable)} of the given keys are current root keys",
                                    expected=f"at least {root.roles[Root.type].threshold} current root key files "
                                             "(--root-key FILE, repeatable)")
        return list(usable.values())

    def _resign_after_rotation(self, role: str, versions: Mapping[str, int], now: datetime,
                               config: ChannelConfig) -> None:
        snapshot_md = self.load(Snapshot.type, versions)
        snapshot = snapshot_md.signed
        assert isinstance(snapshot, Snapshot)
        if role in (Targets.type, "cohorts"):
            targets_md = self.load(Targets.type, versions)
            if role == "cohorts":
                key = self.signer("cohorts").public_key
                delegations = targets_md.signed.delegations
                assert delegations is not None
                assert delegations.roles is not None
                delegations.keys = {key.keyid: key}
                for delegated in delegations.roles.values():
                    delegated.keyids = [key.keyid]
            self._resign(targets_md, Targets.type, now, config, snapshot)
        if role == "cohorts":
            signer = self.signer("cohorts")
            for r in self.cohort_roles():
                self._resign(self.read(f"{versions[r]}.{r}.json"), r, now, config, snapshot, signer)
        snapshot.version += 1
        snapshot.expires = now + timedelta(seconds=config.expiry["snapshot"])
        self._sign(snapshot_md, [self.signer(Snapshot.type)])
        self._write_md(snapshot_md, f"{snapshot.version}.snapshot.json")
        ts_md = self.load(Timestamp.type)
        ts = ts_md.signed
        assert isinstance(ts, Timestamp)
        ts.version += 1
        ts.expires = now + timedelta(seconds=config.expiry["timestamp"])
        ts.snapshot_meta = MetaFile(snapshot.version)
        self._sign(ts_md, [self.signer(Timestamp.type)])
        self._sync_dir(self.metadata_dir)
        self._write_md(ts_md, "timestamp.json")

    # --- reading for operators ------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Version, expiry, keys and threshold of each top-level role, and a summary of the cohorts."""
        versions = self.versions()
        root = self.root_md().signed
        rows: list[dict[str, Any]] = []
        for role in (Root.type, Targets.type, Snapshot.type, Timestamp.type):
            md = self.load(role, versions)
            rows.append({"role": role, "version": md.signed.version, "expires": md.signed.expires,
                         "keys": len(root.roles[role].keyids), "threshold": root.roles[role].threshold})
        cohort_mds = [self.read(f"{versions[r]}.{r}.json") for r in self.cohort_roles()]
        rows.append({"role": f"cohort-* ({len(cohort_mds)})", "version": max(m.signed.version for m in cohort_mds),
                     "expires": min(m.signed.expires for m in cohort_mds), "keys": 1, "threshold": 1})
        return rows

    def export(self, dest: Path) -> int:
        """Copy the served tree (``metadata/`` and ``targets/``) to ``dest``; return how many files."""
        self.require()
        count = 0
        with self.locked():
            for sub in ("targets", "metadata"):  # metadata last: it names only targets already copied
                src = self.root / sub
                for path in sorted(src.rglob("*")):
                    if path.is_dir() or path.name.startswith("."):
                        continue
                    target = dest / sub / path.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if sub == "targets" and target.exists():
                        continue
                    tmp = target.with_name(f".incoming-{target.name}")
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, target)
                    count += 1
        return count
