"""The agent against a real signed channel: what it installs, and the attacks it refuses.

The channel is built by ringfence's publisher (python-tuf Metadata API) and
exported as `ringfence channel export` writes it.  Every test runs twice, with
the real agent code (``Agent`` → ``ChannelSession`` → python-tuf's ``Updater``)
over two transports: loopback HTTP from a static file server, as a CDN would
serve the export, and an in-process fetcher (python-tuf's ``FetcherInterface``,
as tuf's own tests use a ``RepositorySimulator``) that answers from the same
exported tree without a socket and records every URL asked for.  Each attack is
a named row: the test tampers with the served files the way an attacker in the
middle (or a compromised mirror) would, polls once, and expects one clear log
line and nothing installed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

from ringfence.adapters.channel import keys
from ringfence.adapters.channel.repository import ChannelConfig, ChannelRepository
from ringfence.agent.channel import Unreachable
from ringfence.agent.core import Agent
from tests.agent_support import Channel, StaticServer, agent_config

HOST = "ws-0042"
PRODUCT = "falcon-content"


class TreeFetcher(FetcherInterface):
    """The exported channel tree answered in-process: no socket, every URL recorded, ``offline`` to cut it off.

    URLs are ``{url}/metadata/...`` and ``{url}/targets/...`` (a loopback address nothing listens on, so a
    download that bypassed the fetcher would fail as unreachable instead of passing).
    """

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.url = "http://127.0.0.1:9"
        self.asked: list[str] = []
        self.offline = False

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.asked.append(url)
        if self.offline:
            raise ConnectionRefusedError(f"{url}: connection refused")
        assert url.startswith(self.url + "/"), url
        relative = url.removeprefix(self.url + "/")
        path = self.tree / relative
        if ".." in relative.split("/") or not path.is_file():
            raise DownloadHTTPError(f"{url} not found", 404)
        return iter([path.read_bytes()])


class Transport:
    """How an agent reaches the channel in one run: loopback HTTP (``server``) or in-process (``fetcher``)."""

    def __init__(self, kind: str, tree: Path) -> None:
        self.kind = kind
        self.server = StaticServer(tree).__enter__() if kind == "http" else None
        self.fetcher = TreeFetcher(tree) if kind == "in-process" else None
        self.url = self.server.url if self.server else self.fetcher.url if self.fetcher else ""

    def cut(self) -> None:
        """The channel goes away (server down, network gone)."""
        if self.server is not None:
            self.server.__exit__()
            self.server = None
        if self.fetcher is not None:
            self.fetcher.offline = True


@pytest.fixture(params=["http", "in-process"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Channel, Transport]]:
    channel = Channel(tmp_path / "repo", tmp_path / "www")
    transport = Transport(request.param, tmp_path / "www")
    yield channel, transport
    transport.cut()


def _agent(tmp_path: Path, channel: Channel, server: Transport, **extra: object) -> Agent:
    agent = Agent(agent_config(tmp_path, host=HOST, channel=channel, server=server, **extra),  # type: ignore[arg-type]
                  fetcher=server.fetcher)
    agent.start()
    return agent


def _installed(tmp_path: Path) -> dict[str, bytes]:
    d = tmp_path / f"installed-{HOST}"
    return {p.name: p.read_bytes() for p in d.iterdir()} if d.is_dir() else {}


def test_a_signed_version_for_this_host_is_installed_and_committed(tmp_path: Path, served: tuple[Channel, Transport]) -> None:
    """The happy path the attacks are measured against: verified, installed atomically, probed, committed."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    desired = agent.poll_once()
    agent.close()
    assert desired.role == channel.role_of(HOST)
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}
    ps = agent.dir.load().products[PRODUCT]
    assert ps.running == ps.committed == "290" and ps.pending is None
    assert [e["kind"] for e in agent.dir.queued()] == ["applied", "committed"]


def test_the_agent_reads_only_its_own_cohort(tmp_path: Path) -> None:
    """Every byte the agent asks for is the top-level metadata, the bin map or its own cohort's files: a
    validly signed release for another cohort is never fetched, nor is that cohort's metadata."""
    channel = Channel(tmp_path / "repo", tmp_path / "www")
    transport = Transport("in-process", tmp_path / "www")
    assert transport.fetcher is not None
    mine, other = channel.role_of(HOST), channel.other_role(HOST)
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    neighbour = next(h for h in (f"ws-{i:04d}" for i in range(1000)) if channel.role_of(h) == other)
    channel.offer(neighbour, PRODUCT, "291", b"content 291")  # validly signed, for a host of the other cohort
    channel.publish()
    agent = _agent(tmp_path, channel, transport)
    agent.poll_once()
    agent.close()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}
    asked = [u.removeprefix(transport.url + "/") for u in transport.fetcher.asked]
    assert any(mine in u for u in asked if u.startswith("targets/")), asked
    assert not [u for u in asked if other in u], asked
    assert {u.split("/")[0] for u in asked} == {"metadata", "targets"}


# -- the five attacks -----------------------------------------------------------------------------------------
# Each row prepares its attack against an agent that runs 290 (committed); the test then polls once more.
def _tamper_target(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    path = channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=1))
    channel.served_target(path).write_bytes(b"content 666")  # same length, other bytes: only the signed hash tells


def _old_timestamp(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    old = channel.copy_metadata("timestamp.json", tmp_path / "old-timestamp.json")  # what the agent trusts now
    channel.publish(at=channel.later(seconds=700))  # a routine timestamp refresh; the agent sees it
    agent.poll_once()
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=701))
    (channel.served / "metadata" / "timestamp.json").write_bytes(old.read_bytes())  # replay: hide the new release


def _old_snapshot(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    old = channel.repo.versions()["snapshot"]
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=1))
    new = channel.repo.versions()["snapshot"]
    meta = channel.served / "metadata"
    (meta / f"{new}.snapshot.json").write_bytes((meta / f"{old}.snapshot.json").read_bytes())


def _expired_timestamp(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(hours=-3))  # signed "then": its timestamp expired two hours ago


def _untrusted_key(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=1))
    rogue = ChannelRepository(tmp_path / "rogue")
    rogue.initialise(root_signers=[keys.generate()], root_threshold=1,
                     online={r: keys.generate() for r in keys.ONLINE_ROLES}, config=ChannelConfig(bins=channel.bins),
                     now=channel.now)
    ts = channel.repo.read("timestamp.json")  # the real content, re-signed by a key the trusted root does not name
    ts.signed.version += 1
    ts.signatures.clear()
    ts.sign(rogue.signer("timestamp"))
    (channel.served / "metadata" / "timestamp.json").write_bytes(ts.to_bytes())


def _outside_cohort(channel: Channel, tmp_path: Path, agent: Agent) -> None:
    channel.offer(HOST, PRODUCT, "291", b"content 291", role=channel.other_role(HOST))  # validly signed, other cohort
    channel.publish(at=channel.later(seconds=1))


ATTACKS: list[tuple[str, Callable[[Channel, Path, Agent], None], str]] = [
    ("tampered target", _tamper_target, "tampered file"),
    ("old timestamp (rollback)", _old_timestamp, "rollback attack"),
    ("old snapshot (rollback)", _old_snapshot, "rollback attack"),
    ("expired timestamp (freeze)", _expired_timestamp, "expired metadata"),
    ("metadata signed by an untrusted key", _untrusted_key, "untrusted signature"),
    ("target outside the agent's cohort", _outside_cohort, "target outside this agent's cohort"),
]


@pytest.mark.parametrize(("attack", "reason"), [(a, r) for _, a, r in ATTACKS], ids=[n for n, _, _ in ATTACKS])
def test_attacks_are_refused_with_a_clear_line_and_nothing_installed(
        tmp_path: Path, served: tuple[Channel, Transport], caplog: pytest.LogCaptureFixture,
        attack: Callable[[Channel, Path, Agent], None], reason: str) -> None:
    """The agent runs 290 (committed); after the attack it still runs 290 and logs one `refused: <reason>` line."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    agent.poll_once()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}
    attack(channel, tmp_path, agent)
    events_before = agent.dir.queued()
    with caplog.at_level(logging.INFO, logger="ringfence.agent"):
        agent.run_poll()
    agent.close()
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused:")]
    assert len(refusals) == 1 and reason in refusals[0], caplog.text
    assert "\n" not in refusals[0]
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}
    assert agent.dir.queued() == events_before  # nothing applied, nothing committed
    ps = agent.dir.load().products[PRODUCT]
    assert ps.running == ps.committed == "290" and ps.pending is None


def test_unreachable_channel_keeps_the_current_version(tmp_path: Path, served: tuple[Channel, Transport]) -> None:
    """A dead server is not a refusal: the agent keeps what it runs and the caller backs off."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    agent.poll_once()
    server.cut()
    with pytest.raises(Unreachable):
        agent.poll_once()
    agent.close()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}


def test_downgrade_needs_the_rollback_flag(tmp_path: Path, served: tuple[Channel, Transport],
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Signed metadata naming an older version is not enough; `rollback: true` is, and goes back to the kept copy."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    agent.poll_once()
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=1))
    agent.poll_once()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 291"}
    channel.offer(HOST, PRODUCT, "290", b"content 290")  # an old manifest entry, validly signed, without the flag
    channel.publish(at=channel.later(seconds=2))
    with caplog.at_level(logging.WARNING, logger="ringfence.agent"):
        agent.poll_once()
    assert "refused: downgrade without rollback flag" in caplog.text
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 291"}
    channel.offer(HOST, PRODUCT, "290", b"content 290", rollback=True, rollout="ro_back")
    channel.publish(at=channel.later(seconds=3))
    agent.poll_once()
    agent.close()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 290"}
    ps = agent.dir.load().products[PRODUCT]
    assert ps.running == ps.committed == "290"


def test_remediation_runs_once_and_only_when_signed_for_this_cohort(
        tmp_path: Path, served: tuple[Channel, Transport]) -> None:
    """A signed script for this host's cohort runs once across polls and restarts; one for other hosts never."""
    channel, server = served
    marker = tmp_path / "ran.txt"
    script = f'echo ran >> "{marker}"\n'.encode()
    channel.remediation(HOST, "fix-291", script)
    channel.remediation(HOST, "fix-others", b"exit 7\n", hosts=["someone-else"])
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    agent.poll_once()
    agent.poll_once()
    agent.close()
    again = _agent(tmp_path, channel, server)
    again.poll_once()
    again.close()
    assert marker.read_text() == "ran\n"
    rems = again.dir.load().remediations
    assert rems["fix-291"]["state"] == "done" and "fix-others" not in rems


def test_a_failed_install_is_reported_and_not_retried(tmp_path: Path, served: tuple[Channel, Transport],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A command installer that fails: `install_failed` is queued, the version is marked bad, nothing else changes."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish()
    failing = {PRODUCT: {"kind": "command", "command": [sys.executable, "-c", "import sys; sys.exit(4)", "{file}"]}}
    agent = _agent(tmp_path, channel, server, installers=failing)
    with caplog.at_level(logging.INFO, logger="ringfence.agent"):
        agent.poll_once()
        agent.poll_once()
    agent.close()
    assert "install failed: installer" in caplog.text and "exited 4" in caplog.text
    assert [e["kind"] for e in agent.dir.queued()] == ["install_failed"]  # once: the second poll does not retry
    ps = agent.dir.load().products[PRODUCT]
    assert ps.running == "" and ps.bad == ["291"] and ps.pending is None


@pytest.mark.parametrize(("version", "path"), [
    ("..", "{role}/falcon-content/../windows/C-00000291.sys"),  # would write outside the state dir
    ("291", "{role}/falcon-sensor/291/windows/C-00000291.sys"),  # another product's file in the same cohort
    ("291", "{role}/falcon-content/291/linux/C-00000291.sys"),  # another platform's file
], ids=["dot-dot version", "other product", "other platform"])
def test_signed_entries_that_leave_the_layout_are_refused(tmp_path: Path, served: tuple[Channel, Transport],
                                                          caplog: pytest.LogCaptureFixture, version: str,
                                                          path: str) -> None:
    """Even validly signed, an entry naming a file outside its own product/version/platform is not installed."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    role = channel.role_of(HOST)
    content = channel.content[role]
    hosts = {HOST: {PRODUCT: {**content.manifest["hosts"][HOST][PRODUCT], "version": version,
                              "files": {"windows": [path.format(role=role)]}}}}
    channel.content[role] = type(content)(manifest={**content.manifest, "hosts": hosts}, targets=content.targets)
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    with caplog.at_level(logging.INFO, logger="ringfence.agent"):
        agent.poll_once()
    agent.close()
    assert "refused: malformed signed file" in caplog.text, caplog.text
    assert _installed(tmp_path) == {} and agent.dir.queued() == []
    assert not (agent.dir.root.parent / "windows").exists()


def test_agents_cross_key_rotations_and_keep_the_new_root_across_restarts(
        tmp_path: Path, served: tuple[Channel, Transport]) -> None:
    """Root and timestamp keys rotate; a running agent, the same agent restarted, and a new agent shipped with
    the old root all follow, because each step is signed by keys the previous root trusted."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    agent.poll_once()
    agent.close()
    channel.rotate("root", at=channel.later(seconds=1))
    channel.rotate("timestamp", at=channel.later(seconds=2))
    channel.offer(HOST, PRODUCT, "291", b"content 291")
    channel.publish(at=channel.later(seconds=3))
    restarted = _agent(tmp_path, channel, server)  # the shipped root is still version 1
    restarted.poll_once()
    restarted.close()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 291"}
    history = sorted(p.name for p in (restarted.dir.metadata / "root_history").iterdir())
    assert history[-1] == f"{channel.repo.versions()['root']}.root.json" and len(history) >= 3
    fresh = _agent(tmp_path / "fresh", channel, server)
    assert fresh.poll_once().role == channel.role_of(HOST)
    fresh.close()


def test_not_before_holds_an_install_until_its_time(tmp_path: Path, served: tuple[Channel, Transport],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A signed `not_before` in the future waits (nothing installed); a malformed one is refused."""
    channel, server = served
    channel.offer(HOST, PRODUCT, "290", b"content 290", not_before="2999-01-01T00:00:00Z")
    channel.publish()
    agent = _agent(tmp_path, channel, server)
    with caplog.at_level(logging.INFO, logger="ringfence.agent"):
        agent.poll_once()
        assert "may not be installed before 2999-01-01T00:00:00Z" in caplog.text and _installed(tmp_path) == {}
        channel.offer(HOST, PRODUCT, "291", b"content 291", not_before="next tuesday")
        channel.publish(at=channel.later(seconds=1))
        agent.poll_once()
        assert "refused: malformed signed file" in caplog.text and _installed(tmp_path) == {}
        channel.offer(HOST, PRODUCT, "292", b"content 292", not_before="2001-01-01T00:00:00+00:00")
        channel.publish(at=channel.later(seconds=2))
        agent.poll_once()
    agent.close()
    assert _installed(tmp_path) == {"C-00000291.sys": b"content 292"}
