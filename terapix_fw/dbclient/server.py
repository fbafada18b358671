"""The dbClient server: the only process that writes RDBix at a data centre.

``POST /documents`` takes one ``<document>`` or a ``<batch>`` signed with the shared secret
(:mod:`terapix_fw.dbclient.auth`).  The request is authenticated, parsed (entities, DTDs and network
access off) and validated against ``schemas/dbclient.xsd`` before anything touches the database;
a refusal is answered with a clear reason (401 authentication, 400 malformed XML, 422 invalid document,
413 too large) and logged, and nothing is applied.

One writer thread owns the database connection.  It takes the documents waiting in its queue (from all
connections at once), applies each under its own savepoint inside one transaction and commits once:
every document stays atomic and idempotent (by id, in the ``documents`` table) while the commit cost is
shared, which is what makes 8 nodes x thousands of small documents per minute cheap on MariaDB.  A
request is answered only after the commit, with the outcome of each document: applied, duplicate
(applied before), rejected (with the reason; nothing of it applied) or error (database unavailable:
the client keeps it spooled and retries).

``GET /health`` answers ``{"status": "ok", ...}`` with counters.
"""
from __future__ import annotations

import json
import logging
import os
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

__all__ = ["DbClientServer", "Writer", "serve_forever", "MAX_BODY"]

log = logging.getLogger("terapix.dbclient.server")
MAX_BODY = 64 << 20  # bytes per request


class Writer(threading.Thread):
    """Applies queued documents in batches: one transaction per batch, one savepoint per document."""

    def __init__(self, engine, max_batch: int = 500):
        super().__init__(name="rdbix-writer", daemon=True)
        self.engine = engine
        self.max_batch = max_batch
        self.queue: queue.Queue = queue.Queue()
        self.stats = {"applied": 0, "duplicate": 0, "rejected": 0, "error": 0, "transactions": 0}
        self._conn = None

    def submit(self, docs) -> list[Future]:
        futures = []
        for doc in docs:
            fut: Future = Future()
            self.queue.put((doc, fut))
            futures.append(fut)
        return futures

    def run(self) -> None:
        from ..db.store import BatchResult, apply_batch
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                batch.append(nxt)
            docs = [d for d, _ in batch]
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                with self._conn.begin():
                    results = apply_batch(self._conn, docs)
                self.stats["transactions"] += 1
            except Exception as exc:  # noqa: BLE001 - database down or lost: every document is retried
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
                time.sleep(0.5)
            for (doc, fut), res in zip(batch, results):
                self.stats[res.status] += 1
                if res.status == "rejected":
                    log.warning("document %s from node %r rejected, nothing applied: %s", doc.id, doc.node,
                                res.reason)
                fut.set_result(res)

    def stop(self) -> None:
        self.queue.put(None)


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

    def __init__(self, address, engine, secret: bytes, max_batch: int = 500):
        super().__init__(address, _Handler)
        self.secret = secret
        self.stats = {"refused": 0}
        self.writer = Writer(engine, max_batch)
        self.writer.start()

    def server_close(self):
        super().server_close()
        self.writer.stop()


def serve_forever(db_url: str, host: str = "127.0.0.1", port: int = 0, secret: str | bytes | None = None,
                  secret_file: str | None = None, port_file: str | None = None, log_file: str | None = None,
                  max_batch: int = 500) -> int:
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
    server = DbClientServer((host, port), engine, key, max_batch)
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
