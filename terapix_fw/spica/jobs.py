"""Running Spica's jobs: image-by-image and release modes together, by priority, on one machine or a cluster.

Each job is one generated instruction file, run by the ordinary runner in the release's work directory.
Image-by-image jobs, stacks and fields of every mode go to one scheduler (:class:`terapix_fw.scheduler.
Scheduler`) with ``parallel`` worker slots: when slots are scarce, the ready task of highest priority
(``spica_jobs.priority``: the release file's per mode and component, or the operator's ``terapix spica run
--priority``) starts first.  The tasks:

- the *astrometric solution* of each group (the steps of the group's first job up to and including its
  ``scamp_<group>`` step, run as ``astrometry_<group>``): solved once; a solution whose astrometric list
  shares exposures with a solution of higher priority runs after it (and finds their catalogues made);
- each stack or image-by-image job, after its group's solution: its runner finds the solution's units up to
  date (recorded ``skipped``) instead of solving again, so the jobs of one group run side by side;
- each field job (chi-squared image, dual-image catalogues), after its stacks.

Data locality: with a Dask scheduler, a job whose inputs live on node N (``spica_jobs.node``, from
RDBix's storage records) is submitted with the worker resource ``N`` (start each node's worker with
``dask worker --resources "N=1"``), so it runs where its exposures are; a job whose node has no worker runs
anywhere and its input files are fetched (copied) first, the copy being recorded in RDBix's ``transfers``.

The hook ``stack_finished(job)`` fires when a job ends (done or failed); the built-in mail notifier
(:mod:`.notify`) listens to it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update

from ..db import schema as S
from .grading import SpicaError

__all__ = ["run_jobs", "pending_jobs", "run_one", "reset_job", "set_priority", "solution_steps", "SOLUTION_PREFIX"]

#: the run name of an astrometric solution: ``astrometry_<group>``
SOLUTION_PREFIX = "astrometry_"

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
            progress: bool = False, solution: str | None = None, solved: str | None = None) -> dict:
    """Run one job's instruction file in its work directory.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    job : dict
        Its ``spica_jobs`` row.
    executor : str
        The runner's executor (``local``, ``dask``...).
    jobs : int, optional
        Units at the same time.
    force : bool
        Re-run steps that are up to date.
    progress : bool
        Show the runner's progress.
    solution : str, optional
        An astrometric group: run only the steps that make that group's solution, as a run named
        ``astrometry_<group>`` (which does not touch the job's status).
    solved : str, optional
        An astrometric group whose solution its own run has just made: with ``force``, the steps that
        make it are not run again (the job finds them up to date).

    Returns
    -------
    dict
        The runner's summary.
    """
    from ..instructions import load_instructions
    from ..runner import Runner
    doc = load_instructions(job["instruction_file"])
    if solution is not None:
        keep = set(solution_steps(doc, solution))
        doc = dataclasses.replace(doc, name=f"{SOLUTION_PREFIX}{solution}",
                                  steps=[s for s in doc.steps if s.id in keep])
    elif force and solved is not None:  # a forced re-run: the group's solution is made once, by its run
        made = set(solution_steps(doc, solved))
        force = frozenset(s.id for s in doc.steps if s.id not in made)
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


def set_priority(db, version: str, target: str, priority: int) -> list[str]:
    """The operator's priority for some jobs of a release (higher runs first when workers are scarce).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str
        The release.
    target : str
        A job name or glob, or a mode (``image``, ``release``) or kind (``stack``, ``field``, ``image``).
    priority : int
        The new priority.

    Returns
    -------
    list of str
        The names of the jobs changed.

    Raises
    ------
    SpicaError
        If no job of the release matches ``target``.
    """
    import fnmatch

    from ..db.engine import connect
    j = S.spica_jobs
    with connect(db).begin() as conn:
        rows = conn.execute(select(j.c.id, j.c.name, j.c.mode, j.c.kind).where(j.c.version == version)).all()
        hit = [r for r in rows if target in (r.mode, r.kind) or fnmatch.fnmatchcase(r.name, target)]
        if not hit:
            raise SpicaError(f"--priority {target}={priority}: no job of release {version} is named so, "
                             f"nor has that mode (image, release) or kind (stack, field, image)")
        conn.execute(update(j).where(j.c.id.in_([r.id for r in hit])).values(priority=priority))
    return [r.name for r in hit]


@dataclass
class _Task:
    """One thing the release scheduler hands to a worker slot: a job, or the astrometric solution of a
    group (run once, before the group's jobs)."""

    key: str
    job: dict                      # the job (for a solution: the group's job that runs it)
    solution: str | None = None    # astrometric group, for a solution task
    solved: str | None = None      # astrometric group whose solution task this job waits for
    deps: list[str] = field(default_factory=list)


def solution_steps(doc, group: str) -> list[str]:
    """The steps that make an astrometric group's solution in a job's instruction document.

    Parameters
    ----------
    doc : Instructions
        The job's loaded instruction file.
    group : str
        The astrometric group.

    Returns
    -------
    list of str
        Ids of its SCAMP step ``scamp_<group>`` and of every step upstream of it, in document order
        ([] when the job solves nothing).
    """
    ids = {s.id for s in doc.steps}
    target = f"scamp_{group}"
    if target not in ids:
        return []
    need, todo = set(), [target]
    while todo:
        step = doc.step(todo.pop())
        if step.id in need:
            continue
        need.add(step.id)
        todo += [i.step for i in step.inputs if i.step] + list(step.depends)
    return [s.id for s in doc.steps if s.id in need]


def _astrometric_files(job: dict) -> set[str]:
    lst = Path(job["instruction_file"]).with_name(f"{job['name']}_astrom.lst")
    return set(lst.read_text().split()) if lst.exists() else set()


def _tasks(db, version: str, todo: list[dict], done_names: set[str]) -> tuple[list[_Task], dict[str, str]]:
    """The task graph of a run: one solution per astrometric group (ahead of the group's jobs, and after
    any solution sharing exposures with it, whose catalogues it then finds made), every job after its
    group's solution, every field after its stacks.  Also returns the jobs that can never run, with why."""
    from ..instructions import load_instructions
    tasks: list[_Task] = []
    solutions: dict[str, _Task] = {}
    lists: dict[str, set[str]] = {}
    for job in todo:  # highest priority first: a group's solution is run by its first job
        group = job["astrometric_group"]
        if job["kind"] == "field" or not group or group in solutions:
            continue
        if solution_steps(load_instructions(job["instruction_file"]), group):
            files = _astrometric_files(job)
            after = [t.key for g, t in solutions.items() if files & lists[g]]
            solutions[group] = _Task(f"solution {group}", job, group, after)
            lists[group] = files
            tasks.append(solutions[group])
    names = {j["name"] for j in todo}
    members = _field_members(db, version)
    never: dict[str, str] = {}
    for job in sorted(todo, key=lambda j: j["kind"] == "field"):  # fields after the stacks they need
        deps, solved = [], None
        if job["kind"] == "field":
            need = members.get(job["name"], [])
            missing = [n for n in need if n not in names and n not in done_names]
            if missing:
                never[job["name"]] = f"its stacks were never run ({', '.join(missing)})"
                continue
            deps = [f"job {n}" for n in need if n in names]
        elif job["astrometric_group"] in solutions:
            solved = job["astrometric_group"]
            deps = [solutions[solved].key]
        tasks.append(_Task(f"job {job['name']}", job, deps=deps, solved=solved))
    return tasks, never


def run_jobs(db, version: str, *, modes=("release", "image"), parallel: int = 1, executor: str = "local",
             jobs: int | None = None, scheduler=None, names: list[str] | None = None,
             force: bool = False, progress: bool = False) -> list[dict]:
    """Run every pending job of release ``version`` (or the named ones), image-by-image and release modes
    together on ``parallel`` worker slots, highest priority first.

    Slots are threads of this process, each running one job's instruction file (its units on
    ``executor``), or, with ``scheduler``, tasks on the cluster's workers.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str
        The release (``T0001``...).
    modes : tuple of str
        ``release`` and/or ``image``.
    parallel : int
        Jobs run at the same time (worker slots).
    executor : str
        The runner's executor for each job's units.
    jobs : int, optional
        Units at the same time within a job (default: the cores shared among the tasks running at once).
    scheduler : str or distributed.Client, optional
        A Dask scheduler address or client: the slots are tasks on its workers.
    names : list of str, optional
        Only these jobs.
    force : bool
        Re-run steps that are up to date.
    progress : bool
        Show the runner's progress.

    Returns
    -------
    list of dict
        The finished job rows.
    """
    import concurrent.futures as cf

    from ..db.engine import connect
    from ..scheduler import Scheduler

    todo = pending_jobs(db, version, modes, names)
    if not todo:
        return []
    with connect(db).connect() as conn:
        done_names = {n for (n,) in conn.execute(select(S.spica_jobs.c.name).where(
            S.spica_jobs.c.version == version, S.spica_jobs.c.status == "done"))}
    tasks, never = _tasks(db, version, todo, done_names)
    finished = [_finish(db, job, None, never[job["name"]], None) for job in todo if job["name"] in never]
    by_key = {t.key: t for t in tasks}
    sched = Scheduler(retries=0)
    for t in tasks:  # solutions, then jobs, then fields: dependencies are submitted first
        sched.submit(t.key, t.job["priority"], t.deps)
    client, own_client = scheduler, False
    if isinstance(scheduler, str):
        from dask.distributed import Client
        client, own_client = Client(scheduler), True
    slots = max(1, parallel)
    cores = os.cpu_count() or 1
    errors: dict[str, str] = {}

    def work(task: _Task, unit_jobs: int):
        solved = task.solved
        if client is not None:
            return _run_on_cluster(client, db, task.job, executor="local", jobs=unit_jobs, force=force,
                                   solution=task.solution, solved=solved)
        # one job's progress display at a time: two would overwrite each other's terminal line
        return run_one(db, task.job, executor=executor, jobs=unit_jobs, force=force, progress=progress and slots == 1,
                       solution=task.solution, solved=solved), None

    def ended(task: _Task, summary, error, node) -> None:
        ok = error is None and summary is not None and not summary.get("failed") and not summary.get("blocked")
        if task.solution is not None:
            if ok:
                sched.complete(task.key)
            else:
                why = error or f"{summary.get('failed', 0)} unit(s) failed (see the run log)"
                errors[task.key] = why
                log.error("astrometric solution %s failed: %s", task.solution, why)
                _blocked(sched.fail(task.key))
            return
        row = _finish(db, task.job, summary, error, node)
        finished.append(row)
        if row["status"] == "done":
            sched.complete(task.key)
        else:
            errors[task.key] = row["error"]
            _blocked(sched.fail(task.key))

    def _blocked(pairs) -> None:
        for key, cause in pairs:
            task = by_key[key]
            why = (f"astrometric solution {by_key[cause].solution} failed: {errors.get(cause)}"
                   if by_key[cause].solution else f"{by_key[cause].job['name']} failed")
            errors[key] = why
            if task.solution is None:
                finished.append(_finish(db, task.job, None, why if task.job["kind"] != "field" else
                                        f"a stack of this field failed ({by_key[cause].job['name']})", None))

    running: dict = {}
    with cf.ThreadPoolExecutor(slots, thread_name_prefix="spica") as pool:
        try:
            while not sched.finished:
                while sched.has_ready and len(running) < slots:
                    task = by_key[sched.pop_ready()]
                    # the cores are shared among the tasks that will run at once
                    at_once = min(slots, len(running) + 1 + sched.count("ready"))
                    unit_jobs = jobs or max(1, cores // at_once)
                    if task.solution is None:
                        _set(db, task.job["id"], status="running", start=_now(), end=None, error=None)
                    log.info("start %s (priority %s)", task.key, task.job["priority"])
                    running[pool.submit(work, task, unit_jobs)] = task
                if not running:  # cannot happen: the scheduler refuses cycles and unknown dependencies
                    raise RuntimeError(f"Spica stalled with {sched.count('pending')} tasks waiting")
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    summary, node, error = None, None, None
                    try:
                        summary, node = future.result()
                    except Exception as exc:  # noqa: BLE001 - one task's failure is recorded, the others go on
                        log.exception("%s failed", task.key)
                        error = f"{type(exc).__name__}: {exc}"
                    ended(task, summary, error, node)
        finally:
            if own_client:
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
    what = f"astrometry-{kw['solution']}" if kw.get("solution") else job["name"]
    future = client.submit(_cluster_task, str(db), job, kw, resources=resources, pure=False,
                           key=f"spica-{what}-{job['id']}-{os.urandom(4).hex()}")
    summary, worker_node = future.result()
    if resources is None and job.get("node") and not kw.get("solution"):
        _fetch_inputs(db, job, worker_node)
    return summary, worker_node


def _cluster_task(db: str, job: dict, kw: dict):
    """Runs on a Dask worker: the job, and the node (resource name) of the worker that ran it."""
    from dask.distributed import get_worker
    worker = get_worker()
    node = next(iter(worker.state.total_resources), None) if getattr(worker, "state", None) else None
    node = node or worker.name
    # the worker records the node through the run hooks as any run would
    summary = run_one(db, job, executor=kw.get("executor", "local"), jobs=kw.get("jobs"), force=kw.get("force", False),
                      solution=kw.get("solution"), solved=kw.get("solved"))
    return summary, str(node)
