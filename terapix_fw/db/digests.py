"""The persistent digest cache: a file's SHA-256 is computed once, as git's index does.

A digest is stored in RDBix (``file_digests``) with the file's *stamp*: the resolved absolute path, device,
inode, size, mtime and ctime (nanoseconds), and the host (device and inode numbers mean something on one
host only).  It is trusted only while the file's stamp is exactly the recorded one: a change of content
changes mtime (and ctime), a file restored to its old size and mtime with ``os.utime`` has a new ctime, and
a file replaced by a rename (``mv new old``) has another inode.

Racy digests (git's "racy clean" problem): timestamps have the resolution of the kernel's clock tick, so
a write in the same tick as the previous one may leave mtime unchanged.  A digest is therefore stored only
if the file was hashed unchanged (same stamp before and after reading it) and its mtime is at least
:data:`RACY_NS` older than the start of the hashing; a file still being written is hashed again the next
time.  (A run's own products, hashed as they are written, are racy in that sense: they are remembered for
the rest of the run, and stored when a later read hashes them again.)

Where the cache lives: in the run's RDBix when the run records into it directly (SQLite or MariaDB, rows
per host); with dbClient the database is behind a write-only spool (documents are sent later, nothing can
be read back), and stamps are per host anyway, so the cache is then the node's own SQLite file
``$TERAPIX_HOME/digests.sqlite`` (default ``~/.terapix``).

Verification (a release manifest, ``spica reproduce``) never consults the cache: it reads the bytes.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RACY_NS", "Stamp", "file_stamp", "hash_file", "DigestStore", "DigestCache", "local_cache_url"]

log = logging.getLogger("terapix.db.digests")

#: a file whose mtime is less than this before the start of its hashing is not cached (2 s: clock ticks of
#: a few ms on local file systems, coarser times on network ones)
RACY_NS = 2_000_000_000
_CHUNK = 500  # paths per query (bound parameters)


@dataclass(frozen=True)
class Stamp:
    """What identifies one version of a file: resolved absolute path and the ``stat`` fields that a change
    of content, a ``touch`` or a replacement changes.

    Attributes
    ----------
    path : str
        Resolved absolute path.
    dev, ino : int
        Device and inode numbers.
    size : int
        Bytes.
    mtime_ns, ctime_ns : int
        Modification and inode change times (ns since 1970).
    """
    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def file_stamp(path: str | os.PathLike) -> Stamp:
    """The stamp of a file as it is now.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Stamp

    Raises
    ------
    OSError
        If the file cannot be found or read.
    """
    resolved = os.path.realpath(path)
    st = os.stat(resolved)
    return Stamp(resolved, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_file(path: str | os.PathLike) -> tuple[str, Stamp, Stamp | None, int]:
    """SHA-256 of a file, with the stamps that say whether the digest may be cached.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tuple
        ``(sha256, stamp, cacheable, hashed_ns)``: the digest, the stamp of the file as it was read, that
        same stamp if the digest may be stored (the file is not racy) else None, and when the hashing
        began (ns since 1970).  A file that changes while it is read is read again: a digest never
        belongs to a stamp other than the one the file had before and after the whole read.

    Raises
    ------
    OSError
        If the file cannot be read, or changed during each of three reads.
    """
    from .. import atomic

    for _ in range(3):
        before = file_stamp(path)
        hashed_ns = time.time_ns()
        digest = atomic.sha256_file(before.path)
        if file_stamp(path) == before:
            return digest, before, before if before.mtime_ns < hashed_ns - RACY_NS else None, hashed_ns
    raise OSError(f"{path}: changed while it was being read, three times: no digest")


def local_cache_url() -> str:
    """The node's own cache (used when the run records through dbClient): ``$TERAPIX_HOME/digests.sqlite``.

    Returns
    -------
    str
        A SQLite URL.
    """
    home = Path(os.environ.get("TERAPIX_HOME", Path.home() / ".terapix"))
    return f"sqlite:///{(home / 'digests.sqlite').resolve()}"


class DigestStore:
    """The ``file_digests`` table of one database, for one host.

    Parameters
    ----------
    db : str or Engine
        The database: RDBix (schema created or upgraded if needed) or, with ``standalone``, a file that
        holds this table only.
    node : str, optional
        The host (this one by default).
    standalone : bool
        Create only the ``file_digests`` table (the node-local cache), not RDBix's schema.
    """

    def __init__(self, db, node: str | None = None, standalone: bool = False):
        from .engine import connect, write_connection
        from .schema import file_digests

        self.node = node or socket.gethostname()
        if standalone:
            self.engine = connect(db, create=False)
            with write_connection(self.engine) as conn, conn.begin():
                file_digests.create(conn, checkfirst=True)
        else:
            self.engine = connect(db)
        self.table = file_digests

    @classmethod
    def for_run(cls, db_url: str | None, workdir: str | os.PathLike | None) -> DigestStore:
        """The store a run uses: its RDBix, or the node's own file when it records through dbClient.

        Parameters
        ----------
        db_url : str, optional
            The run's database URL.
        workdir : str or path-like, optional
            The run's work directory (default SQLite file).

        Returns
        -------
        DigestStore
        """
        if os.environ.get("TERAPIX_DBCLIENT_URL"):
            return cls(local_cache_url(), standalone=True)
        from .engine import resolve_url
        return cls(resolve_url(db_url, workdir))

    def lookup(self, stamps: list[Stamp]) -> dict[Stamp, str]:
        """The stored digests of these exact file versions.

        Parameters
        ----------
        stamps : list of Stamp

        Returns
        -------
        dict of Stamp to str
            Only the stamps found with every field equal.
        """
        from sqlalchemy import select

        from .ops import path_hash

        t = self.table
        wanted = {path_hash(s.path): s for s in stamps}
        hashes = sorted(wanted)
        found: dict[Stamp, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(hashes), _CHUNK):
                rows = conn.execute(select(t.c.path_hash, t.c.path, t.c.st_dev, t.c.st_ino, t.c.size, t.c.mtime_ns,
                                           t.c.ctime_ns, t.c.sha256, t.c.hashed_ns)
                                    .where(t.c.node == self.node, t.c.path_hash.in_(hashes[i:i + _CHUNK])))
                for row in rows:
                    s = wanted[row.path_hash]
                    if (row.path == s.path and row.st_dev == str(s.dev) and row.st_ino == str(s.ino)
                            and row.size == s.size and row.mtime_ns == s.mtime_ns and row.ctime_ns == s.ctime_ns
                            and s.mtime_ns < row.hashed_ns - RACY_NS):
                        found[s] = row.sha256
        return found

    def remember(self, entries: list[tuple[Stamp, str, int]]) -> None:
        """Store digests (replacing what was stored for the same path on this host).

        Parameters
        ----------
        entries : list of (Stamp, str, int)
            ``(stamp, sha256, hashed_ns)``.
        """
        import datetime as dt

        from .engine import write_connection
        from .ops import path_hash

        if not entries:
            return
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        rows = {}
        for s, sha, hashed_ns in entries:
            h = path_hash(s.path)
            rows[h] = {"node": self.node, "path_hash": h, "path": s.path, "st_dev": str(s.dev),
                       "st_ino": str(s.ino), "size": s.size, "mtime_ns": s.mtime_ns, "ctime_ns": s.ctime_ns,
                       "sha256": sha, "hashed_ns": hashed_ns, "recorded": now}
        # one key order for every writer: concurrent upserts lock rows in the same order (no deadlock cycle)
        ordered = [rows[h] for h in sorted(rows)]
        stmt = self._upsert()
        for attempt in range(5):
            try:
                with write_connection(self.engine) as conn, conn.begin():
                    for i in range(0, len(ordered), _CHUNK):
                        conn.execute(stmt, ordered[i:i + _CHUNK])
                return
            except Exception as exc:  # noqa: BLE001 - a deadlock victim (MariaDB 1213) is retried
                if attempt == 4 or not _is_deadlock(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _upsert(self):
        t = self.table
        values = ("path", "st_dev", "st_ino", "size", "mtime_ns", "ctime_ns", "sha256", "hashed_ns", "recorded")
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
            stmt = insert(t)
            return stmt.on_conflict_do_update(index_elements=[t.c.node, t.c.path_hash],
                                              set_={c: stmt.excluded[c] for c in values})
        from sqlalchemy.dialects.mysql import insert
        stmt = insert(t)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in values})


def _is_deadlock(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
    return code in (1213, 1205)  # deadlock found, lock wait timeout


class DigestCache:
    """Digests of files for one process: in memory, backed by a :class:`DigestStore` (optional).

    Thread-safe (the runner hashes ahead in a thread).  ``from_store`` and ``computed`` count the distinct
    file versions whose digest came from the store and were hashed.

    Parameters
    ----------
    store : DigestStore, optional
        The persistent cache (None: in memory only).
    """

    def __init__(self, store: DigestStore | None = None):
        self.store = store
        self._memory: dict[Stamp, str] = {}
        self._pending: dict[Stamp, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self.from_store: set[Stamp] = set()
        self.computed: set[Stamp] = set()

    def preload(self, paths) -> None:
        """Look up in the store, in one query, the digests of ``paths`` not in memory yet.

        Parameters
        ----------
        paths : iterable of str or path-like
            Files (missing ones are ignored: they are reported when read).
        """
        if self.store is None:
            return
        stamps = []
        for p in paths:
            try:
                stamps.append(file_stamp(p))
            except OSError:
                continue
        with self._lock:
            stamps = [s for s in stamps if s not in self._memory]
        if stamps:
            self._take(self._lookup(stamps))

    def _lookup(self, stamps: list[Stamp]) -> dict[Stamp, str]:
        store = self.store
        if store is None:
            return {}
        try:
            return store.lookup(stamps)
        except Exception as exc:  # noqa: BLE001 - without the cache files are hashed: slower, never wrong
            log.warning("digest cache %s unreadable (%s): files are hashed", store.engine.url, exc)
            self.store = None
            return {}

    def _take(self, found: dict[Stamp, str]) -> None:
        with self._lock:
            self._memory.update(found)
            self.from_store.update(found)

    def stamped_digest(self, path: str | os.PathLike) -> tuple[str, Stamp]:
        """The digest of a file as it is now, and the stamp it belongs to.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        tuple of (str, Stamp)

        Raises
        ------
        OSError
            If the file cannot be read.
        """
        stamp = file_stamp(path)
        with self._lock:
            known = self._memory.get(stamp)
        if known is not None:
            return known, stamp
        if self.store is not None:
            found = self._lookup([stamp])
            if found:
                self._take(found)
                return found[stamp], stamp
        digest, stamp, cacheable, hashed_ns = hash_file(path)
        with self._lock:
            self.computed.add(stamp)
            self._memory[stamp] = digest
            if cacheable is not None:
                self._pending[cacheable] = (digest, hashed_ns)
        return digest, stamp

    def digest(self, path: str | os.PathLike) -> str:
        """The SHA-256 of a file as it is now (cached, or computed and remembered).

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        str

        Raises
        ------
        OSError
            If the file cannot be read.
        """
        return self.stamped_digest(path)[0]

    def know(self, path: str | os.PathLike, sha256: str, size: int) -> bool:
        """Remember, for this process only, the digest that the writer of a file computed as it wrote it
        (a unit's product, hashed by its worker), if the file still has that size.

        Parameters
        ----------
        path : str or path-like
        sha256 : str
        size : int
            The size the writer reported.

        Returns
        -------
        bool
            Whether it was remembered.
        """
        try:
            stamp = file_stamp(path)
        except OSError:
            return False
        if stamp.size != size or not sha256:
            return False
        with self._lock:
            self._memory.setdefault(stamp, sha256)
        return True

    def remember(self, stamp: Stamp, sha256: str, hashed_ns: int) -> None:
        """Queue a digest computed elsewhere (ingestion) for the store; the caller vouches that ``sha256``
        is the content of the version ``stamp`` describes, read from ``hashed_ns`` on.

        Parameters
        ----------
        stamp : Stamp
        sha256 : str
        hashed_ns : int
        """
        with self._lock:
            self._memory[stamp] = sha256
            if stamp.mtime_ns < hashed_ns - RACY_NS:
                self._pending[stamp] = (sha256, hashed_ns)

    def flush(self) -> int:
        """Write the queued digests to the store.

        Returns
        -------
        int
            Digests written (0 without a store).
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        if self.store is None or not pending:
            return 0
        self.store.remember([(s, sha, t) for s, (sha, t) in pending.items()])
        return len(pending)
