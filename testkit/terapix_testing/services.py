"""Test helpers of RDBix without pytest: MariaDB start-up, throw-away databases, dbClient server
processes, deterministic documents, database snapshots and the load-generating client
(``python -m terapix_testing.services``).  The pytest fixtures built on them are in
:mod:`terapix_testing.rdbix`.

The MariaDB server is 127.0.0.1:3306, root, empty password, unless ``TERAPIX_TEST_MYSQL`` gives
another server URL (without a database).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

__all__ = ["empty_tables", "snapshot", "make_documents", "ServerProcess", "MYSQL_SERVER_URL",
           "create_mysql_database", "drop_mysql_database", "start_mariadb", "client_main"]

MYSQL_SERVER_URL = os.environ.get("TERAPIX_TEST_MYSQL", "mysql+mysqldb://root@127.0.0.1:3306")


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_mariadb(host: str = "127.0.0.1", port: int = 3306, wait: float = 30.0) -> str | None:
    """Make sure a MariaDB server listens on host:port; None if it does, else the reason it cannot."""
    if _port_open(host, port):
        return None
    daemon = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
    starter = shutil.which("start-stop-daemon", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if not daemon or not starter:
        return "MariaDB is not running and mariadbd/start-stop-daemon are not installed"
    os.makedirs("/run/mysqld", exist_ok=True)
    try:
        shutil.chown("/run/mysqld", "mysql", "mysql")
    except (LookupError, PermissionError, OSError):
        pass
    proc = subprocess.run([starter, "--start", "--oknodo", "--background", "--exec", daemon],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"cannot start MariaDB: {proc.stderr.strip() or proc.stdout.strip()}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return None
        time.sleep(0.2)
    return f"MariaDB started but {host}:{port} did not open within {wait:.0f} s"


def _execute_on_server(url, statement: str) -> None:
    """Run one statement on the MySQL server of a SQLAlchemy URL (no database selected)."""
    import MySQLdb

    conn = MySQLdb.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           passwd=url.password or "")
    try:
        conn.cursor().execute(statement)
    finally:
        conn.close()


def create_mysql_database(server_url: str = MYSQL_SERVER_URL, prefix: str = "terapix_test") -> str:
    """Create a uniquely named utf8mb4 database; return its URL."""
    from sqlalchemy.engine import make_url
    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _execute_on_server(url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return url.set(database=name).render_as_string(hide_password=False)


def drop_mysql_database(db_url: str) -> None:
    from sqlalchemy.engine import make_url
    url = make_url(db_url)
    _execute_on_server(url, f"DROP DATABASE IF EXISTS `{url.database}`")


def empty_tables(url: str) -> None:
    """Delete every row of every RDBix table (children first)."""
    from sqlalchemy import delete
    from terapix_fw.db.engine import connect
    from terapix_fw.db.schema import metadata
    from terapix_fw.db.engine import write_connection
    engine = connect(url, create=False)
    with write_connection(engine) as conn, conn.begin():
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


# ----------------------------------------------------------------------------------------------------
# dbClient server processes, deterministic documents and database snapshots for the tests

class ServerProcess:
    """A ``terapix dbclient serve`` subprocess on a free port, writing ``db_url``."""

    def __init__(self, db_url: str, secret: str, workdir, port: int = 0, ready_timeout: float = 120.0,
                 extra_args: tuple[str, ...] = ()):
        import sys
        from pathlib import Path
        self.db_url, self.secret, self.workdir = db_url, secret, Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"port-{uuid.uuid4().hex[:8]}"
        self.log_path = self.workdir / "server.log"
        env = dict(os.environ, TERAPIX_DBCLIENT_SECRET=secret)
        env.pop("TERAPIX_DBCLIENT_URL", None)
        # stderr to a file, not a pipe: nobody reads a pipe while the server runs, and a full pipe
        # would block the server
        self.stderr_path = self.workdir / f"server-{uuid.uuid4().hex[:8]}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "terapix_fw.cli", "dbclient", "serve", "--port", str(port), "--db", db_url,
                 "--port-file", str(port_file), "--log", str(self.log_path), *extra_args],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + ready_timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"dbclient server exited with {self.proc.returncode}: "
                                   f"{self.stderr_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("dbclient server did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, an open transaction is lost (the fault tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_documents(prefix: str, n: int, run_id: str | None = None):
    """``n`` deterministic documents (ids ``<prefix>-<i>``) touching most tables: a step, its unit and
    product with provenance, an exposure with header keywords and a grade every 10th document."""
    from terapix_fw.db.ops import Document
    run_id = run_id or f"run-{prefix}"
    docs = []
    t0 = 1_100_000_000.0
    first = Document(id=f"{prefix}-run")
    first.add("run_start", run_id=run_id, name=f"run {prefix}", start=t0, host="node-" + prefix)
    docs.append(first)
    for i in range(n - 1):
        doc = Document(id=f"{prefix}-{i:06d}", node="node-" + prefix)
        step = f"{prefix}-step{i:06d}"
        doc.add("step_start", run_id=run_id, step=step, tool="sextractor", tool_version="2.28.0",
                config={"DETECT_THRESH": str(1.5 + i % 3), "CATALOG_NAME": f"{step}.cat"}, start=t0 + i)
        doc.add("unit", run_id=run_id, step=step, unit="1", status="done", host="node-" + prefix,
                inputs=[f"/data/{prefix}/raw{i:06d}.fits"], start=t0 + i, end=t0 + i + 0.5)
        doc.add("product", run_id=run_id, step=step, unit="1", path=f"/data/{prefix}/cat{i:06d}.fits",
                kind="catalog", checksum=f"{i:064x}", size=1000 + i, inputs=[f"/data/{prefix}/raw{i:06d}.fits"])
        if i % 10 == 0:
            fname = f"{prefix}{i:06d}o.fits"
            doc.add("exposure", filename=fname, filter="ugriz"[i % 5], ra=(i * 0.37) % 360, dec=-30 + i % 60,
                    exptime=300.0, date_obs=t0 + 86400 * i, keywords={"OBJECT": f"D{i % 4}", "RUNID": "04AQ01"})
            doc.add("grade", exposure=fname, grade="ABCD"[i % 4], author="qc", comment=f"auto {i}", time=t0 + i)
        docs.append(doc)
    return docs


def snapshot(db_url: str) -> dict[str, list[tuple]]:
    """The content of the database with surrogate ids replaced by natural keys and apply-time stamps left
    out, so that two databases holding the same records compare equal."""
    from sqlalchemy import select
    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    engine = connect(db_url)
    st, u, p, e = S.steps, S.units, S.products, S.exposures
    parent = p.alias("parent")
    queries = {
        "runs": select(*[c for c in S.runs.c]),
        "steps": select(*[c for c in st.c if c.name != "id"]),
        "units": select(st.c.run_id, st.c.step, *[c for c in u.c if c.name not in ("id", "step_pk")])
        .join(st, st.c.id == u.c.step_pk),
        "products": select(p.c.path, p.c.kind, p.c.checksum, p.c.size, p.c.meta, st.c.run_id, st.c.step, u.c.unit)
        .select_from(p.outerjoin(u, u.c.id == p.c.unit_pk).outerjoin(st, st.c.id == u.c.step_pk)),
        "provenance": select(p.c.path, p.c.checksum, parent.c.path, parent.c.checksum)
        .select_from(S.provenance.join(p, p.c.id == S.provenance.c.product_id)
                     .join(parent, parent.c.id == S.provenance.c.parent_id)),
        "exposures": select(*[c for c in e.c if c.name != "id"]),
        "header_keywords": select(e.c.filename, S.header_keywords.c.extension, S.header_keywords.c.keyword,
                                  S.header_keywords.c.value, S.header_keywords.c.comment)
        .join(e, e.c.id == S.header_keywords.c.exposure_id),
        "grades": select(e.c.filename, S.grades.c.grade, S.grades.c.author, S.grades.c.time, S.grades.c.comment)
        .join(e, e.c.id == S.grades.c.exposure_id),
        "quality_metrics": select(e.c.filename, S.quality_metrics.c.ccd, S.quality_metrics.c.name,
                                  S.quality_metrics.c.value).join(e, e.c.id == S.quality_metrics.c.exposure_id),
        "records": select(S.records.c.kind, S.records.c.run_id, S.records.c.step, S.records.c.unit,
                          S.records.c.data),
        "documents": select(S.documents.c.doc_id, S.documents.c.node, S.documents.c.created,
                            S.documents.c.n_instructions),
    }
    out = {}
    with engine.connect() as conn:
        for name, query in queries.items():
            out[name] = sorted((tuple(r) for r in conn.execute(query)), key=repr)
    return out


def client_main(argv: list[str]) -> int:
    """``python -m terapix_testing.services URL SPOOL PREFIX N [REPEAT [sync|async]]``: submit N documents
    one by one (the concurrency test's client process), then re-submit the first REPEAT of them
    (replays); ``async`` (default) sends in the background like the recorder, ``sync`` waits for each."""
    from terapix_fw.dbclient.client import Client
    url, spool, prefix, n = argv[0], argv[1], argv[2], int(argv[3])
    repeat = int(argv[4]) if len(argv) > 4 else 0
    wait = len(argv) > 5 and argv[5] == "sync"
    client = Client(url, spool_dir=spool)
    docs = make_documents(prefix, n, run_id="run-concurrency")
    for doc in docs:
        client.submit(doc, wait=wait)
    # a busy machine may answer slowly: keep trying (the test waits on the outcome, not on a clock)
    client.drain(timeout=600, retry=True)
    for doc in docs[:repeat]:
        client.submit(doc, wait=wait)
    result = client.drain(timeout=600, retry=True)
    print(result.describe())
    return 0 if result.remaining == 0 and result.rejected == 0 else 1


if __name__ == "__main__":
    import sys
    sys.exit(client_main(sys.argv[1:]))


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (waited for by nobody yet, but finished)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
