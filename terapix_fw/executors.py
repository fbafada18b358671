"""Execution backends behind one small interface: a local process pool (default) and Dask distributed.

Both run :func:`terapix_fw.execute.execute_unit`, which returns tool errors as results; an exception coming
out of a future therefore means the worker itself was lost, and the runner retries the unit.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any

from .execute import UnitSpec, execute_unit

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "make_executor"]


class Executor:
    """Submit specs, wait for completions.  ``capacity`` is how many units run at once."""

    name = "abstract"
    capacity = 1

    def submit(self, spec: UnitSpec, priority: int) -> Any:
        raise NotImplementedError

    def wait(self, futures: list[Any], timeout: float | None = None) -> list[Any]:
        """Return the futures among ``futures`` that have completed (at least one unless timed out)."""
        raise NotImplementedError

    @staticmethod
    def outcome(future: Any):
        """``(result, None)`` or ``(None, exception)`` for a completed future."""
        raise NotImplementedError

    def worker_lost(self, future: Any) -> None:
        """Called for a future whose worker was lost: make the backend usable again if needed."""

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """A local process pool.  A killed worker breaks the pool: :meth:`recover` makes a new one."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        self.capacity = max(1, jobs or os.cpu_count() or 1)
        self._pool = self._new_pool()
        self._generation: dict[Any, Any] = {}  # future -> the pool that ran it

    def _new_pool(self):
        import multiprocessing

        return cf.ProcessPoolExecutor(max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, spec, priority):
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

    def submit(self, spec, priority):
        # pure=False: the same spec submitted again (a retry) must run again
        return self.client.submit(execute_unit, spec, priority=priority, pure=False,
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
        return future.result(), None

    def close(self):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: str, jobs: int | None = None, scheduler: str | None = None) -> Executor:
    if kind == "dask" or scheduler:
        return DaskExecutor(jobs, scheduler)
    if kind == "local":
        return LocalExecutor(jobs)
    raise ValueError(f"unknown executor {kind!r}; expected local or dask")
