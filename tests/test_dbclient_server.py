"""The dbClient server on SQLite and MariaDB: authentication, refusal of bad input with a reason and nothing
applied, idempotency by document id, per-document rejection inside a batch, 8 concurrent clients x 500
documents, and a server killed mid-stream whose clients' spools replay to the fault-free result."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document
from terapix_fw.db.store import apply_batch
from terapix_testing.rdbix import (ServerProcess, _mariadb_session_database, db_url,  # noqa: F401
                                   make_documents, mariadb_server, snapshot)
from terapix_fw.dbclient.auth import HEADER, sign
from terapix_fw.dbclient.client import Client
from terapix_fw.dbclient.xmldoc import to_xml

SECRET = "t0p-s3cret"
WAIT = 300.0  # generous bound on waiting for an event (a busy machine is slow, not wrong); never a timing


def _wait_for_log(srv, *texts: str, count: tuple[str, int] | None = None) -> str:
    """The server's log once it holds every one of ``texts`` (it is written after the reply is sent)."""
    deadline = time.monotonic() + WAIT
    while True:
        log = srv.log()
        if all(t in log for t in texts) and (count is None or log.count(count[0]) >= count[1]):
            return log
        assert time.monotonic() < deadline, f"server log still lacks {texts}: {log[-2000:]}"
        time.sleep(0.05)


@pytest.fixture
def server(db_url, tmp_path):
    srv = ServerProcess(db_url, SECRET, tmp_path / "server")
    yield srv
    srv.stop()


def _post(srv, body: bytes, signature: str | None = "auto"):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
    headers = {"Content-Type": "application/xml"}
    if signature == "auto":
        signature = sign(body, SECRET.encode())
    if signature:
        headers[HEADER] = signature
    conn.request("POST", "/documents", body=body, headers=headers)
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    conn.close()
    return resp.status, payload


def _count(url, table) -> int:
    with connect(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


GOOD = to_xml(Document(id="good-1").add("node", name="n1", free_disk=10))


BAD_REQUESTS = {  # case -> (HTTP status, reason the server gives)
    "unsigned": (401, "missing X-Terapix-Signature"), "wrong secret": (401, "bad signature"),
    "tampered": (401, "bad signature"), "malformed": (400, "malformed XML"),
    "doctype": (400, "DOCTYPE and ENTITY declarations are not allowed"),
    "invalid": (422, "does not follow dbclient.xsd")}


def _bad_request(case: str) -> tuple[bytes, str | None]:
    body, signature = GOOD, "auto"
    if case == "unsigned":
        signature = None
    elif case == "wrong secret":
        signature = sign(body, b"guess")
    elif case == "tampered":
        signature = sign(body, SECRET.encode())
        body = body.replace(b'free_disk="10"', b'free_disk="99"')
    elif case == "malformed":
        body = GOOD[:-5]
    elif case == "doctype":
        body = (b"<!DOCTYPE document [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                + GOOD.replace(b'name="n1"', b'name="&x;"'))
    elif case == "invalid":
        body = GOOD.replace(b"free_disk", b"free_space")
    return body, signature


def test_bad_requests_refused_with_reason_nothing_applied(server, db_url):
    for case, (status_expected, reason) in BAD_REQUESTS.items():
        status, payload = _post(server, *_bad_request(case))
        assert (status, reason in payload["error"]) == (status_expected, True), (case, payload)
    assert _count(db_url, S.documents) == 0 and _count(db_url, S.nodes) == 0
    log = _wait_for_log(server, *(reason for _, reason in BAD_REQUESTS.values()),
                        count=("refused request", len(BAD_REQUESTS)))
    assert log.count("refused request") == len(BAD_REQUESTS)
    assert all(reason in log for _, reason in BAD_REQUESTS.values())
    # the server still works afterwards
    assert _post(server, GOOD)[0] == 200 and _count(db_url, S.nodes) == 1


def test_sql_metacharacters_through_server_stored_verbatim(server, db_url, tmp_path):
    nasty = "Robert'); DROP TABLE exposures;-- \"\\%_` <b>&amp;</b>\n"
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    res = client.submit(Document().add("exposure", filename="n'asty.fits", object=nasty,
                                       keywords={"HISTORY": nasty}))
    assert res.sent == 1 and res.remaining == 0
    with connect(db_url).connect() as conn:
        assert conn.execute(select(S.exposures.c.object)).scalar() == nasty
        assert conn.execute(select(S.header_keywords.c.value)).scalar() == nasty


def test_idempotent_by_document_id(server, db_url, tmp_path):
    doc = Document(id="once").add("grade", exposure="e1.fits", grade="B", author="a", time=1.1e9)
    setup = Document(id="setup").add("exposure", filename="e1.fits")
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    assert client.submit(setup).sent == 1
    assert client.submit(doc).sent == 1
    again = client.submit(doc)
    assert (again.sent, again.duplicates) == (0, 1)
    for d in (doc, doc):  # twice in one batch as well
        client.spool(d)
    assert client.flush().duplicates == 2
    assert _count(db_url, S.grades) == 1 and _count(db_url, S.documents) == 2


def test_rejected_document_alone_is_set_aside(server, db_url, tmp_path):
    """A document that cannot be applied (grade of an unknown exposure) is rejected with the reason, nothing
    of it applied, and moved aside; the documents around it in the same batch are applied."""
    client = Client(server.url, spool_dir=tmp_path / "spool", secret=SECRET)
    client.spool(Document(id="d1").add("node", name="a"))
    client.spool(Document(id="d2").add("node", name="b").add("grade", exposure="ghost.fits", grade="A", author="x"))
    client.spool(Document(id="d3").add("node", name="c"))
    res = client.flush()
    assert (res.sent, res.rejected, res.remaining) == (2, 1, 0)
    with connect(db_url).connect() as conn:
        assert sorted(conn.execute(select(S.nodes.c.name)).scalars()) == ["a", "c"]  # not "b": atomic
    [rejected] = client.rejected()
    assert "d2" in rejected.name and "unknown exposure 'ghost.fits'" in rejected.with_suffix(".reason").read_text()
    _wait_for_log(server, "document d2 from node", "rejected")


def test_cli_flush_replays_spool_after_outage(db_url, tmp_path, monkeypatch, capsys):
    from terapix_fw.cli import main
    spool = tmp_path / "spool"
    monkeypatch.setenv("TERAPIX_DBCLIENT_SECRET", SECRET)
    down = Client("http://127.0.0.1:9", spool_dir=spool, timeout=2)
    docs = make_documents("outage", 20)
    for d in docs:
        down.submit(d)
    assert main(["dbclient", "spool", "--spool", str(spool)]) == 0
    assert "20 document(s) waiting" in capsys.readouterr().out
    srv = ServerProcess(db_url, SECRET, tmp_path / "server")
    try:
        assert main(["dbclient", "flush", "--url", srv.url, "--spool", str(spool)]) == 0
        assert "20 sent" in capsys.readouterr().out
    finally:
        srv.stop()
    assert _count(db_url, S.documents) == 20 and not down.pending()


def _run_clients(url, tmp_path, n_clients, n_docs, repeat):
    # clients send in the background like the recorder (the fault test covers waiting for each document)
    procs = [subprocess.Popen([sys.executable, "-m", "terapix_testing.services", url, str(tmp_path / f"spool{k}"),
                               f"c{k}", str(n_docs), str(repeat), "async"],
                              env={**__import__("os").environ, "TERAPIX_DBCLIENT_SECRET": SECRET},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(n_clients)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"client failed: {out} {err[-2000:]}"
    return [o for o, _ in outs]


def test_eight_clients_500_documents_each_exactly_once(server, db_url, tmp_path):
    n_clients, n_docs, repeat = 8, 500, 25
    outs = _run_clients(server.url, tmp_path, n_clients, n_docs, repeat)
    assert all("0 waiting in the spool" in o for o in outs), outs
    total = n_clients * n_docs
    assert _count(db_url, S.documents) == total
    with connect(db_url).connect() as conn:
        steps = conn.execute(select(S.steps.c.step)).scalars().all()
        assert len(steps) == len(set(steps)) == n_clients * (n_docs - 1)
        assert conn.execute(select(func.count()).select_from(S.units)).scalar() == n_clients * (n_docs - 1)
        assert conn.execute(select(func.count()).select_from(S.provenance)).scalar() == n_clients * (n_docs - 1)
        grades = conn.execute(select(func.count()).select_from(S.grades)).scalar()
        assert grades == n_clients * len(range(0, n_docs - 1, 10))
    health = json.loads(_get(server, "/health"))
    assert health["applied"] == total and health["duplicate"] == n_clients * repeat
    assert health["transactions"] < total  # documents from concurrent clients shared commits


def _get(srv, path):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=WAIT)
    conn.request("GET", path)
    body = conn.getresponse().read()
    conn.close()
    return body


def test_server_killed_mid_stream_spool_replays_to_fault_free_result(db_url, tmp_path):
    docs = make_documents("fault", 160)
    # the fault-free reference: the same documents applied without any server, in a SQLite file
    # (the same content is expected whatever the back end)
    ref_url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    with connect(ref_url).connect() as conn, conn.begin():
        assert {r.status for r in apply_batch(conn, docs)} == {"applied"}
    srv = ServerProcess(db_url, SECRET, tmp_path / "server1")
    client = Client(srv.url, spool_dir=tmp_path / "spool", secret=SECRET, retry_interval=0.0, timeout=WAIT)
    killed = threading.Event()

    def killer():  # kill -9 the server once it has applied some documents, while the client is sending
        while _count(db_url, S.documents) < 50:
            time.sleep(0.01)
        srv.kill()
        killed.set()

    thread = threading.Thread(target=killer)
    thread.start()
    failures = 0
    for d in docs:
        if client.submit(d).error:
            failures += 1
    thread.join()
    assert killed.is_set() and failures > 0
    waiting = len(client.pending())
    assert 0 < waiting < len(docs)
    assert _count(db_url, S.documents) <= len(docs) - waiting + 1  # at most the in-flight one applied unacked
    srv2 = ServerProcess(db_url, SECRET, tmp_path / "server2")
    try:
        client.url, client.port = srv2.url, srv2.port
        client.retry_interval = 0.5
        result = client.drain(timeout=WAIT, retry=True)  # a busy machine may time out a first attempt
    finally:
        srv2.stop()
    assert result.remaining == 0 and result.rejected == 0
    assert result.sent + result.duplicates == waiting
    assert snapshot(db_url) == snapshot(ref_url)


def test_cli_grade_through_dbclient(server, db_url, tmp_path, monkeypatch, capsys):
    from terapix_fw.cli import main
    from terapix_fw.db.query import effective_grade, grade_history
    monkeypatch.setenv("TERAPIX_DBCLIENT_URL", server.url)
    monkeypatch.setenv("TERAPIX_DBCLIENT_SECRET", SECRET)
    monkeypatch.setenv("TERAPIX_DBCLIENT_SPOOL", str(tmp_path / "spool"))
    Client(spool_dir=tmp_path / "spool").submit(Document().add("exposure", filename="712345o.fits"))
    assert main(["grade", "/data/712345o.fits", "D", "--comment", "dome vignetting", "--author", "qso"]) == 0
    assert "1 sent" in capsys.readouterr().out
    assert [(h["grade"], h["author"], h["comment"]) for h in grade_history(db_url, "712345o.fits")] == [
        ("D", "qso", "dome vignetting")]
    assert effective_grade(db_url, "712345o.fits") == ("D", "human")
