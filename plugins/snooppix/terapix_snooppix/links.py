"""Links of an index page: extraction, and the checks that make them safe to download.

Index pages come from remote servers and are untrusted: a link may point to another host, use an odd
scheme (``javascript:``, ``file:``, ``data:``), or carry a name such as ``../../.bashrc`` or
``%2Fetc%2Fpasswd``.  Every link becomes a plain file name in the download directory or is rejected
with a reason that goes to the log.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

__all__ = ["Link", "Rejected", "extract_hrefs", "announced_sizes", "subdirectories", "select_links", "safe_name",
           "parse_checksums",
           "CHECKSUM_SUFFIXES"]

#: sidecar checksum files (``NAME.sha256`` beside ``NAME``) and the hash algorithm they hold
CHECKSUM_SUFFIXES = {".md5": "md5", ".sha1": "sha1", ".sha256": "sha256", ".sha512": "sha512"}
_HEX_ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Link:
    """A link accepted for download: absolute URL and the file name it is saved under."""

    url: str
    name: str


@dataclass(frozen=True)
class Rejected:
    href: str
    reason: str


class _AnchorParser(HTMLParser):
    """Collects ``<a href>`` values (and ``data-size`` sizes, as FTP listings carry them); also honours
    ``<base href>`` as browsers do."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.sizes: dict[str, int] = {}
        self.base: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            values = dict(attrs)
            href = values.get("href")
            if href is not None:
                self.hrefs.append(href.strip())
                size = values.get("data-size") or ""
                if size.isdigit():
                    self.sizes[href.strip()] = int(size)
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


def extract_hrefs(html: str) -> tuple[list[str], str | None]:
    """The ``href`` of every anchor of ``html`` in document order, and the ``<base href>`` if any."""
    parser = _AnchorParser()
    parser.feed(html)
    parser.close()
    return parser.hrefs, parser.base


def announced_sizes(html: str) -> dict[str, int]:
    """``href -> size`` for anchors with a ``data-size`` attribute (FTP listings)."""
    parser = _AnchorParser()
    parser.feed(html)
    parser.close()
    return parser.sizes


def safe_name(name: str) -> str | None:
    """Why ``name`` (already URL-decoded) is not a plain file name, or ``None`` if it is one."""
    if not name:
        return "no file name (a directory link)"
    if name in (".", ".."):
        return "a relative directory"
    if "/" in name or "\\" in name:
        return "a path separator in the name"
    if _CONTROL.search(name):
        return "a control character in the name"
    if name.startswith("."):
        return "a hidden file name (leading dot)"
    if len(name.encode("utf-8")) > 255:
        return "a name longer than 255 bytes"
    return None


def _host_port(url_parts) -> tuple[str, int | None]:
    port = url_parts.port
    if port is None:
        port = {"http": 80, "https": 443, "ftp": 21}.get(url_parts.scheme)
    return (url_parts.hostname or "").lower(), port


def select_links(hrefs: list[str], base_url: str, patterns: list[str], *,
                 allowed_hosts: list[str] = (), schemes: tuple[str, ...] = ("http", "https"),
                 ) -> tuple[list[Link], list[Rejected]]:
    """Turn the ``hrefs`` of the index at ``base_url`` into safe download links.

    A link is kept when its scheme is one of ``schemes``, its host (and port) is the index's own or is
    listed in ``allowed_hosts`` (``*`` allows any host), its path has no ``..`` segment, its last path
    segment decodes to a plain file name (:func:`safe_name`), and that name matches one of the
    shell-style ``patterns`` (case-sensitive, as on a Unix server).  Query strings are kept in the URL
    but play no part in the name.  Two links giving the same name keep the first.
    """
    base = urlsplit(base_url)
    base_host = _host_port(base)
    allowed = {h.lower() for h in allowed_hosts}
    links: list[Link] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for href in hrefs:
        if not href or href.startswith("#") or href.startswith("?"):
            continue  # in-page anchors and sort links of Apache/nginx listings
        raw = urlsplit(href)
        if raw.scheme and raw.scheme.lower() not in schemes:
            rejected.append(Rejected(href, f"scheme {raw.scheme!r} is not one of {', '.join(schemes)}"))
            continue
        if raw.username or raw.password:  # relative links inherit the index's own credentials
            rejected.append(Rejected(href, "credentials in the link"))
            continue
        if ".." in unquote(raw.path).replace("\\", "/").split("/"):
            rejected.append(Rejected(href, "a '..' segment in the path"))
            continue
        url, _fragment = urldefrag(urljoin(base_url, href))
        parts = urlsplit(url)
        if parts.scheme not in schemes:
            rejected.append(Rejected(href, f"scheme {parts.scheme!r} is not one of {', '.join(schemes)}"))
            continue
        try:
            host = _host_port(parts)
        except ValueError:
            rejected.append(Rejected(href, "an invalid port"))
            continue
        if host != base_host and "*" not in allowed and host[0] not in allowed:
            rejected.append(Rejected(href, f"host {host[0]}:{host[1]} is not the index's host "
                                           f"{base_host[0]}:{base_host[1]} and is not in ALLOWED_HOSTS"))
            continue
        # decode after splitting, so that an encoded separator (%2F) shows up in the name and is refused
        name = unquote(parts.path.rsplit("/", 1)[-1])
        why = safe_name(name)
        if why is not None:
            if name:  # directory links are normal in listings; only odd names are worth a warning
                rejected.append(Rejected(href, why))
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if name in seen:
            rejected.append(Rejected(href, f"a second link for the name {name!r}"))
            continue
        seen.add(name)
        links.append(Link(url, name))
    return links, rejected


def subdirectories(hrefs: list[str], base_url: str) -> list[str]:
    """Absolute URLs of the sub-directories of ``base_url`` that ``hrefs`` link to, in order.

    A sub-directory link ends with ``/``, stays on the same scheme, host and port, has no ``..``
    segment, no query and no credentials, and its path extends the base path (so parent folders,
    ``/`` and other trees are never followed).
    """
    base = urlsplit(base_url)
    base_path = base.path if base.path.endswith("/") else base.path.rsplit("/", 1)[0] + "/"
    out: list[str] = []
    for href in hrefs:
        raw = urlsplit(href)
        if not href or href.startswith(("#", "?")) or raw.query or raw.username or raw.password:
            continue
        if ".." in unquote(raw.path).replace("\\", "/").split("/"):
            continue
        url, _ = urldefrag(urljoin(base_url, href))
        parts = urlsplit(url)
        try:
            same = (parts.scheme, _host_port(parts)) == (base.scheme, _host_port(base))
        except ValueError:
            continue
        if same and parts.path.endswith("/") and parts.path.startswith(base_path) \
                and len(parts.path) > len(base_path) and url not in out:
            out.append(url)
    return out


def parse_checksums(text: str, default_name: str | None = None) -> dict[str, tuple[str, str]]:
    """Parse ``md5sum``/``sha256sum`` output (``HEX  NAME`` or ``HEX *NAME`` lines) and BSD-style
    ``SHA256 (NAME) = HEX`` lines into ``{name: (algorithm, hexdigest)}``.

    A sidecar file holding only a digest (``NAME.md5`` with ``HEX``) maps to ``default_name``.  The
    algorithm follows from the digest length.  Unreadable lines are ignored: these files are advisory.
    """
    out: dict[str, tuple[str, str]] = {}
    bsd = re.compile(r"^(MD5|SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = bsd.match(line)
        if match:
            name, digest = match.group(2), match.group(3).lower()
        else:
            fields = line.split(None, 1)
            digest = fields[0].lower()
            name = fields[1].lstrip("*").strip() if len(fields) > 1 else (default_name or "")
        algorithm = _HEX_ALGORITHMS.get(len(digest))
        if algorithm is None or not re.fullmatch(r"[0-9a-f]+", digest) or not name:
            continue
        out[posixpath.basename(name)] = (algorithm, digest)
    return out
