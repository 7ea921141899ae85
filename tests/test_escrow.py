"""Key-escrow import: all-or-nothing, never the key itself, hosts must exist; through the API too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.adapters.db.stores import escrow as escrow_store
from ringfence.adapters.inventory.files import read_paths
from ringfence.errors import InputError
from ringfence.services import assessment, inventory
from ringfence.services.context import Actor
from tests.api_support import Api, _problem
from tests.conftest import FakeClock

FIX = Path(__file__).parent / "fixtures"


def _load(db: Database, operator: Actor, clock: FakeClock) -> None:
    inv = read_paths([FIX / "inventory" / "hosts.csv", FIX / "inventory" / "services.yaml"])
    inventory.import_inventory(db, inv, actor=operator, clock=clock)


def test_escrow_import_and_readback(db: Database, operator: Actor, clock: FakeClock) -> None:
    """Records land per host; a verified key wins; re-import replaces a host's records."""
    _load(db, operator, clock)
    data = (FIX / "escrow" / "escrow.csv").read_bytes()
    result = assessment.import_escrow(db, [("escrow.csv", data)], actor=operator, clock=clock)
    assert result == {"records": 2, "hosts": 2, "verified": 1}
    with db.transaction() as conn:
        records = escrow_store.all_records(conn)
    assert records["4C4C4544-0031-3510-8052-B4C04F4E3732"].verified
    assert not records["EC2A1B3C-5D6E-7F80-91A2-B3C4D5E6F708"].verified
    again = b"host_id,key_id,location,verified\nEC2A1B3C-5D6E-7F80-91A2-B3C4D5E6F708,{X},intune,yes\n"
    assessment.import_escrow(db, [("again.csv", again)], actor=operator, clock=clock)
    with db.transaction() as conn:
        assert escrow_store.all_records(conn)["EC2A1B3C-5D6E-7F80-91A2-B3C4D5E6F708"].location == "intune"


@pytest.mark.parametrize(("content", "field", "message"), [
    (b"host_id,key_id,location\nh,k,l\n", "verified", "column is missing"),
    (b"host_id,key_id,location,verified,recovery_password\nh,k,l,true,1\n", "recovery_password", "never imported"),
    (b"host_id,key_id,location,verified\n4C4C4544-0031-3510-8052-B4C04F4E3732,"
     b"123456-123456-123456-123456-123456-123456-123456-123456,ad,true\n", "key_id", "recovery password"),
    (b"host_id,key_id,location,verified\n4C4C4544-0031-3510-8052-B4C04F4E3732,k,ad,maybe\n", "verified", "maybe"),
    (b"host_id,key_id,location,verified\nghost-host,k,ad,true\n", "host_id", "not in the inventory"),
])
def test_bad_escrow_files_change_nothing(db: Database, operator: Actor, clock: FakeClock, content: bytes, field: str,
                                         message: str) -> None:
    """Each bad file is rejected naming the field; nothing is written."""
    _load(db, operator, clock)
    with pytest.raises(InputError) as info:
        assessment.import_escrow(db, [("e.csv", content)], actor=operator, clock=clock)
    assert any(i.field == field and message in str(i) for i in info.value.issues), info.value.issues
    with db.transaction() as conn:
        assert escrow_store.all_records(conn) == {}


def test_escrow_route(api: Api) -> None:
    """POST /v1/escrow takes text/csv; a viewer may not; bad rows are 422 problems."""
    files = [("files", ("hosts.csv", (FIX / "inventory" / "hosts.csv").read_bytes(), "text/csv")),
             ("files", ("services.yaml", (FIX / "inventory" / "services.yaml").read_bytes(), "application/yaml"))]
    assert api.call("POST", "/v1/inventory", role="operator", files=files).status_code == 200
    body = (FIX / "escrow" / "escrow.csv").read_bytes()
    ok = api.call("POST", "/v1/escrow", role="operator", content=body, headers={"content-type": "text/csv"})
    assert ok.status_code == 200 and ok.json()["hosts"] == 2
    _problem(api.call("POST", "/v1/escrow", role="viewer", content=body, headers={"content-type": "text/csv"}), 403)
    _problem(api.call("POST", "/v1/escrow", role="operator", content=b"host_id\nx\n",
                      headers={"content-type": "text/csv"}), 422)


def test_assessment_route(api: Api) -> None:
    """POST /v1/assessments answers JSON (and HTML/Markdown on request); bad what-ifs are 422 naming the field."""
    files = [("files", ("hosts.csv", (FIX / "inventory" / "hosts.csv").read_bytes(), "text/csv")),
             ("files", ("services.yaml", (FIX / "inventory" / "services.yaml").read_bytes(), "application/yaml"))]
    assert api.call("POST", "/v1/inventory", role="operator", files=files).status_code == 200
    result = api.call("POST", "/v1/assessments", role="viewer",
                      json={"what_ifs": ["agent.vendor=CrowdStrike"], "top": 3, "formats": ["json", "html"]})
    assert result.status_code == 200, result.text
    body = result.json()
    first = body["assessments"][0]
    assert first["hosts_down"] == 3  # hosts.csv: three hosts run CrowdStrike
    # payments keeps 1 of its 2 fra-2 servers (the other runs Defender): degraded with exactly min_healthy, not down
    assert "payments" in {s["service"] for s in first["services_degraded"]}
    assert "payments" not in {s["service"] for s in first["services_down"]}
    assert "<svg" in body["html"] and len(body["top"]) <= 3
    bad = _problem(api.call("POST", "/v1/assessments", role="viewer", json={"what_ifs": ["colour=red"]}), 422)
    assert bad["errors"][0]["field"] == "what_ifs[0]" and "unknown field" in bad["errors"][0]["message"]
    _problem(api.call("POST", "/v1/assessments", role="viewer", json={"what_ifs": []}), 422)
    _problem(api.call("POST", "/v1/assessments", role="viewer", json={"what_ifs": ["tier=0"], "formats": ["pdf"]}),
             422)
    # The field's former name is still accepted, and its errors name it (docs/api.md); both at once is bad input.
    old = api.call("POST", "/v1/assessments", role="viewer", json={"scenarios": ["agent.vendor=CrowdStrike"]})
    assert old.status_code == 200 and old.json()["assessments"][0]["hosts_down"] == 3, old.text
    bad_old = _problem(api.call("POST", "/v1/assessments", role="viewer", json={"scenarios": ["colour=red"]}), 422)
    assert bad_old["errors"][0]["field"] == "scenarios[0]"
    both = _problem(api.call("POST", "/v1/assessments", role="viewer",
                             json={"what_ifs": ["tier=0"], "scenarios": ["tier=0"]}), 422)
    assert both["errors"][0]["field"] == "what_ifs"
