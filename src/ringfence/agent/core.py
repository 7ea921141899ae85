"""The agent: converge to the signed desired state, commit only what proves healthy, revert what crash-loops.

Rules, in the order the agent applies them:

1. **Start-up accounting comes first.**  Before anything else, every product
   with a pending marker gets its start counter incremented on disk, and a
   ``crashed`` event is queued (the previous run ended without a commit).  At
   ``crash_loop_threshold`` starts the last known good version is restored,
   the pending version is marked bad for good and ``auto_reverted`` is
   queued.  Nothing that could crash (the probe, the network) runs before.
2. **Queued events go out before the probe runs**, so a host the probe kills
   still gets its ``crashed`` report through on every start; the pending
   version is then put in place again (the last run may have died between
   writing the marker and moving the files), so the probe judges what is
   really installed.
3. **A pending version is committed only when the health probe passes**; a
   probe that fails (non-zero exit, timeout) reverts at once.
4. **What to install comes only from verified metadata** for this host's own
   cohort and platform.  A version below the last committed one needs
   ``rollback: true``; a version marked bad is never installed again; a
   target outside the cohort is refused.
5. **The server being unreachable changes nothing on the host**: the agent
   keeps its versions and backs off with jitter.
6. **A remediation runs at most once**: it is recorded as started before it runs.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tuf.ngclient.fetcher import FetcherInterface

from ringfence.agent.channel import ChannelClient, ChannelSession, Desired, Refused, Unreachable
from ringfence.agent.config import AgentConfig
from ringfence.agent.facts import collect_facts, host_id
from ringfence.agent.files import atomic_copy, atomic_write
from ringfence.agent.installers import FileInstaller, Installer, InstallError, installer_for, substitute
from ringfence.agent.reporter import EnrolmentRefused, Reporter, ServerUnreachable
from ringfence.agent.state import AgentState, Pending, ProductState, StateDir, version_key
from ringfence.agent.timing import Pacer
from ringfence.clock import Clock, system_clock
from ringfence.domain.channel import artifact_path, remediation_path
from ringfence.errors import InputError, shown

__all__ = ["Agent", "EnrolmentRefused"]

log = logging.getLogger("ringfence.agent")

#: After ``notify-away`` the running agent sends nothing for this long (the host is about to sleep).
AWAY_HOLD = timedelta(minutes=2)


def _layout(path: str, role: str, expected: Callable[..., str], *parts: str) -> str:
    """The file name of ``path`` if it is exactly where the channel layout puts it for ``parts`` in ``role``.

    Signed metadata cannot make the agent write outside its state dir or mix products: every segment
    must be a plain name (``..`` or ``/`` are refused) and the path must be the layout's own.
    """
    if not path.startswith(role + "/"):
        raise Refused("target outside this agent's cohort", f"{path} is not under {role}/")
    name = path.rsplit("/", 1)[-1]
    try:
        want = expected(role, *parts, name)
    except ValueError as e:
        raise Refused("malformed signed file", f"{path}: {e}") from e
    if path != want:
        raise Refused("malformed signed file", f"{path} is not where the channel layout puts it ({want})")
    return name


def _custom(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _when(path: str, value: object) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as e:
        raise Refused("malformed signed file", f"{path} has not_before {shown(value)}, not an ISO 8601 time") from e
    if when.tzinfo is None:
        raise Refused("malformed signed file", f"{path} has not_before {shown(value)} without a time zone")
    return when


class Agent:
    """One agent over one state directory.  Call :meth:`start` first, then :meth:`poll_once` or :meth:`run`."""

    def __init__(self, config: AgentConfig, *, clock: Clock = system_clock, pacer: Pacer | None = None,
                 transport: httpx.BaseTransport | None = None, fetcher: FetcherInterface | None = None) -> None:
        self.config = config
        self.fetcher = fetcher  # the channel's transport (None: HTTP); see ringfence.agent.channel
        self.clock = clock
        self.dir = StateDir(config.state_dir)
        self.installers: dict[str, Installer] = {p: installer_for(c) for p, c in config.installers.items()}
        self.pacer = pacer or Pacer(config.poll_interval_seconds, config.poll_jitter, config.backoff_cap_seconds)
        self.reporter = Reporter(config.server, self.dir, timeout=config.request_timeout_seconds, transport=transport)
        self.stopping = threading.Event()
        self.state = AgentState()
        self.host_id = ""
        self.platform = config.platform
        self._said: set[str] = set()
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------------
    def open(self) -> None:
        """Lock the state dir and load the state, without counting a start (``ringfence-agent enrol``)."""
        self.dir.lock()
        self.state = self.dir.load()
        self._identify()

    def _identify(self) -> None:
        self.host_id = host_id(self.config.host_id, self.dir.root)
        if not self.platform:
            self.platform = str(self.config.facts.get("os_family") or collect_facts(self.host_id, {})["os_family"])

    def start(self) -> None:
        """Lock the state dir, then do the crash-loop accounting (rule 1) before anything else."""
        self.dir.lock()
        self.state = self.dir.load()
        pending = [(name, ps) for name, ps in sorted(self.state.products.items()) if ps.pending is not None]
        for _name, ps in pending:
            assert ps.pending is not None
            ps.pending.starts += 1
        if pending:
            self.dir.save(self.state)  # the counter reaches the disk before anything can crash again
        self._identify()
        for name, ps in pending:
            assert ps.pending is not None
            log.warning("%s %s was installed but never committed: start %d of %d without a commit", name,
                        ps.pending.version, ps.pending.starts, self.config.crash_loop_threshold)
            self._event("crashed", ps.pending.rollout)
            if ps.pending.starts >= self.config.crash_loop_threshold:
                self._revert(name, ps, f"crash loop: {ps.pending.starts} starts without a commit")
        self._started = True

    def close(self) -> None:
        """Release the state dir and the HTTP pool."""
        self.reporter.close()
        self.dir.unlock()

    def settle(self) -> None:
        """Put every pending version in place again (the last run may have died mid-install), then probe it:
        commit or revert (rule 3)."""
        for name, ps in sorted(self.state.products.items()):
            pending = ps.pending
            if pending is None:
                continue
            installer = self.installers.get(name)
            kept = [self.dir.version_dir(name, pending.version) / n for n in pending.files]
            if installer is not None and kept and all(f.is_file() for f in kept):
                try:
                    installer.install(name, pending.version, kept)  # atomic and idempotent
                except InstallError as e:
                    log.error("install failed: %s", e)
                    self._event("install_failed", pending.rollout)
                    self._revert(name, ps, f"install failed: {e}", event="")
                    continue
            ps.running, ps.rollout = pending.version, pending.rollout
            self.dir.save(self.state)
            self._probe(name, ps)

    # -- enrolment and reports -----------------------------------------------------------------------
    def facts(self) -> dict[str, Any]:
        """This host's inventory record."""
        return collect_facts(self.host_id, self.config.facts)

    def enrol(self) -> bool:
        """Enrol with the one-time token unless a credential is already kept; False while the server is unreachable."""
        if self.reporter.credential:
            return True
        token = self.config.token()
        if not token:
            raise InputError.single("enrolment_token", "is not set and this host has no credential yet",
                                    expected="enrolment_token or enrolment_token_file with a token from "
                                             "`ringfence enrol token create`")
        try:
            got = self.reporter.enrol(token, self.facts())
        except ServerUnreachable as e:
            log.warning("cannot enrol yet: %s", e)
            return False
        log.info("enrolled as host %s; credential kept in %s (0600)", got, self.dir.root / "credential")
        return True

    def send_facts(self) -> None:
        """Refresh the host's inventory facts on the server (best effort)."""
        try:
            self.reporter.send_facts(self.facts())
        except ServerUnreachable as e:
            log.warning("facts not sent: %s", e)

    def _running(self) -> tuple[dict[str, str], list[str]]:
        """What a report says this host runs: product → version, and the products whose version is committed."""
        versions = {p: ps.running for p, ps in sorted(self.state.products.items()) if ps.running}
        committed = [p for p, ps in sorted(self.state.products.items())
                     if ps.running and ps.pending is None and ps.running == ps.committed]
        return versions, committed

    def report(self) -> bool:
        """Heartbeat with versions and queued events; False when the server is unreachable.

        Within :data:`AWAY_HOLD` of a going-away notice sent by ``ringfence-agent notify-away`` (the marker
        ``away`` in the state dir) nothing is sent, so the notice stays the host's last word before it sleeps;
        the first report after that removes the marker."""
        marker = self.dir.read_text("away")
        if marker:
            try:
                held = self.clock() - datetime.fromisoformat(marker) < AWAY_HOLD
            except ValueError:
                held = False
            if held:
                return True
            (self.dir.root / "away").unlink(missing_ok=True)
        versions, committed = self._running()
        try:
            self.reporter.report(self.host_id, self.clock(), versions, committed)
        except ServerUnreachable as e:
            log.warning("report not sent (%s); %d events stay queued on disk", e, len(self.dir.queued()))
            return False
        return True

    def notify_away(self, reason: str, *, events: bool = True) -> bool:
        """Tell the server this host is going away (``sleep``, ``shutdown``, ``reboot``, ``update_reboot``), so
        it is not counted as silent until it reports again; False when the server did not take it.

        ``events=False`` sends no queued events (another process, the running agent, owns the queue)."""
        versions, committed = self._running()
        if not events:  # another process runs the agent: it holds its reports for a while (see report())
            atomic_write(self.dir.root / "away", (self.clock().isoformat() + "\n").encode())
        try:
            self.reporter.report(self.host_id, self.clock(), versions, committed, away=reason, events=events)
        except ServerUnreachable as e:
            log.warning("going-away notice (%s) not sent: %s", reason, e)
            (self.dir.root / "away").unlink(missing_ok=True)
            return False
        log.info("told the server this host is going away (%s)", reason)
        return True

    def _event(self, kind: str, rollout: str) -> None:
        self.dir.enqueue(kind, rollout, self.clock().isoformat())

    # -- polling ---------------------------------------------------------------------------------------
    def poll_once(self) -> Desired:
        """Refresh the channel, read this host's entry, converge each product, run new remediations.

        Raises :class:`Refused` (logged by the caller) or :class:`Unreachable`.
        """
        assert self._started, "call start() first"
        session = ChannelClient(metadata_dir=self.dir.metadata, targets_dir=self.dir.targets,
                                metadata_base=self.config.metadata_base, targets_base=self.config.targets_base,
                                trusted_root=self._trusted_root(),
                                timeout=self.config.request_timeout_seconds, fetcher=self.fetcher).session()
        session.refresh()
        desired = session.desired(self.host_id)
        self.state.cohort = desired.role
        for product, entry in sorted(desired.products.items()):
            try:
                self._converge(session, desired, product, entry)
            except Refused as e:
                self._refuse(e)
        self._remediate(session, desired)
        self.state.last_poll = {"at": self.clock().isoformat(), "host": self.host_id, "cohort": desired.role,
                                "generation": str(desired.generation)}
        self.dir.save(self.state)
        return desired

    def run_poll(self) -> bool:
        """One poll as the loop runs it: a refusal or an unreachable channel is logged (one line), not raised."""
        try:
            self.poll_once()
        except Refused as e:
            self._refuse(e)
            return False
        except Unreachable as e:
            log.warning("channel unreachable (%s); keeping the current versions", e)
            return False
        except (OSError, ValueError, KeyError, TypeError) as e:  # a full disk, a surprise in signed data: back off
            log.exception("poll failed (%s); keeping the current versions", e)
            return False
        return True

    def _trusted_root(self) -> bytes:
        try:
            return self.config.trusted_root.read_bytes()
        except OSError as e:
            raise InputError.single("trusted_root", f"cannot be read: {e}",
                                    expected="the root.json shipped with the agent (`ringfence channel export`)") from e

    def _refuse(self, error: Refused) -> None:
        log.error("refused: %s: %s", error.reason, error.detail)

    def _once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)

    def _converge(self, session: ChannelSession, desired: Desired, product: str, entry: dict[str, Any]) -> None:
        version = str(entry.get("version") or "")
        rollback = entry.get("rollback") is True
        rollout = str(entry.get("rollout") or "")
        ps = self.state.product(product)
        if not version or ps.pending is not None or (version == ps.running and ps.running == ps.committed):
            return
        if version in ps.bad:
            self._once(f"bad:{product}:{version}", "refused: %s %s auto-reverted on this host before; a version "
                       "marked bad is never retried", product, version)
            return
        installer = self.installers.get(product)
        if installer is None:
            self._once(f"noinst:{product}", "skipped: no installer configured for product %s (add [installers.%s])",
                       product, product)
            return
        if ps.committed and version_key(version) < version_key(ps.committed) and not rollback:
            self._once(f"down:{product}:{version}", "refused: downgrade without rollback flag: %s %s is below the "
                       "last committed version %s and the signed entry does not say rollback", product, version,
                       ps.committed)
            return
        paths = entry.get("files", {}).get(self.platform) if isinstance(entry.get("files"), dict) else None
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            self._once(f"noplat:{product}:{version}", "skipped: %s %s has no files for platform %s", product, version,
                       self.platform)
            return
        names = [_layout(p, desired.role, artifact_path, product, version, self.platform) for p in paths]
        kept = self.dir.version_dir(product, version)
        reuse = version == ps.committed and all((kept / n).is_file() for n in names)
        if not reuse:
            verified: list[tuple[Path, str]] = []
            for path in paths:
                local, info = session.download(path)  # refuses a path outside this cohort before asking the Updater
                custom = _custom(info.custom)
                if custom.get("product", product) != product or str(custom.get("version", version)) != version:
                    raise Refused("signed target does not match the manifest", f"{path} is signed as "
                                  f"{custom.get('product')} {custom.get('version')}, the entry says {product} {version}")
                not_before = custom.get("not_before")
                if not_before and _when(path, not_before) > self.clock():
                    self._once(f"nb:{path}", "waiting: %s may not be installed before %s", path, not_before)
                    return
                verified.append((local, path.rsplit("/", 1)[-1]))
            for local, name in verified:
                atomic_copy(local, kept / name, mode=0o600)
        files = [kept / n for n in names]
        ps.pending = Pending(version=version, previous=ps.running, rollout=rollout, files=names,
                             installed_at=self.clock().isoformat())
        self.dir.save(self.state)  # the marker is on disk before the host changes
        try:
            installer.install(product, version, files)
        except InstallError as e:
            log.error("install failed: %s", e)
            self._event("install_failed", rollout)
            self._revert(product, ps, f"install failed: {e}", event="")
            return
        ps.running, ps.rollout = version, rollout
        self.dir.save(self.state)
        self._event("applied", rollout)
        log.info("installed %s %s for %s%s; probing before commit", product, version, rollout or "desired state",
                 " (rollback)" if rollback else "")
        if self.reporter.credential:  # the server hears "applied" before the probe can take the host down
            self.report()
        self._probe(product, ps)

    def _probe(self, product: str, ps: ProductState) -> None:
        pending = ps.pending
        assert pending is not None
        argv = self.config.probe.command
        if argv:
            inst = self.installers.get(product)
            first = pending.files[0] if pending.files else ""
            where = (inst.target_dir if isinstance(inst, FileInstaller) else self.dir.version_dir(product, pending.version))
            cmd = substitute(argv, product=product, version=pending.version, file=str(where / first))
            try:
                result = subprocess.run(cmd, capture_output=True, text=True, check=False,  # noqa: S603 - argv from config
                                        timeout=self.config.probe.timeout_seconds)
                failure = "" if result.returncode == 0 else (
                    f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[:200]}")
            except subprocess.TimeoutExpired:
                failure = f"ran longer than {self.config.probe.timeout_seconds:g} s"
            except OSError as e:
                failure = f"cannot run {cmd[0]}: {e}"
            if failure:
                self._revert(product, ps, f"health probe failed ({failure})")
                return
        ps.committed, ps.pending = pending.version, None
        self.dir.save(self.state)
        self.dir.prune_versions(product, {ps.committed})
        self._event("committed", pending.rollout)
        log.info("committed %s %s: the health probe passed; it is the last known good version now", product,
                 pending.version)

    def _revert(self, product: str, ps: ProductState, why: str, *, event: str = "auto_reverted") -> None:
        pending = ps.pending
        assert pending is not None
        installer = self.installers.get(product)
        lkg = ps.committed
        kept = self.dir.version_dir(product, lkg) if lkg else None
        lkg_files = sorted(kept.iterdir()) if kept is not None and kept.is_dir() else []
        if installer is not None:
            try:
                if lkg_files:
                    installer.install(product, lkg, lkg_files)
                installer.remove(product, [n for n in pending.files if n not in {f.name for f in lkg_files}])
            except InstallError as e:
                log.error("restoring the last known good %s %s failed: %s", product, lkg or "(none)", e)
        if pending.version not in ps.bad:
            ps.bad.append(pending.version)
        ps.running, ps.pending, ps.rollout = lkg, None, ""
        self.dir.save(self.state)
        self.dir.prune_versions(product, {lkg} if lkg else set())
        if event:
            self._event(event, pending.rollout)
        log.error("auto-reverted %s %s to the last known good version %s (%s); %s %s is marked bad and will not be "
                  "retried", product, pending.version, lkg or "(none: removed)", why, product, pending.version)

    # -- remediation -----------------------------------------------------------------------------------
    def _remediate(self, session: ChannelSession, desired: Desired) -> None:
        for rem in desired.remediations:
            rid = str(rem.get("id") or "")
            hosts = rem.get("hosts")
            if not rid or rid in self.state.remediations:
                continue
            if hosts != "*" and not (isinstance(hosts, list) and self.host_id in hosts):
                continue
            try:
                path = str(rem.get("path") or "")
                _layout(path, desired.role, remediation_path, rid)
                local, info = session.download(path)
                if _custom(info.custom).get("remediation") != rid:
                    raise Refused("signed target does not match the manifest",
                                  f"{info.path} is not signed as remediation {rid}")
            except Refused as e:
                self._refuse(e)
                continue
            self.state.remediations[rid] = {"state": "started", "at": self.clock().isoformat(), "path": info.path}
            self.dir.save(self.state)  # at most once, even if the script takes the host down
            argv = substitute(self.config.remediation_command, file=str(local))
            try:
                result = subprocess.run(argv, capture_output=True, text=True, check=False,  # noqa: S603 - argv from config
                                        timeout=self.config.remediation_timeout_seconds)
                outcome, code = ("done" if result.returncode == 0 else "failed"), result.returncode
            except (OSError, subprocess.TimeoutExpired) as e:
                outcome, code = "failed", -1
                log.error("remediation %s did not complete: %s", rid, e)
            self.state.remediations[rid].update(state=outcome, exit=code, finished=self.clock().isoformat())
            self.dir.save(self.state)
            log.info("remediation %s ran once (signed for %s): %s, exit %d", rid, desired.role, outcome, code)

    # -- the loop --------------------------------------------------------------------------------------
    def _sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True once stopping (checked at least every half second, so a stop is prompt)."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stopping.wait(min(left, 0.5))
        return True

    def run(self, *, max_polls: int = 0, sleep: Callable[[float], bool] | None = None) -> None:
        """Start, enrol, report, settle pending versions, then poll until stopped (or ``max_polls`` polls)."""
        wait = sleep or self._sleep
        self.start()
        try:
            while not self.enrol():
                if wait(self.pacer.failure()):
                    return
            self.pacer.success()
            self.send_facts()
            self.report()  # rule 2: queued crash reports leave before the probe can crash us again
            self.settle()
            polls = 0
            while not self.stopping.is_set():
                ok = self.run_poll()
                ok = self.report() and ok
                polls += 1
                if max_polls and polls >= max_polls:
                    return
                delay = self.pacer.success() if ok else self.pacer.failure()
                if not ok:
                    log.info("next poll in %.1f s (backoff after %d failures)", delay, self.pacer.failures)
                if wait(delay):
                    if self.config.notice_on_stop and self.reporter.credential:
                        self.notify_away("shutdown")  # a clean stop: a shutdown, a reboot, a service stop
                    return
        finally:
            self.close()
