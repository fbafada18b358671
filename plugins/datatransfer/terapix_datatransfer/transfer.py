"""One datatransfer run: plan (which file to which node), transfer in parallel, retry, record.

Every file ends as one ``transfer`` record (direction ``out`` for PUT, ``in`` for GET; node, remote
path, bytes, status ``done``/``skipped``/``failed``, start and end times, plus host, local path,
SHA-256, attempts and error, kept verbatim in RDBix ``records``), every node reached as a ``node``
record with its free disk, and every FITS file stored on a node as an ``exposure`` record with a
``storage`` row (node, path, size, checksum): DataTransfer's "files distribution across nodes".
"""
from __future__ import annotations

import posixpath
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from terapix_fw.atomic import atomic_path, sha256_file
from terapix_fw.errors import ConfigError, ToolError

from . import dispatch
from .nodes import Node, check_relative, remote_path
from .ssh import FatalNodeError, NodeSession, SSHSettings, TransferError, part_name

__all__ = ["Job", "Result", "Sessions", "run_transfers", "FITS_SUFFIXES"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz")
#: errors a new attempt (with a new connection) may cure
RETRYABLE = (TransferError, paramiko.SSHException, OSError, EOFError)


@dataclass
class Job:
    direction: str  # PUT | GET
    local: Path  # PUT: the file sent; GET: its final local path
    rel: str  # path below the node's root
    node: str | None  # None: GET from the first node that has it
    size: int = 0
    sha256: str = ""
    stale_parts: list[tuple[str, str]] = field(default_factory=list)  # (node, .part) of failed attempts


@dataclass
class Result:
    job: Job
    node: str = ""
    host: str = ""
    path: str = ""
    bytes: int = 0
    status: str = "failed"
    start: float = 0.0
    end: float = 0.0
    attempts: int = 0
    sha256: str = ""
    verified: bool = False
    error: str = ""


class Sessions:
    """One connection per (thread, node), opened on first use; a node whose host key or login is
    refused is marked dead once, and every later job for it fails at once with the same error."""

    def __init__(self, nodes: dict[str, Node], settings: SSHSettings, log):
        self.nodes, self.settings, self.log = nodes, settings, log
        self._local = threading.local()
        self._all: list[NodeSession] = []
        self._lock = threading.Lock()
        self.dead: dict[str, str] = {}

    def get(self, name: str) -> NodeSession:
        if name in self.dead:
            raise FatalNodeError(self.dead[name])
        cache = self._local.__dict__.setdefault("sessions", {})
        session = cache.get(name)
        if session is None or session.client is None:
            try:
                session = NodeSession(self.nodes[name], self.settings, self.log).connect()
            except FatalNodeError as exc:
                with self._lock:
                    self.dead.setdefault(name, str(exc))
                raise
            cache[name] = session
            with self._lock:
                self._all.append(session)
        return session

    def drop(self, name: str) -> None:
        session = self._local.__dict__.get("sessions", {}).pop(name, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def _put(sessions: Sessions, job: Job, res: Result, cfg) -> None:
    node = sessions.nodes[job.node]
    session = sessions.get(job.node)
    final = remote_path(node, job.rel, what="remote name")
    res.path = final
    if not job.sha256:  # in the worker threads: hashlib releases the GIL on large buffers
        job.sha256 = sha256_file(job.local)
    for stale_node, part in list(job.stale_parts):  # .part files of attempts cut off mid-way
        if stale_node == job.node:
            session.remove_quietly(part)
            job.stale_parts.remove((stale_node, part))
    if cfg["SKIP_EXISTING"]:
        attrs = session.stat(final)
        if attrs is not None and attrs.st_size == job.size and session.sha256(final) == job.sha256:
            res.status, res.verified, res.sha256 = "skipped", True, job.sha256
            return
    tmp = part_name(final)
    job.stale_parts.append((job.node, tmp))
    session.put_atomic(job.local, final, job.size, job.sha256, cfg["VERIFY"], tmp=tmp)
    job.stale_parts.remove((job.node, tmp))
    res.status, res.bytes, res.verified, res.sha256 = "done", job.size, bool(cfg["VERIFY"]), job.sha256


def _locate(sessions: Sessions, job: Job) -> str:
    """The first node (in NODES order) that has ``job.rel``."""
    errors = []
    for name, node in sessions.nodes.items():
        try:
            if sessions.get(name).stat(remote_path(node, job.rel)) is not None:
                return name
        except FatalNodeError as exc:
            errors.append(str(exc))
    detail = f" (unreachable: {'; '.join(errors)})" if errors else ""
    raise ToolError(f"{job.rel} is on none of the nodes {', '.join(sessions.nodes)}{detail}")


def _get(sessions: Sessions, job: Job, res: Result, cfg) -> None:
    name = job.node or _locate(sessions, job)
    res.node, res.host = name, sessions.nodes[name].host
    node = sessions.nodes[name]
    session = sessions.get(name)
    remote = remote_path(node, job.rel, what="remote name")
    res.path = remote
    if session.stat(remote) is None:
        raise ToolError(f"{session.where()}: {remote} does not exist")
    if cfg["SKIP_EXISTING"] and job.local.exists():
        local_sum = sha256_file(job.local)
        if local_sum == session.sha256(remote):
            res.status, res.verified, res.sha256 = "skipped", True, local_sum
            return
    with atomic_path(job.local) as tmp:
        res.bytes, res.sha256 = session.get_verified(remote, tmp, cfg["VERIFY"])
    res.status, res.verified = "done", bool(cfg["VERIFY"])


def _attempt(sessions: Sessions, job: Job, cfg, log) -> Result:
    """One job with its retries; never raises."""
    res = Result(job, node=job.node or "", host=sessions.nodes[job.node].host if job.node else "",
                 start=time.time())
    retries, delay = cfg["RETRIES"], cfg["RETRY_DELAY"]

    def label() -> str:
        name = res.node or job.node
        where = f"node {name} ({sessions.nodes[name].host})" if name else "the nodes"
        return f"{job.direction} {job.local.name} {'->' if job.direction == 'PUT' else '<-'} {where}"

    for attempt in range(1, retries + 2):
        res.attempts = attempt
        try:
            (_put if job.direction == "PUT" else _get)(sessions, job, res, cfg)
            res.error = ""
            break
        except FatalNodeError as exc:  # host key, login: the message names node and host
            res.status, res.error = "failed", f"{job.local.name}: {exc}"
            break
        except (ToolError, PermissionError) as exc:  # missing file, refused name, no permission
            res.status, res.error = "failed", f"{label()}: {exc}"
            break
        except RETRYABLE as exc:
            text = str(exc) if isinstance(exc, TransferError) else f"{type(exc).__name__}: {exc}"
            res.status = "failed"
            res.error = f"{label()}: attempt {attempt} failed: {text}"
            log.warning("%s", res.error)
            if res.node or job.node:
                sessions.drop(res.node or job.node)
            if attempt <= retries:
                time.sleep(delay * attempt)
    res.end = time.time()
    return res


def _free_disk(sessions: Sessions, names, log) -> dict[str, int]:
    free = {}
    for name in names:
        try:
            free[name] = sessions.get(name).free_bytes()
        except (FatalNodeError, *RETRYABLE) as exc:
            log.warning("free disk of node %s unknown: %s", name, exc)
    return free


_PART = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.part$")  # ssh.part_name's temporary names


def _survey(sessions: Sessions, jobs: dict[str, Job], log, part_max_age: float) -> dict[str, str]:
    """File -> first node (in node order) that has a file of the same relative path and size; one
    directory listing per node and remote directory, not one request per file.

    The same listings find the ``.NAME.<random>.part`` files a killed run left beside the files of
    this run; those older than ``part_max_age`` hours (0: never) are removed.  Younger ones may be
    another run's upload in progress."""
    by_dir: dict[str, list[str]] = {}
    for key, job in jobs.items():
        by_dir.setdefault(posixpath.dirname(job.rel), []).append(key)
    found: dict[str, str] = {}
    oldest = time.time() - part_max_age * 3600
    for name, node in sessions.nodes.items():
        try:
            session = sessions.get(name)
            for directory, keys in by_dir.items():
                where = remote_path(node, directory) if directory else node.root
                try:
                    listing = session.sftp.listdir_attr(where)
                except FileNotFoundError:
                    continue
                sizes = {a.filename: a.st_size for a in listing}
                for key in keys:
                    if key not in found and sizes.get(posixpath.basename(jobs[key].rel)) == jobs[key].size:
                        found[key] = name
                if part_max_age <= 0:
                    continue
                names = {posixpath.basename(jobs[k].rel) for k in keys}
                for a in listing:
                    m = _PART.match(a.filename)
                    if m and m["name"] in names and (a.st_mtime or 0) < oldest:
                        session.remove_quietly(posixpath.join(where, a.filename))
                        log.info("node %s: removed %s, left by an interrupted run", name,
                                 posixpath.join(where, a.filename))
        except (FatalNodeError, *RETRYABLE) as exc:
            log.warning("files already on node %s unknown: %s", name, exc)
    return found


def plan_put(ctx, nodes: dict[str, Node], sessions: Sessions) -> tuple[list[Job], dict[str, str]]:
    """The PUT jobs (file -> node) and the files refused with their reason."""
    cfg = ctx.config
    refused: dict[str, str] = {}
    jobs: dict[str, Job] = {}
    for path in ctx.inputs:
        key = str(path)
        try:
            if not path.is_file():
                raise ToolError(f"input {path} is not a readable file")
            directory = cfg["REMOTE_DIR"]
            if "{" in directory:
                directory = dispatch.expand_template(directory, path)
            rel = check_relative(posixpath.join(directory, path.name) if directory else path.name,
                                 "remote name")
        except (ToolError, OSError) as exc:  # PermissionError: refused name; OSError: unreadable header
            refused[key] = str(exc)
            continue
        jobs[key] = Job("PUT", path, rel, None, size=path.stat().st_size)
    names = list(nodes)
    # a file already on some node (same path and size) stays there: it is checked, not sent again,
    # whichever node the policy would pick today (free space changes between two runs)
    present = _survey(sessions, jobs, ctx.log, cfg["PART_MAX_AGE"]) \
        if cfg["SKIP_EXISTING"] or cfg["PART_MAX_AGE"] > 0 else {}
    if not cfg["SKIP_EXISTING"]:
        present = {}
    if present:
        ctx.log.info("%d file(s) already on a node: their checksums are checked there", len(present))
    todo = [k for k in jobs if k not in present]
    policy = cfg["DISPATCH"]
    if policy == "ROUND_ROBIN":
        plan = dispatch.round_robin(list(jobs), names)  # positions among all files: stable over re-runs
    elif policy == "FREE_SPACE":
        free = _free_disk(sessions, names, ctx.log)
        for name, value in free.items():
            ctx.log.info("node %s: %.1f MB free", name, value / 1e6)
            ctx.record("node", name=name, free_disk=value, time=time.time())
        if not free:
            raise ToolError(f"DISPATCH FREE_SPACE: the free disk of no node could be measured "
                            f"(nodes {', '.join(names)}; see the log)")
        plan = dispatch.free_space({k: jobs[k].size for k in todo}, free, int(cfg["MIN_FREE"] * 1e6))
    else:
        mapping = dispatch.parse_key_map(cfg["DISPATCH_MAP"], names)
        plan = dispatch.by_key(todo, cfg["DISPATCH_KEY"], mapping)
    plan.nodes.update(present)
    refused.update(plan.refused)
    out = []
    for key, job in jobs.items():
        if key in plan.nodes:
            job.node = plan.nodes[key]
            out.append(job)
    return out, refused


def plan_get(ctx, nodes: dict[str, Node]) -> tuple[list[Job], dict[str, str]]:
    """GET inputs are ``node:relative/path`` or ``relative/path`` (looked for on every node)."""
    refused: dict[str, str] = {}
    jobs = []
    local_dir = ctx.config["LOCAL_DIR"]
    for item in ctx.inputs:
        text = str(item)
        node, sep, rel = text.partition(":")
        if not sep or node not in nodes:
            node, rel = None, text
        try:
            rel = check_relative(rel, "remote name")
            local = ctx.output_path(posixpath.join(local_dir, rel) if local_dir else rel)
        except PermissionError as exc:
            refused[text] = str(exc)
            continue
        jobs.append(Job("GET", local, rel, node))
    return jobs, refused


def run_transfers(ctx, nodes: list[Node], settings: SSHSettings) -> list[Result]:
    cfg, log = ctx.config, ctx.log
    by_name = {n.name: n for n in nodes}
    if len(by_name) != len(nodes):
        raise ConfigError("two nodes have the same name", "datatransfer", "NODES")
    sessions = Sessions(by_name, settings, log)
    results: list[Result] = []
    try:
        if cfg["DIRECTION"] == "PUT":
            jobs, refused = plan_put(ctx, by_name, sessions)
        else:
            jobs, refused = plan_get(ctx, by_name)
        for name, reason in refused.items():
            log.error("%s: not transferred: %s", name, reason)
        nthreads = cfg["NTHREADS"] or ctx.nthreads
        with ThreadPoolExecutor(max_workers=max(1, min(nthreads, len(jobs) or 1))) as pool:
            futures = [pool.submit(_attempt, sessions, job, cfg, log) for job in jobs]
            for future in as_completed(futures):  # record each transfer as it ends
                res = future.result()
                results.append(res)
                _record(ctx, res)
        used = sorted({r.node for r in results if r.node and r.node not in sessions.dead})
        for name, value in _free_disk(sessions, used, log).items():
            ctx.record("node", name=name, free_disk=value, time=time.time())
    finally:
        sessions.close()
    failed = [r for r in results if r.status == "failed"]
    moved = sum(r.bytes for r in results)
    log.info("%d file(s) transferred, %d skipped (already there), %d failed, %d refused; %.1f MB sent",
             sum(r.status == "done" for r in results), sum(r.status == "skipped" for r in results),
             len(failed), len(refused), moved / 1e6)
    if (failed or refused) and not any(r.status != "failed" for r in results):
        first = failed[0].error if failed else next(iter(refused.items()))
        raise ToolError(f"datatransfer: every file failed; first error: {first}")
    return results


def _record(ctx, res: Result) -> None:
    job = res.job
    # a GET whose file was found on no node has no node: it is kept verbatim, not as a node's transfer
    ctx.record("transfer" if res.node else "transfer_error",
               direction="out" if job.direction == "PUT" else "in", node=res.node, path=res.path or job.rel,
               bytes=res.bytes, status=res.status, start=res.start, end=res.end, host=res.host,
               local=str(job.local), size=job.size or res.bytes, sha256=res.sha256, verified=res.verified,
               attempts=res.attempts, error=res.error)
    seconds = max(res.end - res.start, 1e-9)
    if res.status == "failed":
        ctx.log.error("%s", res.error)
        return
    ctx.log.info("%s %s %s:%s, %d bytes in %.2f s (%.2f MB/s)%s", job.local.name,
                 "->" if job.direction == "PUT" else "<-", res.node, res.path, res.bytes, seconds,
                 res.bytes / seconds / 1e6, " (already there, skipped)" if res.status == "skipped" else "")
    if job.direction == "PUT" and job.local.name.lower().endswith(FITS_SUFFIXES):
        # the copy on the node, for RDBix's "files distribution across nodes"
        ctx.record("exposure", filename=job.local.name,
                   storage=[{"node": res.node, "path": res.path, "size": job.size, "checksum": res.sha256,
                             "compression": _compression(job.local.name)}])
    elif job.direction == "GET":  # fetched now or already there: the next steps read it
        ctx.add_product(job.local, "download", node=res.node, remote=res.path)


def _compression(name: str) -> str:
    name = name.lower()
    return "fpack" if name.endswith(".fz") else "gzip" if name.endswith(".gz") else "none"
