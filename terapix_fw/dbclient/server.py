"""The dbClient server: the only process that writes RDBix at a data centre.

``POST /documents`` takes one ``<document>`` or a ``<batch>`` signed with the shared secret
(:mod:`terapix_fw.dbclient.auth`).  The request is authenticated, parsed (entities, DTDs and network
access off) and validated against ``schemas/dbclient.xsd`` before anything touches the database;
a refusal is answered with a clear reason (401 authentication, 400 malformed XML, 422 invalid document,
413 too large) and logged, and nothing is applied.

Writer threads (one on SQLite, four on MySQL/MariaDB by default) each own a database connection.  A
writer takes the requests waiting in the queue (from all connections at once) and applies their
documents in one transaction (:func:`terapix_fw.db.store.apply_batch`): every document stays atomic
and idempotent (by id, in the ``documents`` table) while the commit cost is shared, which is what makes
8 nodes x thousands of small documents per minute cheap on MariaDB.  A
request is answered only after the commit, with the outcome of each document: applied, duplicate
(applied before), rejected (with the reason; nothing of it applied) or error (database unavailable:
the client keeps it spooled and retries).

``GET /health`` answers ``{"status": "ok", ...}`` with counters.
"""
from __future__ import annotations

import json
import logging
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .auth import HEADER, load_secret, verify
from .xmldoc import DocumentError, parse_documents

__all__ = ["DbClientServer", "Writer", "WriterPool", "serve_forever", "MAX_BODY"]

log = logging.getLogger("terapix.dbclient.server")
MAX_BODY = 64 << 20  # bytes per request


class Writer(threading.Thread):
    """Applies queued requests in batches: one transaction per batch, documents atomic and idempotent.

    Several writers may share one queue (MySQL/MariaDB: their round trips to the server overlap); the
    documents of one request always go to one writer in order, and a client sends its next request
    only after the previous one was acknowledged, so each node's documents are applied in order."""

    def __init__(self, engine, jobs: "queue.Queue", stats: dict, lock: threading.Lock, max_batch: int = 500,
                 name: str = "rdbix-writer"):
        super().__init__(name=name, daemon=True)
        self.engine = engine
        self.max_batch = max_batch
        self.queue = jobs
        self.stats = stats
        self._stats_lock = lock
        self._conn = None

    def run(self) -> None:
        from ..db.store import BatchResult, apply_batch
        while True:
            group = self.queue.get()
            if group is None:
                self.queue.put(None)  # let the other writers see it too
                return
            groups = [group]
            size = len(group)
            while size < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                groups.append(nxt)
                size += len(nxt)
            batch = [item for g in groups for item in g]
            docs = [d for d, _ in batch]
            try:
                if self._conn is None:
                    from ..db.engine import write_connection
                    self._conn = write_connection(self.engine)
                with self._conn.begin():
                    results = apply_batch(self._conn, docs)
                with self._stats_lock:
                    self.stats["transactions"] += 1
            except Exception as exc:  # noqa: BLE001 - database down, lost or deadlock: the client retries
                log.error("database error, %d document(s) not applied (clients keep them spooled): %s",
                          len(docs), exc)
                results = [BatchResult(d.id, "error", f"database error: {type(exc).__name__}") for d in docs]
                try:
                    if self._conn is not None:
                        from ..db.ops import forget_ids
                        forget_ids(self._conn)
                        self._conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self._conn = None
                time.sleep(0.2)
            with self._stats_lock:
                for res in results:
                    self.stats[res.status] += 1
            for (doc, fut), res in zip(batch, results):
                if res.status == "rejected":
                    log.warning("document %s from node %r rejected, nothing applied: %s", doc.id, doc.node,
                                res.reason)
                fut.set_result(res)


class WriterPool:
    """The writer threads and their queue: one writer for SQLite (a single writer anyway), several for
    MySQL/MariaDB."""

    def __init__(self, engine, writers: int | None = None, max_batch: int = 500):
        if writers is None:
            writers = 1 if engine.dialect.name == "sqlite" else 4
        self.queue: queue.Queue = queue.Queue()
        self.stats = {"applied": 0, "duplicate": 0, "rejected": 0, "error": 0, "transactions": 0}
        lock = threading.Lock()
        self.threads = [Writer(engine, self.queue, self.stats, lock, max_batch, name=f"rdbix-writer-{i}")
                        for i in range(writers)]
        for t in self.threads:
            t.start()

    def submit(self, docs) -> list[Future]:
        """Queue the documents of one request (kept together, in order); one future per document."""
        group = [(doc, Future()) for doc in docs]
        self.queue.put(group)
        return [f for _, f in group]

    def stop(self) -> None:
        self.queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms delayed ACK
    server: "DbClientServer"

    def log_message(self, fmt, *args):  # route http.server's access log to logging
        log.debug("%s %s", self.address_string(), fmt % args)

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, reason: str) -> None:
        log.warning("refused request from %s (HTTP %d), nothing applied: %s", self.client_address[0], status,
                    reason)
        self.server.stats["refused"] += 1
        self._reply(status, {"error": reason})

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path != "/health":
            self._reply(404, {"error": f"unknown path {self.path}; use POST /documents or GET /health"})
            return
        self._reply(200, {"status": "ok", **self.server.writer.stats, **self.server.stats})

    def do_POST(self):  # noqa: N802
        if self.path != "/documents":
            self._reply(404, {"error": f"unknown path {self.path}; use POST /documents"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._refuse(411, "Content-Length required")
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._refuse(413, f"request of {length} bytes exceeds the limit of {MAX_BODY}")
            return
        body = self.rfile.read(length)
        reason = verify(body, self.headers.get(HEADER), self.server.secret)
        if reason:
            self._refuse(401, reason)
            return
        try:
            docs = parse_documents(body, label=f"request from {self.client_address[0]}")
        except DocumentError as exc:
            self._refuse(400 if "malformed XML" in str(exc) or "DOCTYPE" in str(exc) else 422, str(exc))
            return
        futures = self.server.writer.submit(docs)
        results = [f.result() for f in futures]
        self._reply(200, {"results": [{"id": r.doc_id, "status": r.status, "reason": r.reason} for r in results]})


class DbClientServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, engine, secret: bytes, max_batch: int = 500, writers: int | None = None):
        super().__init__(address, _Handler)
        self.secret = secret
        self.stats = {"refused": 0}
        self.writer = WriterPool(engine, writers, max_batch)

    def server_close(self):
        super().server_close()
        self.writer.stop()


def serve_forever(db_url: str, host: str = "127.0.0.1", port: int = 0, secret: str | bytes | None = None,
                  secret_file: str | None = None, port_file: str | None = None, log_file: str | None = None,
                  max_batch: int = 500, writers: int | None = None) -> int:
    """Run the server until SIGTERM/SIGINT (``terapix dbclient serve``)."""
    from ..atomic import write_text_atomic
    from ..db.engine import connect
    logging.getLogger("terapix.dbclient").setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr) if not log_file else logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("terapix.dbclient").addHandler(handler)
    logging.getLogger("terapix.dbclient").propagate = False
    key = load_secret(secret, secret_file)
    engine = connect(db_url)
    server = DbClientServer((host, port), engine, key, max_batch, writers)
    actual = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("dbClient server on http://%s:%d writing %s", host, actual,
             engine.url.render_as_string(hide_password=True))
    if port_file:
        write_text_atomic(Path(port_file), f"{actual}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.writer.join(timeout=10)
        log.info("dbClient server stopped: %s", json.dumps({**server.writer.stats, **server.stats}))
    return 0
