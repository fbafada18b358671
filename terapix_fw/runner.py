"""The runner: instruction file -> task graph -> executor, with resume, retries, recording and history.

Flow: validate everything, build every (step, unit) before running anything, then submit ready units in
priority order (higher first) to the executor, at most as many as it can run at once so that priorities
matter.  A unit whose inputs, tool version and configuration are unchanged and whose products exist is
skipped (``force`` re-runs it).  A lost worker is retried up to ``retries`` times; a tool error is not
retried, is reported with the unit's log, and blocks the units downstream of it.
"""
from __future__ import annotations

import hashlib
import heapq
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
from .tool import Product, UnitResult

__all__ = ["run_instructions", "Runner"]

log = logging.getLogger("terapix.run")


class _Checksums:
    """sha256 of input files, cached by (path, size, mtime) in the work directory."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.cache = json.loads(path.read_text())
        except (OSError, ValueError):
            self.cache = {}

    def __call__(self, file: str) -> str:
        st = os.stat(file)
        key = f"{file}|{st.st_size}|{st.st_mtime_ns}"
        if key not in self.cache:
            self.cache[key] = sha256_file(file)
        return self.cache[key]

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.cache))


class _Progress:
    """Units done/total, failures and elapsed time on the terminal (stderr)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "blocked": 0}
        self.start = time.time()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, status: str | None = None, force: bool = False) -> None:
        if status:
            self.counts[status] = self.counts.get(status, 0) + 1
        if not self.enabled:
            return
        now = time.time()
        if not (force or self.tty or now - self.last > 10):
            return
        self.last = now
        finished = sum(self.counts.values())
        text = (f"[terapix] {finished}/{self.total} units ({self.counts['done']} done, {self.counts['skipped']} "
                f"up to date, {self.counts['failed']} failed, {self.counts['blocked']} blocked), "
                f"{now - self.start:.1f} s")
        sys.stderr.write(("\r" + text) if self.tty else text + "\n")
        if self.tty and force:
            sys.stderr.write("\n")
        sys.stderr.flush()


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
    def __init__(self, doc: Instructions, workdir: Path, *, jobs: int | None = None, executor: str = "local",
                 scheduler: str | None = None, force: bool = False, retries: int = 2, db_url: str | None = None,
                 progress: bool = True):
        self.doc = doc
        self.workdir = workdir.resolve()
        self.jobs, self.executor_kind, self.scheduler = jobs, executor, scheduler
        self.force, self.retries, self.db_url, self.show_progress = force, retries, db_url, progress
        self.state_dir = self.workdir / ".terapix" / "state"
        self.checksums = _Checksums(self.workdir / ".terapix" / "checksums.json")
        self.hook = get_plugin_manager().hook

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

    def _prepare(self, unit: Unit, results: dict[str, UnitResult]) -> tuple[UnitSpec, UnitInfo, UnitRecord]:
        step = unit.step
        info = get_tool(step.tool)
        inputs, param_inputs = self._resolve_items(unit, results)
        tokens = unit_tokens(unit, inputs)
        params = info.cls.parameter_set()
        # defaults may hold unit tokens too ("{stem}.cat"): substitute them like explicit values
        token_defaults = [(p.name, value, "default") for p in params if isinstance(p.default, str)
                          and (value := substitute_unit_tokens(p.default, tokens)) != p.default]
        layers = [token_defaults] + [[(k, substitute_unit_tokens(v, tokens), w) for k, v, w in layer]
                                     for layer in step.config_layers()]
        layers.append([(name, ",".join(paths), f"input of step {step.id}") for name, paths in param_inputs.items()])
        config = params.resolve(*layers)  # per-unit values are validated here, before submission
        digests = [(p, self.checksums(p)) for p in inputs + [q for v in param_inputs.values() for q in v]]
        key = hashlib.sha256(json.dumps({
            "tool": info.name, "version": info.version, "config": config.as_strings(), "inputs": digests,
            "extension": unit.extension, "group": unit.group}, sort_keys=True).encode()).hexdigest()
        outdir = confine(self.workdir, step.outdir or step.id, "step outdir")
        spec = UnitSpec(step=step.id, unit=unit.id, tool=info.name, config_layers=layers, inputs=inputs,
                        outdir=str(outdir), log_path=str(self.workdir / "logs" / step.id / f"{unit.id}.log"),
                        extension=unit.extension, group=unit.group, key=key,
                        tool_ref=f"{info.cls.__module__}:{info.cls.__qualname__}",
                        nthreads=step.threads or max(1, (os.cpu_count() or 1) // max(1, self.jobs or 1)))
        uinfo = UnitInfo(id=unit.id, step=step.id, inputs=[p for p, _ in digests], extension=unit.extension,
                         group=unit.group, key=key, config=config.as_strings())
        record = UnitRecord(step=step.id, unit=unit.id, tool=info.name, status="pending", inputs=digests,
                            args=[f"{p}[{unit.extension}]" if unit.extension is not None else p for p in inputs],
                            config=config.as_strings(), outdir=str(outdir),
                            command=[c for k, v in config.non_defaults().items() for c in (f"-{k}", params[k].format(v))])
        return spec, uinfo, record

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

    def _query_db(self):
        try:
            from .db import query as dbquery  # provided by RDBix
        except ImportError:
            return None
        select = getattr(dbquery, "select_paths", None)
        if select is None:
            return None
        url = self.db_url or os.environ.get("TERAPIX_DB_URL") or f"sqlite:///{self.workdir / 'rdbix.sqlite'}"
        return lambda criteria: select(url, criteria)

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
        self.hook.run_started(run=run)
        order = graph.order()
        rank = {u.key: i for i, u in enumerate(order)}
        pending = {u.key: u for u in order}
        # dependents map and unfinished-dependency counts: each completion touches only its own dependents,
        # so scheduling stays linear in the graph size (no rescan of every pending unit)
        dependents: dict[str, list[str]] = {}
        waiting = {u.key: len(set(u.deps)) for u in order}
        for u in order:
            for d in set(u.deps):
                dependents.setdefault(d, []).append(u.key)
        ready_heap = [(-u.priority, rank[u.key], u.key) for u in order if not waiting[u.key]]
        heapq.heapify(ready_heap)
        results: dict[str, UnitResult] = {}
        records: dict[str, UnitRecord] = {}
        attempts: dict[str, int] = {}
        started_steps: set[str] = set()
        step_units = {s: [u.key for u in graph.by_step(s)] for s in steps}
        progress = _Progress(len(order), self.show_progress)
        summary = {"done": 0, "skipped": 0, "failed": 0, "blocked": 0}
        running: dict = {}  # future -> (unit, spec, uinfo)
        executor = None
        written: dict[str, str] = {}  # product path -> the unit that wrote it in this run

        def finish(unit: Unit, uinfo: UnitInfo, result: UnitResult) -> None:
            results[unit.key] = result
            if result.status == "done":
                for product in result.products:
                    other = written.setdefault(str(product.path), unit.key)
                    if other != unit.key:  # one overwrote the other's file; a re-run would redo both
                        log.warning("units %s and %s both wrote %s: the later one replaced the earlier's; give "
                                    "each unit its own name (e.g. with {stem} or {group})", other, unit.key,
                                    product.path)
            rec = records.setdefault(unit.key, UnitRecord(step=unit.step.id, unit=unit.id, tool=unit.step.tool,
                                                          status=result.status))
            rec.status, rec.host, rec.start, rec.end = result.status, result.host, result.start, result.end
            rec.error, rec.attempts = result.error, attempts.get(unit.key, 1)
            rec.outputs = [(p.path, p.kind, p.checksum) for p in result.products]
            summary[result.status] = summary.get(result.status, 0) + 1
            progress.update(result.status)
            step = steps[unit.step.id]
            if result.status == "done":
                self._save_state(unit, result)
            if result.status == "failed":
                log.error("unit %s failed: %s (log: %s)", unit.key, result.error, result.log_path)
            self.hook.unit_finished(run=run, step=step, unit=uinfo, result=result)
            if result.status == "done":
                for product in result.products:
                    self.hook.product_recorded(run=run, step=step, unit=uinfo, product=product)
            for kind, data in result.records:  # a failed unit's records (failed transfers...) count too
                self.hook.record_emitted(run=run, step=step, unit=uinfo, kind=kind, data=data)
            keys = step_units[unit.step.id]
            if all(k in results for k in keys):
                counts: dict[str, int] = {}
                for k in keys:
                    counts[results[k].status] = counts.get(results[k].status, 0) + 1
                failed = counts.get("failed", 0) + counts.get("blocked", 0)
                (self.hook.step_failed if failed else self.hook.step_finished)(run=run, step=step, summary=counts)
                progress.update(force=True)
            release(unit.key, result.status)

        def release(key: str, status: str) -> None:
            """Wake the dependents of a finished unit; a failed or blocked one blocks them (transitively)."""
            for dep_key in dependents.get(key, ()):
                if dep_key not in pending:
                    continue
                if status in ("failed", "blocked"):
                    blocked = pending.pop(dep_key)
                    start_step(blocked)
                    finish(blocked, UnitInfo(id=blocked.id, step=blocked.step.id), UnitResult(
                        step=blocked.step.id, unit=blocked.id, status="blocked",
                        error=f"not run: upstream unit {key} failed", start=time.time(), end=time.time()))
                else:
                    waiting[dep_key] -= 1
                    if not waiting[dep_key]:
                        u = pending[dep_key]
                        heapq.heappush(ready_heap, (-u.priority, rank[dep_key], dep_key))

        def start_step(unit: Unit) -> None:
            if unit.step.id not in started_steps:
                started_steps.add(unit.step.id)
                self.hook.step_started(run=run, step=steps[unit.step.id])

        try:
            while pending or running:
                while ready_heap:
                    capacity = executor.capacity if executor else (self.jobs or os.cpu_count() or 1)
                    if len(running) >= capacity:
                        break
                    unit = pending.get(heapq.heappop(ready_heap)[2])
                    if unit is None:  # already blocked or finished
                        continue
                    del pending[unit.key]
                    start_step(unit)
                    try:
                        spec, uinfo, rec = self._prepare(unit, results)
                    except NothingToDo as exc:
                        finish(unit, UnitInfo(id=unit.id, step=unit.step.id), UnitResult(
                            step=unit.step.id, unit=unit.id, status="skipped", error=str(exc), start=time.time(),
                            end=time.time()))
                        continue
                    except (ConfigError, OSError) as exc:
                        uinfo = UnitInfo(id=unit.id, step=unit.step.id)
                        finish(unit, uinfo, UnitResult(step=unit.step.id, unit=unit.id, status="failed",
                                                       error=str(exc), start=time.time(), end=time.time()))
                        continue
                    records[unit.key] = rec
                    products = None if self.force else self._up_to_date(unit, spec.key)
                    if products is not None:
                        finish(unit, uinfo, UnitResult(step=unit.step.id, unit=unit.id, status="skipped",
                                                       products=products, key=spec.key, start=time.time(),
                                                       end=time.time(), log_path=spec.log_path))
                        continue
                    if executor is None:
                        executor = make_executor(self.executor_kind, self.jobs, self.scheduler)
                    attempts[unit.key] = attempts.get(unit.key, 0) + 1
                    uinfo.attempt = attempts[unit.key]
                    running[executor.submit(spec, unit.priority)] = (unit, spec, uinfo)
                if not running:
                    if pending and not ready_heap:  # cannot happen with an acyclic graph
                        raise RuntimeError(f"runner stalled with {len(pending)} units waiting")
                    continue
                for future in executor.wait(list(running), timeout=5.0):
                    unit, spec, uinfo = running.pop(future)
                    result, exc = executor.outcome(future)
                    if exc is None:
                        finish(unit, uinfo, result)
                        continue
                    # the worker died (killed, out of memory, node lost): retry on a fresh worker
                    log.warning("worker lost while running %s (%s: %s)", unit.key, type(exc).__name__, exc)
                    executor.worker_lost(future)
                    if attempts[unit.key] <= self.retries:
                        log.warning("retrying %s (attempt %d of %d)", unit.key, attempts[unit.key] + 1,
                                    self.retries + 1)
                        pending[unit.key] = unit
                        heapq.heappush(ready_heap, (-unit.priority, rank[unit.key], unit.key))
                    else:
                        finish(unit, uinfo, UnitResult(
                            step=unit.step.id, unit=unit.id, status="failed", key=spec.key, log_path=spec.log_path,
                            error=f"worker lost {attempts[unit.key]} times: {type(exc).__name__}: {exc}",
                            start=time.time(), end=time.time()))
        finally:
            if executor is not None:
                executor.close()
            self.checksums.save()
            end = time.time()
            ordered = [records[u.key] for u in order if u.key in records]
            xml_path, sh_path = write_history(self.workdir / "history", run, list(steps.values()), ordered, end,
                                              sha256_file(doc.path))
            log.info("history: %s; commands: %s", xml_path, sh_path)
            self.hook.run_finished(run=run, summary=summary)
            progress.update(force=True)
        summary["history"] = str(xml_path)  # type: ignore[assignment]
        summary["script"] = str(sh_path)  # type: ignore[assignment]
        failed = [r for r in results.values() if r.status == "failed"]
        for r in failed:
            sys.stderr.write(f"terapix: unit {r.step}/{r.unit} failed: {r.error}\n  log: {r.log_path}\n")
        return summary


def run_instructions(path: str | Path, workdir: str | Path | None = None, *, jobs: int | None = None,
                     executor: str = "local", scheduler: str | None = None, force: bool = False, retries: int = 2,
                     overrides: dict[str, str] | None = None, db_url: str | None = None,
                     progress: bool = True) -> dict:
    """Validate and run an instruction file; return counts of units by status (+ history paths)."""
    doc = load_instructions(path, overrides=overrides)
    workdir = Path(workdir) if workdir else Path.cwd() / "work" / doc.name
    return Runner(doc, workdir, jobs=jobs, executor=executor, scheduler=scheduler, force=force, retries=retries,
                  db_url=db_url, progress=progress).run()
