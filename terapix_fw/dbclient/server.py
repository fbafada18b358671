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

HTTP is served by waitress (a maintained pure-Python WSGI server, no hand-written parsing): its I/O
loop reads each request completely before a request thread sees it, so a slow or half-open connection
costs a socket, not a thread; headers are bounded (16 kB), bodies bounded (MAX_BODY, checked from
Content-Length before reading; a negative or non-numeric length is a 400), silent connections closed
after READ_TIMEOUT, open connections limited (CONNECTION_LIMIT).  The signature is verified before the
body is parsed; a document over MAX_DOCUMENT_ROWS rows is refused before it is validated; a writer's
transaction takes requests up to MAX_BATCH_ROWS rows.

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
from pathlib import Path

from .auth import HEADER, load_secret, verify
from .xmldoc import DocumentError, document_rows, parse_documents

__all__ = ["DbClientServer", "DbClientApp", "Writer", "WriterPool", "serve_forever", "MAX_BODY"]

log = logging.getLogger("terapix.dbclient.server")
ENDPOINT = "/documents"
MAX_BODY = 16 << 20  # bytes per request (a client batch is at most 4 MB; a document of 20,000 rows ~2 MB)
#: rows (instructions plus their keywords, rows, list items) applied in one transaction: a writer takes
#: queued requests until this many, so a transaction's length is bounded (see MAX_DOCUMENT_ROWS)
MAX_BATCH_ROWS = 20_000
THREADS = 16            # request threads (each waits for its documents' commit)
CONNECTION_LIMIT = 4096  # open connections (sockets only: reading is asynchronous)
READ_TIMEOUT = 30.0     # seconds a connection may stay silent before it is closed


class Writer(threading.Thread):
    """Applies queued requests in batches: one transaction per batch, documents atomic and idempotent.

    Several writers may share one queue (MySQL/MariaDB: their round trips to the server overlap); the
    documents of one request always go to one writer in order, and a client sends its next request
    only after the previous one was acknowledged, so each node's documents are applied in order."""

    def __init__(self, engine, jobs: "queue.Queue", stats: dict, lock: threading.Lock,
                 max_rows: int = MAX_BATCH_ROWS, name: str = "rdbix-writer"):
        super().__init__(name=name, daemon=True)
        self.engine = engine
        self.max_rows = max_rows
        self.queue = jobs
        self.stats = stats
        self._stats_lock = lock
        self._conn = None
        self._held = None  # a request taken from the queue that did not fit the previous transaction

    def run(self) -> None:
        """Apply queued requests, several per transaction up to ``max_rows`` rows, until told to stop."""
        from ..db.store import BatchResult, apply_batch
        while True:
            group, self._held = (self._held, None) if self._held is not None else (self.queue.get(), None)
            if group is None:
                self.queue.put(None)  # let the other writers see it too
                return
            # one transaction takes whole requests until max_rows rows: a big document goes alone (its size is
            # bounded by MAX_DOCUMENT_ROWS), small ones share the commit
            groups = [group]
            size = sum(document_rows(d) for d, _ in group)
            while size < self.max_rows:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                rows = sum(document_rows(d) for d, _ in nxt)
                if size + rows > self.max_rows:
                    self._held = nxt
                    break
                groups.append(nxt)
                size += rows
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

    def __init__(self, engine, writers: int | None = None, max_rows: int = MAX_BATCH_ROWS):
        if writers is None:
            writers = 1 if engine.dialect.name == "sqlite" else 4
        self.queue: queue.Queue = queue.Queue()
        self.stats = {"applied": 0, "duplicate": 0, "rejected": 0, "error": 0, "transactions": 0}
        lock = threading.Lock()
        self.threads = [Writer(engine, self.queue, self.stats, lock, max_rows, name=f"rdbix-writer-{i}")
                        for i in range(writers)]
        for t in self.threads:
            t.start()

    def submit(self, docs) -> list[Future]:
        """Queue the documents of one request (kept together, in order); one future per document.

        Parameters
        ----------
        docs : list of Document

        Returns
        -------
        list of concurrent.futures.Future
        """
        group = [(doc, Future()) for doc in docs]
        self.queue.put(group)
        return [f for _, f in group]

    def stop(self) -> None:
        """Tell the writers to stop once the queue is empty."""
        self.queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer threads to end.

        Parameters
        ----------
        timeout : float, optional
            Seconds per thread.
        """
        for t in self.threads:
            t.join(timeout)


def _json(status: str, payload: dict, start_response) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
           405: "405 Method Not Allowed", 411: "411 Length Required", 413: "413 Payload Too Large",
           422: "422 Unprocessable Entity", 503: "503 Service Unavailable"}


class DbClientApp:
    """The WSGI application: ``POST /documents`` and ``GET /health``.  Every request gets a reply: a
    refusal is a 4xx with ``{"error": reason}``, a database outage a 200 whose documents are ``error``
    (the client keeps them), a fault of ours on one request a 422 naming it (never a dropped connection)."""

    def __init__(self, engine, secret: bytes, max_batch_rows: int = MAX_BATCH_ROWS, writers: int | None = None,
                 max_body: int = MAX_BODY, max_rows: int | None = None):
        from .xmldoc import MAX_DOCUMENT_ROWS
        self.secret = secret
        self.max_body = max_body
        self.max_rows = max_rows or MAX_DOCUMENT_ROWS
        self.stats = {"refused": 0}
        self._lock = threading.Lock()
        self.writer = WriterPool(engine, writers, max_batch_rows)

    def _refuse(self, status: int, reason: str, peer: str, start_response) -> list[bytes]:
        log.warning("refused request from %s (HTTP %d), nothing applied: %s", peer, status, reason)
        with self._lock:
            self.stats["refused"] += 1
        return _json(_STATUS[status], {"error": reason}, start_response)

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        peer = environ.get("REMOTE_ADDR", "?")
        if path == "/health" and method == "GET":
            return _json(_STATUS[200], {"status": "ok", **self.writer.stats, **self.stats}, start_response)
        if path != ENDPOINT:
            return _json(_STATUS[404], {"error": f"unknown path {path}; use POST {ENDPOINT} or GET /health"},
                         start_response)
        if method != "POST":
            return _json(_STATUS[405], {"error": f"{method} {path}: use POST"}, start_response)
        # the size is checked before a byte of the body is read (the HTTP layer has already refused a
        # body larger than max_body, and a negative or non-numeric Content-Length)
        text = environ.get("CONTENT_LENGTH") or ""
        if not text.isdigit():
            return self._refuse(411, "Content-Length required (a non-negative integer)", peer, start_response)
        length = int(text)
        if length > self.max_body:
            return self._refuse(413, f"request of {length} bytes exceeds the limit of {self.max_body}", peer,
                                start_response)
        body = environ["wsgi.input"].read(length)
        reason = verify(body, environ.get("HTTP_" + HEADER.upper().replace("-", "_")), self.secret)
        if reason:  # authentication before the body is parsed
            return self._refuse(401, reason, peer, start_response)
        label = f"request from {peer}"
        try:
            docs = parse_documents(body, label=label, max_rows=self.max_rows)
        except DocumentError as exc:
            status = 400 if ("malformed XML" in exc.reason or "DOCTYPE" in exc.reason
                             or "cannot parse" in exc.reason) else 422
            return self._refuse(status, str(exc), peer, start_response)
        except Exception as exc:  # noqa: BLE001 - a fault of ours on this input: answer it, keep serving
            log.exception("%s: unexpected error while reading the document", label)
            return self._refuse(422, f"{label}: document cannot be processed: {type(exc).__name__}: {exc}",
                                peer, start_response)
        del body
        futures = self.writer.submit(docs)
        results = []
        for doc, fut in zip(docs, futures):
            try:
                results.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - never leave a request without an answer
                from ..db.store import BatchResult
                results.append(BatchResult(doc.id, "error", f"server error: {type(exc).__name__}"))
        return _json(_STATUS[200], {"results": [{"id": r.doc_id, "status": r.status, "reason": r.reason}
                                               for r in results]}, start_response)


class DbClientServer:
    """The application behind waitress: an asynchronous I/O loop reads every request completely (headers
    bounded, body bounded and spilled to a temporary file above 64 kB) before one of ``threads`` worker
    threads sees it, so a slow or half-open connection costs a socket, never a thread; idle connections
    are closed after ``read_timeout`` seconds; at most ``connection_limit`` connections are open at once."""

    def __init__(self, address, engine, secret: bytes, max_batch_rows: int = MAX_BATCH_ROWS,
                 writers: int | None = None, threads: int = THREADS, connection_limit: int = CONNECTION_LIMIT,
                 read_timeout: float = READ_TIMEOUT, max_body: int = MAX_BODY):
        from waitress.server import create_server
        self.app = DbClientApp(engine, secret, max_batch_rows, writers, max_body)
        self.writer = self.app.writer
        self.stats = self.app.stats
        _raise_fd_limit(connection_limit + 64)
        self._server = create_server(
            self.app, host=address[0], port=address[1], threads=threads, connection_limit=connection_limit,
            channel_timeout=read_timeout, cleanup_interval=max(1, int(read_timeout / 4)),
            max_request_body_size=max_body, max_request_header_size=16384, inbuf_overflow=65536,
            asyncore_use_poll=True, ident="terapix-dbclient", clear_untrusted_proxy_headers=True,
            expose_tracebacks=False, log_socket_errors=False)
        self.server_address = (address[0], self._server.effective_port)

    def serve_forever(self) -> None:
        """Serve requests until :meth:`shutdown`."""
        self._server.run()

    def shutdown(self) -> None:
        """Stop serving (from the serving thread, as a signal handler does)."""
        raise SystemExit(0)  # waitress's loop shuts its task threads down on SystemExit

    def server_close(self) -> None:
        """Close the listening socket and stop the writers."""
        self._server.close()
        self.writer.stop()


def _raise_fd_limit(wanted: int) -> None:
    """Each open connection is a file descriptor: raise the soft limit towards the hard one."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def serve_forever(db_url: str, host: str = "127.0.0.1", port: int = 0, secret: str | bytes | None = None,
                  secret_file: str | None = None, port_file: str | None = None, log_file: str | None = None,
                  max_batch_rows: int = MAX_BATCH_ROWS, writers: int | None = None, **limits) -> int:
    """Run the server until SIGTERM/SIGINT (``terapix dbclient serve``).

    Parameters
    ----------
    db_url : str
        RDBix URL.
    host : str
        Address to listen on.
    port : int
        Port (0: any free port).
    secret : str or bytes, optional
        Shared secret (see :func:`terapix_fw.dbclient.auth.load_secret`).
    secret_file : str, optional
    port_file : str, optional
        File the chosen port is written to once listening.
    log_file : str, optional
    max_batch_rows : int
        Largest batch accepted, in rows.
    writers : int, optional
        Writer threads.
    **limits : Any
        Server limits: ``threads``, ``connection_limit``, ``read_timeout`` (s), ``max_body`` (bytes).

    Returns
    -------
    int
        Exit code.
    """
    from ..atomic import write_text_atomic
    from ..db.engine import connect
    logging.getLogger("terapix.dbclient").setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr) if not log_file else logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("terapix.dbclient").addHandler(handler)
    logging.getLogger("terapix.dbclient").propagate = False
    key = load_secret(secret, secret_file)
    engine = connect(db_url)
    server = DbClientServer((host, port), engine, key, max_batch_rows, writers, **limits)
    actual = server.server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)  # in the main thread, inside waitress's loop: it stops its threads and returns

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("dbClient server on http://%s:%s writing %s", host, actual,
             engine.url.render_as_string(hide_password=True))
    if port_file:
        write_text_atomic(Path(port_file), f"{actual}\n")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.writer.join(timeout=10)
        log.info("dbClient server stopped: %s", json.dumps({**server.writer.stats, **server.stats}))
    return 0
