"""FTP transfers: directory listings, small text files and resumable binary downloads.

The CFHTLS data came through FTP disk space, and archives still publish over FTP.  Credentials come
from the URL (``ftp://user:password@host/dir/``), else from ``~/.netrc``, else anonymous login; they
never appear in logs or records (:func:`redact`).  Each transfer opens its own connection (ftplib
objects are not thread-safe).  Resume uses ``REST``; the size comes from ``SIZE`` or the ``MLSD``
listing; checksums are those published beside the files (FTP has no digest header).
"""
from __future__ import annotations

import ftplib
import io
import netrc
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact", "ftp_list", "ftp_fetch_text", "ftp_attempt"]

_CHUNK = 1 << 20


def redact(url: str) -> str:
    """``url`` without its password (``ftp://user@host/...``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _credentials(parts) -> tuple[str, str]:
    if parts.username:
        return unquote(parts.username), unquote(parts.password or "")
    try:
        auth = netrc.netrc().authenticators(parts.hostname or "")
    except (OSError, netrc.NetrcParseError):
        auth = None
    if auth:
        return auth[0], auth[2] or ""
    return "anonymous", "anonymous@"


def _connect(url: str, timeout: float) -> tuple[ftplib.FTP, str]:
    parts = urlsplit(url)
    ftp = ftplib.FTP(timeout=timeout)
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(*_credentials(parts))
        ftp.voidcmd("TYPE I")
    except BaseException:
        ftp.close()
        raise
    return ftp, unquote(parts.path) or "/"


def ftp_list(url: str, timeout: float) -> list[tuple[str, int | None, bool]]:
    """``(name, size or None, is_directory)`` of the entries of the directory ``url``.

    MLSD tells files from directories; with old servers (NLST only) every entry is taken as a file.
    Names are returned as the server sent them: the caller checks them like any link.
    """
    ftp, path = _connect(url, timeout)
    with ftp:
        ftp.cwd(path)
        try:
            out = []
            for name, facts in ftp.mlsd(facts=["type", "size"]):
                kind = facts.get("type", "file").lower()
                if kind in ("file", "dir"):
                    size = facts.get("size", "")
                    out.append((name, int(size) if size.isdigit() else None, kind == "dir"))
            return out
        except ftplib.error_perm:
            return [(posixpath.basename(name.rstrip("/")), None, False) for name in ftp.nlst()]


class _TooLarge(Exception):
    pass


def ftp_fetch_text(url: str, timeout: float, limit: int) -> str:
    """A small file over FTP, read into memory up to ``limit`` bytes."""
    buffer = io.BytesIO()

    def take(block: bytes) -> None:
        buffer.write(block)
        if buffer.tell() > limit:
            raise _TooLarge

    ftp, path = _connect(url, timeout)
    with ftp:
        try:
            ftp.retrbinary(f"RETR {path}", take, blocksize=64 << 10)
        except _TooLarge:
            raise ValueError(f"{redact(url)}: more than {limit} bytes") from None
    return buffer.getvalue().decode("utf-8", errors="replace")


def ftp_attempt(url: str, part: Path, result, *, timeout: float, resume: bool, verify: bool,
                expected: dict[str, str], size_hint: int | None, retry, failed) -> None:
    """One attempt at downloading ``url`` into ``part`` (see :func:`transfer.fetch_file`).

    ``retry`` and ``failed`` are the exception classes for transient and definitive failures.
    """
    from .transfer import PartFile

    shown = redact(url)
    try:
        ftp, path = _connect(url, timeout)
    except ftplib.error_perm as exc:
        raise failed(f"{shown}: login refused: {exc}") from None
    except (ftplib.Error, OSError, EOFError) as exc:
        raise retry(f"{shown}: cannot connect: {exc}") from None
    with ftp:
        try:
            total = ftp.size(path)
        except ftplib.error_perm:
            total = None
        except (ftplib.Error, OSError, EOFError) as exc:
            raise retry(f"{shown}: {exc}") from None
        total = total if total is not None else size_hint
        offset = part.stat().st_size if resume and part.exists() else 0
        if total is not None and offset > total:
            offset = 0
        result.resumed_from = offset
        with PartFile(part, offset, expected if verify else {}, result) as sink:
            try:
                ftp.retrbinary(f"RETR {path}", sink.write, blocksize=_CHUNK, rest=offset or None)
            except (ftplib.error_perm, ftplib.error_reply) as exc:
                if str(exc).startswith("550"):
                    raise failed(f"{shown}: {exc}") from None
                if offset and result.bytes == 0:
                    # the server refused the resume (no REST): start again from zero
                    part.unlink(missing_ok=True)
                    raise retry(f"{shown}: resume at byte {offset} refused ({exc}); restarting from zero"
                                ) from None
                raise retry(f"{shown}: {exc}") from None
            except (ftplib.Error, OSError, EOFError) as exc:
                raise retry(f"{shown}: transfer interrupted after {offset + result.bytes} bytes: {exc}") from None
    sink.verify(shown, total)
