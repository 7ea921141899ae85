"""From a halted rollout to a campaign in the dashboard (no browser; SQLite and PostgreSQL): the form at
/recovery/new?rollout=ID, creating, assigning from the campaign page, and the burn-down per recovery path,
planned from the start against observed (a host counts only once its own heartbeat verified it)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ringfence.adapters.api.app import create_app
from ringfence.adapters.artifacts import ArtifactStore
from ringfence.adapters.db.engine import Database
from ringfence.cli.main import app as cli_app
from ringfence.config import Settings
from ringfence.services import recovery as svc
from ringfence.services.health import HealthIngest, HealthReport
from tests.api_support import Api
from tests.conftest import FakeClock
from tests.rollout_harness import ALWAYS_OPEN, OPERATOR, Fleet, make_hosts, start
from tests.test_recovery_dashboard import _login
from tests.test_recovery_e2e import _Serve


def _halted_with_silent_hosts(db: Database, clock: FakeClock, tmp_path: Path) -> tuple[str, set[str]]:
    fleet = Fleet(db, clock, make_hosts(100), ArtifactStore(tmp_path / "a"))
    rid = start(fleet, fleet.release("291"), ALWAYS_OPEN)
    for _ in range(40):  # the canary wave (5 of 100 hosts, 2 a minute) gets the release; they will boot-loop
        fleet.run(rid, minutes=1)
        if len(fleet.exposed(rid)) >= 3:
            break
    exposed = fleet.exposed(rid)
    assert len(exposed) >= 3, exposed
    clock.advance(minutes=30)
    fleet.down = set(exposed)
    fleet.heartbeat(rid)
    return rid, exposed


def test_new_campaign_from_a_rollout_then_assign_and_burn_down_per_path(api: Api, db: Database, db_url: str,
                                                                        clock: FakeClock, tmp_path: Path) -> None:
    rid, exposed = _halted_with_silent_hosts(db, clock, tmp_path)
    csrf = _login(api, api.tokens["operator"])
    form = api.client.get(f"/recovery/new?rollout={rid}")
    assert form.status_code == 200, form.text
    shown = re.search(r'id="to-recover">(\d+)<', form.text)
    assert shown and int(shown.group(1)) == len(exposed)
    assert "runbooks:" in form.text  # the example runbooks, editable
    assert api.client.get("/recovery/new?rollout=nope").status_code == 404
    bad = api.client.post("/recovery/new", data={"csrf": csrf, "rollout": rid, "name": "291",
                                                 "runbooks": "runbooks: [{name: x}]"})
    assert bad.status_code == 422 and "runbooks[0].path" in bad.text
    assert svc.list_campaigns(db, actor=OPERATOR) == []  # nothing created
    made = api.client.post("/recovery/new", data={"csrf": csrf, "rollout": rid, "name": "291",
                                                  "runbooks": svc.default_runbooks()}, follow_redirects=False)
    assert made.status_code == 303, made.text
    cid = made.headers["location"].rsplit("/", 1)[-1]
    view = svc.show(db, cid, actor=OPERATOR, clock=clock)
    assert {h["host_id"] for h in view["hosts"]} == exposed

    page = api.client.get(f"/recovery/{cid}")
    assert page.status_code == 200 and 'id="burn-by-path"' in page.text and 'id="assign-form"' in page.text
    assigned = api.client.post(f"/recovery/{cid}/assign", data={"csrf": csrf, "count": "2", "technician": "tina"},
                               follow_redirects=False)
    assert assigned.status_code == 303
    mine = sorted(h["host_id"] for h in svc.show(db, cid, actor=OPERATOR, clock=clock)["hosts"]
                  if h["assignee"] == "tina")
    assert mine == sorted(exposed)[:2]
    assert api.client.post(f"/recovery/{cid}/assign", data={"csrf": csrf, "count": "x",
                                                            "technician": "tina"}).status_code == 422

    # Two hosts are fixed and report by themselves, on the good content, an hour later: observed drops by two.
    for host in mine:
        svc.mark(db, cid, host, "start", actor=OPERATOR, clock=clock)
        svc.mark(db, cid, host, "fixed", actor=OPERATOR, clock=clock)
    clock.advance(minutes=60)
    ingest = HealthIngest(db, clock)
    for host in mine:
        ingest.submit(host, HealthReport(host_id=host, at=clock(), versions={"falcon-content": "290"}))
    ingest.flush()
    p = svc.plan(db, cid, actor=OPERATOR, clock=clock)
    burn = p["burn_down_by_path"]
    paths = {h["path"] for h in view["hosts"]}
    assert set(burn) == paths
    assert sum(b["planned"][0][1] for b in burn.values()) == len(exposed)  # at the start, every host to do
    assert all(b["planned"][-1][1] == 0 for b in burn.values())  # the plan from the start ends with none left
    now_left = sum(b["observed"][-1][1] for b in burn.values())
    assert now_left == len(exposed) - 2 and p["verified"] == 2
    assert all(b["observed"][-1][0] <= p["hours_since_start"] + 1e-6 for b in burn.values())  # nothing after now
    report = api.client.get(f"/v1/recovery/campaigns/{cid}/report",
                            headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
    assert report.status_code == 200 and "Burn-down per recovery path" in report.text
    assert report.text.count("observed") >= 2

    # The CLI prints the same burn-down per path (`recovery plan`, and `recovery report` beside the HTML file).
    settings = Settings(database_url=db_url, data_dir=tmp_path / "var", reconcile_interval_seconds=0)
    with _Serve(create_app(settings, db=db, clock=clock)) as srv:
        env = {"RINGFENCE_SERVER_URL": srv.url, "RINGFENCE_TOKEN": api.tokens["viewer"], "COLUMNS": "200"}
        shown = CliRunner().invoke(cli_app, ["recovery", "plan", cid], env=env)
        assert shown.exit_code == 0, shown.output
        assert "Burn-down per recovery path" in shown.output
        for path in paths:
            assert path in shown.output
        written = CliRunner().invoke(cli_app, ["recovery", "report", cid, "-o", str(tmp_path / "r.html")], env=env)
        assert written.exit_code == 0, written.output
        assert "Burn-down per recovery path" in (tmp_path / "r.html").read_text() and "planned by now" in written.output
