"""One snooppix pass: scan the index, pick new files, fetch them concurrently, record each transfer."""
from __future__ import annotations

import contextlib
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from terapix_fw.atomic import confine
from terapix_fw.errors import ToolError

from .ledger import Ledger, LedgerEntry
from .ftp import redact
from .links import (CHECKSUM_SUFFIXES, Link, Rejected, announced_sizes, extract_hrefs, parse_checksums,
                    select_links, subdirectories)
from .transfer import Network, TransferFailed, TransferResult, fetch_file, fetch_text

__all__ = ["snoop", "crawl", "published_checksums", "Listing"]


def _schemes(url: str) -> tuple[str, ...]:
    """Link schemes accepted from an index: an FTP directory lists FTP files, a web page web files."""
    return ("ftp",) if url.lower().startswith("ftp://") else ("http", "https")


def published_checksums(hrefs: list[str], base_url: str, names: set[str], cfg, log
                        ) -> dict[str, dict[str, str]]:
    """Checksums published beside the files: ``{name: {algorithm: hexdigest}}``.

    Reads the sidecars (``NAME.sha256``...) of the files to fetch and the checksum lists named in
    CHECKSUM_FILES that the index links to.  These files are advisory: one that cannot be read is
    logged and skipped.
    """
    sidecar_patterns = [f"{n}{suffix}" for n in names for suffix in CHECKSUM_SUFFIXES]
    lists = [n for n in cfg["CHECKSUM_FILES"] if n]
    links, _ = select_links(hrefs, base_url, sidecar_patterns + lists, schemes=_schemes(base_url),
                            allowed_hosts=[h for h in cfg["ALLOWED_HOSTS"] if h])
    out: dict[str, dict[str, str]] = {}
    for link in links:
        target = None
        for suffix in CHECKSUM_SUFFIXES:
            if link.name.endswith(suffix) and link.name[: -len(suffix)] in names:
                target = link.name[: -len(suffix)]
        try:
            _final, text = fetch_text(link.url, Network.from_config(cfg), limit=8 << 20)
        except TransferFailed as exc:
            log.warning("checksum file %s not read: %s", redact(link.url), exc)
            continue
        for name, (algorithm, digest) in parse_checksums(text, default_name=target).items():
            if name in names and (target is None or name == target):
                out.setdefault(name, {})[algorithm] = digest
    return out


#: most index pages read in one run, whatever RECURSE_DEPTH says (a hostile server could list endless folders)
MAX_LISTINGS = 2000


@dataclass(frozen=True)
class Listing:
    """One index page (or FTP directory) that was read: its URL, HTML, links and base URL."""

    url: str
    html: str
    hrefs: list[str]
    base: str


def crawl(url: str, cfg, log) -> list[Listing]:
    """The index at ``url`` and, down to RECURSE_DEPTH levels, the sub-directories it links to.

    Only sub-directories below each index are followed (never a parent, another host or a query
    link), so a crawl cannot wander off the archive; an unreadable sub-directory is logged and
    skipped, an unreadable top index is an error.
    """
    out: list[Listing] = []
    queue = [(url, 0)]
    seen = {url}
    while queue:
        current, depth = queue.pop(0)
        try:
            final, html = fetch_text(current, Network.from_config(cfg))
        except TransferFailed as exc:
            if not out:
                raise ToolError(f"cannot read the index page given by URL: {exc}") from None
            log.warning("sub-directory not read: %s", exc)
            continue
        hrefs, base = extract_hrefs(html)
        listing = Listing(final, html, hrefs, final if base is None else base)
        out.append(listing)
        if depth < cfg["RECURSE_DEPTH"]:
            # sorted, so that which of two same-named files wins does not depend on the listing order
            for sub in sorted(subdirectories(hrefs, listing.base)):
                if sub not in seen and len(seen) < MAX_LISTINGS:
                    seen.add(sub)
                    queue.append((sub, depth + 1))
    if len(seen) >= MAX_LISTINGS:
        log.warning("stopped after %d index pages (MAX_LISTINGS)", MAX_LISTINGS)
    return out


def _select(listings: list[Listing], cfg, ledger_name: str, log
            ) -> tuple[list[Link], dict[str, int], dict[str, Listing]]:
    """The links to fetch from every listing, the sizes listings announced, and the listing of each name."""
    links: list[Link] = []
    sizes: dict[str, int] = {}
    owner: dict[str, Listing] = {}  # name -> listing it came from (for its published checksums)
    for listing in listings:
        found, rejected = select_links(listing.hrefs, listing.base, cfg["PATTERN"], schemes=_schemes(listing.url),
                                       allowed_hosts=[h for h in cfg["ALLOWED_HOSTS"] if h])
        for link in found:
            if link.name == ledger_name or link.name.startswith(ledger_name + "-"):
                # a remote file named like our ledger (or its -journal, -wal) would overwrite it
                rejected.append(Rejected(link.url, f"the name of the download record {ledger_name!r}"))
            elif link.name in owner:  # files are downloaded side by side: the first directory wins
                rejected.append(Rejected(link.url, f"a file named {link.name!r} is also in "
                                                   f"{redact(owner[link.name].url)}"))
            else:
                owner[link.name] = listing
                links.append(link)
        for href, size in announced_sizes(listing.html).items():
            name = unquote(href.rsplit("/", 1)[-1])
            if owner.get(name) is listing:
                sizes[name] = size
        for bad in rejected:
            log.warning("link %r refused: %s", redact(bad.href), bad.reason)
        log.info("%s: %d link(s), %d matching %s, %d refused", redact(listing.url), len(listing.hrefs),
                 len(found), ",".join(cfg["PATTERN"]), len(rejected))
    return links, sizes, owner


def snoop(ctx, url: str) -> list[TransferResult]:
    """Scan ``url`` and download the new matching files into DOWNLOAD_DIR; return the transfers."""
    cfg = ctx.config
    download_dir = ctx.output_path(cfg["DOWNLOAD_DIR"])
    download_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = confine(download_dir, cfg["LEDGER_NAME"], "LEDGER_NAME")
    with _exclusive(ledger_path.with_name(f".{ledger_path.name}.lock")):
        return _snoop(ctx, url, download_dir, ledger_path)


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on the download directory for one pass: two passes (an overlapping cron
    job, a second daemon) would otherwise append to the same partial files."""
    import fcntl

    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ToolError(f"another snooppix run is using {lock_path.parent} (lock {lock_path.name} is "
                            "held); this pass is skipped") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _snoop(ctx, url: str, download_dir: Path, ledger_path: Path) -> list[TransferResult]:
    cfg = ctx.config
    log = ctx.log
    listings = crawl(url, cfg, log)
    shown_url = redact(listings[0].url)
    links, sizes, owner = _select(listings, cfg, ledger_path.name, log)

    with Ledger(ledger_path) as ledger:
        todo: list[tuple[Link, Path]] = []
        for link in links:
            if link.name in ledger:
                log.debug("%s already downloaded", link.name)
                continue
            todo.append((link, confine(download_dir, link.name, f"link name from {shown_url}")))
        if cfg["MAX_FILES"] and len(todo) > cfg["MAX_FILES"]:
            log.info("MAX_FILES = %d: %d file(s) left for the next run", cfg["MAX_FILES"],
                     len(todo) - cfg["MAX_FILES"])
            todo = todo[: cfg["MAX_FILES"]]
        log.info("%d new file(s) to fetch, %d already in %s", len(todo), len(links) - len(todo),
                 ledger_path.name)
        expected: dict[str, dict[str, str]] = {}
        if cfg["VERIFY"]:
            for listing in listings:
                names = {link.name for link, _ in todo if owner[link.name] is listing}
                if names:
                    expected.update(published_checksums(listing.hrefs, listing.base, names, cfg, log))
        nthreads = cfg["NTHREADS"] or ctx.nthreads
        node = socket.gethostname()
        results: list[TransferResult] = []
        with ThreadPoolExecutor(max_workers=max(1, min(nthreads, len(todo) or 1)),
                                thread_name_prefix="snooppix") as pool:
            net = Network.from_config(cfg)
            futures = [pool.submit(fetch_file, link.url, link.name, dest, net, resume=cfg["RESUME"],
                                   verify=cfg["VERIFY"], expected=expected.get(link.name),
                                   size_hint=sizes.get(link.name))
                       for link, dest in todo]
            # record each transfer as it ends, in this thread: the ledger is then up to date even
            # if the run is killed half-way
            for future in as_completed(futures):
                res = future.result()
                results.append(res)
                _record(ctx, ledger, res, node)
    # the free space left where the files land (DataTransfer's "free disk space on each node")
    ctx.record("node", name=node, free_disk=shutil.disk_usage(download_dir).free, time=time.time())
    failed = [r for r in results if r.status != "done"]
    done = len(results) - len(failed)
    received = sum(r.bytes for r in results)
    log.info("%d file(s) downloaded, %d failed, %.1f MB received", done, len(failed), received / 1e6)
    if failed and not done:
        raise ToolError(f"every transfer from {shown_url} failed; first error: {failed[0].error}")
    return results


def _record(ctx, ledger: Ledger, res: TransferResult, node: str) -> None:
    seconds = max(res.end - res.start, 1e-9)
    url = redact(res.url)
    ctx.record("transfer", direction="in", node=node, url=url, name=res.name, path=res.path,
               bytes=res.bytes, size=res.size, status=res.status, start=res.start, end=res.end,
               rate=res.bytes / seconds, resumed_from=res.resumed_from, attempts=res.attempts,
               verified=res.verified, sha256=res.sha256, error=res.error)
    if res.status == "done":
        ledger.add(LedgerEntry(res.name, url, res.size, res.sha256, res.verified, res.start, res.end))
        ctx.add_product(res.path, "download", url=url, verified=res.verified)
        ctx.log.info("%s: %d bytes in %.2f s (%.2f MB/s)%s, verified: %s", res.name, res.size,
                     seconds, res.bytes / seconds / 1e6,
                     f", resumed at byte {res.resumed_from}" if res.resumed_from else "", res.verified)
    else:
        ctx.log.error("%s: %s", res.name, res.error)
