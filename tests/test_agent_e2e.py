"""The endpoint agent end to end: `ringfence serve` and 20 `ringfence-agent run` processes over loopback HTTP.

A small supervisor restarts an agent process whenever it exits, like a host
rebooting.  Every agent has its own state directory, enrols with a one-time
token, reads the signed channel the server publishes, and reports health.

1. A good release flows wave by wave to every agent; each installs, probes and commits it.
2. A bad release whose installed file makes the agent die (the probe kills its
   parent when the file carries a poison marker — a boot loop in miniature)
   crash-loops the first wave; the gate halts it; agents of later waves never
   download it; the crashed agents restore the last known good version on their
   K-th start and report ``auto_reverted``.
3. A signed remediation script published for the hosts runs once on each of them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringfence.adapters.db.engine import Database
from tests.notify_support import Receiver, signature_ok
from tests.servers import Server, free_port

HOSTS = 20
K = 3
PRODUCT = "falcon-content"
# Bake the canary longer than an agent takes to crash and restart (its "applied" report comes before the crash).
PLAN = """
name: agent-e2e
windows:
  - {days: mon-sun, start: "00:00", end: "24:00"}
freeze: {public_holidays: false}
max_data_age_minutes: 1
silence_grace_minutes: 1
min_per_stratum: 1
gate: {alpha: 0.2, min_treated_hosts: 2, min_control_hosts: 2, max_streams: 4, baseline_rate: 100.0, tolerance: 5.0}
waves:
  - {name: canary, fraction: 0.25, min_bake_minutes: 0.25, min_observed_hosts: 2, max_rate_per_minute: 60}
  - {name: rest, fraction: 1.0, min_bake_minutes: 0.05, min_observed_hosts: 2}
"""
# The "installed software": when the installed file carries the poison marker, it kills the agent (its parent).
PROBE = ["/bin/sh", "-c", 'if grep -q POISON "$1"; then kill -9 $PPID; sleep 5; exit 1; fi', "probe", "{file}"]


class Fleet:
    """20 agent processes and a supervisor thread that restarts any that exits (a reboot), bounded in count.

    ``models`` gives each host's hardware model (default: all ``Latitude 7440``), ``probe(model)`` its health
    probe (default: :data:`PROBE`).
    """

    def __init__(self, tmp: Path, server: Server, root: Path, token: str, *, models: Sequence[str] = (),
                 probe: Callable[[str], Sequence[str]] = lambda _model: PROBE) -> None:
        self.tmp = tmp
        self.configs: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exits: dict[str, list[int]] = {}
        self._stop = threading.Event()
        for i in range(HOSTS):
            host = f"agent-{i:03d}"
            base = tmp / host
            base.mkdir()
            (base / "agent.toml").write_text(f"""
server = "{server.url}"
state_dir = "state"
trusted_root = "{root}"
enrolment_token = "{token}"
host_id = "{host}"
platform = "windows"
poll_interval_seconds = 1.0
poll_jitter = 0.2
backoff_cap_seconds = 3
request_timeout_seconds = 5
crash_loop_threshold = {K}
log_file = "agent.log"
probe = {{command = {json.dumps(list(probe(models[i] if models else "Latitude 7440")))}, timeout_seconds = 10}}
[facts]
hostname = "ws-{i:03d}"
os_family = "windows"
os_build = "22631"
hardware_model = "{models[i] if models else 'Latitude 7440'}"
timezone = "Europe/Berlin"
country = "DE"
site = "e2e"
[installers.{PRODUCT}]
kind = "file"
target_dir = "installed"
""")
            self.configs[host] = base / "agent.toml"
            self.exits[host] = []
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self, host: str) -> None:
        out = (self.configs[host].parent / "stderr.log").open("ab")
        self.procs[host] = subprocess.Popen([sys.executable, "-m", "ringfence.agent.main", "run", "--config",
                                             str(self.configs[host])], stdout=out, stderr=out)
        out.close()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            for host, proc in list(self.procs.items()):
                code = proc.poll()
                if code is not None and not self._stop.is_set() and len(self.exits[host]) < 3 * K:
                    self.exits[host].append(code)
                    if self._stop.wait(0.2):  # the "reboot"; stopped meanwhile: spawn nothing __exit__ cannot reap
                        return
                    self._spawn(host)
            self._stop.wait(0.1)

    def __enter__(self) -> Fleet:
        for host in self.configs:
            self._spawn(host)
        self._thread.start()
        return self

    def sleep(self, host: str) -> None:
        """The host goes to sleep: its sleep hook sends the going-away notice, then the agent is frozen."""
        subprocess.run([sys.executable, "-m", "ringfence.agent.main", "notify-away", "--config",
                        str(self.configs[host]), "--reason", "sleep"], capture_output=True, timeout=60, check=True)
        self.procs[host].send_signal(signal.SIGSTOP)

    def wake(self, host: str) -> None:
        """The host wakes up: the agent runs on."""
        self.procs[host].send_signal(signal.SIGCONT)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # hung or asleep: a stopped process cannot take SIGTERM
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)  # reaped: an unreaped child fails the run with a ResourceWarning

    def state(self, host: str) -> dict[str, Any]:
        path = self.configs[host].parent / "state" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def product(self, host: str) -> dict[str, Any]:
        products: dict[str, Any] = self.state(host).get("products", {})
        return products.get(PRODUCT, {})

    def log(self, host: str) -> str:
        path = self.configs[host].parent / "agent.log"
        return path.read_text() if path.exists() else ""

    def cached_targets(self, host: str) -> list[str]:
        d = self.configs[host].parent / "state" / "targets"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def installed(self, host: str) -> bytes:
        files = sorted((self.configs[host].parent / "installed").glob("*"))
        return b"".join(f.read_bytes() for f in files)


def _until(check: Callable[[], Any], timeout: float, what: str, detail: Callable[[], Any] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        time.sleep(0.5)


WEBHOOK_SECRET = "agent-e2e-webhook-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Where the server's notifications go: a real HTTP server on loopback (webhook and Apprise json://)."""
    r = Receiver(free_port())
    yield r
    r.close()


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    srv = Server(tmp_path, db_url, RINGFENCE_RECONCILE_INTERVAL_SECONDS="0.25", RINGFENCE_HEALTH_MAX_PER_MINUTE="600",
                 RF_E2E_WEBHOOK_SECRET=WEBHOOK_SECRET)
    yield srv
    srv.stop()


def _rollout(server: Server, version: str, data: bytes, tmp: Path) -> str:
    return _rollout_on(server, version, data, tmp, "agent-e2e")


def _rollout_on(server: Server, version: str, data: bytes, tmp: Path, plan: str) -> str:
    artifact = tmp / version / "C-00000291.sys"
    artifact.parent.mkdir()
    artifact.write_bytes(data)
    server.cli("release", "create", "--product", PRODUCT, "--version", version, "--kind", "content",
               "--platform", "windows", "--file", str(artifact))
    started = json.loads(server.cli("rollout", "start", "--release", f"{PRODUCT}@{version}", "--plan", plan,
                                    "--reason", "agent e2e", "--json").stdout)
    rid: str = started["id"]
    return rid


def _get(server: Server, path: str, **params: Any) -> dict[str, Any]:
    """The API directly (the CLI's own process start-up would cost more CPU than the agents on 2 cores)."""
    response = httpx.get(f"{server.url}{path}", params=params, timeout=10,
                         headers={"Authorization": f"Bearer {server.env['RINGFENCE_TOKEN']}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _status(server: Server, rid: str) -> dict[str, Any]:
    return _get(server, f"/v1/rollouts/{rid}")


def _waves(db: Database, rid: str) -> dict[str, tuple[int, Any]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT host_id, wave, exposed_at FROM rollout_hosts WHERE rollout_id = ?"
                                    if db.engine.dialect.name == "sqlite" else
                                    "SELECT host_id, wave, exposed_at FROM rollout_hosts WHERE rollout_id = %s",
                                    (rid,)).all()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.slow
@pytest.mark.extended  # ~200 s per database: in `make test-slow`, which CI runs after `make test`
def test_twenty_agents_good_release_then_bad_release_halted_and_self_reverted(
        server: Server, db: Database, tmp_path: Path, receiver: Receiver) -> None:
    """Good release to all, wave by wave; bad release halted in wave 0, never downloaded later, reverted by K starts;
    the halt reaches the on-call webhook (signed) and the chat target (Apprise json://) on loopback."""
    (tmp_path / "notify.yaml").write_text(f"""
notify:
  targets:
    oncall: {{webhook: "http://127.0.0.1:{receiver.port}/oncall", secret_env: RF_E2E_WEBHOOK_SECRET}}
    chat: {{apprise: "json://127.0.0.1:{receiver.port}/chat"}}
  rules:
    - events: [rollout.halted, rollout.rolled_back, killswitch]
      targets: [oncall, chat]
""")
    server.cli("notify", "apply", str(tmp_path / "notify.yaml"), "--reason", "agent e2e on-call")
    server.cli("keys", "init", "--bins", "8", "--dir", str(tmp_path / "root-keys"))
    export = tmp_path / "export"
    server.cli("channel", "export", str(export))
    root = export / "metadata" / "root.json"
    assert root.is_file()
    token = json.loads(server.cli("enrol", "token", "create", "--tenant", "acme", "--uses", str(HOSTS),
                                  "--json").stdout)["token"]
    (tmp_path / "plan.yaml").write_text(PLAN)
    server.cli("plan", "apply", "-f", str(tmp_path / "plan.yaml"))
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    t0 = time.monotonic()
    with Fleet(agents_dir, server, root, token) as fleet:
        hosts = list(fleet.configs)

        def listed() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = _get(server, "/v1/hosts", where="site=e2e", limit=100)["hosts"]
            return got if len(got) == HOSTS else []

        enrolled = _until(listed, 90, "every agent to enrol", lambda: [fleet.log(h)[-300:] for h in hosts[:2]])
        assert {h["id"] for h in enrolled} == set(hosts)
        assert all(h["os_family"] == "windows" and h["hardware_model"] == "Latitude 7440" and h["tenant"] == "acme"
                   for h in enrolled)
        print(f"enrolled after {time.monotonic() - t0:.0f} s")
        time.sleep(2)  # every agent has reported once: online

        # 1. a good release flows wave by wave to every agent
        good = _rollout(server, "290", b"channel file 290", tmp_path)
        final = _until(lambda: (s := _status(server, good))["state"] in ("completed", "halted") and s, 120,
                       "the good rollout to complete", lambda: (  # the message and the agents it names
                           (m := _status(server, good)["message"]),
                           {h: fleet.log(h)[-1500:] for h in hosts if f"ws-{int(h[-3:]):03d}" in m}))
        assert final["state"] == "completed", final["message"]
        _until(lambda: all(fleet.product(h).get("committed") == "290" for h in hosts), 30, "every agent to commit 290",
               lambda: {h: fleet.product(h) for h in hosts if fleet.product(h).get("committed") != "290"})
        assert all(fleet.installed(h) == b"channel file 290" for h in hosts)
        waves = _waves(db, good)
        wave0 = {h for h, (w, _) in waves.items() if w == 0}
        assert 0 < len(wave0) < HOSTS
        assert max(t for w, t in waves.values() if w == 0) <= min(t for w, t in waves.values() if w == 1)
        log = json.loads(server.cli("rollout", "explain", good, "--json").stdout)["decisions"]
        assert any(d["message"].startswith("promoted") and d["wave"] == 1 for d in log)
        assert all(fleet.exits[h] == [] for h in hosts)  # nobody crashed
        print(f"good release committed everywhere after {time.monotonic() - t0:.0f} s")

        # 2. a bad release: the installed file kills the agent on every start until it reverts itself
        bad = _rollout(server, "291", b"POISON channel file 291", tmp_path)
        stopped = ("halted", "rolling_back", "rolled_back", "completed")
        halted = _until(lambda: (s := _status(server, bad))["state"] in stopped and s, 120,
                        "the gate to halt the bad rollout", lambda: (  # the status and the exposed agents' logs
                            json.dumps(_status(server, bad))[:6000],
                            {h: fleet.log(h)[-800:] for h in hosts if f"{PRODUCT} 291" in fleet.log(h)}))
        assert halted["state"] != "completed", (halted["message"], {
            h: fleet.log(h)[-600:] for h in hosts if f"{PRODUCT} 291" in fleet.log(h)})
        decisions = json.loads(server.cli("rollout", "explain", bad, "--json").stdout)["decisions"]
        halts = [d for d in decisions if "halted wave" in d["message"]]
        assert halts and halts[0]["wave"] == 0 and "crashed" in halts[0]["message"], [
            (d["state"], d["wave"], d["message"]) for d in decisions]
        print(f"bad release halted after {time.monotonic() - t0:.0f} s: {halts[0]['message']}")

        # People are told: the halt reaches the on-call webhook, signed, and the chat target, off the reconciler.
        def told() -> list[dict[str, Any]]:
            hooks = [json.loads(body) for path, headers, body in list(receiver.requests)
                     if path == "/oncall" and signature_ok(WEBHOOK_SECRET, headers, body)]
            return [h for h in hooks if h["subject"] == bad and h["event"] in ("rollout.halted", "rollout.rolled_back")]
        hooks = _until(told, 30, "the halt to reach the webhook receiver", lambda: receiver.requests[-3:])
        assert any(h["details"]["wave"] == 0 for h in hooks), hooks
        _until(lambda: any(p == "/chat" and json.loads(b).get("title", "").startswith(f"{PRODUCT}@291 ")
                           for p, _, b in list(receiver.requests)), 30, "the halt to reach the Apprise json:// target",
               lambda: receiver.requests[-3:])
        logged = json.loads(server.cli("notify", "log", "--state", "delivered", "--json").stdout)["deliveries"]
        assert {d["target"] for d in logged if d["subject"] == bad} >= {"*/oncall", "*/chat"}, logged
        bad_waves = _waves(db, bad)
        exposed = {h for h, (_, t) in bad_waves.items() if t is not None}
        later = {h for h, (w, _) in bad_waves.items() if w > 0}
        assert exposed and exposed.isdisjoint(later)

        # An exposed host may be sent back before it ever polled the bad manifest; the others crash-looped.
        crashed = {h for h in exposed if f"installed {PRODUCT} 291" in fleet.log(h)}
        assert len(crashed) >= 2, {h: fleet.log(h)[-500:] for h in exposed}

        def reverted() -> bool:
            # The state file is written just before the log line: wait for both, not one then the other.
            return all(fleet.product(h).get("running") == "290" and "291" in fleet.product(h).get("bad", [])
                       and f"auto-reverted {PRODUCT} 291 to the last known good version 290" in fleet.log(h)
                       for h in crashed)

        _until(reverted, 60, "the crashed agents to revert", lambda: {h: fleet.product(h) for h in crashed})
        for h in crashed:
            assert fleet.installed(h) == b"channel file 290"
            assert len(fleet.exits[h]) >= K - 1, fleet.exits[h]  # killed on install and on each start but the K-th
            assert f"auto-reverted {PRODUCT} 291 to the last known good version 290" in fleet.log(h)
        for h in exposed - crashed:
            assert fleet.installed(h) == b"channel file 290" and fleet.product(h)["running"] == "290"
        for h in later:
            assert not any(f"{PRODUCT}%2F291%2F" in name for name in fleet.cached_targets(h)), fleet.cached_targets(h)
            assert any(f"{PRODUCT}%2F290%2F" in name for name in fleet.cached_targets(h))  # the check can see files
            assert f"{PRODUCT} 291" not in fleet.log(h) and fleet.exits[h] == []
            assert fleet.product(h)["running"] == "290"

        def reported() -> set[str]:
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT host_id, kind FROM host_events WHERE kind = 'auto_reverted' "
                                            f"AND rollout_id = '{bad}'").all()
            return {r[0] for r in rows} if {r[0] for r in rows} >= crashed else set()

        assert _until(reported, 30, "auto_reverted reports") == crashed
        one = sorted(crashed)[0]
        shown = json.loads(subprocess.run([sys.executable, "-m", "ringfence.agent.main", "status", "--config",
                                           str(fleet.configs[one]), "--json"], capture_output=True, text=True,
                                          timeout=60, check=True).stdout)
        product = shown["products"][PRODUCT]
        assert shown["host_id"] == one and shown["enrolled"] and (product["running"], product["bad"]) == ("290", ["291"])
        assert _status(server, bad)["state"] in stopped[:3]

        # 3. a signed remediation script reaches every host through the same channel and runs once on each
        ran = tmp_path / "remediated.log"
        script = tmp_path / "fix.sh"
        script.write_text(f'echo "ran $$" >> "{ran}"\n')
        server.cli("remediation", "publish", "--id", "fix-291", "--file", str(script), "--selector", "site=e2e",
                   "--reason", "agent e2e: remove the bad channel file")
        _until(lambda: ran.exists() and len(ran.read_text().splitlines()) >= HOSTS, 60, "every agent to remediate",
               lambda: ran.read_text() if ran.exists() else "nothing ran")
        time.sleep(3)  # a few more polls: nobody runs it again
        assert len(ran.read_text().splitlines()) == HOSTS
        assert all(fleet.state(h)["remediations"]["fix-291"]["state"] == "done" for h in hosts)
        print(f"done after {time.monotonic() - t0:.0f} s")


# Gate v2 end to end (issue 13): one hardware model's hosts hang after the update; agents sleep with a going-away
# notice.  The hang plan's canary exposes one host at a time (max_in_flight 0: the next host goes only once the last
# one reported healthy for the grace, or went silent), so each hang is seen before the next host of that model goes.
HANGING = "Surface Laptop 5"
MODELS = [HANGING] * 14 + ["Latitude 7440"] * 6
GATE_PLAN = PLAN.replace("name: agent-e2e", "name: gate-e2e").replace(
    "max_rate_per_minute: 60}", "max_rate_per_minute: 60, max_in_flight: 0}").replace("fraction: 0.25", "fraction: 0.5")


def _hang_probe(model: str) -> list[str]:
    """The installed software: a file marked ``HANG:<model>`` freezes the agent (SIGSTOP: no report, no notice, no
    exit) on hosts of that model; ``POISON`` kills it (as :data:`PROBE`)."""
    return ["/bin/sh", "-c", 'if grep -q "HANG:$2" "$1"; then kill -STOP $PPID; fi; '
            'if grep -q POISON "$1"; then kill -9 $PPID; sleep 5; exit 1; fi', "probe", "{file}", model]


def _presence(db: Database) -> dict[str, tuple[Any, str]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT host_id, notice_at, notice_reason FROM host_health").all()
    return {r[0]: (r[1], r[2]) for r in rows}


def _gate_fleet(server: Server, tmp_path: Path) -> Fleet:
    """Channel keys, the two plans, and 20 agents (14 of the model that hangs) enrolled and reporting."""
    server.cli("keys", "init", "--bins", "8", "--dir", str(tmp_path / "root-keys"))
    export = tmp_path / "export"
    server.cli("channel", "export", str(export))
    token = json.loads(server.cli("enrol", "token", "create", "--tenant", "acme", "--uses", str(HOSTS),
                                  "--json").stdout)["token"]
    for name, text in (("plan.yaml", PLAN), ("gate-plan.yaml", GATE_PLAN)):
        (tmp_path / name).write_text(text)
        server.cli("plan", "apply", "-f", str(tmp_path / name))
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    return Fleet(agents_dir, server, export / "metadata" / "root.json", token, models=MODELS, probe=_hang_probe)


def _enrolled(server: Server, fleet: Fleet) -> list[str]:
    hosts = list(fleet.configs)
    _until(lambda: len(_get(server, "/v1/hosts", where="site=e2e", limit=100)["hosts"]) == HOSTS, 90,
           "every agent to enrol", lambda: [fleet.log(h)[-300:] for h in hosts[:2]])
    time.sleep(2)  # every agent has reported once: online
    return hosts


@pytest.mark.slow
@pytest.mark.extended  # ~3 min per database: in `make test-slow`
def test_twenty_agents_that_sleep_with_a_notice_do_not_halt_a_good_release(server: Server, db: Database,
                                                                           tmp_path: Path) -> None:
    """Gate v2 through real agents over HTTP: four agents (two of each model) sleep with a notice for longer than
    the grace while a good release rolls out; it is not halted and completes."""
    t0 = time.monotonic()
    with _gate_fleet(server, tmp_path) as fleet:
        hosts = _enrolled(server, fleet)
        good = _rollout(server, "290", b"channel file 290", tmp_path)
        sleepers = [hosts[0], hosts[1], hosts[-1], hosts[-2]]
        for h in sleepers:
            fleet.sleep(h)
        _until(lambda: all(_presence(db).get(h, (None, ""))[1] == "sleep" for h in sleepers), 15,
               "the server to record the notices", lambda: _presence(db))
        time.sleep(75)  # past the one-minute grace: without the notice each would be a silence
        assert _status(server, good)["state"] not in ("halted", "rolling_back"), _status(server, good)["message"]
        for h in sleepers:
            fleet.wake(h)
        final = _until(lambda: (s := _status(server, good))["state"] in ("completed", "halted", "rolling_back", "hold")
                       and s, 180, "the good rollout to complete", lambda: _status(server, good)["message"])
        assert final["state"] == "completed", final["message"]
        _until(lambda: all(fleet.product(h).get("committed") == "290" for h in hosts), 30, "every agent to commit 290",
               lambda: {h: fleet.product(h) for h in hosts if fleet.product(h).get("committed") != "290"})
        decisions = json.loads(server.cli("rollout", "explain", good, "--json").stdout)["decisions"]
        assert not any("halted" in d["message"] or d["state"] == "hold" for d in decisions)
        assert any(d["message"].startswith("promoted") and d["wave"] == 1 for d in decisions)
        print(f"good release with four sleepers completed after {time.monotonic() - t0:.0f} s")


@pytest.mark.slow
@pytest.mark.extended  # ~2 min per database: in `make test-slow`
def test_twenty_agents_a_release_that_hangs_one_hardware_model_is_halted_after_at_most_3_of_them(
        server: Server, db: Database, tmp_path: Path) -> None:
    """Gate v2 through real agents over HTTP: a release that freezes every host of one hardware model (no report,
    no notice, no exit) is halted after at most 3 of them were exposed, and the halt says so in words in the
    rollout's status, `rollout show` and the audit entry."""
    t0 = time.monotonic()
    with _gate_fleet(server, tmp_path) as fleet:
        hosts = _enrolled(server, fleet)
        model = dict(zip(hosts, MODELS, strict=True))
        bad = _rollout_on(server, "291", f"channel file 291 HANG:{HANGING}".encode(), tmp_path, "gate-e2e")
        stopped = ("halted", "rolling_back", "rolled_back", "completed")
        halted = _until(lambda: (s := _status(server, bad))["state"] in stopped and s, 300,
                        "the gate to halt the hanging release", lambda: _status(server, bad)["message"])
        decisions = json.loads(server.cli("rollout", "explain", bad, "--json").stdout)["decisions"]
        assert halted["state"] != "completed", [(d["state"], d["message"]) for d in decisions]
        exposed = {h for h, (_, t) in _waves(db, bad).items() if t is not None}
        hung = {h for h in exposed if model[h] == HANGING}
        message = halted["halt_reason"]
        print(f"hanging release halted after {time.monotonic() - t0:.0f} s with {len(hung)} {HANGING} hosts "
              f"exposed: {message}")
        assert 1 <= len(hung) <= 3, (sorted(exposed), [(d["state"], d["message"]) for d in decisions])
        assert all(f"{PRODUCT} 291" in fleet.log(h) for h in hung)  # they did install it, then froze
        assert re.search(rf"halted wave 0 \(canary\): .*\|{HANGING}\| hosts stopped reporting without notice", message)
        assert "e-value" in message
        # The decision in words reaches the CLI (status and the decision log) and the audit entry.
        shown = " ".join(server.cli("rollout", "status", bad).stdout.split())
        assert "halted because: halted wave 0" in shown and "stopped reporting without notice" in shown, shown
        assert any("stopped reporting without notice" in d["message"] for d in decisions)
        audit = json.loads(server.cli("audit", "list", "--action", "rollout.transition", "--limit", "200",
                                      "--json").stdout)["entries"]
        assert any(e["target"] == f"rollout/{bad}" and "stopped reporting without notice"
                   in e["details"].get("message", "") for e in audit), [e["details"] for e in audit[:5]]
