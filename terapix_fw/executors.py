"""Execution backends behind one small interface: a local process pool (default) and Dask distributed.

Both run :func:`terapix_fw.execute.execute_unit`, which returns tool errors as results; an exception coming
out of a future therefore means the worker itself was lost, and the runner retries the unit.

The local pool's workers are persistent (one takes many units) and are forked from a server process
that has imported, once, the modules the run's tools declare (:attr:`terapix_fw.tool.Tool.worker_preload`:
numpy, astropy, numba kernels...): a worker starts warm instead of importing everything itself, and the
server loads them while the runner is still preparing (hashing inputs, opening RDBix).
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any, Sequence

from .execute import UnitSpec, execute_unit

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "make_executor", "run_unless_recorded",
           "die_with_parent"]


def die_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this worker (and what it started) when the runner that started it dies.

    Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``) is tied to the *thread* that forked, which
    may be a short-lived one in a process pool; a watchdog thread that sees the worker re-parented is
    tied to the process.  The worker's parent is the runner (spawned workers) or the fork server the
    runner started (which ends with the runner): the watchdog also checks the runner itself.  A worker
    whose runner is already gone when it starts exits at once.

    Parameters
    ----------
    parent : int
        Process id of the runner.
    """
    import threading

    watched = os.getppid()

    def alive() -> bool:
        if os.getppid() != watched:
            return False
        if watched == parent:
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by another user: not ours, but not gone either
            pass
        return True

    def watch() -> None:
        import time
        while alive():
            time.sleep(0.5)
        _kill_descendants(os.getpid())  # forked tool processes, AstrOmatic programs it started
        os._exit(1)

    if not alive() or watched == 1:
        os._exit(1)
    threading.Thread(target=watch, name="terapix-parent-watchdog", daemon=True).start()


def _kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` (Linux /proc; elsewhere nothing)."""
    import signal
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return
    children: dict[int, list[int]] = {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass


def run_unless_recorded(spec: UnitSpec, marker: str | None = None):
    """Run a unit on a Dask worker unless the runner has already recorded it done.

    Dask recomputes a finished task whose result lived on a worker that was lost, as long as the client
    still holds its key: the runner may already have recorded the unit done, and a second execution
    would rewrite its products and log behind the runner's back.  If ``marker`` holds this spec's key the
    re-execution is refused and written to the unit log's sibling ``.reexecution`` file instead.

    Parameters
    ----------
    spec : UnitSpec
        What the worker runs: tool, inputs, configuration, output directory, log path.
    marker : str, optional
        The unit's state file, written once the runner recorded it done.

    Returns
    -------
    UnitResult
        The unit's result, or a ``skipped`` result when the marker exists.
    """
    if marker:
        import json
        import socket
        import time

        try:
            with open(marker, encoding="utf-8") as handle:
                recorded = json.load(handle).get("key")
        except (OSError, ValueError):
            recorded = None
        if recorded and recorded == spec.key:
            from .tool import UnitResult
            note = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {socket.gethostname()}: re-execution of "
                    f"{spec.step}/{spec.unit} by the executor refused: the runner recorded it done "
                    f"(key {spec.key[:12]})\n")
            with open(spec.log_path + ".reexecution", "a", encoding="utf-8") as handle:
                handle.write(note)
            return UnitResult(step=spec.step, unit=spec.unit, status="skipped", key=spec.key,
                              log_path=spec.log_path, error="re-execution refused: already recorded done")
    return execute_unit(spec)


class Executor:
    """Submit specs, wait for completions.  ``capacity`` is how many units run at once."""

    name = "abstract"
    capacity = 1

    def submit(self, spec: UnitSpec, priority: int, marker: str | None = None) -> Any:
        """Start running a unit.

        Parameters
        ----------
        spec : UnitSpec
            What the worker runs: tool, inputs, configuration, output directory, log path.
        priority : int
            Higher first, where the backend orders tasks.
        marker : str, optional
            The unit's state file, written once the runner recorded it done.

        Returns
        -------
        Any
            A future of the backend.
        """
        raise NotImplementedError

    def wait(self, futures: list[Any], timeout: float | None = None) -> list[Any]:
        """The futures among ``futures`` that have completed (at least one unless timed out).

        Parameters
        ----------
        futures : list
            Futures returned by :meth:`submit`.
        timeout : float, optional
            Seconds to wait at most.

        Returns
        -------
        list
        """
        raise NotImplementedError

    @staticmethod
    def outcome(future: Any):
        """The result or the exception of a completed future.

        Parameters
        ----------
        future : Any
            A completed future.

        Returns
        -------
        tuple
            ``(result, None)`` or ``(None, exception)``; a lost worker gives a
            :class:`~terapix_fw.errors.WorkerLost`.
        """
        raise NotImplementedError

    def worker_lost(self, future: Any) -> None:
        """Called for a future whose worker was lost: make the backend usable again if needed.

        Parameters
        ----------
        future : Any
            The future.
        """

    def close(self) -> None:
        """Stop the workers (a local pool) or disconnect (Dask)."""
        pass


#: the environment the fork server of this process was started with (None: not started by us)
_server_environ: dict[str, str] | None = None


class LocalExecutor(Executor):
    """A local process pool.  A killed worker breaks the pool: :meth:`worker_lost` makes a new one.

    ``preload``: modules the workers need (:attr:`~terapix_fw.tool.Tool.worker_preload` of the run's
    tools).  When given (and the platform can fork), the workers are forked from multiprocessing's fork
    server, which imports them once; it is started here, so that it imports them while the runner
    prepares the first units.  Forking from that server, a single-threaded process that holds no
    database connection nor lock, is safe where forking the runner itself would not be.  Otherwise the
    workers are spawned (each imports what it needs)."""

    name = "local"

    def __init__(self, jobs: int | None = None, preload: Sequence[str] = ()):
        self.capacity = max(1, jobs or os.cpu_count() or 1)
        self.preload = list(dict.fromkeys(preload))
        self._pool = self._new_pool()
        self._generation: dict[Any, Any] = {}  # future -> the pool that ran it

    def _context(self):
        import multiprocessing

        global _server_environ
        environ = dict(os.environ)
        # workers forked from the server have the environment it was started with: a pool made after the
        # environment changed (another run in the same process) spawns its workers, as they then see it
        if (not self.preload or "forkserver" not in multiprocessing.get_all_start_methods()
                or _server_environ not in (None, environ)):
            return multiprocessing.get_context("spawn")
        from multiprocessing import forkserver

        ctx = multiprocessing.get_context("forkserver")
        # the server is one per runner process and never stopped (other pools' workers may be its
        # children): the first pool's list is the one it imports, a later run's other tools are imported
        # by its workers themselves; "__main__" as multiprocessing's default
        # loaded with the garbage collector paused, then frozen (gc_pause ... gc_freeze): 15% less CPU
        # for the imports, and no copy of their pages in each worker
        ctx.set_forkserver_preload(["__main__", "terapix_fw.gc_pause", "terapix_fw.execute", *self.preload,
                                    "terapix_fw.gc_freeze"])
        forkserver.ensure_running()  # starts importing now, in its own process
        _server_environ = environ
        return ctx

    def _new_pool(self):
        # workers watch their runner: a kill -9 of the runner must not leave them running
        return cf.ProcessPoolExecutor(max_workers=self.capacity, mp_context=self._context(),
                                      initializer=die_with_parent, initargs=(os.getpid(),))

    def submit(self, spec, priority, marker=None):
        try:
            future = self._pool.submit(execute_unit, spec)
        except cf.process.BrokenProcessPool:  # broke since the last completion was seen
            self._renew()
            future = self._pool.submit(execute_unit, spec)
        self._generation[future] = self._pool
        return future

    def wait(self, futures, timeout=None):
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def outcome(future):
        if future.cancelled():
            from .errors import WorkerLost
            return None, WorkerLost("cancelled when its process pool broke")
        exc = future.exception()
        return (None, exc) if exc is not None else (future.result(), None)

    def worker_lost(self, future):
        # a killed worker breaks the whole pool; renew it once, not once per broken future
        if self._generation.pop(future, None) is self._pool:
            self._renew()

    def _renew(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Dask distributed: a local cluster of worker processes, or an existing scheduler's workers."""

    name = "dask"

    def __init__(self, jobs: int | None = None, scheduler: str | None = None):
        from distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="30s")
        else:
            self._cluster = LocalCluster(n_workers=max(1, jobs or os.cpu_count() or 1), threads_per_worker=1,
                                         processes=True, host="127.0.0.1", dashboard_address=None)
            self.client = Client(self._cluster)
        workers = self.client.scheduler_info().get("workers", {})
        self.capacity = max(1, sum(w.get("nthreads", 1) for w in workers.values()) or (jobs or 1))

    def submit(self, spec, priority, marker=None):
        # pure=False: the same spec submitted again (a retry) must run again
        return self.client.submit(run_unless_recorded, spec, marker, priority=priority, pure=False,
                                  key=f"{spec.step}/{spec.unit}-{os.urandom(4).hex()}")

    def wait(self, futures, timeout=None):
        from distributed import wait

        try:
            done, _ = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    @staticmethod
    def outcome(future):
        if future.status == "error":
            return None, future.exception()
        if future.status == "cancelled":
            from .errors import WorkerLost
            return None, WorkerLost("task cancelled (worker or scheduler lost)")
        result = future.result()
        # the runner holds the result now: let the scheduler forget the key, so that losing the worker
        # that computed it does not make Dask compute it again
        future.release()
        return result, None

    def close(self):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: str, jobs: int | None = None, scheduler: str | None = None,
                  preload: Sequence[str] = ()) -> Executor:
    """The executor of a run.

    Parameters
    ----------
    kind : str
        ``local`` or ``dask``.
    jobs : int, optional
        Worker processes (local) or local Dask workers.
    scheduler : str, optional
        Address of a running Dask scheduler (implies ``dask``).
    preload : sequence of str
        Modules the local pool's workers inherit already imported (see :class:`LocalExecutor`).

    Returns
    -------
    Executor

    Raises
    ------
    ValueError
        On an unknown kind.
    """
    if kind == "dask" or scheduler:
        return DaskExecutor(jobs, scheduler)
    if kind == "local":
        return LocalExecutor(jobs, preload)
    raise ValueError(f"unknown executor {kind!r}; expected local or dask")
