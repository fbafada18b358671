"""One snooppix pass: scan the index, pick new files, fetch them concurrently, record each transfer."""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from terapix_fw.atomic import confine
from terapix_fw.errors import ToolError

from .ledger import Ledger, LedgerEntry
from .ftp import redact
from .links import (CHECKSUM_SUFFIXES, Link, Rejected, announced_sizes, extract_hrefs, parse_checksums,
                    select_links)
from .transfer import TransferFailed, TransferResult, fetch_file, fetch_text

__all__ = ["snoop", "published_checksums"]


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
            _final, text = fetch_text(link.url, timeout=cfg["TIMEOUT"], retries=cfg["RETRIES"],
                                      retry_delay=cfg["RETRY_DELAY"], user_agent=cfg["USER_AGENT"],
                                      limit=8 << 20)
        except TransferFailed as exc:
            log.warning("checksum file %s not read: %s", redact(link.url), exc)
            continue
        for name, (algorithm, digest) in parse_checksums(text, default_name=target).items():
            if name in names and (target is None or name == target):
                out.setdefault(name, {})[algorithm] = digest
    return out


def snoop(ctx, url: str) -> list[TransferResult]:
    """Scan ``url`` and download the new matching files into DOWNLOAD_DIR; return the transfers."""
    cfg = ctx.config
    log = ctx.log
    download_dir = ctx.output_path(cfg["DOWNLOAD_DIR"])
    download_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = confine(download_dir, cfg["LEDGER_NAME"], "LEDGER_NAME")
    try:
        final_url, html = fetch_text(url, timeout=cfg["TIMEOUT"], retries=cfg["RETRIES"],
                                     retry_delay=cfg["RETRY_DELAY"], user_agent=cfg["USER_AGENT"])
    except TransferFailed as exc:
        raise ToolError(f"cannot read the index page given by URL: {exc}") from None
    hrefs, base = extract_hrefs(html)
    base_url = final_url if base is None else base
    links, rejected = select_links(hrefs, base_url, cfg["PATTERN"], schemes=_schemes(final_url),
                                   allowed_hosts=[h for h in cfg["ALLOWED_HOSTS"] if h])
    sizes = {link.name: size for href, size in announced_sizes(html).items()
             for link in links if link.url.endswith("/" + href)}
    # a remote file named like our ledger would overwrite it
    rejected += [Rejected(link.url, f"the name of the download record {ledger_path.name!r}")
                 for link in links if link.name == ledger_path.name]
    links = [link for link in links if link.name != ledger_path.name]
    for bad in rejected:
        log.warning("link %r refused: %s", bad.href, bad.reason)
    shown_url = redact(final_url)
    log.info("%s: %d link(s), %d matching %s, %d refused", shown_url, len(hrefs), len(links),
             ",".join(cfg["PATTERN"]), len(rejected))

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
        expected = (published_checksums(hrefs, base_url, {link.name for link, _ in todo}, cfg, log)
                    if cfg["VERIFY"] and todo else {})
        nthreads = cfg["NTHREADS"] or ctx.nthreads
        node = socket.gethostname()
        results: list[TransferResult] = []
        with ThreadPoolExecutor(max_workers=max(1, min(nthreads, len(todo) or 1)),
                                thread_name_prefix="snooppix") as pool:
            futures = [pool.submit(fetch_file, link.url, link.name, dest, timeout=cfg["TIMEOUT"],
                                   retries=cfg["RETRIES"], retry_delay=cfg["RETRY_DELAY"],
                                   resume=cfg["RESUME"], verify=cfg["VERIFY"],
                                   user_agent=cfg["USER_AGENT"], expected=expected.get(link.name),
                                   size_hint=sizes.get(link.name))
                       for link, dest in todo]
            # record each transfer as it ends, in this thread: the ledger is then up to date even
            # if the run is killed half-way
            for future in as_completed(futures):
                res = future.result()
                results.append(res)
                _record(ctx, ledger, res, node)
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
