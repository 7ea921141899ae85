"""The signed channel: keys, publishing desired state per cohort, serving, verified by a real python-tuf client.

Every client here is a real ``tuf.ngclient.Updater``; it fetches through the app (``AppFetcher`` over a
TestClient) so what is tested is what the server serves.  test_channel_http.py does the same over
real HTTP against ``ringfence serve``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tuf.api import exceptions as tuf_errors

from ringfence.adapters.api.app import create_app
from ringfence.adapters.api.reconciler import Reconciler
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.channel.repository import ChannelRepository
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import inventory as inventory_store
from ringfence.config import Settings
from ringfence.domain.channel import artifact_path, cohort_of, cohort_role
from ringfence.errors import ConflictError, InputError
from ringfence.services import rollouts
from ringfence.services.channel import ChannelPublisher, channel_dir, export, status
from ringfence.services.desired import desired_many, desired_one
from ringfence.services.health import HealthIngest
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, OPERATOR, Fleet, make_hosts, start
from tests.test_channel_support import Agent, AppFetcher, desired_of, make_channel, now_clock, tuf_client


@pytest.fixture
def rt_clock() -> FakeClock:
    return now_clock()


@pytest.fixture
def client(db: Database, db_url: str, tmp_path: Path, rt_clock: FakeClock) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, data_dir=tmp_path, reconcile_interval_seconds=0), db=db,
                     clock=rt_clock)
    with TestClient(app) as c:
        yield c


def _fleet(db: Database, clock: FakeClock, tmp_path: Path, n: int = 40) -> Fleet:
    return Fleet(db, clock, make_hosts(n, builds=("22631", "26100")), ArtifactStore(tmp_path / "artifacts"))


def _exposed_fleet(db: Database, clock: FakeClock, tmp_path: Path) -> tuple[Fleet, str]:
    fleet = _fleet(db, clock, tmp_path)
    fleet.release("290")
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN)
    fleet.run(rid, minutes=3)
    assert fleet.exposed(rid)
    return fleet, rid


# --- keys ------------------------------------------------------------------------------------------

def test_keys_init_writes_private_keys_0600_and_metadata_a_client_trusts(tmp_path: Path, client: TestClient,
                                                                        rt_clock: FakeClock) -> None:
    created = make_channel(tmp_path, rt_clock, bins=8, root_keys=3, root_threshold=2)
    assert len(created.root_keys) == 3
    for path in (*created.root_keys, *created.online_keys):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert b"PRIVATE KEY" in path.read_bytes()
    assert created.root_keys[0].parent != created.online_keys[0].parent  # root keys apart, to be moved offline
    root = json.loads((created.metadata_dir / "root.json").read_text())
    assert root["signed"]["roles"]["root"]["threshold"] == 2 and len(root["signed"]["roles"]["root"]["keyids"]) == 3
    assert len(root["signatures"]) == 3 and root["signed"]["consistent_snapshot"] is True
    updater = tuf_client(tmp_path, tmp_path / "agent", fetcher=AppFetcher(client))
    role, manifest = desired_of(updater, "h00001")
    assert role == cohort_role(cohort_of("h00001", 8), 8)
    assert manifest == {"cohort": role, "generation": 1, "published_at": manifest["published_at"], "hosts": {},
                        "remediations": []}
    with pytest.raises(ConflictError, match="initialised already"):
        make_channel(tmp_path, rt_clock, key_dir=tmp_path / "other-root-keys")
    with pytest.raises(InputError) as bad:
        make_channel(tmp_path / "x", rt_clock, root_keys=2, root_threshold=3, bins=0)
    assert {i.field for i in bad.value.issues} == {"root_threshold", "bins"}


# --- publishing ------------------------------------------------------------------------------------

def test_published_desired_state_reaches_a_client_and_unchanged_cohorts_are_not_resigned(
        db: Database, tmp_path: Path, client: TestClient, rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=4)
    fleet, rid = _exposed_fleet(db, rt_clock, tmp_path)
    publisher = ChannelPublisher(db, fleet.artifacts, tmp_path, rt_clock)
    result = publisher.publish()
    assert result is not None and result.changed
    host = sorted(fleet.exposed(rid))[0]
    agent = Agent(tmp_path, tmp_path / "agent", AppFetcher(client))
    role, manifest = agent.poll(host)
    updater = agent.updater
    assert updater is not None
    entry = manifest["hosts"][host]["falcon-content"]
    assert entry["version"] == "291" and entry["rollback"] is False and entry["rollout"] == rid
    assert entry["wave"] == 0 and "exposed in rollout" in entry["reason"]
    path = artifact_path(role, "falcon-content", "291", "windows", "c-291.bin")
    assert entry["files"] == {"windows": [path]}
    info = updater.get_targetinfo(path)
    assert info is not None
    assert info.custom == {"product": "falcon-content", "version": "291", "kind": "content", "rollout": rid,
                           "wave": 0, "rollback": False, "not_before": None}
    assert Path(updater.download_target(info)).read_bytes() == b"291"
    # hosts the rollout has not reached have no entry (they keep what they run)
    unexposed = [h.id for h in fleet.hosts if h.id not in fleet.exposed(rid)]
    assert all(h not in agent.poll(h)[1]["hosts"] for h in unexposed[:5])
    # nothing changed: nothing is re-signed
    repo = ChannelRepository(channel_dir(tmp_path))
    before = repo.versions()
    again = publisher.publish()
    assert again is not None and not again.wrote
    assert repo.versions() == before
    # one unexposed host pinned by policy: only its cohort gets a new version
    pinned = unexposed[0]
    rollouts.set_policy(db, tenant="acme", host_group=f"id={pinned}", product="falcon-content", pin="exact:290",
                        actor=OPERATOR, clock=rt_clock)
    result = publisher.publish(refresh=False)
    assert result is not None
    assert result.changed == (cohort_role(cohort_of(pinned, 4), 4),)
    assert agent.entry(pinned, "falcon-content")["reason"] == "pinned by tenant policy (exact:290)"
    after = repo.versions()
    changed = {r for r in after if r.startswith("cohort-") and after[r] != before[r]}
    assert changed == set(result.changed)
    assert after["snapshot"] == before["snapshot"] + 1 and after["timestamp"] == before["timestamp"] + 1


def test_halt_and_rollback_reach_the_manifest_within_one_reconciler_pass(db: Database, tmp_path: Path,
                                                                         client: TestClient,
                                                                         rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=4)
    fleet, rid = _exposed_fleet(db, rt_clock, tmp_path)
    publisher = ChannelPublisher(db, fleet.artifacts, tmp_path, rt_clock)
    reconciler = Reconciler(db, HealthIngest(db, rt_clock), rt_clock, 5.0, publisher=publisher)
    reconciler.run_once()
    host = sorted(fleet.exposed(rid))[0]
    agent = Agent(tmp_path, tmp_path / "agent", AppFetcher(client))
    assert agent.entry(host, "falcon-content")["version"] == "291"
    rollouts.operate(db, rid, "halt", actor=OPERATOR, clock=rt_clock, reason="looks bad")
    reconciler.run_once()
    halted = agent.poll(host)[1]
    assert halted["hosts"][host]["falcon-content"]["reason"] == f"exposed in rollout {rid} (halted)"
    assert set(halted["hosts"]) <= fleet.exposed(rid)  # nobody new
    rollouts.operate(db, rid, "rollback", actor=OPERATOR, clock=rt_clock, reason="bad content")
    reconciler.run_once()
    role, manifest = agent.poll(host)
    updater = agent.updater
    assert updater is not None
    entry = manifest["hosts"][host]["falcon-content"]
    assert entry["version"] == "290" and entry["rollback"] is True and "rolled back from 291" in entry["reason"]
    assert entry["files"] == {"windows": [artifact_path(role, "falcon-content", "290", "windows", "c-290.bin")]}
    info = updater.get_targetinfo(entry["files"]["windows"][0])
    assert info is not None and info.custom["rollback"] is True
    assert Path(updater.download_target(info)).read_bytes() == b"290"


def test_the_reconciler_and_the_publisher_share_one_inventory_cache(db: Database, tmp_path: Path, client: TestClient,
                                                                    rt_clock: FakeClock) -> None:
    """One cache per application context: a pass (tick + publish) reads the inventory once, an unchanged one never."""
    make_channel(tmp_path, rt_clock, bins=4)
    fleet, rid = _exposed_fleet(db, rt_clock, tmp_path)
    app = client.app
    assert isinstance(app, FastAPI)
    reconciler, context = app.state.reconciler, app.state.ringfence.context
    assert reconciler.cache is context.inventory and reconciler.publisher.inventory is context.inventory
    before = context.inventory.loads
    assert rid in reconciler.run_once()  # a tick of the running rollout, then a publish of every cohort
    assert reconciler.publisher.last is not None and reconciler.publisher.last.changed
    assert context.inventory.loads == before + 1
    reconciler.run_once()
    assert context.inventory.loads == before + 1  # nothing changed: neither the tick nor the publish re-reads it
    with db.transaction() as conn:
        inventory_store.upsert_hosts(conn, [replace(fleet.hosts[0], os_build="26100")], rt_clock())
    reconciler.run_once()
    assert context.inventory.loads == before + 2  # a change is read once, for both


def test_kill_switch_reaches_the_manifest_and_the_wake_event_is_set_by_operator_routes(
        db: Database, tmp_path: Path, client: TestClient, rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=4)
    fleet, rid = _exposed_fleet(db, rt_clock, tmp_path)
    publisher = ChannelPublisher(db, fleet.artifacts, tmp_path, rt_clock)
    publisher.publish()
    rollouts.kill_switch(db, "falcon-content", actor=OPERATOR, clock=rt_clock, reason="291 crashes hosts")
    publisher.publish()
    host = sorted(fleet.exposed(rid))[0]
    entry = Agent(tmp_path, tmp_path / "agent", AppFetcher(client)).entry(host, "falcon-content")
    assert entry["rollback"] is True and entry["version"] == "290" and "kill switch" in entry["reason"]
    reconciler = client.app.state.reconciler  # type: ignore[attr-defined]
    reconciler._wake.clear()
    assert client.post("/v1/channel/publish").status_code == 401
    assert reconciler._wake.is_set() is False  # refused requests do not wake it
    reconciler._wake.clear()
    client.post("/v1/health", json={})  # health reports never wake it
    assert reconciler._wake.is_set() is False


def test_bulk_desired_state_equals_the_single_host_answer(db: Database, tmp_path: Path, rt_clock: FakeClock) -> None:
    _exposed_fleet(db, rt_clock, tmp_path)
    rollouts.set_policy(db, tenant="acme", host_group="os_build=26100", product="falcon-content", pin="exact:290",
                        actor=OPERATOR, clock=rt_clock)
    with db.transaction() as conn:
        hosts = inventory_store.all_hosts(conn)
        bulk = desired_many(conn, hosts, all_hosts=True)
        for h in hosts:
            assert desired_one(conn, h) == bulk[h.id]
    for h in hosts:
        assert rollouts.desired_state(db, h.id) == {p: d.as_dict() for p, d in bulk[h.id].items()}
    reasons = {d["falcon-content"].reason.split(" ")[0] for d in bulk.values()}
    assert reasons >= {"exposed", "pinned", "no"}


# --- expiry ----------------------------------------------------------------------------------------

def test_expired_timestamp_is_refused_and_the_publisher_refreshes_it(db: Database, tmp_path: Path,
                                                                     client: TestClient) -> None:
    past = now_clock()
    past.advance(hours=-3)
    make_channel(tmp_path, past, bins=2)  # timestamp valid 1 h from 3 h ago: expired now
    updater = tuf_client(tmp_path, tmp_path / "agent", fetcher=AppFetcher(client))
    with pytest.raises(tuf_errors.ExpiredMetadataError, match="timestamp"):
        updater.refresh()
    publisher = ChannelPublisher(db, ArtifactStore(tmp_path / "artifacts"), tmp_path, now_clock())
    result = publisher.publish()
    assert result is not None and "timestamp" in result.refreshed
    tuf_client(tmp_path, tmp_path / "agent2", fetcher=AppFetcher(client)).refresh()


def test_timestamp_is_refreshed_every_ten_minutes_and_snapshot_at_half_life(db: Database, tmp_path: Path) -> None:
    clock = now_clock()
    make_channel(tmp_path, clock, bins=2)
    publisher = ChannelPublisher(db, ArtifactStore(tmp_path / "artifacts"), tmp_path, clock)
    repo = ChannelRepository(channel_dir(tmp_path))
    clock.advance(minutes=5)
    assert publisher.publish() is not None and repo.versions()["timestamp"] == 1
    clock.advance(minutes=6)
    publisher.publish()
    assert repo.versions()["timestamp"] == 2 and repo.versions()["snapshot"] == 1
    clock.advance(hours=13)
    publisher.publish()
    assert repo.versions()["snapshot"] == 2
    clock.advance(days=4)
    publisher.publish()
    v = repo.versions()
    assert v["targets"] == 2 and v["cohort-000"] == 2  # less than half of 7 days left: re-signed


# --- serving and export ----------------------------------------------------------------------------

def test_static_files_have_cache_headers_and_no_path_escapes(tmp_path: Path, client: TestClient,
                                                             rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=2)
    ts = client.get("/tuf/metadata/timestamp.json")
    assert ts.status_code == 200 and ts.headers["cache-control"] == "no-cache"
    assert ts.headers["content-type"] == "application/json" and json.loads(ts.content)["signed"]["version"] == 1
    snap = client.get("/tuf/metadata/1.snapshot.json")
    assert "immutable" in snap.headers["cache-control"]
    head = client.head("/tuf/metadata/1.root.json")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 100
    for bad in ("/tuf/metadata/../channel.json", "/tuf/metadata/%2e%2e/channel.json", "/tuf/targets/../keys/targets.key",
                "/tuf/targets/..%2fkeys/targets.key", "/tuf/metadata/.lock", "/tuf/metadata/nope.json", "/tuf/keys/x"):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert r.headers["content-type"] == "application/problem+json"
        assert b"PRIVATE" not in r.content
    assert client.post("/tuf/metadata/timestamp.json").status_code == 405


def test_export_writes_the_served_tree(tmp_path: Path, rt_clock: FakeClock, client: TestClient) -> None:
    make_channel(tmp_path, rt_clock, bins=2)
    dest = tmp_path / "www"
    assert export(tmp_path, dest) > 0
    served = {p.relative_to(channel_dir(tmp_path)) for p in channel_dir(tmp_path).glob("[mt]*/**/*") if p.is_file()}
    written = {p.relative_to(dest) for p in dest.rglob("*") if p.is_file()}
    assert served == written
    assert not any("key" in str(p) for p in written)
    for p in written:
        url = "/tuf/" + str(p)
        assert client.get(url).content == (dest / p).read_bytes(), url
    st = status(tmp_path)
    assert st["initialised"] and [r["role"] for r in st["roles"]][:4] == ["root", "targets", "snapshot", "timestamp"]


def test_channel_status_route_and_publish_route(tmp_path: Path, api: object, rt_clock: FakeClock) -> None:
    from tests.api_support import Api

    assert isinstance(api, Api)
    r = api.call("GET", "/v1/channel/status", role="viewer")
    assert r.status_code == 200 and r.json()["initialised"] is False
    r = api.call("POST", "/v1/channel/publish", role="operator")
    assert r.status_code == 503 and "keys init" in r.json()["detail"]
    assert api.call("POST", "/v1/channel/publish", role="viewer").status_code == 403
    make_channel(tmp_path, rt_clock, bins=2)
    r = api.call("GET", "/v1/channel/status", role="viewer")
    assert r.json()["bins"] == 2 and r.json()["roles"][0]["role"] == "root"


def test_publish_refuses_a_target_outside_its_cohort(tmp_path: Path, rt_clock: FakeClock) -> None:
    from ringfence.adapters.channel.repository import CohortContent, TargetSpec

    make_channel(tmp_path, rt_clock, bins=2)
    repo = ChannelRepository(channel_dir(tmp_path))
    stray = TargetSpec(path="cohort-001/x/1/linux/f", sha256="0" * 64, length=1, custom={}, data=b"x")
    with pytest.raises(ValueError, match="outside cohort"):
        repo.publish({"cohort-000": CohortContent(manifest={"hosts": {}, "remediations": []}, targets=(stray,))},
                     rt_clock() + timedelta(seconds=1))


def test_remediation_input_is_checked_and_nothing_is_stored(api: object, db: Database) -> None:
    from tests.api_support import Api, _problem

    assert isinstance(api, Api)
    files = {"file": ("fix.sh", b"#!/bin/sh\necho fixed\n", "application/octet-stream")}
    bad = _problem(api.call("POST", "/v1/remediations", role="operator", files=files,
                            data={"id": "../evil", "selector": "os_family=windows"}), 422)
    assert {e["field"] for e in bad["errors"]} == {"id", "reason"}
    both = _problem(api.call("POST", "/v1/remediations", role="operator", files=files,
                             data={"id": "fix-1", "selector": "os_family=windows", "product": "falcon",
                                   "reason": "x"}), 422)
    assert both["errors"][0]["field"] == "selector"
    none = _problem(api.call("POST", "/v1/remediations", role="operator", files=files,
                             data={"id": "fix-1", "selector": "os_family=windows", "reason": "x"}), 422)
    assert "matches no host" in none["detail"]
    assert api.call("POST", "/v1/remediations", role="viewer", files=files,
                    data={"id": "fix-1", "selector": "os_family=windows", "reason": "x"}).status_code == 403
    assert api.call("GET", "/v1/remediations", role="viewer").json() == {"remediations": []}


def test_prune_removes_only_superseded_files_older_than_the_grace(db: Database, tmp_path: Path, client: TestClient,
                                                                  rt_clock: FakeClock) -> None:
    make_channel(tmp_path, rt_clock, bins=2)
    fleet, _rid = _exposed_fleet(db, rt_clock, tmp_path)
    publisher = ChannelPublisher(db, fleet.artifacts, tmp_path, rt_clock)
    publisher.publish()  # cohorts at version 2, snapshot 2; version-1 files are superseded
    repo = ChannelRepository(channel_dir(tmp_path))
    meta = repo.metadata_dir
    assert repo.prune(rt_clock(), timedelta(hours=2)) == 0  # all young: kept for clients mid-update
    old = rt_clock().timestamp() - 3 * 3600
    for path in [*meta.glob("1.*.json"), *repo.targets_dir.rglob("*.desired.json")]:
        os.utime(path, (old, old))
    changed = [r for r, v in repo.versions().items() if r.startswith("cohort-") and v == 2]
    assert changed
    removed = repo.prune(rt_clock(), timedelta(hours=2))
    assert removed == 2 * len(changed) + 1  # the changed cohorts' version 1 and first manifest, 1.snapshot.json
    assert (meta / "1.root.json").exists() and (meta / "1.targets.json").exists()  # root chain; targets is current
    assert not (meta / "1.snapshot.json").exists() and not (meta / f"1.{changed[0]}.json").exists()
    host = sorted(fleet.exposed(_rid))[0]
    assert Agent(tmp_path, tmp_path / "agent", AppFetcher(client)).entry(host, "falcon-content")["version"] == "291"


def test_a_successful_operator_change_wakes_the_reconciler(api: object) -> None:
    from tests.api_support import Api

    assert isinstance(api, Api)
    wake = api.client.app.state.reconciler._wake  # type: ignore[attr-defined]
    wake.clear()
    assert api.call("POST", "/v1/enrolment-tokens", role="viewer", json={"tenant": "acme"}).status_code == 403
    assert not wake.is_set()
    assert api.call("POST", "/v1/enrolment-tokens", role="operator", json={"tenant": "acme"}).status_code == 201
    assert wake.is_set()


def test_a_failed_keys_init_leaves_nothing_behind_and_can_be_rerun(tmp_path: Path, rt_clock: FakeClock) -> None:
    stray = channel_dir(tmp_path) / "keys" / "timestamp.key"
    stray.parent.mkdir(parents=True)
    stray.write_text("left over")
    with pytest.raises(InputError, match="exists already"):
        make_channel(tmp_path, rt_clock, root_keys=2, root_threshold=2)
    assert not list((channel_dir(tmp_path) / "root-keys").glob("*.key"))  # root keys removed again
    assert not (channel_dir(tmp_path) / "metadata").exists()
    assert sorted(p.name for p in stray.parent.iterdir()) == ["timestamp.key"]  # only what was there before
    stray.unlink()
    assert make_channel(tmp_path, rt_clock, root_keys=2, root_threshold=2).versions["timestamp"] == 1
