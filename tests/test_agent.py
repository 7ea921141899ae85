"""Agent units: atomic installs with the last known good kept, the crash-loop counter, backoff, downgrade refusal, config."""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ringfence.agent.config import AgentConfig, load_config
from ringfence.agent.core import Agent
from ringfence.agent.files import atomic_write
from ringfence.agent.installers import CommandInstaller, FileInstaller, InstallError
from ringfence.agent.state import Pending, StateDir, StateLocked, version_key
from ringfence.agent.timing import Pacer
from ringfence.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.toml"


def _config(tmp_path: Path, **extra: Any) -> AgentConfig:
    root = tmp_path / "root.json"
    root.write_text("{}")
    raw: dict[str, Any] = {"server": "http://127.0.0.1:9", "state_dir": tmp_path / "state", "trusted_root": root,
                           "host_id": "host-1", "platform": "windows",
                           "installers": {"content": {"kind": "file", "target_dir": tmp_path / "installed"}},
                           "crash_loop_threshold": 3, **extra}
    return AgentConfig.model_validate(raw)


def _seed(agent: Agent, product: str, committed: str, pending: str) -> Path:
    """A host that committed ``committed`` and has ``pending`` installed, waiting for its probe."""
    target = agent.config.installers[product].target_dir
    assert target is not None
    sdir = agent.dir
    sdir.create()
    for version in (committed, pending):
        atomic_write(sdir.version_dir(product, version) / "C-1.sys", f"content {version}".encode())
    atomic_write(target / "C-1.sys", f"content {pending}".encode())
    state = sdir.load()
    ps = state.product(product)
    ps.running, ps.committed = pending, committed
    ps.pending = Pending(version=pending, previous=committed, rollout="ro_bad", files=["C-1.sys"])
    sdir.save(state)
    return target / "C-1.sys"


# -- installers ------------------------------------------------------------------------------------------
def test_file_installer_replaces_atomically_and_leaves_no_staging_file(tmp_path: Path) -> None:
    """The installed file is the new bytes, the same inode never half-written, no staging file left behind."""
    src_v1, src_v2 = tmp_path / "v1" / "C-1.sys", tmp_path / "v2" / "C-1.sys"
    for f, data in ((src_v1, b"one"), (src_v2, b"two" * 1000)):
        f.parent.mkdir()
        f.write_bytes(data)
    inst = FileInstaller(tmp_path / "dest")
    inst.install("content", "1", [src_v1])
    before = os.stat(tmp_path / "dest" / "C-1.sys").st_ino
    inst.install("content", "2", [src_v2])
    after = os.stat(tmp_path / "dest" / "C-1.sys")
    assert (tmp_path / "dest" / "C-1.sys").read_bytes() == b"two" * 1000
    assert after.st_ino != before  # a rename of a new file, not an in-place rewrite a reader could catch half-done
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["C-1.sys"]
    inst.remove("content", ["C-1.sys", "missing.sys"])
    assert list((tmp_path / "dest").iterdir()) == []


def test_file_installer_failure_keeps_the_old_file(tmp_path: Path) -> None:
    """An install that cannot read its source raises InstallError and leaves the installed file untouched."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "C-1.sys").write_bytes(b"good")
    with pytest.raises(InstallError, match="cannot install content 2"):
        FileInstaller(dest).install("content", "2", [tmp_path / "nope" / "C-1.sys"])
    assert (dest / "C-1.sys").read_bytes() == b"good"
    assert [p.name for p in dest.iterdir()] == ["C-1.sys"]


def test_command_installer_runs_argv_without_a_shell_and_reports_failures(tmp_path: Path) -> None:
    """{file}, {product} and {version} are substituted; a non-zero exit and a timeout are install errors."""
    src = tmp_path / "pkg; rm -rf nothing.bin"  # would be dangerous in a shell; here it is one argument
    src.write_bytes(b"payload")
    log = tmp_path / "log.json"
    script = f"import json,sys; json.dump(sys.argv[1:], open({str(log)!r}, 'w'))"
    CommandInstaller([sys.executable, "-c", script, "{file}", "{product}", "{version}"], 30).install("agent", "7.1", [src])
    assert json.loads(log.read_text()) == [str(src), "agent", "7.1"]
    with pytest.raises(InstallError, match="exited 3"):
        CommandInstaller([sys.executable, "-c", "import sys; sys.exit(3)"], 30).install("agent", "7.1", [src])
    with pytest.raises(InstallError, match="longer than"):
        CommandInstaller([sys.executable, "-c", "import time; time.sleep(5)"], 0.3).install("agent", "7.1", [src])


# -- the crash-loop counter -------------------------------------------------------------------------------
def test_crash_loop_counter_reverts_to_the_last_known_good_after_k_starts(tmp_path: Path) -> None:
    """Each start increments the counter first and queues `crashed`; the K-th start restores LKG and marks bad."""
    config = _config(tmp_path)
    installed = _seed(Agent(config), "content", committed="290", pending="291")
    for start in (1, 2):
        agent = Agent(config)
        agent.start()
        agent.close()
        ps = agent.dir.load().products["content"]
        assert ps.pending is not None and ps.pending.starts == start and ps.running == "291"
        assert installed.read_bytes() == b"content 291"
    agent = Agent(config)
    agent.start()
    agent.close()
    state = agent.dir.load()
    ps = state.products["content"]
    assert ps.pending is None and ps.running == ps.committed == "290" and ps.bad == ["291"]
    assert installed.read_bytes() == b"content 290"
    assert not agent.dir.version_dir("content", "291").exists()
    kinds = [(e["kind"], e["rollout"]) for e in agent.dir.queued()]
    assert kinds == [("crashed", "ro_bad")] * 3 + [("auto_reverted", "ro_bad")]


def test_crash_loop_without_an_earlier_version_removes_the_bad_files(tmp_path: Path) -> None:
    """A first install that crash-loops is removed: there is nothing older to go back to."""
    config = _config(tmp_path, crash_loop_threshold=1)
    installed = _seed(Agent(config), "content", committed="", pending="291")
    agent = Agent(config)
    agent.start()
    agent.close()
    ps = agent.dir.load().products["content"]
    assert not installed.exists() and ps.running == "" and ps.bad == ["291"]


def test_a_failing_probe_reverts_at_once_and_a_passing_one_commits(tmp_path: Path) -> None:
    """The probe decides: exit 0 commits (the version becomes LKG), non-zero reverts without waiting for K starts."""
    probe = [sys.executable, "-c", "import sys; sys.exit(b'POISON' in open(sys.argv[1], 'rb').read())", "{file}"]
    config = _config(tmp_path, probe={"command": probe})
    agent = Agent(config)
    installed = _seed(agent, "content", committed="290", pending="291")
    for f in (installed, agent.dir.version_dir("content", "291") / "C-1.sys"):
        atomic_write(f, b"POISON 291")
    agent = Agent(config)
    agent.start()
    agent.settle()
    agent.close()
    ps = agent.dir.load().products["content"]
    assert ps.running == "290" and ps.bad == ["291"] and installed.read_bytes() == b"content 290"
    _seed(agent, "content", committed="290", pending="292")
    agent = Agent(config)
    agent.start()
    agent.settle()
    agent.close()
    ps = agent.dir.load().products["content"]
    assert ps.running == ps.committed == "292" and ps.pending is None
    assert [e["kind"] for e in agent.dir.queued()][-1] == "committed"
    assert sorted(p.name for p in (agent.dir.versions / "content").iterdir()) == ["292"]  # only the LKG is kept


def test_one_agent_per_state_dir(tmp_path: Path) -> None:
    """A second agent on the same state dir is refused instead of racing the first."""
    first = StateDir(tmp_path / "s")
    first.lock()
    try:
        with pytest.raises(StateLocked, match="another ringfence-agent"):
            StateDir(tmp_path / "s").lock()
    finally:
        first.unlock()
    with StateDir(tmp_path / "s"):  # free again once the first let go
        pass


def test_credential_is_private(tmp_path: Path) -> None:
    """The host credential file is readable by the agent's user only."""
    sdir = StateDir(tmp_path / "s")
    sdir.create()
    sdir.write_secret("credential", "rfh_secret")
    assert stat.S_IMODE(os.stat(sdir.root / "credential").st_mode) == 0o600
    assert sdir.read_text("credential") == "rfh_secret"


# -- backoff ----------------------------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_up_to_the_cap_and_resets() -> None:
    """Failures double the ceiling (waits between half and all of it), capped; a success resets to interval ± jitter."""
    pacer = Pacer(interval=10, jitter=0.2, cap=300, rng=random.Random(7))
    waits = [pacer.failure() for _ in range(8)]
    for n, w in enumerate(waits, start=1):
        ceiling = min(300, 10 * 2**n)
        assert ceiling / 2 <= w <= ceiling
    assert max(waits[-3:]) <= 300 and min(waits[-3:]) >= 150
    assert len({round(w, 6) for w in waits[-3:]}) == 3  # jittered, not lock-step
    ok = [pacer.success() for _ in range(50)]
    assert pacer.failures == 0 and all(8 <= w <= 12 for w in ok) and max(ok) - min(ok) > 1


# -- downgrade refusal --------------------------------------------------------------------------------------
class _Untouchable:
    """A channel session a refused entry must never reach (nothing may be downloaded)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the channel was used ({name}) for an entry that must be refused")


@pytest.mark.parametrize(("entry", "reason"), [
    ({"version": "289", "rollback": False}, "downgrade without rollback flag"),
    ({"version": "9", "rollback": False}, "downgrade without rollback flag"),  # natural order: 9 < 290
    ({"version": "291", "rollback": False}, "marked bad is never retried"),
    ({"version": "291", "rollback": True}, "marked bad is never retried"),
])
def test_refused_entries_install_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         entry: dict[str, Any], reason: str) -> None:
    """Below the last committed version needs rollback: true; a version marked bad is never retried."""
    config = _config(tmp_path)
    agent = Agent(config)
    agent.dir.create()
    state = agent.dir.load()
    ps = state.product("content")
    ps.running = ps.committed = "290"
    ps.bad = ["291"]
    agent.dir.save(state)
    agent.start()
    with caplog.at_level(logging.WARNING, logger="ringfence.agent"):
        agent._converge(_Untouchable(), None, "content", {**entry, "files": {"windows": ["cohort-001/x"]}})  # type: ignore[arg-type]
    agent.close()
    assert reason in caplog.text and "refused:" in caplog.text
    ps = agent.dir.load().products["content"]
    assert ps.running == "290" and ps.pending is None and agent.dir.queued() == []


def test_version_order_is_natural() -> None:
    """Versions compare by their numbers, not as text."""
    assert version_key("290") < version_key("291") < version_key("1000")
    assert version_key("7.9.2") < version_key("7.10.0")


# -- config ---------------------------------------------------------------------------------------------------
def test_example_config_loads_with_paths_relative_to_it() -> None:
    """examples/agent.toml is valid; its relative paths are taken from its own directory."""
    config = load_config(EXAMPLE)
    assert config.state_dir.is_absolute() and config.metadata_base.endswith("/tuf/metadata/")
    assert config.targets_base.endswith("/tuf/targets/") and config.installers


def test_bad_config_names_every_field(tmp_path: Path) -> None:
    """Each problem names its field; nothing is half-loaded."""
    path = tmp_path / "agent.toml"
    path.write_text('server = "ftp://x"\nstate_dir = "s"\ntrusted_root = "r.json"\ncrash_loop_threshold = 0\n'
                    '[installers.content]\nkind = "file"\n[facts]\ntenant = "acme"\n')
    with pytest.raises(InputError) as info:
        load_config(path)
    fields = {i.field for i in info.value.issues}
    assert {"server", "crash_loop_threshold", "installers.content", "facts"} <= fields
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


# -- facts and host id ---------------------------------------------------------------------------------------
def test_facts_from_the_platform_module_with_config_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without osqueryi the platform module answers; [facts] win; the generated host id is kept across starts."""
    from ringfence.adapters.inventory.records import Issues, host_from_record
    from ringfence.agent.facts import collect_facts, host_id

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    first = host_id("", tmp_path)
    assert first and host_id("", tmp_path) == first and host_id("ws-1", tmp_path) == "ws-1"
    rec = collect_facts(first, {"site": "fra-1", "tier": 1})
    assert rec["id"] == first and rec["site"] == "fra-1" and rec["tier"] == 1
    assert rec["os_family"] == {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, "other")
    issues = Issues()
    host = host_from_record({**rec, "tenant": "acme"}, "agent", issues)  # what the server's importer accepts
    assert host is not None and issues.items == [], issues.items


def test_facts_from_osquery_when_it_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """osqueryi's system_info and os_version rows become the record, and system_info.uuid the host id."""
    from ringfence.agent.facts import collect_facts, host_id

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rows = {"uuid": [{"uuid": "4C4C4544-0042"}],
            "hostname": [{"hostname": "ws-42", "hardware_vendor": "Dell Inc.", "hardware_model": "Latitude 7440",
                          "cpu_type": "x86_64"}],
            "name": [{"name": "Microsoft Windows 11 Enterprise", "version": "10.0.22631", "build": "22631",
                      "platform": "windows"}]}
    script = bin_dir / "osqueryi"
    script.write_text(f"#!{sys.executable}\nimport json, sys\nrows = {rows!r}\n"
                      "sql = sys.argv[-1]\nprint(json.dumps(next(v for k, v in rows.items() if k in sql)))\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert host_id("", tmp_path) == "4C4C4544-0042"
    rec = collect_facts("4C4C4544-0042", {})
    assert (rec["os_family"], rec["os_build"], rec["hardware_vendor"], rec["hostname"]) == (
        "windows", "22631", "Dell Inc.", "ws-42")


def test_a_start_after_dying_mid_install_finishes_the_install_before_probing(tmp_path: Path) -> None:
    """The marker is written before the files move; if the agent died in between, the next start puts the
    pending version in place first, so the probe judges (and a commit records) what is really installed."""
    config = _config(tmp_path)
    installed = _seed(Agent(config), "content", committed="290", pending="291")
    atomic_write(installed, b"content 290")  # died after writing the marker, before the install
    agent = Agent(config)
    agent.start()
    agent.settle()
    agent.close()
    ps = agent.dir.load().products["content"]
    assert installed.read_bytes() == b"content 291" and ps.running == ps.committed == "291" and ps.pending is None


def test_enrol_command_does_not_count_as_a_start(tmp_path: Path) -> None:
    """Only `run` counts starts: opening the state dir to enrol leaves a pending marker's counter alone."""
    config = _config(tmp_path)
    _seed(Agent(config), "content", committed="290", pending="291")
    agent = Agent(config)
    agent.open()
    agent.close()
    pending = agent.dir.load().products["content"].pending
    assert pending is not None and pending.starts == 0 and agent.dir.queued() == []


def test_the_loop_backs_off_while_the_server_is_unreachable(tmp_path: Path) -> None:
    """run() waits interval × 2^n (jittered, capped) between attempts while nothing answers, and changes nothing."""
    config = _config(tmp_path, enrolment_token="rfe_x", poll_interval_seconds=2, backoff_cap_seconds=20,
                     request_timeout_seconds=1)
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 6  # stop after six attempts

    Agent(config, pacer=Pacer(2, 0.2, 20, rng=random.Random(3))).run(sleep=sleep)
    for n, w in enumerate(waits, start=1):
        assert min(20, 2 * 2**n) / 2 <= w <= min(20, 2 * 2**n)
    assert waits[-1] <= 20 and waits[3] > waits[0]
    assert not (tmp_path / "state" / "credential").exists()
