"""One transfer (HTTP, HTTPS or FTP): resume, verification, atomic rename.

A file is written to ``.NAME.snooppix-part`` in the download directory and renamed to ``NAME`` only
once it is complete and verified, so an interrupted run never leaves a truncated file under the final
name, and the next run resumes the partial file with an HTTP ``Range`` request.

Verification uses what the server offers: the announced size (``Content-Length``/``Content-Range``),
a digest header (``Repr-Digest`` RFC 9530, ``Digest`` RFC 3230, ``Content-MD5`` on full responses) and
checksums published beside the files (``NAME.sha256`` sidecars, ``SHA256SUMS``-style lists).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Network", "TransferResult", "fetch_file", "fetch_text", "part_path", "TransferFailed", "PartFile",
           "ftp_index_html"]

_CHUNK = 1 << 20
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}


class TransferFailed(Exception):
    """A transfer that cannot succeed by retrying (404, 403, checksum mismatch after retries...)."""


class _Retry(Exception):
    """A transient failure: try again, resuming from what was already received."""


@dataclass
class TransferResult:
    url: str
    name: str
    path: str
    status: str = "failed"  # done | failed
    bytes: int = 0  # bytes received by this run (less than size when resumed)
    size: int = 0
    sha256: str = ""
    verified: str = "none"  # what was checked: size, sha256 header, md5 sidecar...
    resumed_from: int = 0
    attempts: int = 0
    start: float = 0.0
    end: float = 0.0
    error: str = ""
    http_status: int = 0
    checks: list[str] = field(default_factory=list)


#: the longest file name the download directory takes (POSIX NAME_MAX; 255 bytes on ext4, XFS, btrfs)
NAME_MAX = 255


def part_path(dest: Path) -> Path:
    """The partial file of ``dest`` (hidden: link names with a leading dot are refused).

    ``.NAME.snooppix-part`` while that fits in NAME_MAX bytes; for a longer name (a link name of 241 to
    255 bytes is valid, its partial name would not be) ``.snooppix-<sha256 of NAME>.part``, which is
    still one file per name and found again by the next run's resume."""
    name = f".{dest.name}.snooppix-part"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".snooppix-{hashlib.sha256(os.fsencode(dest.name)).hexdigest()}.part"
    return dest.with_name(name)


@dataclass(frozen=True)
class Network:
    """How to talk to the archive: time-out (s), retries and their delay step (s), User-Agent, and the
    certificate authorities for HTTPS (empty: the system's; verification is never turned off)."""

    timeout: float = 60.0
    retries: int = 3
    retry_delay: float = 5.0
    user_agent: str = "terapix-snooppix"
    ca_file: str = ""
    #: hosts a redirect may lead to besides the requested URL's own (ALLOWED_HOSTS; ``*`` any)
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg) -> "Network":
        return cls(cfg["TIMEOUT"], cfg["RETRIES"], cfg["RETRY_DELAY"], cfg["USER_AGENT"], cfg["CA_FILE"],
                   tuple(h.lower() for h in cfg["ALLOWED_HOSTS"] if h))


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the requested URL's own host (and port) or to a host of ALLOWED_HOSTS,
    over HTTP(S), at every hop: a redirect must not take a download where a link could not."""

    max_redirections = 5

    def __init__(self, origin: str, allowed: tuple[str, ...]):
        from urllib.parse import urlsplit

        from .links import _host_port

        self._host_port, self._split = _host_port, urlsplit
        self.origin = _host_port(urlsplit(origin))
        self.allowed = set(allowed)

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        parts = self._split(newurl)
        try:
            host = self._host_port(parts)
        except ValueError:
            host = ("", None)
        if parts.scheme not in ("http", "https") or (
                host != self.origin and "*" not in self.allowed and host[0] not in self.allowed):
            raise TransferFailed(f"{req.full_url}: redirected (HTTP {code}) to {newurl}, whose host "
                                 f"{host[0]}:{host[1]} is not the requested one and is not in ALLOWED_HOSTS")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _NetrcPasswords(urllib.request.HTTPPasswordMgr):
    """HTTP Basic credentials from ``~/.netrc`` (``machine HOST login USER password PASS``), so that
    passwords stay out of the configuration (which is logged and recorded)."""

    def find_user_password(self, realm, authuri):
        import netrc
        from urllib.parse import urlsplit

        host = urlsplit(authuri).hostname if "://" in authuri else authuri.rsplit(":", 1)[0]
        try:
            auth = netrc.netrc().authenticators(host or "")
        except (OSError, netrc.NetrcParseError):
            return None, None
        return (auth[0], auth[2]) if auth else (None, None)


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_file: str):
    """The TLS context for ``ca_file`` (loading the certificate store costs tens of milliseconds: once
    per process; an SSLContext is safe to share between threads)."""
    import ssl

    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise TransferFailed(f"CA_FILE {ca_file!r}: cannot load certificate authorities: {exc}") from None


def _opener(net: Network, url: str):
    # one opener per request: the auth handler keeps per-request state, threads share only the context
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=_ssl_context(net.ca_file)),
                                       urllib.request.HTTPBasicAuthHandler(_NetrcPasswords()),
                                       _CheckedRedirects(url, net.allowed_hosts))


def fetch_text(url: str, net: Network, limit: int = 16 << 20) -> tuple[str, str]:
    """GET a small text resource (an index page, a checksum list); return (final URL, text).

    ``limit`` bounds what is read, so a hostile server cannot exhaust memory.  For an ``ftp://`` URL
    of a directory (ending with ``/``) the text is an HTML list of links to its files (see
    :func:`ftp_index_html`), so that HTTP and FTP indexes are read the same way.
    """
    if url.lower().startswith("ftp://"):
        return _ftp_text(url, net, limit)
    last: Exception | None = None
    for attempt in range(net.retries + 1):
        if attempt:
            time.sleep(net.retry_delay * attempt)
        try:
            req = urllib.request.Request(url, headers={"User-Agent": net.user_agent})
            with _opener(net, url).open(req, timeout=net.timeout) as resp:
                body = resp.read(limit + 1)
                if len(body) > limit:
                    raise TransferFailed(f"{url}: more than {limit} bytes; not an index page")
                charset = resp.headers.get_content_charset() or "utf-8"
                return resp.geturl(), body.decode(charset, errors="replace")
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_HTTP:
                raise TransferFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
            last = exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last = exc
    raise TransferFailed(f"{url}: {_describe(last)} (after {net.retries + 1} attempts)")


def ftp_index_html(listing: list[tuple[str, int | None, bool]]) -> str:
    """An FTP listing as an HTML index: directories end with ``/``, sizes go in ``data-size``."""
    from html import escape
    from urllib.parse import quote

    rows = "".join(f'<a href="{escape(quote(name, safe=""))}{"/" if is_dir else ""}" '
                   f'data-size="{size if size is not None and not is_dir else ""}">{escape(name)}</a>\n'
                   for name, size, is_dir in listing)
    return f"<html><body>\n{rows}</body></html>\n"


def _ftp_text(url: str, net: Network, limit: int) -> tuple[str, str]:
    import ftplib

    from .ftp import ftp_fetch_text, ftp_list, redact

    last: Exception | None = None
    for attempt in range(net.retries + 1):
        if attempt:
            time.sleep(net.retry_delay * attempt)
        try:
            if url.endswith("/"):
                return url, ftp_index_html(ftp_list(url, net.timeout))
            return url, ftp_fetch_text(url, net.timeout, limit)
        except ftplib.error_perm as exc:
            raise TransferFailed(f"{redact(url)}: {exc}") from None
        except ValueError as exc:
            raise TransferFailed(str(exc)) from None
        except (ftplib.Error, OSError, EOFError) as exc:
            last = exc
    raise TransferFailed(f"{redact(url)}: {type(last).__name__}: {last} (after {net.retries + 1} attempts)")


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _header_digests(headers, full_body: bool) -> dict[str, str]:
    """Digests of the complete file announced by the server: {algorithm: hexdigest}."""
    found: dict[str, str] = {}
    names = {"sha-256": "sha256", "sha-512": "sha512", "sha": "sha1", "md5": "md5"}
    for header in ("Repr-Digest", "Digest"):
        for value in headers.get_all(header) or []:
            for item in value.split(","):
                if "=" not in item:
                    continue
                algo, _, encoded = item.strip().partition("=")
                algo = names.get(algo.strip().lower())
                if algo is None:
                    continue
                try:  # RFC 9530 wraps the value in colons (structured-field byte sequence)
                    found[algo] = base64.b64decode(encoded.strip().strip(":"), validate=True).hex()
                except ValueError:
                    continue
    if full_body and headers.get("Content-MD5"):  # covers the body only: valid for a 200 response
        try:
            found.setdefault("md5", base64.b64decode(headers["Content-MD5"].strip(), validate=True).hex())
        except ValueError:
            pass
    return found


def _hashers(algorithms) -> dict[str, "hashlib._Hash"]:
    return {a: hashlib.new(a) for a in set(algorithms) | {"sha256"}}


def fetch_file(url: str, name: str, dest: Path, net: Network, *, resume: bool, verify: bool,
               expected: dict[str, str] | None = None, size_hint: int | None = None) -> TransferResult:
    """Download ``url`` to ``dest``, resuming ``part_path(dest)``; never raises for a transfer error.

    ``expected`` maps algorithm names (md5, sha1, sha256, sha512) to hex digests published beside
    the file.  Transient failures (connection lost, timeout, HTTP 5xx/429, short body) are retried
    ``net.retries`` times, with a delay growing by ``net.retry_delay`` seconds, each retry resuming the
    partial file; a checksum mismatch restarts from zero once per attempt.  ``size_hint`` is the size
    a listing announced (used by FTP when the server does not answer ``SIZE``).
    """
    result = TransferResult(url=url, name=name, path=str(dest), start=time.time())
    part = part_path(dest)
    if not resume and part.exists():
        part.unlink()
    expected = dict(expected or {})
    last: str = ""
    for attempt in range(net.retries + 1):
        result.attempts = attempt + 1
        if attempt:
            time.sleep(net.retry_delay * attempt)
        try:
            if url.lower().startswith("ftp://"):
                from .ftp import ftp_attempt
                ftp_attempt(url, part, result, timeout=net.timeout, resume=resume, verify=verify,
                            expected=expected, size_hint=size_hint, retry=_Retry, failed=TransferFailed)
            else:
                _attempt(url, part, result, net, resume=resume, verify=verify, expected=expected)
            with open(part, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(part, dest)
            result.status = "done"
            result.error = ""
            break
        except _Retry as exc:
            last = str(exc)
        except TransferFailed as exc:
            last = str(exc)
            break
        except OSError as exc:  # the local side (disk full, a name the file system refuses): not retried
            last = f"{url}: cannot write {exc.filename or part}: {exc.strerror or exc}"
            break
    else:
        last = f"{last} (after {net.retries + 1} attempts)"
    if result.status != "done":
        result.error = last
    result.end = time.time()
    return result


def _attempt(url: str, part: Path, result: TransferResult, net: Network, *, resume: bool, verify: bool,
             expected: dict[str, str]) -> None:
    offset = part.stat().st_size if resume and part.exists() else 0
    headers = {"User-Agent": net.user_agent, "Want-Repr-Digest": "sha-256=10, md5=3",
               "Want-Digest": "SHA-256;q=1, MD5;q=0.3"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["Accept-Encoding"] = "identity"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = _opener(net, url).open(req, timeout=net.timeout)
    except urllib.error.HTTPError as exc:
        result.http_status = exc.code
        if exc.code == 416 and offset:
            # our partial file is as long as (or longer than) the remote file: start again cleanly
            part.unlink()
            raise _Retry(f"{url}: HTTP 416 for a resume at byte {offset}; restarting from zero") from None
        if exc.code in _RETRY_HTTP:
            raise _Retry(f"{url}: HTTP {exc.code} {exc.reason}") from None
        raise TransferFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(f"{url}: {_describe(exc)}") from None
    with resp:
        result.http_status = resp.status
        start_at = 0
        total: int | None = None
        if resp.status == 206:
            match = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"{url}: unusable Content-Range {resp.headers.get('Content-Range')!r}; "
                             "restarting from zero")
            start_at = offset
            if match.group(3) != "*":
                total = int(match.group(3))
        else:  # 200: the server ignored the range (or there was none): start from zero
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        result.resumed_from = start_at
        announced = _header_digests(resp.headers, full_body=start_at == 0) if verify else {}
        length = resp.headers.get("Content-Length", "")
        length = int(length) if length.isdigit() and not resp.chunked else None
        with PartFile(part, start_at, {**announced, **expected} if verify else {}, result) as sink:
            try:
                if length is None:
                    while block := resp.read(_CHUNK):
                        sink.write(block)
                else:
                    # read the announced length ourselves (http.client would stop there and close the
                    # connection, hiding anything more), then make sure nothing follows
                    resp.length = None
                    remaining = length
                    while remaining > 0 and (block := resp.read(min(_CHUNK, remaining))):
                        sink.write(block)
                        remaining -= len(block)
                    if remaining == 0 and _more_to_read(resp, net.timeout):
                        part.unlink(missing_ok=True)
                        raise TransferFailed(f"{url}: the server sent more than the {length} bytes it announced "
                                             "(Content-Length); file discarded")
            except (OSError, http.client.HTTPException) as exc:
                raise _Retry(f"{url}: transfer interrupted after {start_at + result.bytes} bytes: "
                             f"{_describe(exc)}") from None
        sink.verify(url, total, announced=set(announced) - set(expected))


def _more_to_read(resp, timeout: float) -> bool:
    """True if the server sends bytes beyond the announced body.  We asked for ``Connection: close``, so
    a conforming server closes here; one that keeps the connection open is given a moment, then taken
    at its word."""
    import socket

    fp = getattr(resp, "fp", None)
    if fp is None or not hasattr(fp, "peek"):
        return False
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    try:
        if sock is not None:
            sock.settimeout(min(timeout, 2.0))
        return bool(fp.peek(1))
    except (socket.timeout, OSError, ValueError):
        return False


class PartFile:
    """The partial file of one attempt: appends from ``offset``, hashes the whole file as it grows, and
    checks size and digests at the end (shared by the HTTP and FTP transfers).

    ``wanted`` maps algorithms to the expected hex digests of the complete file.
    """

    def __init__(self, part: Path, offset: int, wanted: dict[str, str], result: TransferResult):
        self.part = part
        self.offset = offset
        self.wanted = wanted
        self.result = result
        self.hashers = _hashers(wanted)
        self._out = None

    def __enter__(self) -> "PartFile":
        if self.offset:  # the digests cover the whole file: hash what we already have first
            with open(self.part, "rb") as previous:
                remaining = self.offset
                while remaining and (block := previous.read(min(_CHUNK, remaining))):
                    remaining -= len(block)
                    for h in self.hashers.values():
                        h.update(block)
            with open(self.part, "rb+") as handle:
                handle.truncate(self.offset)
        self._out = open(self.part, "ab" if self.offset else "wb")
        return self

    def write(self, block: bytes) -> None:
        self._out.write(block)
        self.result.bytes += len(block)
        for h in self.hashers.values():
            h.update(block)

    def __exit__(self, *exc) -> None:
        self._out.close()

    def verify(self, url: str, total: int | None, announced: set[str] = frozenset()) -> None:
        """Check the size against ``total`` (if known) and every wanted digest; record what was checked."""
        size = self.part.stat().st_size
        if total is not None and size > total:
            self.part.unlink()
            raise TransferFailed(f"{url}: received {size} bytes, more than the {total} announced; file discarded")
        if total is not None and size != total:
            # a short file is a connection dropped mid-way: keep the partial file and resume
            raise _Retry(f"{url}: received {size} of {total} bytes")
        self.result.size = size
        self.result.sha256 = self.hashers["sha256"].hexdigest()
        checks = ["size"] if total is not None else []
        for algorithm, digest in sorted(self.wanted.items()):
            got = self.hashers[algorithm].hexdigest()
            source = "header" if algorithm in announced else "published"
            if got != digest.lower():
                self.part.unlink()
                raise _Retry(f"{url}: {algorithm} checksum mismatch (got {got}, {source} {digest}); "
                             "file discarded")
            checks.append(f"{algorithm} ({source})")
        self.result.checks = checks
        self.result.verified = ", ".join(checks) if checks else "none"
