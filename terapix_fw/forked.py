"""A function call in a forked process whose large arrays come back without copies.

Used where two halves of one job can overlap on two cores but a thread would not run in parallel
(the work holds the GIL): a drop-in run executes its tool while the parent opens RDBix
(:mod:`terapix_fw.dropin`); the sextractor plugin detects one image while the parent loads the numba
kernels and the WCS.
The child's result is pickled with protocol 5: arrays of 64 KiB or more travel out of band as files
in ``/dev/shm`` (when there is room; else the temporary directory), which the parent maps
copy-on-write and unlinks at once, so they cost no copy and leave nothing behind.
"""
from __future__ import annotations

import mmap
import os
import pickle
import shutil
import tempfile

from terapix_fw.errors import ToolError

__all__ = ["ForkedCall", "can_fork"]

_INBAND = 1 << 16


def can_fork() -> bool:
    """Whether this platform can fork (:class:`ForkedCall` needs ``os.fork`` and ``os.waitpid``)."""
    return hasattr(os, "fork") and hasattr(os, "waitpid")


def _scratch_dir(nbytes: int) -> str | None:
    """``/dev/shm`` when it can hold ``nbytes`` with room to spare, else None (the default temporary
    directory)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize > 2 * nbytes else None


def _dump(obj, directory: str) -> bytes:
    buffers = []

    def out_of_band(buf):
        if buf.raw().nbytes < _INBAND:
            return True
        buffers.append(buf)
        return False

    head = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    for k, buf in enumerate(buffers):
        with open(os.path.join(directory, str(k)), "wb") as handle:
            handle.write(buf.raw())
    return pickle.dumps((head, len(buffers)), protocol=5)


def _load(payload: bytes, directory: str):
    head, nbuf = pickle.loads(payload)
    buffers = []
    for k in range(nbuf):
        path = os.path.join(directory, str(k))
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            buffers.append(mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) if size else bytearray())
        os.unlink(path)  # the mapping stays valid; nothing is left behind
    return pickle.loads(head, buffers=buffers)


def _portable_error(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a ToolError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception is reported by its text
        return ToolError(f"{type(exc).__name__}: {exc}")


class ForkedCall:
    """``fn(*args)`` run in a forked child; :meth:`result` returns its value or raises its exception.

    ``nbytes`` estimates the size of the result (to choose where its arrays go).  The child exits with
    ``os._exit``: it never runs the parent's exit handlers nor flushes its buffers.
    """

    def __init__(self, fn, *args, nbytes: int = 0):
        self._dir = tempfile.mkdtemp(prefix="terapix-fork-", dir=_scratch_dir(nbytes))
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(read_fd)
                try:
                    payload = _dump(("ok", fn(*args)), self._dir)
                except BaseException as exc:  # noqa: BLE001 - every failure is sent to the parent
                    payload = _dump(("error", _portable_error(exc)), self._dir)
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(payload)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid, self._fd = pid, read_fd

    def result(self):
        """Wait for the child and return what ``fn`` returned.

        Returns
        -------
        Any

        Raises
        ------
        Exception
            What ``fn`` raised in the child, or a :class:`~terapix_fw.errors.ToolError` if the child died
            before sending its result.
        """
        try:
            # read the descriptor itself, which close() closes once: a file object made over it would own it
            # too, and Ctrl-C arriving inside os.fdopen (after the object owns it, before this method knows)
            # had it closed twice, the EBADF hiding the KeyboardInterrupt
            chunks = []
            while chunk := os.read(self._fd, 1 << 20):
                chunks.append(chunk)
            payload = b"".join(chunks)
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if not payload:
                raise ToolError(f"the forked process died before returning its result (wait status {status})")
            kind, value = _load(payload, self._dir)
        finally:
            self.close()
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Reap the child (killing it if its result was never collected) and remove its files."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pid is not None:
            try:
                os.kill(self._pid, 9)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._pid = None
        shutil.rmtree(self._dir, ignore_errors=True)
