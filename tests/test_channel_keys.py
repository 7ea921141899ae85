"""Key rotation crossed by real python-tuf clients that trusted the old root (scenario table, like
python-tuf's own ``root_rotation_cases``), and rotations that are not properly signed are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata

from ringfence.adapters.api.app import create_app
from ringfence.adapters.channel import keys as keyfiles
from ringfence.adapters.channel.repository import ChannelRepository
from ringfence.adapters.db.engine import Database
from ringfence.config import Settings
from ringfence.errors import InputError
from ringfence.services.channel import channel_dir, rotate_key
from tests.conftest import FakeClock
from tests.test_channel_support import Agent, AppFetcher, make_channel, now_clock


@pytest.fixture
def rt_clock() -> FakeClock:
    return now_clock()


@pytest.fixture
def client(tmp_path: Path, rt_clock: FakeClock) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'rf.db'}"
    db = Database(url)
    db.upgrade()
    app = create_app(Settings(database_url=url, data_dir=tmp_path, reconcile_interval_seconds=0), db=db, clock=rt_clock)
    with TestClient(app) as c:
        yield c
    db.dispose()


def _trusted_root_version(agent_dir: Path) -> int:
    return int(json.loads((agent_dir / "metadata" / "root.json").read_text())["signed"]["version"])


@pytest.mark.parametrize(("role", "root_changes"), [
    ("root", True), ("targets", True), ("snapshot", True), ("timestamp", True), ("cohorts", False)])
def test_a_client_that_trusted_the_old_keys_crosses_the_rotation(role: str, root_changes: bool, tmp_path: Path,
                                                                 client: TestClient, rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=2, root_keys=3, root_threshold=2)
    agent = Agent(tmp_path, tmp_path / "agent", AppFetcher(client))
    agent.poll("h1")
    repo = ChannelRepository(channel_dir(tmp_path))
    old_root = repo.root_md().signed
    old_key = None if role == "root" else (repo.keys_dir / f"{role}.key").read_bytes()
    rt_clock.advance(minutes=1)
    versions, written = rotate_key(tmp_path, role, root_key_files=[], clock=rt_clock)
    assert written
    assert versions["root"] == (2 if root_changes else 1)
    if old_key is not None:
        assert (repo.keys_dir / f"{role}.key").read_bytes() != old_key
    role_, manifest = agent.poll("h1")  # the same client, trusting root v1, crosses the rotation
    assert manifest["cohort"] == role_
    assert _trusted_root_version(tmp_path / "agent") == versions["root"]
    new_root = repo.root_md().signed
    if role in ("root", "targets", "snapshot", "timestamp"):
        assert set(new_root.roles[role].keyids).isdisjoint(old_root.roles[role].keyids)  # old key revoked
    if role == "root":
        root2 = json.loads((repo.metadata_dir / "2.root.json").read_text())
        assert len(root2["signatures"]) == 6  # the 3 old keys brought to the ceremony + the 3 new
        retired = list((channel_dir(tmp_path) / "root-keys").glob("retired-*/root-*.key"))
        assert len(retired) == 3
    # a fresh client that trusts only root v1 gets there too
    Agent(tmp_path, tmp_path / "fresh", AppFetcher(client)).poll("h1")


def test_metadata_signed_with_the_revoked_timestamp_key_is_refused(tmp_path: Path, client: TestClient,
                                                                   rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=2)
    repo = ChannelRepository(channel_dir(tmp_path))
    old = keyfiles.load(repo.keys_dir / "timestamp.key")
    rotate_key(tmp_path, "timestamp", root_key_files=[], clock=rt_clock)
    agent = Agent(tmp_path, tmp_path / "agent", AppFetcher(client))
    agent.poll("h1")
    forged = repo.read("timestamp.json")
    forged.signed.version += 1
    forged.signed.expires = rt_clock() + timedelta(hours=1)
    forged.signatures.clear()
    forged.sign(old)
    (repo.metadata_dir / "timestamp.json").write_bytes(forged.to_bytes())
    with pytest.raises(tuf_errors.UnsignedMetadataError, match="timestamp"):
        agent.poll("h1")


def test_a_new_root_not_signed_by_the_old_threshold_is_refused(tmp_path: Path, client: TestClient,
                                                               rt_clock: FakeClock) -> None:
    created = make_channel(tmp_path, rt_clock, bins=2, root_keys=2, root_threshold=2)
    agent = Agent(tmp_path, tmp_path / "agent", AppFetcher(client))
    agent.poll("h1")
    repo = ChannelRepository(channel_dir(tmp_path))
    # an attacker holding one of the two root keys plus a key of their own
    one_old = keyfiles.load(created.root_keys[0])
    mine = keyfiles.generate()
    md: Metadata = repo.root_md()
    root = md.signed
    for keyid in list(root.roles["root"].keyids):
        root.revoke_key(keyid, "root")
    root.add_key(mine.public_key, "root")
    root.roles["root"].threshold = 1
    root.version += 1
    md.signatures.clear()
    md.sign(one_old, append=True)
    md.sign(mine, append=True)
    repo.write_root(md)
    with pytest.raises(tuf_errors.UnsignedMetadataError, match="root"):
        agent.poll("h1")
    assert _trusted_root_version(tmp_path / "agent") == 1


def test_rotation_needs_the_root_threshold_and_a_known_role(tmp_path: Path, rt_clock: FakeClock) -> None:
    created = make_channel(tmp_path, rt_clock, bins=2, root_keys=3, root_threshold=2)
    with pytest.raises(InputError, match="root_key"):
        rotate_key(tmp_path, "targets", root_key_files=[created.root_keys[0]], clock=rt_clock)
    with pytest.raises(InputError, match="role"):
        rotate_key(tmp_path, "cohort-000", root_key_files=[], clock=rt_clock)
    assert ChannelRepository(channel_dir(tmp_path)).versions()["root"] == 1  # nothing changed
