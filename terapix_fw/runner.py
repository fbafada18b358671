"""The runner: instruction file -> task graph -> executor, with resume, retries, recording and history.

Flow: validate everything, build every (step, unit) before running anything, then submit ready units in
priority order (higher first) to the executor, at most as many as it can run at once so that priorities
matter.  A unit whose inputs, tool version and configuration are unchanged and whose products exist is
skipped (``force`` re-runs it).  A lost worker is retried up to ``retries`` times; a tool error is not
retried, is reported with the unit's log, and blocks the units downstream of it.

Who does what: :class:`~terapix_fw.scheduler.Scheduler` decides (which unit next, which wait, which are
blocked, whether a lost one is retried) and does no I/O; :class:`Runner` prepares units, finds them up to
date and drives the executor; ``_RunBook`` records each end (history, state files, hooks, step ends);
:class:`~terapix_fw.progress.Progress` shows it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from .atomic import confine, sha256_file, write_text_atomic
from .errors import ConfigError
from .execute import UnitSpec
from .executors import make_executor
from .graph import Unit, build_graph, check_outputs, file_stem, unit_tokens
from .history import UnitRecord, write_history
from .instructions import Instructions, load_instructions, substitute_unit_tokens
from .model import RunInfo, StepInfo, UnitInfo
from .plugins import get_plugin_manager, get_tool
from .progress import Progress, warmup_reason
from .scheduler import Scheduler
from .tool import Product, UnitResult

__all__ = ["run_instructions", "Runner"]

log = logging.getLogger("terapix.run")


def _files_named_by(params, config) -> list[str]:
    """The existing files that a unit's configuration names as inputs: the values of its ``path``
    parameters that are not outputs (``WEIGHT_IMAGE``, ``FILTER_NAME``, ``PARAMETERS_NAME``,
    ``ASTREFCAT_NAME``...), without an extension selector (``weights.fits[2]``), as absolute paths.

    Parameters
    ----------
    params : ParameterSet
        The tool's parameters.
    config : Config
        The unit's resolved configuration.

    Returns
    -------
    list of str
        Paths in parameter order; values naming no regular file (a default not in use, a built-in
        name) are left out.
    """
    from .fitsimage import split_selector

    files: list[str] = []
    for param in params:
        if param.type != "path" or param.is_output:
            continue
        value = config[param.name]
        for text in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(text, str) or not text:
                continue
            name = split_selector(text)[0] if text.endswith("]") else text
            path = Path(name)
            if path.is_file():
                files.append(str(path.resolve()))
    return list(dict.fromkeys(files))


class _Checksums:
    """sha256 of input files: the persistent digest cache (:mod:`terapix_fw.db.digests`, in RDBix) first,
    else computed (and stored there at the end of the run).

    :meth:`prefetch` looks the files a run will ask for up in the cache and hashes the others in a
    background thread (hashlib releases the GIL), so that a unit is not held back at its submission by the
    hashing of its inputs while workers wait for it.

    Parameters
    ----------
    store : callable or None
        Makes the :class:`~terapix_fw.db.digests.DigestStore` (called in the background thread, so that
        opening RDBix overlaps the start of the workers); None: in memory only.
    """

    def __init__(self, store=None):
        from .db.digests import DigestCache

        self._make_store = store
        self.cache = DigestCache()
        self._ahead: dict[str, object] = {}  # file -> Future of a prefetched (digest, stamp)
        self._pool = None
        self._opened = None  # Future of the store's opening

    def _pool_submit(self, fn, *args):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="terapix-checksums")
        return self._pool.submit(fn, *args)

    def _open_store(self) -> None:
        if self._make_store is not None and self.cache.store is None:
            try:
                self.cache.store = self._make_store()
            except Exception as exc:  # noqa: BLE001 - no cache is slower, not wrong; RDBix reports its own error
                log.warning("digest cache unavailable (%s): every input is hashed", exc)
            self._make_store = None

    def prefetch(self, files) -> None:
        """Look ``files`` up in the digest cache, then start hashing, in order, those not found.

        Parameters
        ----------
        files : iterable of str
        """
        files = [f for f in dict.fromkeys(files) if f not in self._ahead]
        self._opened = self._pool_submit(self._open_store)
        self._pool_submit(self.cache.preload, files)
        for file in files:
            self._ahead[file] = self._pool_submit(self.cache.stamped_digest, file)

    def __call__(self, file: str) -> str:
        ahead = self._ahead.pop(file, None)
        if ahead is not None:
            from .db.digests import file_stamp
            try:
                digest, stamp = ahead.result()
                if stamp == file_stamp(file):  # unchanged since it was hashed ahead
                    return digest
            except OSError:
                pass  # gone or unreadable then: read again now, which reports it
        if self._opened is None:
            self._opened = self._pool_submit(self._open_store)
        self._opened.result()
        return self.cache.digest(file)

    def know_products(self, products) -> None:
        """Remember the digests of a unit's products, computed by its worker as it wrote them, so that the
        units reading them do not hash them again.

        Parameters
        ----------
        products : list of Product
        """
        for p in products:
            self.cache.know(p.path, p.checksum, p.size)

    def close(self) -> None:
        """Stop prefetching (what is left of it is not needed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead.clear()

    def save(self) -> None:
        """Store the digests computed in this run in the persistent cache (a failure is logged)."""
        try:
            self.cache.flush()
        except Exception as exc:  # noqa: BLE001 - the run's results do not depend on it
            log.warning("digest cache not updated: %s", exc)

    def summary(self) -> str:
        """``input digests: N cached, M computed`` (distinct file versions).

        Returns
        -------
        str
        """
        return f"input digests: {len(self.cache.from_store)} cached, {len(self.cache.computed)} computed"


def _digest_store(db_url: str | None, workdir: Path):
    from .db.digests import DigestStore
    return DigestStore.for_run(db_url, workdir)


class NothingToDo(Exception):
    """A unit whose inputs all come from units that produced nothing (e.g. a quarantined exposure's
    ingestion): it is skipped, with the reason, instead of failing."""


def _match_by_stem(candidates: list[str], inputs: list[str]) -> list[str]:
    """Order per-input products (weights, ``.head`` files) like the inputs they belong to.

    A keyword such as SWarp's WEIGHT_IMAGE or HEADER_NAME takes one file per input, in input order.
    When a step's products cover several inputs (SCAMP writes one ``.head`` per catalogue), the file of
    input ``700001p.fits`` is the one named ``700001p.*``; if every input finds exactly one, that order is
    used, otherwise the candidates are passed as they are.
    """
    if len(candidates) <= 1 or not inputs:
        return candidates
    matched = []
    for path in inputs:
        stem = file_stem(path)
        hits = [c for c in candidates if Path(c).name.startswith(stem + ".")]
        if len(hits) != 1:
            return candidates
        matched.append(hits[0])
    return matched


class Runner:
    """Runs the task graph of one instruction file: schedules units by dependency and priority, skips those
    already done with unchanged inputs and configuration, retries lost workers, records everything.

    Parameters
    ----------
    doc : Instructions
        The loaded instruction file.
    workdir : Path
        The run's work directory (state, logs, history and step outputs go there).
    jobs : int, optional
        Units run at the same time (the number of cores by default).
    executor : str
        ``local`` (a process pool) or ``dask``.
    scheduler : str, optional
        Address of a Dask scheduler (implies ``dask``).
    force : bool or set of str
        Run every unit again, even those up to date (True), or the units of these steps only.
    retries : int
        Times a unit whose worker was lost is run again.
    db_url : str, optional
        RDBix database URL (``rdbix.sqlite`` in the work directory by default).
    progress : bool
        Show progress on the terminal.
    """
    def __init__(self, doc: Instructions, workdir: Path, *, jobs: int | None = None, executor: str = "local",
                 scheduler: str | None = None, force: bool | frozenset[str] = False, retries: int = 2,
                 db_url: str | None = None, progress: bool = True):
        self.doc = doc
        self.workdir = workdir.resolve()
        self.jobs, self.executor_kind, self.scheduler = jobs, executor, scheduler
        self.force, self.retries, self.db_url, self.show_progress = force, retries, db_url, progress
        self.state_dir = self.workdir / ".terapix" / "state"
        self.checksums = _Checksums(lambda: _digest_store(db_url, self.workdir))
        self.hook = get_plugin_manager().hook
        self._step_sizes: dict[str, int] = {}

    # -- per-unit preparation -------------------------------------------------------------------------
    def _step_info(self, step) -> StepInfo:
        info = get_tool(step.tool)
        params = info.cls.parameter_set()
        layers = step.config_layers()
        raw = {name: value for layer in layers for name, value, _ in layer}
        strings = {p.name: p.format(p.default) for p in params}
        non_defaults = {}
        for name, value in raw.items():
            key = params.lookup(name).name
            strings[key] = value
            non_defaults[key] = value
        return StepInfo(id=step.id, tool=step.tool, tool_version=info.version, distribution=info.distribution,
                        fanout=step.fanout, priority=step.priority, depends=list(step.depends), config=strings,
                        non_defaults=non_defaults, config_file=step.config_file)

    def _resolve_items(self, unit: Unit, results: dict[str, UnitResult]) -> tuple[list[str], dict[str, list[str]]]:
        def paths(item) -> list[str]:
            if item.path:
                return [item.path]
            made = results[item.unit].products
            found = [p.path for p in made if p.kind == item.kind]
            if not found and made:  # products, but not of that kind: a wrong kind in the instruction file
                raise ConfigError(f"unit {item.unit} produced no product of kind {item.kind!r}; "
                                  f"it produced {sorted({p.kind for p in made})}", unit.step.where)
            return found  # a unit that produced nothing (ingestion quarantined its file) gives nothing

        inputs = [p for item in unit.items for p in paths(item)]
        if unit.items and not inputs:
            raise NothingToDo(f"nothing to do: {', '.join(sorted({i.unit for i in unit.items if i.unit}))} "
                              f"produced nothing")
        params = {name: _match_by_stem([p for item in items for p in paths(item)], inputs)
                  for name, items in unit.param_items.items()}
        return inputs, params

    def _configure(self, unit: Unit, inputs: list[str], param_inputs: dict[str, list[str]]):
        """The unit's configuration layers and its resolved, validated configuration."""
        step = unit.step
        tokens = unit_tokens(unit, inputs)
        params = get_tool(step.tool).cls.parameter_set()
        # defaults may hold unit tokens too ("{stem}.cat"): substitute them like explicit values
        token_defaults = [(p.name, value, "default") for p in params if isinstance(p.default, str)
                          and (value := substitute_unit_tokens(p.default, tokens)) != p.default]
        layers = [token_defaults] + [[(k, substitute_unit_tokens(v, tokens), w) for k, v, w in layer]
                                     for layer in step.config_layers()]
        layers.append([(name, ",".join(paths), f"input of step {step.id}") for name, paths in param_inputs.items()])
        return params, layers, params.resolve(*layers)  # per-unit values are validated here, before submission

    def _files_to_hash(self, order: list[Unit]):
        """The raw inputs of the run's units, then the files named by the configuration of the units that
        read raw inputs only (the weight maps beside the exposures): what :meth:`_Checksums.prefetch` can
        start hashing before the first submission."""
        yield from (item.path for u in order for item in u.items if item.path)
        for unit in order:
            if all(item.path for item in unit.items) and not unit.param_items:
                try:
                    params, _, config = self._configure(unit, [item.path for item in unit.items], {})
                except Exception:  # noqa: BLE001 - a bad value is reported by the unit's own preparation
                    continue
                yield from _files_named_by(params, config)

    def _prepare(self, unit: Unit, results: dict[str, UnitResult]) -> tuple[UnitSpec, UnitInfo, UnitRecord]:
        step = unit.step
        info = get_tool(step.tool)
        inputs, param_inputs = self._resolve_items(unit, results)
        params, layers, config = self._configure(unit, inputs, param_inputs)
        digests = [(p, self.checksums(p)) for p in inputs + [q for v in param_inputs.values() for q in v]]
        named = [p for p in _files_named_by(params, config) if p not in dict(digests)]
        # files the configuration names (weight maps, filters, parameter lists, reference catalogues) are
        # inputs too: a changed weight map re-runs the unit, and the history records which one was used
        file_digests = [(p, self.checksums(p)) for p in named]
        key = hashlib.sha256(json.dumps({
            "tool": info.name, "version": info.version, "config": config.as_strings(), "inputs": digests,
            "files": file_digests,
            "extension": unit.extension, "group": unit.group}, sort_keys=True).encode()).hexdigest()
        outdir = confine(self.workdir, step.outdir or step.id, "step outdir")
        spec = UnitSpec(step=step.id, unit=unit.id, tool=info.name, config_layers=layers, inputs=inputs,
                        outdir=str(outdir), log_path=str(self.workdir / "logs" / step.id / f"{unit.id}.log"),
                        extension=unit.extension, group=unit.group, key=key,
                        tool_ref=f"{info.cls.__module__}:{info.cls.__qualname__}",
                        nthreads=step.threads or self._unit_threads(step.id))
        uinfo = UnitInfo(id=unit.id, step=step.id, inputs=[p for p, _ in digests], extension=unit.extension,
                         group=unit.group, key=key, config=config.as_strings())
        record = UnitRecord(step=step.id, unit=unit.id, tool=info.name, status="pending",
                            inputs=digests + file_digests,
                            args=[f"{p}[{unit.extension}]" if unit.extension is not None else p for p in inputs],
                            config=config.as_strings(), outdir=str(outdir),
                            command=[c for k, v in config.non_defaults().items() for c in (f"-{k}", params[k].format(v))])
        return spec, uinfo, record

    def _unit_threads(self, step_id: str) -> int:
        """Cores per unit: the cores shared by the units of the step that run at once (a step of one
        stack gets every core; a step of many exposures one core each, as many units as cores running:
        threads or forked workers inside a unit would only compete with the other units)."""
        cores = os.cpu_count() or 1
        at_once = min(self.jobs or cores, self._step_sizes.get(step_id, 1))
        return max(1, cores // max(1, at_once))

    def _worker_preload(self) -> list[str]:
        """Modules the run's tools want imported in their workers before the first unit (each tool's
        module and its :attr:`~terapix_fw.tool.Tool.worker_preload`)."""
        modules: list[str] = []
        for tool in dict.fromkeys(step.tool for step in self.doc.steps):
            modules += get_tool(tool).cls.preload_modules()
        return list(dict.fromkeys(modules))

    def _some_unit_runs(self, order: list[Unit]) -> bool:
        """Whether some unit will surely run (forced, or never recorded done)."""
        return any(self._forces(u.step.id) or not self._state_path(u).exists() for u in order)

    def _forces(self, step_id: str) -> bool:
        """Whether the units of step ``step_id`` run again even when up to date."""
        return self.force is True or (not isinstance(self.force, bool) and step_id in self.force)

    def _state_path(self, unit: Unit) -> Path:
        return self.state_dir / unit.step.id / f"{unit.id}.json"

    def _up_to_date(self, unit: Unit, key: str) -> list[Product] | None:
        try:
            state = json.loads(self._state_path(unit).read_text())
        except (OSError, ValueError):
            return None
        if state.get("key") != key:
            return None
        products = [Product(**p) for p in state["products"]]
        for p in products:
            if not os.path.exists(p.path) or os.path.getsize(p.path) != p.size:
                return None
        return products

    def _save_state(self, unit: Unit, result: UnitResult) -> None:
        state = {"key": result.key, "products": [p.__dict__ for p in result.products], "end": result.end}
        write_text_atomic(self._state_path(unit), json.dumps(state, indent=1))

    # -- main loop ------------------------------------------------------------------------------------
    def run(self) -> dict[str, int]:
        """Run every unit that is not up to date; write the run log and the processing history.

        Returns
        -------
        dict
            Counts of units by status (``done``, ``skipped``, ``failed``, ``blocked``) and history paths.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        log_path = self.workdir / "logs" / f"run-{stamp}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root_logger = logging.getLogger("terapix")
        root_logger.addHandler(handler)
        if root_logger.level == logging.NOTSET or root_logger.level > logging.INFO:
            root_logger.setLevel(logging.INFO)
        try:
            return self._run(log_path)
        finally:
            root_logger.removeHandler(handler)
            handler.close()

    # -- one run per work directory; a killed run is found at the next start ------------------------
    def _claim_workdir(self, run: RunInfo):
        """Lock the work directory for this instruction document and write the run id in
        ``.terapix/run.lock`` (``run-<name>.lock`` for a document named otherwise than "run"); a run id
        found there under a free lock is a run that was killed (``kill -9``, power loss) before it could
        record its end: it is recorded ``interrupted`` now instead of staying ``running`` for ever.

        The lock is per document name: two runs of one instruction file in one work directory would
        write the same products, while different documents may share a directory on purpose (Spica's
        jobs of one release share its astrometric products)."""
        import fcntl
        import re

        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.doc.name or "run")[:100]
        path = self.workdir / ".terapix" / ("run.lock" if name == "run" else f"run-{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().split()
            handle.close()
            raise ConfigError(f"another terapix run ({other[0] if other else 'unknown run id'}) is using the work "
                              f"directory {self.workdir}; wait for it or give another --workdir") from None
        handle.seek(0)
        previous = handle.read().split()
        if previous and previous[0] != run.run_id:
            stale = RunInfo(name=self.doc.name, version=self.doc.version, instruction_file=str(self.doc.path),
                            workdir=str(self.workdir), executor=run.executor, db_url=self.db_url,
                            run_id=previous[0])
            log.warning("run %s in %s was killed before it ended: recorded as interrupted", previous[0],
                        self.workdir)
            self.hook.run_finished(run=stale, summary={"interrupted": 1})
        handle.seek(0)
        handle.truncate()
        handle.write(f"{run.run_id} {os.getpid()}\n")
        handle.flush()
        os.fsync(handle.fileno())
        return handle

    @staticmethod
    def _release_workdir(handle) -> None:
        """The run recorded its end: empty the lock file (nothing to recover) and free the lock."""
        import fcntl

        handle.seek(0)
        handle.truncate()
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def _query_db(self):
        url = self.db_url or os.environ.get("TERAPIX_DB_URL") or f"sqlite:///{self.workdir / 'rdbix.sqlite'}"

        def select(criteria):
            # imported when an input set queries RDBix only: SQLAlchemy's import (0.3-0.5 s) then overlaps
            # the workers' start instead of delaying it
            from .db.query import select_paths
            return select_paths(url, criteria)
        return select

    def _run(self, log_path: Path) -> dict[str, int]:
        doc = self.doc
        graph = build_graph(doc, self._query_db())
        check_outputs(graph, self.workdir)  # two units writing one file: refused before anything runs
        steps = {s.id: self._step_info(s) for s in doc.steps}
        run = RunInfo(name=doc.name, version=doc.version, instruction_file=str(doc.path), workdir=str(self.workdir),
                      executor=self.executor_kind if not self.scheduler else "dask", db_url=self.db_url,
                      parameters=dict(doc.parameters))
        log.info("run %s of %s %s: %d steps, %d units; log %s", run.run_id, doc.name, doc.version, len(steps),
                 len(graph.units), log_path)
        order = graph.order()
        sched = Scheduler(self.retries)
        for u in order:  # dependencies first: a cycle or an unknown dependency is refused here
            sched.submit(u.key, u.priority, u.deps)
        units = {u.key: u for u in order}
        step_units = {s: [u.key for u in graph.by_step(s)] for s in steps}
        self._step_sizes = {s: len(keys) for s, keys in step_units.items()}
        # the first unit of a tool compiled at first use is a phase of its own on the terminal and in the log
        warmups = {tool: reason for tool in {s.tool for s in doc.steps}
                   if (reason := warmup_reason(get_tool(tool).cls))}
        progress = Progress(len(order), self.show_progress, warmups=warmups)
        claim = self._claim_workdir(run)
        # the raw inputs' digests (and their weight maps') are computed meanwhile (the products of
        # upstream units when they come)
        self.checksums.prefetch(self._files_to_hash(order))
        preload = self._worker_preload()
        # a local pool is made now when some unit has no state (it will run): its workers' imports then
        # overlap the hashing of the inputs and the opening of RDBix; otherwise (everything may be up to
        # date) at the first submission
        executor = make_executor("local", self.jobs, preload=preload) \
            if self.executor_kind == "local" and not self.scheduler and self._some_unit_runs(order) else None
        self.hook.run_started(run=run)
        book = _RunBook(self, run, steps, units, step_units, sched, progress)
        running: dict = {}  # future -> (unit, spec, uinfo)

        finished_cleanly = False
        try:
            while not sched.finished:
                while sched.has_ready:
                    capacity = executor.capacity if executor else (self.jobs or os.cpu_count() or 1)
                    if len(running) >= capacity:
                        break
                    unit = units[sched.pop_ready()]
                    launch = book.prepare(unit)
                    if launch is None:  # finished without running: up to date, nothing to do, bad config
                        continue
                    spec, uinfo = launch
                    progress.unit_started(unit.step.id, unit.id)
                    if executor is None:
                        executor = make_executor(self.executor_kind, self.jobs, self.scheduler, preload)
                    running[executor.submit(spec, unit.priority, str(self._state_path(unit)))] = (unit, spec, uinfo)
                if not running:
                    if not sched.finished and not sched.has_ready:  # cannot happen: the scheduler refuses cycles
                        raise RuntimeError(f"runner stalled with {sched.count('pending')} units waiting")
                    continue
                progress.tick()
                for future in executor.wait(list(running), timeout=5.0):
                    unit, spec, uinfo = running.pop(future)
                    result, exc = executor.outcome(future)
                    if exc is None:
                        book.finish(unit, uinfo, result)
                        continue
                    # the worker died (killed, out of memory, node lost): retry on a fresh worker
                    log.warning("worker lost while running %s (%s: %s)", unit.key, type(exc).__name__, exc)
                    executor.worker_lost(future)
                    if sched.lost(unit.key):
                        book.submitted.discard(unit.key)  # running again only once resubmitted
                        progress.unit_lost(unit.step.id, unit.id)
                        log.warning("retrying %s (attempt %d of %d)", unit.key, sched.attempts(unit.key) + 1,
                                    self.retries + 1)
                    else:
                        book.finish(unit, uinfo, UnitResult(
                            step=unit.step.id, unit=unit.id, status="failed", key=spec.key, log_path=spec.log_path,
                            error=f"worker lost {sched.attempts(unit.key)} times: {type(exc).__name__}: {exc}",
                            start=time.time(), end=time.time()))
            finished_cleanly = True
        finally:
            summary = book.summary
            if not finished_cleanly:  # Ctrl-C, or an error of the runner itself: not a finished run
                summary["interrupted"] = 1
            if executor is not None:
                executor.close()
            self.checksums.close()
            self.checksums.save()
            log.info("%s", self.checksums.summary())
            end = time.time()
            ordered = [book.records[u.key] for u in order if u.key in book.records]
            xml_path, sh_path = write_history(self.workdir / "history", run, list(steps.values()), ordered, end,
                                              sha256_file(doc.path))
            log.info("history: %s; commands: %s", xml_path, sh_path)
            self.hook.run_finished(run=run, summary=summary)
            self._release_workdir(claim)
            progress.close()
        summary["history"] = str(xml_path)  # type: ignore[assignment]
        summary["script"] = str(sh_path)  # type: ignore[assignment]
        failed = [r for r in book.results.values() if r.status == "failed"]
        for r in failed:
            sys.stderr.write(f"terapix: unit {r.step}/{r.unit} failed: {r.error}\n  log: {r.log_path}\n")
        return summary


class _RunBook:
    """One run's bookkeeping around the scheduler: results and history records of the units, lifecycle
    hooks, step completion, progress.  Every unit's end goes through :meth:`finish`, which also tells the
    scheduler and records the units that the end of a failed one blocks."""

    def __init__(self, runner: Runner, run: RunInfo, steps: dict[str, StepInfo], units: dict[str, Unit],
                 step_units: dict[str, list[str]], sched: Scheduler, progress: Progress):
        self.runner, self.run, self.steps, self.units = runner, run, steps, units
        self.step_total = {s: len(keys) for s, keys in step_units.items()}
        self.step_left = dict(self.step_total)  # units of the step not ended yet
        self.submitted: set[str] = set()  # units handed to the executor (not ended before running)
        self.step_counts: dict[str, dict[str, int]] = {s: {} for s in step_units}
        self.sched, self.progress, self.hook = sched, progress, runner.hook
        self.results: dict[str, UnitResult] = {}
        self.records: dict[str, UnitRecord] = {}
        self.started_steps: set[str] = set()
        self.summary = {"done": 0, "skipped": 0, "failed": 0, "blocked": 0}
        self.written: dict[str, str] = {}  # product path -> the unit that wrote it in this run

    def start_step(self, unit: Unit) -> None:
        if unit.step.id not in self.started_steps:
            self.started_steps.add(unit.step.id)
            self.progress.step_started(unit.step.id, unit.step.tool, self.step_total[unit.step.id])
            self.hook.step_started(run=self.run, step=self.steps[unit.step.id])

    def prepare(self, unit: Unit) -> tuple[UnitSpec, UnitInfo] | None:
        """Resolve a unit handed out by the scheduler; None when it ended here (up to date, nothing to
        do, bad configuration), else what to submit to the executor."""
        runner = self.runner
        self.start_step(unit)
        try:
            spec, uinfo, rec = runner._prepare(unit, self.results)
        except NothingToDo as exc:
            self.finish(unit, UnitInfo(id=unit.id, step=unit.step.id), UnitResult(
                step=unit.step.id, unit=unit.id, status="skipped", error=str(exc), start=time.time(),
                end=time.time()))
            return None
        except (ConfigError, OSError) as exc:
            self.finish(unit, UnitInfo(id=unit.id, step=unit.step.id), UnitResult(
                step=unit.step.id, unit=unit.id, status="failed", error=str(exc), start=time.time(),
                end=time.time()))
            return None
        self.records[unit.key] = rec
        products = None if runner._forces(unit.step.id) else runner._up_to_date(unit, spec.key)
        if products is not None:
            self.finish(unit, uinfo, UnitResult(step=unit.step.id, unit=unit.id, status="skipped",
                                                products=products, key=spec.key, start=time.time(),
                                                end=time.time(), log_path=spec.log_path))
            return None
        uinfo.attempt = self.sched.attempts(unit.key)
        self.submitted.add(unit.key)
        return spec, uinfo

    def finish(self, unit: Unit, uinfo: UnitInfo, result: UnitResult) -> None:
        """Record the end of a unit handed out by the scheduler, then of the units its failure blocks."""
        self._record(unit, uinfo, result)
        if result.status in ("done", "skipped"):
            self.sched.complete(unit.key, result.status)
            return
        for key, upstream in self.sched.fail(unit.key):
            blocked = self.units[key]
            self.start_step(blocked)
            self._record(blocked, UnitInfo(id=blocked.id, step=blocked.step.id), UnitResult(
                step=blocked.step.id, unit=blocked.id, status="blocked",
                error=f"not run: upstream unit {upstream} failed", start=time.time(), end=time.time()))

    def _record(self, unit: Unit, uinfo: UnitInfo, result: UnitResult) -> None:
        run, hook = self.run, self.hook
        self.results[unit.key] = result
        if result.status == "done":
            for product in result.products:
                other = self.written.setdefault(str(product.path), unit.key)
                if other != unit.key:  # one overwrote the other's file; a re-run would redo both
                    log.warning("units %s and %s both wrote %s: the later one replaced the earlier's; give "
                                "each unit its own name (e.g. with {stem} or {group})", other, unit.key,
                                product.path)
        rec = self.records.setdefault(unit.key, UnitRecord(step=unit.step.id, unit=unit.id, tool=unit.step.tool,
                                                           status=result.status))
        rec.status, rec.host, rec.start, rec.end = result.status, result.host, result.start, result.end
        rec.error, rec.attempts = result.error, max(1, self.sched.attempts(unit.key))
        rec.outputs = [(p.path, p.kind, p.checksum) for p in result.products]
        self.summary[result.status] = self.summary.get(result.status, 0) + 1
        ran = unit.key in self.submitted
        self.progress.unit_finished(unit.step.id, unit.id, result.status,
                                    result.end - result.start if ran else None, was_running=ran)
        step = self.steps[unit.step.id]
        if result.status == "done":
            self.runner._save_state(unit, result)
            self.runner.checksums.know_products(result.products)
        if result.status == "failed":
            log.error("unit %s failed: %s (log: %s)", unit.key, result.error, result.log_path)
        hook.unit_finished(run=run, step=step, unit=uinfo, result=result)
        if result.status == "done":
            for product in result.products:
                hook.product_recorded(run=run, step=step, unit=uinfo, product=product)
        for kind, data in result.records:  # a failed unit's records (failed transfers...) count too
            hook.record_emitted(run=run, step=step, unit=uinfo, kind=kind, data=data)
        counts = self.step_counts[unit.step.id]
        counts[result.status] = counts.get(result.status, 0) + 1
        self.step_left[unit.step.id] -= 1
        if not self.step_left[unit.step.id]:  # the step's last unit
            failed = counts.get("failed", 0) + counts.get("blocked", 0)
            (hook.step_failed if failed else hook.step_finished)(run=run, step=step, summary=dict(counts))
            self.progress.step_finished(unit.step.id, counts)


def run_instructions(path: str | Path, workdir: str | Path | None = None, *, jobs: int | None = None,
                     executor: str = "local", scheduler: str | None = None, force: bool = False, retries: int = 2,
                     overrides: dict[str, str] | None = None, db_url: str | None = None,
                     progress: bool = True) -> dict:
    """Validate and run an instruction file.

    Parameters
    ----------
    path : str or Path
        The instruction file.
    workdir : str or Path, optional
        Work directory (``./work/<name>`` by default).
    jobs, executor, scheduler, force, retries, db_url, progress
        As for :class:`Runner`.
    overrides : dict of str to str, optional
        Instruction parameters to override (``-p NAME=VALUE``).

    Returns
    -------
    dict
        Counts of units by status, and the paths of the processing history files.

    Raises
    ------
    InstructionError, ConfigError
        If the instruction file or a step's configuration is invalid (nothing runs).
    """
    doc = load_instructions(path, overrides=overrides, workdir=workdir)  # output names checked there first
    workdir = Path(workdir) if workdir else Path.cwd() / "work" / doc.name
    return Runner(doc, workdir, jobs=jobs, executor=executor, scheduler=scheduler, force=force, retries=retries,
                  db_url=db_url, progress=progress).run()
