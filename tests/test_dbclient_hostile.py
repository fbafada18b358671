"""The dbClient server and client against hostile or broken peers, on loopback (issue 16, findings 1, 3, 4
and 5): lengths checked before reading, authentication before parsing, idle connections closed, threads
bounded, a reply for every request, poisoned documents set aside without blocking the ones behind them,
a per-document row limit, and the same length limits on SQLite and MariaDB."""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading

import pytest
from sqlalchemy import func, select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document
from terapix_fw.db.store import apply_batch
from terapix_testing.rdbix import (ServerProcess, _mariadb_session_database, db_url,  # noqa: F401
                                   mariadb_server)
from terapix_fw.dbclient.auth import HEADER, sign
from terapix_fw.dbclient.client import Client
from terapix_fw.dbclient.xmldoc import to_xml

SECRET = "t0p-s3cret"
WAIT = 120.0  # generous bound on waiting for an event that must happen (a busy machine is slow, not wrong)


@pytest.fixture
def sqlite_url(tmp_path):
    from terapix_fw.db.engine import dispose_all
    yield f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    dispose_all()


@pytest.fixture
def server(sqlite_url, tmp_path):
    srv = ServerProcess(sqlite_url, SECRET, tmp_path / "server", extra_args=("--read-timeout", "2"))
    yield srv
    srv.stop()


def _count(url, table) -> int:
    with connect(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _status_line(sock: socket.socket) -> bytes:
    """The first line the server answers (b'' if it closed without answering)."""
    sock.settimeout(WAIT)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return int(next(line.split()[1] for line in handle if line.startswith("Threads:")))


@pytest.mark.parametrize("length", ["-1", "99999999999999", "12abc"])
def test_bad_content_length_answered_before_the_body_is_read(server, length):
    """Content-Length: -1 used to pass the size check and the body was read to end of stream before the
    signature was looked at: the server now answers at once, without waiting for a body."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                     f"{HEADER}: sha256=00\r\n\r\n".encode() + b"<" * 65536)  # and keep the stream open
        status = _status_line(sock)
    assert status.split()[1:2] in ([b"400"], [b"413"]), status
    assert _post_good(server) == 200  # still serving


def _post_good(srv) -> int:
    body = to_xml(Document(id=f"good-{os.urandom(4).hex()}").add("node", name="n1", free_disk=10))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
    conn.request("POST", "/documents", body=body, headers={HEADER: sign(body, SECRET.encode())})
    status = conn.getresponse().status
    conn.close()
    return status


def test_unsigned_body_is_not_parsed(server):
    """Authentication comes before parsing: an unsigned malformed body gets 401, not a parse error."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        conn.request("POST", "/documents", body=b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;", headers={})
        response = conn.getresponse()
        assert response.status == 401 and "missing X-Terapix-Signature" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_half_open_connections_are_closed_and_cost_no_thread(server, sqlite_url, tmp_path):
    """300 connections that send half a request: the server keeps a bounded number of threads, closes
    them after its read timeout (2 s here), and serves an honest client meanwhile."""
    socks = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")  # no end of headers
        socks.append(s)
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    assert client.submit(Document(id="honest").add("node", name="h")).sent == 1
    assert _threads(server.pid) < 64
    try:
        for s in socks:  # each is closed by the server (recv gives b'' or a reset), none left hanging
            s.settimeout(WAIT)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in socks:
            s.close()
    assert _count(sqlite_url, S.documents) == 1


def _spool_raw(client: Client, body: bytes, doc_id: str):
    """Put a document into the spool as raw bytes (what a corrupted or hostile node would send)."""
    from terapix_fw.dbclient import client as module
    name = f"{module._stamp():020d}-{os.getpid():07d}-{next(module._counter):08d}-{doc_id}.xml"
    (client.spool_dir / name).write_bytes(body)


# UTF-16, so that a byte search for "<!DOCTYPE" does not see it
POISON = ("<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE document [<!ENTITY e SYSTEM 'file:///etc/hostname'>]>"
          "<document xmlns='urn:terapix-fw:dbclient:1' id='poison'><node name='a'>&e;</node></document>"
          ).encode("utf-16")


def test_poisoned_document_set_aside_and_the_ones_behind_it_stored(server, sqlite_url, tmp_path, capsys,
                                                                    monkeypatch):
    """An external entity in element content used to crash schema validation and drop the connection:
    the client retried the same document forever and nothing behind it was stored."""
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    client.spool(Document(id="before").add("node", name="a"))
    _spool_raw(client, POISON, "poison")
    _spool_raw(client, b"\xff\xfe<\x00d\x00", "garbage")
    client.spool(Document(id="after").add("node", name="b"))
    result = client.flush()
    assert (result.sent, result.rejected, result.remaining, result.error) == (2, 2, 0, "")
    assert _count(sqlite_url, S.documents) == 2
    reasons = {p.name.rsplit("-", 1)[1]: p.with_suffix(".reason").read_text() for p in client.rejected()}
    assert "DOCTYPE and ENTITY declarations are not allowed" in reasons["poison.xml"]
    assert "malformed XML" in reasons["garbage.xml"]
    from terapix_fw.cli import main
    monkeypatch.delenv("TERAPIX_DBCLIENT_URL", raising=False)
    assert main(["dbclient", "status", "--spool", str(tmp_path / "spool")]) == 0
    out = capsys.readouterr().out
    assert "0 document(s) waiting, 2 rejected" in out and "poison.xml: request from 127.0.0.1" in out


class _DroppingServer:
    """A server that closes the connection without an answer when the body contains b'poison', and
    acknowledges every other document as applied (what a crashing server looks like to a client)."""

    def __init__(self):
        import re
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.applied: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if b"poison" in body:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                ids = [i.decode() for i in re.findall(rb'<document [^>]*id="([^"]+)"', body)]
                outer.applied.extend(ids)
                reply = json.dumps({"results": [{"id": i, "status": "applied", "reason": ""} for i in ids]})
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_document_the_server_keeps_dropping_is_set_aside(tmp_path):
    from terapix_fw.dbclient.client import MAX_DROPS
    srv = _DroppingServer()
    try:
        client = Client(srv.url, spool_dir=tmp_path / "spool", secret=SECRET, retry_interval=0)
        client.spool(Document(id="a").add("node", name="a"))
        client.spool(Document(id="poison").add("node", name="poison"))
        client.spool(Document(id="b").add("node", name="b"))
        results = [client.flush() for _ in range(MAX_DROPS)]
        assert all(r.error for r in results[:-1]) and not results[-1].error
        assert srv.applied == ["a", "b"] and not client.pending()
        [rejected] = client.rejected()
        assert "closed the connection without an answer 3 times" in rejected.with_suffix(".reason").read_text()
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def test_document_with_too_many_rows_refused_with_the_limit(server, sqlite_url, tmp_path):
    from terapix_fw.dbclient.xmldoc import MAX_DOCUMENT_ROWS
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    keywords = {f"K{i:07d}": str(i) for i in range(MAX_DOCUMENT_ROWS + 1)}
    client.spool(Document(id="huge").add("exposure", filename="huge.fits", keywords=keywords))
    client.spool(Document(id="small").add("node", name="after"))
    result = client.flush()
    assert (result.sent, result.rejected, result.remaining) == (1, 1, 0)
    [rejected] = client.rejected()
    assert f"more than the limit of {MAX_DOCUMENT_ROWS} per document" in rejected.with_suffix(".reason").read_text()
    assert _count(sqlite_url, S.header_keywords) == 0 and _count(sqlite_url, S.nodes) == 1


def test_writer_transaction_bounded_in_rows():
    """A writer takes queued requests into one transaction only up to max_rows rows."""
    import queue
    from terapix_fw.dbclient.server import Writer
    from terapix_fw.dbclient.xmldoc import document_rows
    jobs: queue.Queue = queue.Queue()
    batches = []

    class Recording(Writer):
        def run(self):  # the grouping of Writer.run, without a database
            import terapix_fw.db.store as store
            real = store.apply_batch

            def fake(conn, docs):
                batches.append([d.id for d in docs])
                return [store.BatchResult(d.id, "applied") for d in docs]
            store.apply_batch = fake
            try:
                super().run()
            finally:
                store.apply_batch = real

    docs = [Document(id=f"d{i}").add("exposure", filename=f"e{i}.fits", keywords={f"K{j}": "1" for j in range(40)})
            for i in range(10)]
    rows = document_rows(docs[0])
    from concurrent.futures import Future
    for d in docs:
        jobs.put([(d, Future())])
    jobs.put(None)

    class _Conn:
        def begin(self):
            import contextlib
            return contextlib.nullcontext()

    w = Recording(None, jobs, {"applied": 0, "transactions": 0}, threading.Lock(), max_rows=3 * rows)
    w._conn = _Conn()
    w.start()
    w.join(WAIT)
    assert [len(b) for b in batches] == [3, 3, 3, 1]


# -- the same answer on every back end -------------------------------------------------------------

@pytest.mark.parametrize("case", ["kind", "filename", "integer", "infinity", "year"])
def test_same_document_same_answer_on_sqlite_and_mariadb(db_url, case):
    """MariaDB refused a 100-character record kind or a 3,000-character file name that SQLite stored."""
    doc = {"kind": Document(id="d").add("record", kind="k" * 100, data={"a": "1"}),
           "filename": Document(id="d").add("exposure", filename="f" * 3000 + ".fits"),
           "integer": Document(id="d").add("exposure", filename="e.fits",
                                           extensions=[{"ccd": 2 ** 40, "extname": "ccd"}]),
           "infinity": Document(id="d").add("exposure", filename="e.fits", seeing=float("inf")),
           "year": Document(id="d").add("exposure", filename="e.fits", date_obs="0999-01-01T00:00:00")}[case]
    good = Document(id="g").add("node", name="n")
    with connect(db_url).connect() as conn, conn.begin():
        results = apply_batch(conn, [good, doc])
    assert [r.status for r in results] == ["applied", "rejected"], results
    assert _count(db_url, S.documents) == 1 and _count(db_url, S.exposures) == 0 and _count(db_url, S.records) == 0
    column = {"kind": "records.kind", "filename": "exposures.filename", "integer": "extensions.ccd",
              "infinity": "exposures.seeing", "year": "1000-9999"}[case]
    assert column in results[1].reason
