"""Running Spica's jobs: image-by-image and release modes together, by priority, on one machine or a cluster.

Each job is one generated instruction file, run by the ordinary runner in the release's work directory.
Jobs are taken highest priority first; a field job (chi-squared image, dual-image catalogues) waits for
its stacks; two jobs of one astrometric group never run at the same time, so the second finds the
group's SCAMP solution made and up to date instead of solving it again.  ``parallel`` jobs run at once
(threads here, each running its units on the chosen executor).

Data locality: with a Dask scheduler, a job whose inputs live on node N (``spica_jobs.node``, from
RDBix's storage records) is submitted with the worker resource ``N`` (start each node's worker with
``dask worker --resources "N=1"``), so it runs where its exposures are; a job whose node has no worker runs
anywhere and its input files are fetched (copied) first, the copy being recorded in RDBix's ``transfers``.

The hook ``stack_finished(job)`` fires when a job ends (done or failed); the built-in mail notifier
(:mod:`.notify`) listens to it.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

from sqlalchemy import select, update

from ..db import schema as S
from .grading import SpicaError

__all__ = ["run_jobs", "pending_jobs", "run_one", "reset_job"]

log = logging.getLogger("terapix.spica")


def _now():
    return dt.datetime.now(dt.timezone.utc)


def pending_jobs(db, version: str, modes=("release", "image"), names: list[str] | None = None) -> list[dict]:
    """The jobs of release ``version`` still to run (the named ones also when they failed), by priority.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str
    modes : tuple of str
        ``release`` (stacks, fields) and/or ``image`` (image-by-image).
    names : list of str, optional
        Only these jobs.

    Returns
    -------
    list of dict

    Raises
    ------
    SpicaError
        If a job has no generated files.
    """
    from ..db.engine import connect
    j = S.spica_jobs
    query = select(j).where(j.c.version == version, j.c.mode.in_(list(modes)),
                            j.c.status.in_(["pending", "failed"] if names else ["pending"]))
    if names:
        query = query.where(j.c.name.in_(names))
    with connect(db).connect() as conn:
        jobs = [dict(r._mapping) for r in conn.execute(query.order_by(j.c.priority.desc(), j.c.id))]
    missing = [x["name"] for x in jobs if not x["instruction_file"]]
    if missing:
        raise SpicaError(f"jobs without generated files: {', '.join(missing[:5])} (run terapix spica generate first)")
    return jobs


def _set(db, job_id: int, **values) -> None:
    from ..db.engine import connect
    with connect(db).begin() as conn:
        conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.id == job_id).values(**values))


def reset_job(db, name: str, version: str) -> None:
    """Make a job pending again (a re-run after a fix; its earlier product stays recorded until the new
    one is graded).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    name : str
    version : str

    Raises
    ------
    SpicaError
        If there is no such job.
    """
    from ..db.engine import connect
    with connect(db).begin() as conn:
        n = conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.name == name, S.spica_jobs.c.version == version)
                         .values(status="pending", current_step=None, error=None, end=None)).rowcount
    if not n:
        raise SpicaError(f"no Spica job {name!r} in release {version}")


def run_one(db, job: dict, *, executor: str = "local", jobs: int | None = None, force: bool = False,
            progress: bool = False) -> dict:
    """Run one job's instruction file in its work directory; returns the runner's summary.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    job : dict
        Its ``spica_jobs`` row.
    executor : str
    jobs : int, optional
        Units at the same time.
    force : bool
    progress : bool

    Returns
    -------
    dict
    """
    from ..instructions import load_instructions
    from ..runner import Runner
    doc = load_instructions(job["instruction_file"])
    return Runner(doc, Path(job["workdir"]), jobs=jobs, executor=executor, force=force, db_url=str(db),
                  progress=progress).run()


def _finish(db, job: dict, summary: dict | None, error: str | None, node: str | None) -> dict:
    from ..db.engine import connect
    from ..plugins import get_plugin_manager
    status = "done" if summary is not None and not summary.get("failed") and not summary.get("blocked") \
        and error is None else "failed"
    if error is None and status == "failed":
        error = f"{summary.get('failed', 0)} unit(s) failed, {summary.get('blocked', 0)} blocked (see the run log)"
    values = dict(status=status, end=_now(), error=error, current_step=None if status == "done" else job.get("current_step"))
    if node:
        values["node"] = node
    _set(db, job["id"], **values)
    with connect(db).begin() as conn:
        row = dict(conn.execute(select(S.spica_jobs).where(S.spica_jobs.c.id == job["id"])).one()._mapping)
        if status == "done" and row["stack_id"] is not None:
            # SWarp's own "stack" record (version "") describes the same product: keep one row, Spica's
            tool_row = conn.execute(select(S.stacks.c.id, S.stacks.c.run_id).where(
                S.stacks.c.name == row["name"], S.stacks.c.version == "")).first()
            if tool_row is not None:
                from sqlalchemy import delete
                conn.execute(delete(S.stacks).where(S.stacks.c.id == tool_row.id))
            from .generation import job_products
            from .release import ReleaseSpec
            rel_dir = Path(row["workdir"]) / job_products(ReleaseSpec(row["version"], row["version"], "", Path()),
                                                          row["name"])["release"]
            conn.execute(update(S.stacks).where(S.stacks.c.id == row["stack_id"]).values(
                path=str(rel_dir / f"{row['name']}.fits"), run_id=row["run_id"]))
    try:
        get_plugin_manager().hook.stack_finished(job=row)
    except Exception as exc:  # noqa: BLE001 - a notifier must not stop the release
        log.error("stack_finished hook failed for %s: %s", row["name"], exc)
    return row


def _fetch_inputs(db, job: dict, node: str) -> None:
    """Record the copy of a job's inputs to ``node`` (the job runs away from its data)."""
    from sqlalchemy import insert

    from ..db.engine import connect
    paths = [line.strip() for line in Path(job["instruction_file"]).with_name(f"{job['name']}_stack.lst")
             .read_text().splitlines() if line.strip()] if job["kind"] != "field" else []
    with connect(db).begin() as conn:
        for p in paths:
            size = Path(p).stat().st_size if Path(p).exists() else None
            conn.execute(insert(S.transfers).values(direction="in", node=node, path=p, bytes=size, status="done",
                                                    start=_now(), end=_now()))


def run_jobs(db, version: str, *, modes=("release", "image"), parallel: int = 1, executor: str = "local",
             jobs: int | None = None, scheduler: str | None = None, names: list[str] | None = None,
             force: bool = False, progress: bool = False) -> list[dict]:
    """Run every pending job of release ``version`` (or the named ones), by priority; returns the
    finished job rows.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str
    modes : tuple of str
    parallel : int
        Jobs run at the same time.
    executor : str
    jobs : int, optional
        Units at the same time within a job.
    scheduler : str, optional
        Dask scheduler address.
    names : list of str, optional
    force : bool
    progress : bool

    Returns
    -------
    list of dict
    """
    todo = pending_jobs(db, version, modes, names)
    if not todo:
        return []
    lock = threading.Condition()
    running_groups: set[str] = set()
    finished: list[dict] = []
    failed_names: set[str] = set()
    done_names: set[str] = set()
    from ..db.engine import connect
    with connect(db).connect() as conn:
        done_names |= {n for (n,) in conn.execute(select(S.spica_jobs.c.name).where(
            S.spica_jobs.c.version == version, S.spica_jobs.c.status == "done"))}
    members = _field_members(db, version)
    client = None
    if scheduler:
        from dask.distributed import Client
        client = Client(scheduler)

    def ready(job) -> bool | None:
        """True: can start; False: wait; None: can never run (a stack of its field failed)."""
        if job["astrometric_group"] in running_groups:
            return False
        if job["kind"] == "field":
            need = members.get(job["name"], [])
            if any(n in failed_names for n in need):
                return None
            return all(n in done_names for n in need)
        return True

    def take():
        with lock:
            while True:
                if not todo:
                    return None
                for job in list(todo):
                    state = ready(job)
                    if state is None:
                        todo.remove(job)
                        failed_names.add(job["name"])
                        finished.append(_finish(db, job, None, "a stack of this field failed", None))
                        break
                    if state:
                        todo.remove(job)
                        running_groups.add(job["astrometric_group"])
                        return job
                else:
                    if not running_groups:  # nothing running and nothing ready: inconsistent plan
                        for job in todo:
                            finished.append(_finish(db, job, None, "its stacks were never run", None))
                        todo.clear()
                        return None
                    lock.wait()

    def worker():
        while (job := take()) is not None:
            _set(db, job["id"], status="running", start=_now(), end=None, error=None)
            summary, error, node = None, None, None
            try:
                if client is not None:
                    summary, node = _run_on_cluster(client, db, job, executor="local", jobs=jobs, force=force)
                else:
                    summary = run_one(db, job, executor=executor, jobs=jobs, force=force, progress=progress)
            except Exception as exc:  # noqa: BLE001 - one job's failure is recorded, the others go on
                log.exception("job %s failed", job["name"])
                error = f"{type(exc).__name__}: {exc}"
            row = _finish(db, job, summary, error, node)
            with lock:
                running_groups.discard(job["astrometric_group"])
                (done_names if row["status"] == "done" else failed_names).add(job["name"])
                finished.append(row)
                lock.notify_all()

    threads = [threading.Thread(target=worker, name=f"spica-{i}") for i in range(max(1, parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if client is not None:
        client.close()
    return finished


def _field_members(db, version: str) -> dict[str, list[str]]:
    """Field job name -> the stack job names it needs (read from the field's generated instruction file
    inputs: the stacks it combines)."""
    from ..db.engine import connect
    j = S.spica_jobs
    with connect(db).connect() as conn:
        rows = conn.execute(select(j.c.name, j.c.kind, j.c.instruction_file).where(j.c.version == version)).all()
    stacks = {r.name for r in rows if r.kind == "stack"}
    out = {}
    for r in rows:
        if r.kind == "field" and r.instruction_file and Path(r.instruction_file).exists():
            text = Path(r.instruction_file).read_text()
            out[r.name] = sorted(n for n in stacks if f"/{n}.fits" in text)
    return out


def _run_on_cluster(client, db, job: dict, **kw):
    """Submit the whole job to a worker of the node holding its inputs (worker resource named after the
    node); without such a worker, anywhere, after recording the fetch of its inputs."""
    info = client.scheduler_info()
    nodes = {r for w in info["workers"].values() for r in (w.get("resources") or {})}
    resources = {job["node"]: 1} if job.get("node") in nodes else None
    future = client.submit(_cluster_task, str(db), job, kw, resources=resources, pure=False,
                           key=f"spica-{job['name']}-{job['id']}")
    summary, worker_node = future.result()
    if resources is None:
        _fetch_inputs(db, job, worker_node)
    return summary, worker_node


def _cluster_task(db: str, job: dict, kw: dict):
    """Runs on a Dask worker: the job, and the node (resource name) of the worker that ran it."""
    from dask.distributed import get_worker
    worker = get_worker()
    node = next(iter(worker.state.total_resources), None) if getattr(worker, "state", None) else None
    node = node or worker.name
    # the worker records the node through the run hooks as any run would
    summary = run_one(db, job, executor=kw.get("executor", "local"), jobs=kw.get("jobs"), force=kw.get("force", False))
    return summary, str(node)
