"""The dbClient client: every document is spooled durably to local disk before it is sent.

Spool files are written under a temporary name, fsynced, renamed into place and the directory fsynced,
so a document is either completely in the spool or absent.  Names start with a nanosecond timestamp,
so a replay (:meth:`Client.flush`, ``terapix dbclient flush``) sends them in the order they were
recorded; a document leaves the spool only once the server has acknowledged it (applied, or already
applied: documents are idempotent by id).  A document the server rejects as invalid moves to
``rejected/`` with the reason beside it.  When the server is unreachable :meth:`Client.submit` returns
at once and the document waits for the next flush: the pipeline keeps working.
"""
from __future__ import annotations

import atexit
import fcntl
import http.client
import itertools
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..db.ops import Document
from .auth import HEADER, load_secret, sign
from .xmldoc import DocumentError, batch_xml, to_xml

__all__ = ["Client", "FlushResult", "default_spool_dir", "ENDPOINT"]

log = logging.getLogger("terapix.dbclient.client")
ENDPOINT = "/documents"
_counter = itertools.count()
_PREFIX = len(f"{0:020d}-{0:07d}-{0:08d}-")  # spool names: time_ns-pid-counter-docid.xml
_last_stamp = 0
_stamp_lock = threading.Lock()
STALE_PART = 3600.0  # seconds after which a temporary spool file is a leftover of a crash
MAX_BATCH_BYTES = 4 << 20  # one request carries at most this much (the server's limit is 16 MB)
#: a document on which the server dropped the connection without an answer this many times in a row (a
#: server that is up: connection refused and timeouts do not count) is set aside in rejected/
MAX_DROPS = 3


def _stamp() -> int:
    """Nanoseconds since the epoch, strictly increasing in this process even if the clock steps back,
    so that spool names sort in submission order."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def default_spool_dir() -> Path:
    """``$TERAPIX_DBCLIENT_SPOOL``, else ``$TERAPIX_HOME/dbclient-spool`` (``~/.terapix/dbclient-spool``)."""
    if os.environ.get("TERAPIX_DBCLIENT_SPOOL"):
        return Path(os.environ["TERAPIX_DBCLIENT_SPOOL"])
    return Path(os.environ.get("TERAPIX_HOME", Path.home() / ".terapix")) / "dbclient-spool"


@dataclass
class FlushResult:
    """What one flush of the spool did.

    Attributes
    ----------
    sent : int
        Documents applied by the server now.
    duplicates : int
        Documents the server had applied before (a replay).
    rejected : int
        Invalid documents, moved to ``rejected/``.
    remaining : int
        Documents still in the spool (-1: not counted).
    error : str
        Why sending stopped, if it did.
    """
    sent: int = 0        # applied by the server now
    duplicates: int = 0  # the server had applied them before (a replay)
    rejected: int = 0    # invalid: moved to rejected/
    remaining: int = 0   # still in the spool
    error: str = ""      # why sending stopped (server unreachable, authentication...)

    def describe(self) -> str:
        """The result in one line, for logs.

        Returns
        -------
        str
        """
        text = f"{self.sent} sent, {self.duplicates} already applied, {self.rejected} rejected, " \
               f"{self.remaining} waiting in the spool"
        return text + (f" ({self.error})" if self.error else "")


class _Unreachable(Exception):
    def __init__(self, message: str, dropped: bool = False):
        super().__init__(message)
        self.dropped = dropped  # the server accepted the connection and closed it without an answer


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Client:
    """Spool and send documents to a dbClient server at ``url`` (``http://HOST:PORT``; default
    ``$TERAPIX_DBCLIENT_URL``).  ``require_url=False`` gives a client that only inspects its spool."""

    def __init__(self, url: str | None = None, spool_dir: str | os.PathLike | None = None,
                 secret: str | bytes | None = None, secret_file: str | os.PathLike | None = None,
                 timeout: float = 60.0, batch_size: int = 200, retry_interval: float = 2.0,
                 require_url: bool = True):
        url = url or os.environ.get("TERAPIX_DBCLIENT_URL")
        self.url, self.host, self.port = url or "", "", 0
        if url:
            parsed = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
            if parsed.scheme != "http" or not parsed.hostname:
                raise DocumentError(f"dbClient URL {url!r}: expected http://HOST:PORT")
            self.host, self.port = parsed.hostname, parsed.port or 80
        elif require_url:
            raise DocumentError("no dbClient server URL: give --url or set $TERAPIX_DBCLIENT_URL")
        self.spool_dir = Path(spool_dir) if spool_dir else default_spool_dir()
        self._secret = secret
        self._secret_file = secret_file
        self.timeout = timeout
        self.batch_size = batch_size
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._sender: threading.Thread | None = None
        self._atexit = False
        self._reported = ""
        self._event = threading.Event()
        self.last_result: FlushResult | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._drops: dict[str, int] = {}  # spool name -> connections dropped on it in a row
        for sub in ("", "rejected"):
            (self.spool_dir / sub).mkdir(parents=True, exist_ok=True)
        # a temporary file left by a crash before its rename was never acknowledged to its caller
        for part in self.spool_dir.glob(".*.part"):
            try:
                if time.time() - part.stat().st_mtime > STALE_PART:
                    part.unlink()
            except OSError:
                pass

    # -- spool -------------------------------------------------------------------------------------
    def spool(self, doc: Document) -> Path:
        """Write ``doc`` durably into the spool; returns its path.

        Parameters
        ----------
        doc : Document

        Returns
        -------
        Path
        """
        data = to_xml(doc)
        name = f"{_stamp():020d}-{os.getpid():07d}-{next(_counter):08d}-{doc.id}.xml"
        tmp = self.spool_dir / f".{name}.part"  # same directory: the rename touches one directory only
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        final = self.spool_dir / name
        os.replace(tmp, final)
        _fsync_dir(self.spool_dir)
        return final

    def pending(self) -> list[Path]:
        """The spooled documents not yet acknowledged, oldest first.

        Returns
        -------
        list of Path
        """
        return sorted(p for p in self.spool_dir.glob("*.xml") if p.is_file())

    def rejected(self) -> list[Path]:
        """The documents the server refused as invalid (kept for inspection).

        Returns
        -------
        list of Path
        """
        return sorted((self.spool_dir / "rejected").glob("*.xml"))

    def submit(self, doc: Document, wait: bool = True) -> FlushResult | None:
        """Spool ``doc``, then send everything spooled (never raises for an unreachable server).

        With ``wait=False`` the document is sent by a background thread, in batches with the documents
        spooled after it, and ``submit`` returns as soon as it is safely on disk (what the recorder
        does: a step never waits for the network; :meth:`drain` waits at the end of a run).
        After the server was found unreachable, submissions only spool for ``retry_interval`` seconds
        so that a down server costs the pipeline nothing.

        Parameters
        ----------
        doc : Document
        wait : bool
            Send now and return the result (True), or leave sending to the background thread.

        Returns
        -------
        FlushResult or None
            None when the document is left to the background thread.
        """
        self.spool(doc)
        if not wait:
            self._wake()
            return None
        if time.monotonic() < self._down_until:
            return FlushResult(remaining=-1, error="server unreachable a moment ago; spooled")
        return self.flush()

    # -- background sending ------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_loop, name="dbclient-sender", daemon=True)
            self._sender.start()
            if not self._atexit:
                atexit.register(self.drain, 10.0)  # the sender is a daemon thread: send what is left
                self._atexit = True
        self._event.set()

    def _send_loop(self) -> None:
        while True:
            self._event.wait()
            self._event.clear()
            wait = max(0.0, self._down_until - time.monotonic())
            if wait:
                time.sleep(wait)
            try:
                result = self.flush()
            except Exception as exc:  # noqa: BLE001 - keep the sender alive; documents stay spooled
                log.error("dbClient sender: %s", exc)
                result = FlushResult(error=str(exc))
            self.last_result = result
            if result.error:
                self._down_until = time.monotonic() + self.retry_interval
                self._event.set()  # retry later

    def drain(self, timeout: float = 60.0, retry: bool = False) -> FlushResult:
        """Send everything spooled now, waiting for a background send in progress, for at most about
        ``timeout`` seconds.  Returns at once if the server is unreachable or refuses us (the documents
        stay spooled for the next flush: the pipeline never waits for a server that is down), unless
        ``retry``: then it tries again every ``retry_interval`` until the spool is empty or the time is
        up.  The counts add up over every flush made.

        Parameters
        ----------
        timeout : float
            Seconds.
        retry : bool
            Keep trying an unreachable server until ``timeout``.

        Returns
        -------
        FlushResult
        """
        deadline = time.monotonic() + timeout
        total = FlushResult()
        while True:
            result = self.flush()
            total.sent += result.sent
            total.duplicates += result.duplicates
            total.rejected += result.rejected
            total.remaining, total.error = result.remaining, result.error
            if result.remaining == 0 or time.monotonic() >= deadline or (result.error and not retry):
                return total
            if result.error:
                time.sleep(min(max(self.retry_interval, 0.2), max(0.0, deadline - time.monotonic())))

    # -- sending -----------------------------------------------------------------------------------
    def _post(self, body: bytes) -> tuple[int, dict]:
        secret = load_secret(self._secret, self._secret_file)
        headers = {"Content-Type": "application/xml", HEADER: sign(body, secret)}
        for attempt in (1, 2):  # a kept-alive connection the server closed fails once; retry on a new one
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", ENDPOINT, body=body, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self._close()
                try:
                    return response.status, json.loads(payload or b"{}")
                except ValueError:
                    return response.status, {"error": payload[:200].decode("utf-8", "replace")}
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                if attempt == 2 or isinstance(exc, (ConnectionRefusedError, TimeoutError)):
                    dropped = not isinstance(exc, (ConnectionRefusedError, TimeoutError, socket.gaierror))
                    raise _Unreachable(f"dbClient server {self.url} unreachable: {exc}", dropped) from None
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Stop the background sender (what is spooled stays spooled)."""
        self._close()

    def _reject(self, path: Path, reason: str, result: FlushResult) -> None:
        log.error("dbClient server rejected %s: %s (moved to %s)", path.name, reason, self.spool_dir / "rejected")
        target = self.spool_dir / "rejected" / path.name
        target.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
        os.replace(path, target)
        result.rejected += 1

    def _send(self, paths: list[Path], result: FlushResult) -> bool:
        """Send ``paths`` in one request; False if sending must stop (the paths stay spooled)."""
        bodies = [p.read_bytes() for p in paths]
        try:
            status, payload = self._post(bodies[0] if len(bodies) == 1 else batch_xml(bodies))
        except _Unreachable as exc:
            if not exc.dropped:
                raise
            # the server is up but dropped the request: find the document it chokes on, one at a time, and
            # set it aside after MAX_DROPS drops in a row so that it cannot block the documents behind it
            if len(paths) > 1:
                return all(self._send([p], result) for p in paths)
            drops = self._drops[paths[0].name] = self._drops.get(paths[0].name, 0) + 1
            if drops < MAX_DROPS:
                raise
            del self._drops[paths[0].name]
            self._reject(paths[0], f"the server closed the connection without an answer {drops} times in a row "
                                   f"on this document (last: {exc})", result)
            return True
        if len(paths) == 1:
            self._drops.pop(paths[0].name, None)
        if status == 200:
            by_id = {r["id"]: r for r in payload.get("results", [])}
            for path in paths:
                doc_id = path.stem[_PREFIX:]
                res = by_id.get(doc_id)
                if res is None or res["status"] == "error":
                    result.error = (res or {}).get("reason", "no acknowledgement for " + doc_id)
                    return False
                if res["status"] == "rejected":
                    self._reject(path, res.get("reason", ""), result)
                else:
                    path.unlink()
                    if res["status"] == "duplicate":
                        result.duplicates += 1
                    else:
                        result.sent += 1
            return True
        reason = payload.get("error", f"HTTP {status}")
        if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):  # the request itself is refused
            if len(paths) > 1:  # find the offending document(s): send one at a time
                return all(self._send([p], result) for p in paths)
            self._reject(paths[0], reason, result)
            return True
        result.error = f"HTTP {status}: {reason}"
        if status in (401, 403):
            log.error("dbClient server %s refused our signature: %s", self.url, reason)
        return False

    def _next_batch(self) -> list[Path]:
        """The oldest spooled documents, at most ``batch_size`` of them and MAX_BATCH_BYTES together."""
        paths, size = [], 0
        for path in self.pending()[: self.batch_size]:
            try:
                nbytes = path.stat().st_size
            except OSError:
                continue
            if paths and size + nbytes > MAX_BATCH_BYTES:
                break
            paths.append(path)
            size += nbytes
        return paths

    def flush(self) -> FlushResult:
        """Send every spooled document in order, in batches; stop at the first failure."""
        result = FlushResult()
        with self._lock, open(self.spool_dir / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one sender per spool, so the order holds across processes
            try:
                while True:
                    paths = self._next_batch()
                    if not paths:
                        break
                    try:
                        if not self._send(paths, result):
                            break
                    except _Unreachable as exc:
                        result.error = str(exc)
                        self._down_until = time.monotonic() + self.retry_interval
                        break
            finally:
                self._close()  # kept alive across the batches of one flush only: nothing idles open
                fcntl.flock(lock, fcntl.LOCK_UN)
        result.remaining = len(self.pending())
        if result.error:
            # once per outage at warning level, not once per document
            level = logging.DEBUG if self._reported == result.error else logging.WARNING
            log.log(level, "dbClient: %s; %d document(s) kept in %s", result.error, result.remaining,
                    self.spool_dir)
            self._reported = result.error
        elif self._reported:
            log.warning("dbClient: server %s reachable again, spool sent", self.url)
            self._reported = ""
        return result
