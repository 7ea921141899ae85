"""The dashboard's recovery pages without a browser: campaign page with its chart, marking, work orders by role."""

from __future__ import annotations

import re
from pathlib import Path

from ringfence.adapters.db.engine import Database
from ringfence.adapters.web.routes import csrf_for
from ringfence.domain.access import Role
from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
from ringfence.services import inventory
from ringfence.services import recovery as svc
from ringfence.services.context import Actor
from ringfence.services.tokens import create_token
from tests.api_support import Api
from tests.conftest import FakeClock

OPERATOR = Actor(name="olga", role=Role.OPERATOR)
RUNBOOKS = (Path(__file__).resolve().parents[1] / "examples" / "recovery" / "default.yaml").read_text()


def _login(api: Api, token: str) -> str:
    api.client.cookies.clear()
    page = api.client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert nonce
    resp = api.client.post("/login", data={"csrf": nonce.group(1), "token": token, "next": "/"}, follow_redirects=False)
    assert resp.status_code == 303
    return csrf_for(token)


def test_campaign_page_chart_marks_and_work_orders(api: Api, db: Database, clock: FakeClock) -> None:
    hosts = tuple(Host(id=HostId(f"pc{i}"), hostname=f"PC{i}", tenant=TenantId("acme"), os_family=OsFamily.WINDOWS,
                       site=f"s{i % 2}") for i in range(4))
    inventory.import_inventory(db, Inventory(hosts=hosts), actor=OPERATOR, clock=clock)
    cid = svc.create_campaign(db, actor=OPERATOR, clock=clock, name="july", runbooks=RUNBOOKS,
                              hosts=[h.id for h in hosts])["id"]
    svc.assign(db, cid, ["pc0"], "tina", actor=OPERATOR, clock=clock)
    tina, _ = create_token(db, name="tina", role="technician", actor=Actor("a", Role.ADMIN), clock=clock)

    _login(api, api.tokens["operator"])
    listing = api.client.get("/recovery")
    assert listing.status_code == 200 and "july" in listing.text
    page = api.client.get(f"/recovery/{cid}")
    assert page.status_code == 200 and "<svg" in page.text and "pc3" in page.text

    csrf = _login(api, tina)
    mine = api.client.get(f"/recovery/{cid}")
    assert mine.status_code == 200 and "pc0" in mine.text and "pc3" not in mine.text  # only her work orders
    assert api.client.post(f"/recovery/{cid}/hosts/pc0/mark", data={"csrf": "x", "state": "start"}).status_code == 403
    done = api.client.post(f"/recovery/{cid}/hosts/pc0/mark", data={"csrf": csrf, "state": "start"},
                           follow_redirects=False)
    assert done.status_code == 303
    assert svc.show(db, cid, actor=OPERATOR, clock=clock)["hosts"][0]["state"] == "in_progress"
    assert api.client.get(f"/recovery/{cid}/hosts/pc1").status_code == 403  # not hers
    order = api.client.get(f"/recovery/{cid}/hosts/pc0")
    assert order.status_code == 200 and "Reveal the recovery key" in order.text
