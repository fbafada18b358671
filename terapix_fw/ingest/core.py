"""Ingestion of one arriving exposure: decide, check, store, describe (the seeds' data-ingestion context).

For each file :meth:`Ingester.ingest` returns an :class:`Outcome` and the RDBix records that say it:

``known``
    the same name with the same SHA-256 is registered: nothing is done (re-ingestion no-op);
``changed``
    the name is registered with another SHA-256: refused, moved to quarantine (never registered over the
    first file);
``duplicate``
    the same SHA-256 is registered under another name: reported, moved to quarantine;
``quarantined``
    an integrity check failed (:mod:`.checks`): moved to quarantine with a ``.reason`` file;
``registered``
    stored (moved or copied, uncompressed if the site asks) into the storage tree under the site's
    pattern, atomically, and described by an ``exposure`` record (header metadata, CCD footprints, every
    keyword, storage node and path, checksum, survey component/owner).

The decision reads RDBix (``db``) and remembers what this session did, so that a batch needs no
round trip between files and works the same through dbClient, whose writes land later.
"""
from __future__ import annotations

import datetime as _dt
import gzip
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path, sha256_file
from ..db.digests import hash_file
from .checks import IntegrityError, inspect_file
from .site import Site

__all__ = ["Ingester", "Outcome", "stored_name", "FITS_SUFFIXES"]

log = logging.getLogger("terapix.ingest")

#: names ingestion picks up in a directory (and the watch mode waits for)
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz", ".fit.gz", ".fts.gz")


def stored_name(name: str, uncompress: bool) -> str:
    """The exposure's file name in storage (and in RDBix): ``.fz``/``.gz`` dropped when uncompressed.

    Parameters
    ----------
    name : str
    uncompress : bool
        Whether the site stores files uncompressed.

    Returns
    -------
    str
    """
    if uncompress:
        for suffix in (".fz", ".gz"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
    return name


@dataclass
class Outcome:
    """What ingesting one file did.

    Attributes
    ----------
    source : Path
        The file as delivered.
    status : str
        ``registered``, ``known``, ``changed``, ``duplicate``, ``quarantined`` or ``missing``.
    message : str
    filename : str or None
        Its name in RDBix.
    stored : Path or None
        Its place in the storage tree.
    checksum : str
        SHA-256.
    records : list of (str, dict)
        RDBix records to send.
    """
    source: Path
    status: str  # registered | known | changed | duplicate | quarantined | missing
    message: str = ""
    filename: str | None = None
    stored: Path | None = None
    checksum: str = ""
    records: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """Whether the file was refused (changed, duplicate or quarantined)."""
        return self.status in ("changed", "duplicate", "quarantined")

    def line(self) -> str:
        """The outcome in one line, as ``terapix ingest`` prints it.

        Returns
        -------
        str
        """
        where = f" -> {self.stored}" if self.stored and self.status == "registered" else ""
        return f"{self.status:<11} {self.source.name}{where}{': ' + self.message if self.message else ''}"


class Ingester:
    """Ingests files one by one for a site.

    Parameters
    ----------
    site : Site
        Storage, cameras and classification rules.
    db : str or Engine, optional
        RDBix used to look up names and checksums (None: nothing registered yet is seen, only this
        session's files).
    transfer : str, optional
        ``move`` or ``copy``, overriding the site's.
    node : str, optional
        Host recorded as holding the stored copies (the site's, else this host).
    skyprobe_key : str
        Primary-header keyword of the sky-probe extinction (mag).
    check_pixels : bool
        Read every image's pixels during the integrity checks.
    logger : logging.Logger, optional
    """

    def __init__(self, site: Site, db=None, *, transfer: str | None = None, node: str | None = None,
                 skyprobe_key: str = "SKYPROBE", check_pixels: bool = True, logger=None):
        self.site = site
        self.transfer = (transfer or site.transfer).lower()
        if self.transfer not in ("move", "copy"):
            raise ValueError(f"transfer {transfer!r}: expected move or copy")
        self.node = node or site.node or socket.gethostname()
        self.skyprobe_key = skyprobe_key
        self.check_pixels = check_pixels
        self.log = logger or log
        self._engine = None
        if db is not None:
            from ..db.engine import connect
            self._engine = connect(db)
        self._digests = _digest_cache(self._engine, self.log)
        self._by_name: dict[str, str] = {}
        self._by_sum: dict[str, str] = {}
        self._stored: dict[str, Path] = {}

    # -- decisions --------------------------------------------------------------------------------
    def _lookup(self, name: str, checksum: str) -> tuple[str | None, str | None, Path | None]:
        """(checksum registered under ``name``, name registered with ``checksum``, stored path of name)."""
        by_name, by_sum = self._by_name.get(name), self._by_sum.get(checksum)
        stored = self._stored.get(name)
        if (by_name is None or by_sum is None) and self._engine is not None:
            from sqlalchemy import or_, select

            from ..db import schema as S
            e = S.exposures
            with self._engine.connect() as conn:
                rows = conn.execute(select(e.c.id, e.c.filename, e.c.checksum)
                                    .where(or_(e.c.filename == name, e.c.checksum == checksum))).all()
                for row in rows:
                    if row.filename == name and by_name is None:
                        by_name = row.checksum or ""
                        path = conn.execute(select(S.storage.c.path).where(S.storage.c.exposure_id == row.id)
                                            .order_by((S.storage.c.node == self.node).desc(),
                                                      S.storage.c.id)).first()
                        stored = Path(path[0]) if path else None
                    if row.checksum == checksum and by_sum is None and row.filename != name:
                        by_sum = row.filename
        return by_name, by_sum, stored

    def ingest(self, path: str | Path) -> Outcome:
        """Ingest one file; never raises for a bad file (the outcome says what happened).

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Outcome
        """
        path = Path(path)
        if not path.is_file():  # gone between listing and ingestion: nothing to check or to quarantine
            return Outcome(path, "missing", "no such file (moved or deleted before ingestion)", path.name)
        try:
            checksum, _, cacheable, hashed_ns = hash_file(path)
        except OSError as exc:
            return self._quarantine(path, "", f"cannot read the file: {exc.strerror}")
        # the arrival's digest fills the digest cache, for the file where it ends up (a move keeps its inode)
        out = self._decide(path, checksum)
        self._remember_digest(out, checksum, cacheable, hashed_ns)
        return out

    def _remember_digest(self, out: Outcome, checksum: str, cacheable, hashed_ns: int) -> None:
        """Give the digest cache the checksum just computed, for each file that still holds those bytes:
        the arrival if it is still there unchanged, the stored file if it is the arrival moved (same
        device, inode, size and mtime: a rename changes only ctime)."""
        if cacheable is None:
            return
        from ..db.digests import file_stamp
        for where in dict.fromkeys(p for p in (out.source, out.stored) if p is not None):
            try:
                now = file_stamp(where)
            except OSError:
                continue
            if (now.dev, now.ino, now.size, now.mtime_ns) == (cacheable.dev, cacheable.ino, cacheable.size,
                                                              cacheable.mtime_ns):
                self._digests.remember(now, checksum, hashed_ns)
        try:
            self._digests.flush()
        except Exception as exc:  # noqa: BLE001 - a missing cache entry costs a later hash, nothing else
            self.log.warning("digest cache not updated for %s: %s", out.source, exc)

    def _decide(self, path: Path, checksum: str) -> Outcome:
        name = stored_name(path.name, self.site.uncompress)
        known_sum, other_name, stored = self._lookup(name, checksum)
        if known_sum is not None:
            if known_sum == checksum or not known_sum:
                return Outcome(path, "known", "already registered with the same SHA-256: nothing done", name,
                               stored, checksum)
            out = self._quarantine(path, checksum, f"changed content: {name} is registered with SHA-256 "
                                   f"{known_sum}, this file has {checksum}; refused (no silent overwrite)")
            out.status = "changed"
            return out
        if other_name is None:
            # parallel units (a pipeline's per-file ingestion) see each other only through the ledger
            state, value = self._claim(name, checksum)
            if state == "known" and self._engine is None:
                return Outcome(path, "known", "already stored with the same SHA-256: nothing done", name,
                               Path(value) if value else None, checksum)
            # stored but not in RDBix (a new database over an existing storage tree): registered again
            if state == "changed":
                out = self._quarantine(path, checksum, f"changed content: {name} is stored with SHA-256 "
                                       f"{value}, this file has {checksum}; refused (no silent overwrite)")
                out.status = "changed"
                return out
            if state == "duplicate":
                other_name = value
        if other_name is not None:
            out = self._quarantine(path, checksum, f"duplicate of {other_name} (same SHA-256 {checksum})")
            out.status = "duplicate"
            return out
        try:
            info = inspect_file(path, self.site.expected_extensions, self.check_pixels, self.log)
            return self._register(path, name, checksum, info)
        except IntegrityError as exc:
            self._release(name, checksum)
            return self._quarantine(path, checksum, str(exc))
        except BaseException:
            self._release(name, checksum)
            raise

    # -- the storage tree's ledger ----------------------------------------------------------------
    def _ledger(self, kind: str, key: str) -> Path:
        from urllib.parse import quote
        return self.site.storage_root / ".ingest" / kind / quote(key, safe="")

    def _claim(self, name: str, checksum: str) -> tuple[str, str | None]:
        """Claim ``name`` and ``checksum`` atomically (O_EXCL marker files under ``<storage>/.ingest``, so
        that concurrent processes, even on several nodes sharing the storage tree, cannot both register
        one name or one content).  ("new", None), ("known", None), ("changed", stored checksum) or
        ("duplicate", other name)."""
        by_name = self._ledger("name", name)
        if not _create_exclusive(by_name, checksum):
            stored, _, where = (_read(by_name) or "").partition("\n")
            return ("known", where or None) if stored == checksum else ("changed", stored)
        by_sum = self._ledger("sha256", checksum)
        if not _create_exclusive(by_sum, name):
            by_name.unlink(missing_ok=True)
            return "duplicate", _read(by_sum)
        return "new", None

    def _release(self, name: str, checksum: str) -> None:
        """Give the claims back (the file was refused): a corrected file may arrive under that name."""
        for kind, key, value in (("name", name, checksum), ("sha256", checksum, name)):
            marker = self._ledger(kind, key)
            if (_read(marker) or "").partition("\n")[0] == value:
                marker.unlink(missing_ok=True)

    # -- storage ----------------------------------------------------------------------------------
    def _register(self, path: Path, name: str, checksum: str, info) -> Outcome:
        from .metadata import exposure_fields, footprint, keyword_rows, raw_keyword_rows

        def keywords_of(k: int, header, extension: int):
            rows = raw_keyword_rows(info.raw_headers[k], extension) if k in info.raw_headers else None
            return rows if rows is not None else keyword_rows(header, extension)

        primary = info.primary
        fields = exposure_fields(primary, self.skyprobe_key)
        cls = self.site.classify(primary, fields["date_obs"])
        dest = self.site.storage_dir(primary) / name
        arrival = _dt.datetime.fromtimestamp(path.stat().st_mtime, tz=_dt.timezone.utc)
        uncompress = self.site.uncompress and info.compression != "none"
        if dest.exists() and dest.resolve() != path.resolve():
            # an unregistered file in the tree: the same bytes (an earlier registration that never
            # landed) are taken as they are; anything else is never replaced
            if uncompress or sha256_file(dest) != checksum:
                raise IntegrityError(f"another file already lies at {dest} and is not registered; "
                                     f"refused (no silent overwrite)")
            if self.transfer == "move":
                path.unlink()
        else:
            self._place(path, dest, info.compression if uncompress else "none")
        compression = "none" if uncompress else info.compression
        stored_sum = checksum if not uncompress else sha256_file(dest)
        extensions, keywords = [], keywords_of(0, primary, 0)
        for ccd, (hdu, header) in enumerate(info.images, 1):
            extensions.append({"ccd": ccd, "extname": header.get("EXTNAME"), "naxis1": header.get("NAXIS1"),
                               "naxis2": header.get("NAXIS2"), **footprint(header)})
            if hdu != 0:
                keywords += keywords_of(hdu, header, ccd)
        record = {"filename": name, **{k: v for k, v in fields.items() if v is not None},
                  "survey_component": cls.component, "owner": cls.owner, "release_date": cls.release_date,
                  "arrival_date": arrival, "checksum": checksum, "extensions": extensions, "keywords": keywords,
                  "storage": [{"node": self.node, "path": str(dest), "size": dest.stat().st_size,
                               "checksum": stored_sum, "compression": compression}]}
        record = {k: v for k, v in record.items() if v is not None}
        self._by_name[name], self._by_sum[checksum], self._stored[name] = checksum, name, dest
        from ..atomic import write_text_atomic
        write_text_atomic(self._ledger("name", name), f"{checksum}\n{dest}")
        missing = [k for k in ("filter", "date_obs", "exptime") if fields.get(k) is None]
        note = f"{fields.get('filter')} {fields.get('qrunid')} {cls.component or 'no survey rule'}"
        if missing:
            note += f"; header lacks {', '.join(missing)}"
        return Outcome(path, "registered", note, name, dest, checksum, [("exposure", record)])

    def _place(self, source: Path, dest: Path, compression: str) -> None:
        """Put ``source`` at ``dest`` atomically: a rename when moving within a file system, else a copy
        (decompressed if asked) under a temporary name in ``dest``'s directory, renamed when complete."""
        if source.resolve() == dest.resolve():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        if compression == "none" and self.transfer == "move":
            try:
                os.rename(source, dest)  # atomic on one file system
                return
            except OSError:
                pass  # another file system: copy, then remove the source
        with atomic_path(dest) as tmp:
            if compression == "gzip":
                with gzip.open(source, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 22)
            elif compression == "fpack":
                _funpack(source, tmp)
            else:
                shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if self.transfer == "move":
            source.unlink()

    def _quarantine(self, path: Path, checksum: str, reason: str) -> Outcome:
        """Move (or copy) a refused file to the quarantine directory with ``<name>.reason`` beside it."""
        qdir = self.site.quarantine_dir
        qdir.mkdir(parents=True, exist_ok=True)
        target = qdir / path.name
        n = 1
        while target.exists() or target.with_name(target.name + ".reason").exists():
            target = qdir / f"{path.name}.{n}"
            n += 1
        moved = None
        try:
            if self.transfer == "move":
                try:
                    os.rename(path, target)
                except OSError:
                    shutil.copyfile(path, target)
                    path.unlink()
            else:
                shutil.copyfile(path, target)
            moved = target
        except OSError as exc:
            reason += f" (could not be put in quarantine: {exc.strerror})"
        now = _dt.datetime.now(_dt.timezone.utc)
        text = (f"file: {path}\nquarantined: {moved or '-'}\ntime: {now.isoformat(timespec='seconds')}\n"
                f"node: {self.node}\nsha256: {checksum or '-'}\nreason: {reason}\n")
        from ..atomic import write_text_atomic
        write_text_atomic(target.with_name(target.name + ".reason"), text)
        self.log.info("%s quarantined: %s", path.name, reason)  # the outcome reports it
        record = {"filename": path.name, "reason": reason, "origin": str(path), "node": self.node, "time": now}
        if moved:
            record["path"] = str(moved)
        if checksum:
            record["checksum"] = checksum
        return Outcome(path, "quarantined", reason, path.name, moved, checksum, [("quarantine", record)])


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists: written under a temporary name, then hard-linked
    (atomic, and refused if the name exists), so that a reader never sees it half written."""
    import tempfile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _funpack(source: Path, dest: Path) -> None:
    """Write the uncompressed MEF of a tile-compressed (fpack) file; CHECKSUM/DATASUM recomputed where
    the original carried them."""
    from astropy.io import fits
    with fits.open(source) as hdul:
        out = fits.HDUList()
        sums = False
        for k, hdu in enumerate(hdul):
            sums = sums or "CHECKSUM" in hdu.header or "DATASUM" in hdu.header
            if isinstance(hdu, fits.CompImageHDU):
                header = hdu.header.copy()
                for key in ("CHECKSUM", "DATASUM", "ZHECKSUM", "ZDATASUM"):
                    header.remove(key, ignore_missing=True)
                out.append(fits.ImageHDU(hdu.data, header) if k else fits.PrimaryHDU(hdu.data, header))
            else:
                out.append(hdu.copy())
        out.writeto(dest, checksum=sums)


def _digest_cache(engine, logger):
    """The digest cache ingestion fills: RDBix's (``engine``), or the node's own with dbClient (see
    :mod:`terapix_fw.db.digests`); None without a database, or when it cannot be opened (logged)."""
    from ..db.digests import DigestCache, DigestStore, local_cache_url
    try:
        if os.environ.get("TERAPIX_DBCLIENT_URL"):
            return DigestCache(DigestStore(local_cache_url(), standalone=True))
        return DigestCache(DigestStore(engine) if engine is not None else None)
    except Exception as exc:  # noqa: BLE001 - without the cache the runner hashes the files itself
        logger.warning("digest cache unavailable: %s", exc)
        return DigestCache(None)
