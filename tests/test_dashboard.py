"""Dashboard pages without a browser: login, CSRF, role-based buttons, actions through the services, the demo.

Real database (SQLite and PostgreSQL), real app, real services; the browser tests (tests/test_browser.py)
drive the same pages in chromium.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ringfence.adapters.api.reconciler import Reconciler
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import health as health_store
from ringfence.adapters.db.stores import rollouts as rollout_store
from ringfence.adapters.notify import OutboxNotifier
from ringfence.adapters.web.routes import COOKIE, csrf_for
from ringfence.adapters.web.views import group_decisions, prose
from ringfence.demo.fleet import HOSTS_2024, DemoFleet
from ringfence.domain.access import Role
from ringfence.domain.words import state_label, state_word
from ringfence.services import audit, notifications, rollouts
from ringfence.services.context import Actor
from ringfence.services.notify import Event, Notification
from ringfence.services.tokens import create_token
from tests.api_support import Api
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, Fleet, make_hosts, start

ADMIN = Actor(name="admin", role=Role.ADMIN)


def _login(api: Api, role: str) -> str:
    """Sign in through the login form; return the session's CSRF token."""
    api.client.cookies.clear()
    page = api.client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce, page.text
    resp = api.client.post("/login", data={"csrf": nonce.group(1), "token": api.tokens[role], "next": "/"},
                           follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    return csrf_for(api.tokens[role])


@pytest.fixture
def rollout(api: Api, db: Database, clock: FakeClock, tmp_path: Path) -> str:
    """A rollout of 40 hosts started by 'olga', run for a few minutes so it has exposure and evidence."""
    fleet = Fleet(db=db, clock=clock, hosts=make_hosts(40), artifacts=ArtifactStore(tmp_path / "a"))
    fleet.release("290")
    rid = start(fleet, fleet.release("291"))
    fleet.run(rid, minutes=4)
    return rid


def test_pages_need_a_session_and_the_login_refuses_unknown_tokens(api: Api) -> None:
    resp = api.client.get("/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=")
    assert api.client.get("/ui/live/overview").status_code == 401
    page = api.client.get("/login")
    assert 'for="token"' in page.text and 'autocomplete="off"' in page.text
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce
    wrong = api.client.post("/login", data={"csrf": nonce.group(1), "token": "rf_not-a-token"}, follow_redirects=False)
    assert wrong.status_code == 401 and "Sign-in failed: unknown token" in wrong.text
    assert COOKIE not in wrong.cookies
    # Without the login form's CSRF value (a cross-site post), the token is not even looked at.
    api.client.cookies.clear()
    forged = api.client.post("/login", data={"csrf": "x", "token": api.tokens["admin"]}, follow_redirects=False)
    assert forged.status_code == 403 and COOKIE not in forged.cookies


def test_login_sets_an_httponly_strict_cookie_and_logout_needs_csrf(api: Api) -> None:
    api.client.cookies.clear()
    page = api.client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce
    resp = api.client.post("/login", data={"csrf": nonce.group(1), "token": api.tokens["viewer"], "next": "//evil.example/"},
                           follow_redirects=False)
    assert resp.headers["location"] == "/"  # never an open redirect
    cookie = next(v for k, v in resp.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "viewer-1" in api.client.get("/").text
    assert api.client.post("/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    out = api.client.post("/logout", data={"csrf": csrf_for(api.tokens["viewer"])}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert api.client.get("/", follow_redirects=False).status_code == 303


def test_overview_shows_rollouts_fleet_health_and_kill_switch_by_role(api: Api, rollout: str) -> None:
    _login(api, "operator")
    page = api.client.get("/").text
    assert rollout in page and "falcon-content@291" in page
    assert re.search(r'id="fleet-hosts">40<', page) and re.search(r'id="fleet-reporting">.*?40', page)
    assert "Engage the kill switch for falcon-content" in page
    live = api.client.get("/ui/live/overview")
    assert live.status_code == 200 and rollout in live.text and "<html" not in live.text
    _login(api, "viewer")
    page = api.client.get("/").text
    assert rollout in page and "Engage the kill switch" not in page


def test_rollout_page_shows_waves_chart_evidence_and_decisions(api: Api, rollout: str) -> None:
    _login(api, "viewer")
    page = api.client.get(f"/rollouts/{rollout}").text
    for text in ("canary", "Exposure over time", "<svg", "<polyline", "Health gate evidence", "Decision log",
                 "created: falcon-content@291", "No tenant policy holds", "mon, tue, wed, thu, fri, sat, sun 00:00–24:00"):
        assert text in page, text
    assert 'id="no-actions"' in page and 'action="/ui/rollouts/' not in page  # a viewer gets no buttons
    assert api.client.get("/rollouts/ro-nope").status_code == 404


def _chart(page: str) -> dict[str, object]:
    """The exposure chart's gridlines, tick labels, halt marker and described span, read from the page's SVG."""
    svg = re.search(r'<svg[^>]*class="chart">(.*?)</svg>', page, re.S)
    assert svg, page
    body = svg.group(1)
    marker = re.search(r'id="halt-marker"><line x1="([\d.]+)"', body)
    return {"grid": len(re.findall(r'class="grid"', body)),
            "x_labels": re.findall(r'y="\d+(?:\.\d+)?" text-anchor="(?:start|middle|end)" class="tick">(\d\d:\d\d)<', body),
            "halt_x": float(marker.group(1)) if marker else None,
            "halt_label": re.search(r'class="tick halt-label">([^<]+)<', body),
            "desc": re.search(r'<desc id="chart-desc">([^<]+)</desc>', body).group(1)}  # type: ignore[union-attr]


def test_exposure_chart_has_gridlines_a_halt_marker_and_stops_when_the_rollout_ends(
        api: Api, db: Database, clock: FakeClock, rollout: str) -> None:
    """Five time gridlines with labels and the count gridlines; while running the axis follows the clock, once halted
    it stops (a later look draws the same span) and a marker sits at the halt, inside the axis."""
    _login(api, "viewer")
    running = _chart(api.client.get(f"/rollouts/{rollout}").text)
    assert running["halt_x"] is None and running["halt_label"] is None
    assert len(running["x_labels"]) == 5 and running["grid"] >= 5 + 3  # 5 time lines, ≥ 3 count lines (0, …, top)
    clock.advance(minutes=30)
    later = _chart(api.client.get(f"/rollouts/{rollout}").text)
    assert later["desc"] != running["desc"]  # a running rollout's axis ends at now
    rollouts.operate(db, rollout, "halt", actor=ADMIN, clock=clock, reason="chart test")
    halted = _chart(api.client.get(f"/rollouts/{rollout}").text)
    assert halted["halt_x"] is not None and 0 < halted["halt_x"] <= 640  # type: ignore[operator]
    assert halted["halt_x"] > 640 * 0.8  # type: ignore[operator]  # the halt is the last event: at the right, not squeezed
    assert halted["halt_label"] and "halted" in halted["halt_label"].group(0)  # type: ignore[union-attr]
    clock.advance(hours=6)
    again = _chart(api.client.get(f"/rollouts/{rollout}").text)
    assert again["desc"] == halted["desc"] and again["halt_x"] == halted["halt_x"]  # the axis stopped at the end
    assert again["x_labels"] == halted["x_labels"] and len(again["x_labels"]) == 5


def test_buttons_follow_the_role_and_approve_is_hidden_from_who_started(api: Api, db: Database, clock: FakeClock,
                                                                       tmp_path: Path) -> None:
    fleet = Fleet(db=db, clock=clock, hosts=make_hosts(40), artifacts=ArtifactStore(tmp_path / "a"))
    plan = ALWAYS_OPEN.replace("name: test-fast", "name: test-approval").replace(
        "max_rate_per_minute: 2}", "max_rate_per_minute: 2, needs_approval: true}")
    rollout = start(fleet, fleet.release("291"), plan)
    fleet.run(rollout, minutes=2)
    assert rollouts.get_rollout(db, rollout).status.state.value == "waiting_approval"
    _login(api, "operator")
    page = api.client.get(f"/rollouts/{rollout}").text
    for op in ("pause", "halt", "rollback", "abort"):
        assert f'id="do-{op}"' in page, op
    assert 'id="do-approve"' not in page  # operators cannot approve
    csrf = _login(api, "approver")
    page = api.client.get(f"/rollouts/{rollout}").text
    assert 'id="do-approve"' in page
    assert api.client.get(f"/ui/live/rollouts/{rollout}/actions").text.count('id="do-approve"') == 1
    starter, _ = create_token(db, name="olga", role="approver", actor=ADMIN, clock=clock)  # who started it
    api.tokens["olga"] = starter
    olga = _login(api, "olga")
    page = api.client.get(f"/rollouts/{rollout}").text
    assert 'id="do-pause"' in page and 'id="do-approve"' not in page
    refused = api.client.post(f"/ui/rollouts/{rollout}/approve", data={"csrf": olga, "reason": "me"},
                              follow_redirects=False)
    assert refused.status_code == 403 and "four-eyes" in refused.text  # the service refuses it too
    _login(api, "approver")
    done = api.client.post(f"/ui/rollouts/{rollout}/approve", data={"csrf": csrf, "reason": "CAB ok"},
                           follow_redirects=False)
    assert done.status_code == 303
    assert rollouts.get_rollout(db, rollout).status.waves[0].approved_by == "approver-1"


def test_actions_need_csrf_and_a_reason_and_land_in_the_audit_log(api: Api, db: Database, rollout: str) -> None:
    csrf = _login(api, "operator")
    before = rollouts.get_rollout(db, rollout).status.state.value
    forged = api.client.post(f"/ui/rollouts/{rollout}/pause", data={"reason": "x"}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    empty = api.client.post(f"/ui/rollouts/{rollout}/pause", data={"csrf": csrf, "reason": " "}, follow_redirects=False)
    assert empty.status_code == 422 and "reason" in empty.text
    assert rollouts.get_rollout(db, rollout).status.state.value == before
    done = api.client.post(f"/ui/rollouts/{rollout}/pause", data={"csrf": csrf, "reason": "CHG-1 look first"},
                           follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/rollouts/{rollout}"
    assert rollouts.get_rollout(db, rollout).status.state.value == "paused"
    entry = audit.list_entries(db, actor=ADMIN, action="rollout.pause")[0]
    assert entry.actor == "operator-1" and entry.reason == "CHG-1 look first"
    again = api.client.post(f"/ui/rollouts/{rollout}/pause", data={"csrf": csrf, "reason": "twice"}, follow_redirects=False)
    assert again.status_code == 409 and "cannot pause" in again.text  # the engine's words, as a page


def test_a_viewer_cannot_act_even_with_its_own_csrf_token(api: Api, db: Database, rollout: str) -> None:
    csrf = _login(api, "viewer")
    resp = api.client.post(f"/ui/rollouts/{rollout}/halt", data={"csrf": csrf, "reason": "no"}, follow_redirects=False)
    assert resp.status_code == 403 and "needs role operator" in resp.text
    assert rollouts.get_rollout(db, rollout).status.state.value != "halted"


def test_kill_switch_needs_the_product_typed_to_confirm(api: Api, db: Database, rollout: str) -> None:
    csrf = _login(api, "operator")
    no = api.client.post("/ui/killswitch/falcon-content", data={"csrf": csrf, "reason": "boot loops", "confirm": "yes"},
                         follow_redirects=False)
    assert no.status_code == 422 and "confirm" in no.text
    with db.transaction() as conn:
        assert rollout_store.kill_switch(conn, "falcon-content") is None
    yes = api.client.post("/ui/killswitch/falcon-content",
                          data={"csrf": csrf, "reason": "boot loops", "confirm": "falcon-content"}, follow_redirects=False)
    assert yes.status_code == 303
    assert rollouts.get_rollout(db, rollout).status.state.value in ("halted", "rolling_back")
    assert "ENGAGED" in api.client.get("/").text


def test_hosts_search_host_page_and_releases(api: Api, rollout: str) -> None:
    _login(api, "viewer")
    page = api.client.get("/hosts", params={"where": "os_family=windows"})
    assert page.status_code == 200 and "40 of 40 hosts" in page.text and "reporting" in page.text
    bad = api.client.get("/hosts", params={"where": "os_family=="})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    host = api.client.get("/hosts/h00001").text
    assert "Facts" in host and "falcon-content" in host and "First heartbeat" in host and "Should run" in host
    assert api.client.get("/hosts/nope").status_code == 404
    rel = api.client.get("/releases").text
    assert "falcon-content@291" in rel and "c-291.bin" in rel
    assert "no SBOM" in rel and "ringfence sbom import falcon-content@291 FILE" in rel
    assert re.search(r"content <span class=\"badge [a-z]+\" data-state=\"\w+\">", rel)  # its rollout's release gates


def test_static_files_are_served_from_the_package(api: Api) -> None:
    js = api.client.get("/static/dashboard.js")
    assert js.status_code == 200 and "data-live" in js.text
    assert api.client.get("/static/dashboard.css").status_code == 200


def test_api_docs_load_swagger_ui_from_the_server_not_a_cdn(api: Api) -> None:
    """/docs works without internet: every script and stylesheet it names is served here."""
    page = api.client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    assert "cdn" not in page.text.lower()
    for asset in assets:
        assert api.client.get(asset).status_code == 200, asset
    assert "SwaggerUIBundle" in api.client.get("/docs/assets/swagger-ui-bundle.js").text


def test_demo_replay_is_halted_in_wave_zero(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    """The demo's agents on a hand-moved clock: the good release progresses, the replay halts in wave 0."""
    from ringfence.services.health import HealthIngest

    ingest = HealthIngest(db, clock, max_per_minute=120)
    demo = DemoFleet(db=db, ingest=ingest, artifacts=ArtifactStore(tmp_path / "a"), clock=clock, host_count=300)
    demo.setup()
    reconciler = Reconciler(db, ingest, clock, 1.0)
    for _ in range(5):
        clock.advance(minutes=1)
        demo.step()
        reconciler.run_once()
    good = rollouts.list_rollouts(db, actor=ADMIN)[0]
    assert good.spec.release.product == "falcon-sensor" and good.status.state.value == "progressing"
    rid = demo.replay(Actor(name="olga", role=Role.OPERATOR))
    assert demo.replay(Actor(name="olga", role=Role.OPERATOR)) == rid  # once
    for _ in range(30):
        clock.advance(minutes=1)
        demo.step()
        reconciler.run_once()
        if rollouts.get_rollout(db, rid).status.halted_at is not None:
            break
    status = rollouts.get_rollout(db, rid).status
    assert status.halted_at is not None and status.wave == 0, status.message
    assert "silent" in status.halt_reason
    info = demo.info()
    # Gate v2 judges each stratum against its own comparable hosts: the demo's 300 hosts fall in ~80 strata, many
    # of them (nearly) all in the canary, whose events bet little, so it halts after more hosts than the first
    # gate's one pooled stream did (below 60). With the plug-in bet and the 0.8/0.2 alpha split (session 5) runs of
    # the same code gave 79 and 103 (the rollout id is random, and with it the cohort buckets): well under half.
    assert 0 < info.silent < 130 and info.hosts_2024 == HOSTS_2024, (status.halt_reason, info)
    with db.transaction() as conn:
        hit = sum(1 for r in rollout_store.rollout_host_rows(conn, rid) if r.exposed_at is not None)
    assert info.silent <= hit < 100  # a few dozen of 300, not every Windows host


def test_releases_page_shows_real_sbom_findings(api: Api) -> None:
    """A release with a CycloneDX SBOM naming log4j-core 2.14.1, against the real OSV record of Log4Shell."""
    from tests.conftest import SHARED_DATA
    from tests.supply_support import LOG4J, cdx, release

    record = SHARED_DATA / "osv" / "github-advisories" / "GHSA-jfh8-c2jp-5v3q.json"
    imported = api.call("POST", "/v1/vulns/import", role="operator",
                        files=[("files", (record.name, record.read_bytes(), "application/json"))])
    assert imported.status_code == 200, imported.text
    assert release(api, "billing", "4.2", sbom=cdx(LOG4J.format("2.14.1"))).status_code == 201
    assert release(api, "billing", "4.3", sbom=cdx(LOG4J.format("2.17.1"))).status_code == 201
    _login(api, "viewer")
    page = api.client.get("/releases").text
    vulnerable = page[page.index("billing@4.2"):]
    vulnerable = vulnerable[:vulnerable.index("</section>")]
    assert "GHSA-jfh8-c2jp-5v3q" in vulnerable and "log4j-core 2.14.1" in vulnerable and "critical" in vulnerable
    fixed = page[page.index("billing@4.3"):]
    assert "no open findings" in fixed[:fixed.index("</section>")]


def test_demo_refuses_bad_settings_naming_the_option(tmp_path: Path) -> None:
    from ringfence.config import Settings
    from ringfence.demo import FastClock
    from ringfence.demo.serve import demo_settings
    from ringfence.errors import InputError

    for speed in (0.0, -1.0, 10_000.0):
        with pytest.raises(InputError) as caught:
            FastClock(speed)
        assert caught.value.issues[0].field == "demo_speed"
    with pytest.raises(InputError) as caught:
        demo_settings(Settings(data_dir=tmp_path), speed=600, hosts=100)
    assert caught.value.issues[0].field == "demo_speed" and "at most 120" in str(caught.value.issues[0])
    keep = tmp_path / "demo" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("x")
    with pytest.raises(InputError) as caught:
        demo_settings(Settings(data_dir=tmp_path), speed=60, hosts=5)
    assert caught.value.issues[0].field == "demo_hosts" and keep.exists()  # nothing deleted on bad input
    settings, clock = demo_settings(Settings(data_dir=tmp_path), speed=120, hosts=100)
    assert settings.database_url == f"sqlite:///{tmp_path / 'demo' / 'ringfence.db'}" and not keep.exists()
    assert settings.reconcile_interval_seconds < 1.0 and clock.speed == 120


def test_demo_replay_can_be_retried_after_the_kill_switch_refused_it(db: Database, clock: FakeClock,
                                                                     tmp_path: Path) -> None:
    from ringfence.errors import ConflictError
    from ringfence.services.health import HealthIngest

    demo = DemoFleet(db=db, ingest=HealthIngest(db, clock), artifacts=ArtifactStore(tmp_path / "a"), clock=clock,
                     host_count=50)
    demo.setup()
    operator = Actor(name="olga", role=Role.OPERATOR)
    rollouts.kill_switch(db, "falcon-content", actor=operator, clock=clock, reason="drill")
    with pytest.raises(ConflictError, match="kill switch"):
        demo.replay(operator)
    assert demo.replay_rollout is None
    rollouts.kill_switch(db, "falcon-content", engage=False, actor=operator, clock=clock, reason="drill over")
    rid = demo.replay(operator)
    assert rollouts.get_rollout(db, rid).status.state.value == "progressing"


def test_notifications_page_shows_rules_without_secrets_and_the_log(api: Api, db: Database, clock: FakeClock) -> None:
    """The delivery log and the rules are on /notifications (secrets never rendered); /favicon.ico is served."""
    _login(api, "viewer")
    assert "No notification rules yet" in api.client.get("/notifications").text
    notifications.apply_rules(db, "notify: {targets: {hook: {webhook: 'http://127.0.0.1:9/h', secret: TOPSECRET}},"
                                  " rules: [{events: ['*'], targets: [hook]}]}", actor=ADMIN, clock=clock)
    notifier = OutboxNotifier(db, clock, backoff_base=30, timeout_seconds=1)
    notifier.notify(Notification(event=Event.ROLLOUT_HALTED, subject="ro-1", title="shop@1 halted in wave 0",
                                 text="", at=clock()))
    notifier.run_once()
    notifier.stop()
    page = api.client.get("/notifications").text
    assert "shop@1 halted in wave 0" in page and "retrying" in page and "next try" in page
    assert "TOPSECRET" not in page and "http://127.0.0.1:9/h" in page
    assert "shop@1 halted in wave 0" not in api.client.get("/notifications?state=delivered").text
    icon = api.client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize(("message", "label"), [
    ("wave 1 (early) waiting: ws-1: closed: 19:02 in Europe/Berlin is outside mon-fri 07:00-18:00",
     "waiting for a change window"),
    ("wave 1 (early) waiting: ws-1: offline (no heartbeat in the last 10 min); 3 hosts blocked by disruption budgets",
     "waiting for offline hosts and a disruption budget"),
    ("wave 1 (early) waiting: no host in reach is eligible now; 12 hosts blocked by disruption budgets",
     "waiting for a disruption budget"),
    ("wave 1 (early) waiting: ws-1: tenant delay not over", "waiting for a tenant delay"),
])
def test_waiting_states_say_the_real_reason(message: str, label: str) -> None:
    """'Waiting for a window' only when a window is the cause; offline hosts and budgets are named as such."""
    assert state_label("waiting_window", message) == label
    assert state_label("halted", message) == "HALTED" and state_word("waiting_approval") == "waiting for approval"


def test_prose_renders_code_pools_and_drops_the_repeated_halt_prefix() -> None:
    """Backticks become <code> (escaped), '*' becomes words, the halt prefix the page already says goes."""
    assert str(prose("sign with `ringfence release sign a@1 --key <KEY>`")) == \
        "sign with <code>ringfence release sign a@1 --key &lt;KEY&gt;</code>"
    halt = "halted wave 0 (canary) at 2024-07-22 00:28 UTC: halted: 30 of 30 updated * hosts silent vs 5 of 9"
    assert str(prose(halt, halt=True)) == "30 of 30 updated hosts (all strata pooled) silent vs 5 of 9"
    assert str(prose("stratum * failed")) == "stratum all strata failed"
    assert str(prose("an odd ` backtick")) == "an odd ` backtick"


def test_repeated_decision_rows_are_grouped() -> None:
    """28 'exposing N more hosts' ticks are one row with ×28; a different decision breaks the run."""
    rows = [{"at": f"2026-11-24T09:{59 - i:02d}:00+00:00", "state": "progressing", "wave": 0, "actor": "reconciler",
             "message": f"wave 0 (canary): exposing {i % 9 + 1} more hosts"} for i in range(28)]
    rows.append({"at": "2026-11-24T09:00:00+00:00", "state": "progressing", "wave": 0, "actor": "olga",
                 "message": "started by olga"})
    grouped = group_decisions(rows)
    assert [(g["count"], g["message"][:14]) for g in grouped] == [(28, "wave 0 (canary"), (1, "started by olg")]
    assert grouped[0]["at"] == rows[0]["at"] and grouped[0]["first_at"] == rows[27]["at"]


def test_overview_charts_fleet_health_over_time(api: Api, db: Database, clock: FakeClock) -> None:
    """Hosts that stop reporting show up as silent from 15 minutes after their last heartbeat."""
    start = clock()
    with db.transaction() as conn:
        health_store.record_heartbeats(conn, {f"h{i}": (start, 1) for i in range(20)})
    clock.advance(minutes=60)
    with db.transaction() as conn:
        health_store.record_heartbeats(conn, {f"h{i}": (clock(), 1) for i in range(15)})  # 5 went quiet at start
    _login(api, "viewer")
    page = api.client.get("/").text
    assert 'id="fleet-chart"' in page and "5 hosts silent now" in page


def test_kill_switch_pressed_in_the_dashboard_is_told_to_the_notify_targets(api: Api, db: Database, clock: FakeClock,
                                                                             rollout: str) -> None:
    """The dashboard's actions go through the app's notifier: the halt lands in the delivery log."""
    notifications.apply_rules(db, "notify: {targets: {hook: {webhook: 'http://127.0.0.1:9/h', secret: s}},"
                                  " rules: [{events: ['*'], targets: [hook]}]}", actor=ADMIN, clock=clock)
    csrf = _login(api, "operator")
    yes = api.client.post("/ui/killswitch/falcon-content",
                          data={"csrf": csrf, "reason": "boot loops", "confirm": "falcon-content"}, follow_redirects=False)
    assert yes.status_code == 303
    for _ in range(100):  # the notifier's worker thread stores it within its poll interval
        log = notifications.deliveries(db, actor=ADMIN)
        if any(d.event == "killswitch" for d in log):
            break
        time.sleep(0.1)
    assert ("killswitch", "falcon-content", "*/hook") in {(d.event, d.subject, d.target) for d in log}, log
