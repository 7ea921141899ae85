"""The signed channel's use cases: keys, publishing desired state per cohort, status, export, remediation.

Publishing (:meth:`ChannelPublisher.publish`, run by the reconciler after every tick) computes the
desired state of every host in bulk (:func:`ringfence.services.desired.desired_many`), groups it
by cohort (:func:`ringfence.domain.channel.cohort_of`) and hands each cohort's manifest and targets
to the repository, which signs a new version only for the cohorts that changed, then the
snapshot and the timestamp.  The manifest format is the channel contract (docs/channel.md).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.channel import keys as keyfiles
from ringfence.adapters.channel.repository import (
    DEFAULT_EXPIRY,
    ChannelConfig,
    ChannelRepository,
    CohortContent,
    PublishResult,
    TargetSpec,
)
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.fleet import InventoryCache
from ringfence.adapters.db.stores import audit as audit_store
from ringfence.adapters.db.stores import channel as channel_store
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.domain.access import Role
from ringfence.domain.channel import (
    DEFAULT_BINS,
    MAX_BINS,
    artifact_path,
    cohort_of,
    cohort_role,
    remediation_path,
)
from ringfence.domain.model import Host
from ringfence.domain.selector import compile_predicate
from ringfence.errors import FieldIssue, InputError, shown
from ringfence.services.audit import latest_checkpoint
from ringfence.services.context import Actor, Clock
from ringfence.services.desired import desired_many, releases_by_version

__all__ = [
    "ChannelPublisher",
    "KeysCreated",
    "build_cohorts",
    "channel_dir",
    "export",
    "init_keys",
    "list_remediations",
    "parse_duration",
    "publish_remediation",
    "rotate_key",
    "status",
]

log = logging.getLogger("ringfence.channel")
#: How often the publisher deletes superseded files (kept for twice the timestamp expiry).
PRUNE_EVERY = timedelta(hours=1)
_DURATION = re.compile(r"^([0-9]+)\s*([smhd])$")
#: The longest duration :func:`parse_duration` takes (100 years).
MAX_DURATION_SECONDS = 36_500 * 86_400
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def channel_dir(data_dir: Path) -> Path:
    """Where the server keeps the channel: ``<data_dir>/channel``."""
    return data_dir / "channel"


def parse_duration(value: str, field: str) -> int:
    """``90s``, ``10m``, ``1h``, ``7d`` → seconds; InputError naming the field otherwise."""
    m = _DURATION.match(value.strip())
    if not m:
        raise InputError.single(field, f"is {shown(value)}", expected="a duration such as 30m, 1h or 7d")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds > MAX_DURATION_SECONDS:  # a date that far ahead overflows Python's datetime
        raise InputError.single(field, f"is {shown(value)}", expected="a duration of at most 36500d (100 years)")
    return seconds


# --- keys --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeysCreated:
    """What ``keys init`` wrote (paths only; never key material)."""

    root_keys: tuple[Path, ...]
    root_threshold: int
    online_keys: tuple[Path, ...]
    metadata_dir: Path
    versions: dict[str, int]


def init_keys(data_dir: Path, *, root_keys: int = 1, root_threshold: int = 1, bins: int = DEFAULT_BINS,
              key_dir: Path | None = None, expiry: dict[str, int] | None = None, timestamp_refresh: int = 600,
              clock: Clock) -> KeysCreated:
    """Create root keys (``key_dir``, to be moved offline), online keys and version 1 of every role."""
    issues = []
    if not 1 <= root_keys <= 15:
        issues.append(FieldIssue("root_keys", f"is {root_keys}", expected="1 … 15 root keys"))
    if not 1 <= root_threshold <= max(root_keys, 1):
        issues.append(FieldIssue("root_threshold", f"is {root_threshold} for {root_keys} root keys",
                                 expected=f"1 … {root_keys}"))
    if not 1 <= bins <= MAX_BINS:
        issues.append(FieldIssue("bins", f"is {bins}", expected=f"1 … {MAX_BINS} cohort bins"))
    if issues:
        raise InputError("keys init rejected", issues)
    repo = ChannelRepository(channel_dir(data_dir))
    root_dir = key_dir or channel_dir(data_dir) / "root-keys"
    existing = sorted(root_dir.glob("root-*.key")) if root_dir.is_dir() else []
    if existing:
        raise InputError.single("dir", f"{root_dir} already holds root keys ({existing[0].name})",
                                expected="an empty directory for the new root keys")
    config = ChannelConfig(bins=bins, expiry={**DEFAULT_EXPIRY, **(expiry or {})}, timestamp_refresh=timestamp_refresh)
    config.validate()
    root_signers = [keyfiles.generate() for _ in range(root_keys)]
    online = {role: keyfiles.generate() for role in keyfiles.ONLINE_ROLES}
    # Root keys first: a channel must never exist whose root keys were not written.  If anything
    # after this fails, the key files are removed again so the command can simply be re-run.
    paths = tuple(keyfiles.write(root_dir / f"root-{i + 1}.key", s) for i, s in enumerate(root_signers))
    try:
        versions = repo.initialise(root_signers=root_signers, root_threshold=root_threshold, online=online,
                                   config=config, now=clock())
    except BaseException:
        for p in paths:
            p.unlink(missing_ok=True)
        raise
    return KeysCreated(root_keys=paths, root_threshold=root_threshold,
                       online_keys=tuple(repo.keys_dir / f"{r}.key" for r in keyfiles.ONLINE_ROLES),
                       metadata_dir=repo.metadata_dir, versions=versions)


def rotate_key(data_dir: Path, role: str, *, root_key_files: list[Path], clock: Clock, new_root_keys: int = 0,
               root_threshold: int | None = None, key_dir: Path | None = None) -> tuple[dict[str, int], list[Path]]:
    """Rotate one role's key (see :meth:`ChannelRepository.rotate`); return versions and new key files."""
    repo = ChannelRepository(channel_dir(data_dir))
    repo.require()
    if role not in ("root", *keyfiles.ONLINE_ROLES):
        raise InputError.single("role", f"is {shown(role)}", expected="root, targets, snapshot, timestamp or cohorts")
    needs_root = role != "cohorts"
    root_dir = key_dir or channel_dir(data_dir) / "root-keys"
    files = root_key_files or (sorted(root_dir.glob("root-*.key")) if needs_root else [])
    if needs_root and not files:
        raise InputError.single("root_key", "no root key file given or found in " + str(root_dir),
                                expected="--root-key FILE for each root key needed to reach the threshold")
    root_signers = keyfiles.load_many(files) if needs_root else []
    written: list[Path] = []
    if role == "root":
        count = new_root_keys or len(repo.root_md().signed.roles["root"].keyids)
        new = [keyfiles.generate() for _ in range(count)]
        versions = repo.rotate(role, new, root_signers=root_signers, now=clock(), root_threshold=root_threshold)
        stamp = clock().strftime("%Y%m%dT%H%M%S")
        retired = root_dir / f"retired-{stamp}"
        for f in files:
            if f.parent == root_dir:
                retired.mkdir(parents=True, exist_ok=True, mode=0o700)
                f.rename(retired / f.name)
        written = [keyfiles.write(root_dir / f"root-{i + 1}.key", s) for i, s in enumerate(new)]
    else:
        versions = repo.rotate(role, [keyfiles.generate()], root_signers=root_signers, now=clock())
        written = [repo.keys_dir / f"{role}.key"]
    return versions, written


def status(data_dir: Path) -> dict[str, Any]:
    """Versions, expiry and keys of each role, as JSON."""
    repo = ChannelRepository(channel_dir(data_dir))
    if not repo.initialised:
        return {"initialised": False, "roles": [], "bins": None}
    return {"initialised": True, "bins": repo.config().bins, "expiry_seconds": repo.config().expiry,
            "roles": [{**r, "expires": r["expires"].isoformat()} for r in repo.status()]}


def export(data_dir: Path, dest: Path) -> int:
    """Write the served tree (``metadata/`` and ``targets/``) into ``dest``; return how many files were copied."""
    return ChannelRepository(channel_dir(data_dir)).export(dest)


# --- publishing --------------------------------------------------------------------------------

def _empty() -> dict[str, Any]:
    return {"hosts": {}, "remediations": []}


def build_cohorts(conn: Any, hosts: list[Host], artifacts: ArtifactStore, bins: int) -> dict[str, CohortContent]:
    """Every cohort's manifest body and targets, from the desired state of every host (contract layout)."""
    desired = desired_many(conn, hosts, all_hosts=True)
    releases = releases_by_version(conn)
    manifests: dict[str, dict[str, Any]] = {cohort_role(i, bins): _empty() for i in range(bins)}
    targets: dict[str, dict[str, TargetSpec]] = defaultdict(dict)
    role_of: dict[str, str] = {}
    sources: dict[str, Path | None] = {}  # sha256 → file in the artifact store (None when missing)

    def source_of(sha256: str) -> Path | None:
        if sha256 not in sources:
            path = artifacts.path(sha256)
            sources[sha256] = path if path.is_file() else None
        return sources[sha256]

    for host in sorted(hosts, key=lambda h: h.id):
        role = role_of[host.id] = cohort_role(cohort_of(host.id, bins), bins)
        entries: dict[str, Any] = {}
        for product, d in sorted(desired[host.id].items()):
            if not d.directive:
                continue
            files: dict[str, list[str]] = {}
            release = releases.get((product, d.version))
            platform = host.os_family.value
            if release is not None and platform in release.platforms:
                paths: list[str] = []
                for a in release.artifacts:
                    source = source_of(a.sha256)
                    try:
                        path = artifact_path(role, product, d.version, platform, a.name)
                    except ValueError as e:
                        log.warning("not publishing %s %s to %s: %s", product, d.version, role, e)
                        continue
                    if source is None:
                        log.warning("artifact %s of %s@%s is missing from the artifact store", a.sha256, product,
                                    d.version)
                        continue
                    paths.append(path)
                    targets[role].setdefault(path, TargetSpec(
                        path=path, sha256=a.sha256, length=a.size, source=source,
                        custom={"product": product, "version": d.version, "kind": release.kind.value,
                                "rollout": d.rollout, "wave": d.wave, "rollback": d.rollback, "not_before": None}))
                if paths:
                    files[platform] = paths
            entries[product] = {"version": d.version, "rollback": d.rollback, "rollout": d.rollout, "wave": d.wave,
                                "reason": d.reason, "files": files}
        if entries:
            manifests[role]["hosts"][host.id] = entries
    for rem in channel_store.remediations(conn, active_only=True):
        everyone = rem["hosts"] == "*"
        members: dict[str, list[str]] = defaultdict(list)
        if everyone:
            roles = sorted(manifests)
        else:
            for h in rem["hosts"]:
                members[role_of.get(h) or cohort_role(cohort_of(h, bins), bins)].append(h)
            roles = sorted(members)
        source = artifacts.path(rem["sha256"])
        for role in roles:
            path = remediation_path(role, rem["id"], rem["file_name"])
            targets[role][path] = TargetSpec(path=path, sha256=rem["sha256"], length=rem["size"], source=source,
                                             custom={"remediation": rem["id"], "run_once": True})
            manifests[role]["remediations"].append({"id": rem["id"], "path": path,
                                                    "hosts": "*" if everyone else sorted(members[role])})
    return {role: CohortContent(manifest=body, targets=tuple(sorted(targets[role].values(), key=lambda t: t.path)))
            for role, body in manifests.items()}


class ChannelPublisher:
    """Publishes desired state to the channel; the reconciler calls :meth:`publish` after every tick."""

    def __init__(self, db: Database, artifacts: ArtifactStore, data_dir: Path, clock: Clock, *,
                 checkpoint_dir: Path | None = None, inventory: InventoryCache | None = None) -> None:
        self.db = db
        #: Signed audit checkpoints (services/audit): the newest is copied into every cohort manifest.
        self.checkpoint_dir = checkpoint_dir or data_dir / "audit-checkpoints"
        self.artifacts = artifacts
        self.repo = ChannelRepository(channel_dir(data_dir))
        self.clock = clock
        #: The application context's inventory cache (shared with the reconciler's ticks), or its own.
        self.inventory = inventory if inventory is not None else InventoryCache()
        self.last: PublishResult | None = None
        self.last_at: datetime | None = None
        self.pruned_at: datetime | None = None

    @property
    def ready(self) -> bool:
        """True once ``ringfence keys init`` created the channel."""
        return self.repo.initialised

    def publish(self, *, refresh: bool = True) -> PublishResult | None:
        """Publish what changed (and refresh expiring metadata); None when the channel has no keys yet."""
        if not self.ready:
            return None
        bins = self.repo.config().bins
        with self.db.transaction() as conn:
            hosts = self.inventory.hosts(conn)
            cohorts = build_cohorts(conn, hosts, self.artifacts, bins)
        checkpoint = latest_checkpoint(self.checkpoint_dir)
        if checkpoint is not None:  # agents and mirrors then hold the audit log's signed head outside the database
            for content in cohorts.values():
                content.manifest["audit_checkpoint"] = checkpoint
        now = self.clock()
        result = self.repo.publish(cohorts, now, refresh=refresh)
        if self.pruned_at is None or now - self.pruned_at >= PRUNE_EVERY:
            keep = timedelta(seconds=2 * self.repo.config().expiry["timestamp"])
            removed = self.repo.prune(now, keep)
            if removed:
                log.info("channel: removed %d superseded metadata and manifest files", removed)
            self.pruned_at = now
        if result.changed:
            log.info("channel: published %d changed cohort(s), snapshot %d, timestamp %d", len(result.changed),
                     result.snapshot_version, result.timestamp_version)
        self.last, self.last_at = result, now
        return result


# --- remediation -------------------------------------------------------------------------------

def publish_remediation(db: Database, artifacts: ArtifactStore, *, remediation_id: str, file_name: str, script: bytes,
                        selector: str = "", product: str = "", reason: str, actor: Actor, clock: Clock) -> dict[str, Any]:
    """Store a remediation script for the hosts a selector (or a product's hosts) names; the channel signs it
    into the manifests of their cohorts at its next publication.  Audited."""
    actor.require(Role.OPERATOR, "publishing remediation scripts")
    issues = []
    if not _ID.match(remediation_id):
        issues.append(FieldIssue("id", f"is {shown(remediation_id)}", expected="1-100 letters, digits, '.', '_', '+', '-'"))
    if not _ID.match(file_name):
        issues.append(FieldIssue("file", f"name is {shown(file_name)}", expected="a plain file name such as fix.sh"))
    if not script:
        issues.append(FieldIssue("file", "is empty", expected="the script to run"))
    if len(script) > 10 * 1024 * 1024:
        issues.append(FieldIssue("file", f"is {len(script):,} bytes", expected="at most 10 MiB"))
    if not reason.strip():
        issues.append(FieldIssue("reason", "is empty", expected="why hosts must run this (goes to the audit log)"))
    if bool(selector) == bool(product):
        issues.append(FieldIssue("selector", "and product are both given or both missing",
                                 expected="--selector EXPR (hosts) or --product NAME (hosts running it)"))
    if issues:
        raise InputError("remediation rejected", issues)
    expr = selector or f"agent.product={product}"
    predicate = compile_predicate(expr)
    now = clock()
    with db.transaction() as conn:
        if channel_store.get_remediation(conn, remediation_id) is not None:
            raise InputError.single("id", f"{shown(remediation_id)} exists already",
                                    expected="a new id (remediations are immutable; agents run each id once)")
        hosts = sorted(h.id for h in inventory_store.all_hosts(conn) if predicate(h))
        if not hosts:
            raise InputError.single("selector", f"{shown(expr)} matches no host", expected="a selector that names hosts")
        sha = artifacts.put(script)
        channel_store.add_remediation(conn, remediation_id=remediation_id, selector=expr, file_name=file_name,
                                      sha256=sha, size=len(script), hosts=hosts, reason=reason, actor=actor.name,
                                      now=now)
        audit_store.append(conn, at=now, actor=actor.name, action="remediation.publish",
                           target=f"remediation/{remediation_id}", source=actor.source, reason=reason,
                           details={"selector": expr, "file": file_name, "sha256": sha, "hosts": len(hosts)})
    return {"id": remediation_id, "selector": expr, "file": file_name, "sha256": sha,
            "hosts": len(hosts), "created_at": now.isoformat()}


def list_remediations(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Published remediation scripts."""
    actor.require(Role.VIEWER, "listing remediations")
    with db.transaction() as conn:
        return channel_store.remediations(conn)

