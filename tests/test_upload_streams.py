"""Uploads are parsed from where they are spooled, never copied into memory whole (issue 14: stream-parse uploads).

OSV imports copy a stream to their work directory a buffer at a time and read an ``all.zip`` entry by entry.


CSV and JSON Lines are read from a binary stream (an upload spooled to disk, an open file) a buffer at a time:
the file's text is never held whole in memory, and a file whose rows are bad is read only until the problem
list is full. The result is the same as for the whole file given as bytes, and imports stay all-or-nothing.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest

from ringfence.adapters.db.engine import Database
from ringfence.adapters.inventory.files import parse_files
from ringfence.errors import InputError
from ringfence.services import supply_chain
from ringfence.services.context import Actor
from tests.api_support import Api, _problem
from tests.conftest import FakeClock

HEADER = "id,hostname,tenant,os_family,tier,country\n"


class ChunkedOnly(io.RawIOBase):
    """A real binary stream over bytes that refuses to be read whole: read(-1) and readall() fail."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.largest_read = max(self.largest_read, len(chunk))
        return len(chunk)

    def readall(self) -> bytes:
        raise AssertionError("the whole stream was read at once")

    def tell(self) -> int:
        return self._data.tell()


def _csv(rows: int, *, bom: bool = False, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    text = HEADER.replace("\n", end) + "".join(f"h{i},host-{i},t1,linux,2,DE{end}" for i in range(rows))
    return ("\ufeff" if bom else "").encode() + text.encode()


@pytest.mark.parametrize(("bom", "crlf"), [(False, False), (True, True)])
def test_csv_from_a_stream_is_read_row_by_row_and_equals_the_whole_file(bom: bool, crlf: bool) -> None:
    data = _csv(20_000, bom=bom, crlf=crlf)
    stream = ChunkedOnly(data)
    streamed = parse_files([("hosts.csv", io.BufferedReader(stream, buffer_size=64 * 1024))])
    assert stream.largest_read <= 64 * 1024 < len(data)
    assert streamed == parse_files([("hosts.csv", data)])
    assert len(streamed.hosts) == 20_000 and streamed.hosts[-1].country == "DE"


def test_json_lines_from_a_stream_equal_the_whole_file() -> None:
    lines = [json.dumps({"kind": "tenant", "id": "t1", "name": "T"})]
    lines += [json.dumps({"id": f"h{i}", "hostname": f"h{i}", "tenant": "t1", "os_family": "windows",
                          "labels": {"note": "a\u2028b"}}, ensure_ascii=False) for i in range(5_000)]
    data = ("\r\n".join(lines) + "\r\n").encode()
    stream = ChunkedOnly(data)
    streamed = parse_files([("fleet.jsonl", io.BufferedReader(stream, buffer_size=32 * 1024))])
    assert stream.largest_read <= 32 * 1024
    assert len(streamed.hosts) == 5_000 and streamed.tenants[0].id == "t1"
    assert streamed.hosts[0].labels == {"note": "a\u2028b"}  # a line separator inside a value is not a line end


def test_a_file_of_bad_rows_is_read_only_until_the_problems_are_full() -> None:
    data = HEADER.encode() + b"".join(f"h{i},a,t1,plan9,2,DE\n".encode() for i in range(200_000))
    stream = io.BytesIO(data)
    with pytest.raises(InputError) as info:
        parse_files([("bad.csv", stream)])
    assert len(info.value.issues) == 100
    assert stream.tell() < len(data) / 10, (stream.tell(), len(data))  # the rest was never read


def test_a_byte_that_is_not_utf8_mid_stream_is_reported_with_where_it_is() -> None:
    data = _csv(10_000) + b"h-x,\xff\xfe,t1,linux,2,DE\n"
    with pytest.raises(InputError) as info:
        parse_files([("hosts.csv", io.BufferedReader(ChunkedOnly(data), buffer_size=8192))])
    issue = next(i for i in info.value.issues if i.field == "file")
    assert issue.location == "hosts.csv" and "not UTF-8" in issue.message and "byte" in issue.message, issue


def test_a_short_row_is_still_refused_from_a_stream() -> None:
    data = HEADER.encode() + b"h1,a,t1,linux,2,DE\nh2,b,t1\n"
    with pytest.raises(InputError) as info:
        parse_files([("hosts.csv", io.BytesIO(data))])
    assert [(i.location, i.field) for i in info.value.issues] == [("hosts.csv row 3", "row")]


@pytest.mark.parametrize("how", ["multipart", "body"])
def test_the_api_imports_a_spooled_csv_and_refuses_it_all_or_nothing(api: Api, how: str) -> None:
    good = _csv(3_000)  # ~100 kB: beyond one read of the body, and spooled by the form parser
    bad = good + b"h-bad,x,t1,plan9,2,DE\n"

    def send(data: bytes) -> Any:
        if how == "multipart":
            return api.call("POST", "/v1/inventory", role="operator", files=[("files", ("hosts.csv", data, "text/csv"))])
        return api.call("POST", "/v1/inventory?name=hosts.csv", role="operator", content=data,
                        headers={"Content-Type": "text/csv"})

    body = _problem(send(bad), 422)
    assert any(e["location"].startswith("hosts.csv row 3002") for e in body["errors"]), body
    assert api.call("GET", "/v1/hosts?limit=1", role="viewer").json()["total"] == 0  # nothing was imported
    response = send(good)
    assert response.status_code == 200, response.text
    assert api.call("GET", "/v1/hosts?limit=1", role="viewer").json()["total"] == 3_000


def _osv_zip(n: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(n):
            archive.writestr(f"PYSEC-2026-{i}.json", json.dumps({
                "id": f"PYSEC-2026-{i}", "modified": "2026-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "PyPI", "name": f"pkg{i}"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}]}]}))
    return out.getvalue()


def test_an_osv_zip_from_a_stream_is_copied_in_buffers_and_imported(db: Database, operator: Actor,
                                                                    clock: FakeClock) -> None:
    data = _osv_zip(300)
    stream = ChunkedOnly(data)
    result = supply_chain.import_vulns(db, [("all.zip", io.BufferedReader(stream, buffer_size=16 * 1024))],
                                       actor=operator, clock=clock)
    assert stream.largest_read <= 1024 * 1024 and stream.tell() == len(data)
    assert result["records"] == 300 and result["inserted"] == 300, result


def test_the_api_imports_a_spooled_osv_zip(api: Api) -> None:
    response = api.call("POST", "/v1/vulns/import", role="operator",
                        files=[("files", ("all.zip", _osv_zip(2_000), "application/zip"))])
    assert response.status_code == 200, response.text
    assert response.json()["records"] == 2_000


def test_escrow_csv_from_a_stream_is_read_row_by_row_and_equals_the_whole_file() -> None:
    from ringfence.services.assessment import parse_escrow_csv

    data = ("\ufeffhost_id,key_id,location,verified\r\n"
            + "".join(f"h{i},{{{i:08X}-0000-0000-0000-000000000000}},entra-id,true\r\n" for i in range(20_000))).encode()
    stream = ChunkedOnly(data)
    streamed = parse_escrow_csv("escrow.csv", io.BufferedReader(stream, buffer_size=64 * 1024))
    assert stream.largest_read <= 64 * 1024 < len(data)
    assert streamed == parse_escrow_csv("escrow.csv", data) and len(streamed) == 20_000
    with pytest.raises(InputError, match="not UTF-8"):
        parse_escrow_csv("escrow.csv", io.BufferedReader(ChunkedOnly(data + b"h-x,\xff,entra-id,true\n"), 8192))


def test_recovery_keys_from_a_stream_are_read_in_buffers_and_equal_the_whole_file(db: Database,
                                                                                  clock: FakeClock) -> None:
    from cryptography.fernet import Fernet

    from ringfence.adapters.db.stores import recovery as recovery_store
    from ringfence.domain.access import Role
    from ringfence.domain.model import Host, HostId, Inventory, OsFamily, TenantId
    from ringfence.services import inventory, recovery

    admin = Actor(name="admin", role=Role.ADMIN)
    hosts = tuple(Host(id=HostId(f"pc{i:04d}"), hostname=f"PC{i:04d}", tenant=TenantId("acme"),
                       os_family=OsFamily.WINDOWS) for i in range(2_000))
    inventory.import_inventory(db, Inventory(hosts=hosts), actor=Actor(name="op", role=Role.OPERATOR), clock=clock)
    vault = recovery.KeyVault(Fernet.generate_key().decode())
    key = "123456-" * 7 + "654321"
    data = ("\ufeffHostname,KeyID,RecoveryKey\r\n" + "".join(f"PC{i:04d},{{k-{i}}},{key}\r\n" for i in range(2_000))
            ).encode()
    stream = ChunkedOnly(data)
    assert recovery.import_keys(db, io.BufferedReader(stream, buffer_size=8192), vault, actor=admin,
                                clock=clock) == 2_000
    assert stream.largest_read <= 8192 < len(data)
    with db.transaction() as conn:
        streamed = [recovery_store.key_of(conn, f"pc{i:04d}") for i in (0, 1_999)]
    assert [k for k, _ in streamed] == ["{k-0}", "{k-1999}"] and all(key not in c for _, c in streamed)
    assert recovery.import_keys(db, data.decode("utf-8-sig"), vault, actor=admin, clock=clock) == 2_000  # same file
    bad = data + b"PC0001,{k-x},\xff\n"
    with pytest.raises(InputError, match="not UTF-8") as caught:
        recovery.import_keys(db, io.BufferedReader(ChunkedOnly(bad), 8192), vault, actor=admin, clock=clock)
    assert caught.value.issues[0].field == "body"


def test_the_api_reads_a_recovery_key_csv_that_is_not_utf8_as_422(api: Api) -> None:
    response = api.call("POST", "/v1/recovery/keys", content=b"Hostname,KeyID,RecoveryKey\nPC01,k,\xff\n",
                        headers={"content-type": "text/csv"})
    assert [e["field"] for e in _problem(response, 422)["errors"]] == ["body"]


def test_an_artifact_from_a_stream_is_copied_in_buffers_under_its_digest(tmp_path: Any) -> None:
    import hashlib

    from ringfence.adapters.artifacts import ArtifactStore

    data = bytes(range(256)) * (12 * 1024)  # 3 MiB
    store = ArtifactStore(tmp_path / "artifacts")
    stream = ChunkedOnly(data)
    digest, size = store.put_stream(io.BufferedReader(stream, buffer_size=64 * 1024))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data)) and store.get(digest) == data
    assert stream.largest_read <= 1024 * 1024 < len(data)
    assert store.put_stream(io.BytesIO(data)) == (digest, size) and store.put(data) == digest  # stored once
    assert [p.name for p in (tmp_path / "artifacts" / "sha256").rglob("*") if p.is_file()] == [digest]


def test_the_api_stores_a_spooled_artifact_whole_and_under_its_digest(api: Api) -> None:
    import hashlib

    data = b"\x00channel file 291\xff" * 200_000  # 3.8 MB: spooled to disk by the form parser
    created = api.call("POST", "/v1/releases", role="operator", files=[("files", ("C-00000291.sys", data))],
                       data={"product": "falcon-content", "version": "291", "kind": "content",
                             "platforms": "windows"})
    assert created.status_code == 201, created.text
    assert created.json()["artifacts"] == [{"name": "C-00000291.sys", "sha256": hashlib.sha256(data).hexdigest(),
                                            "size": len(data)}]
