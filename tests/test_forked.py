"""ForkedCall: a function run in a forked process, its large arrays returned without copies."""
import os

import numpy as np
import pytest

from terapix_fw.errors import ToolError
from terapix_fw.forked import ForkedCall, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="no os.fork on this platform")


def _arrays(n):
    return {"a": np.arange(n, dtype=np.float32).reshape(-1, 10), "small": np.ones(3), "text": "ok"}


def _fail():
    raise ToolError("image.fits: broken on purpose")


def test_forked_call_returns_large_arrays_and_cleans_up():
    call = ForkedCall(_arrays, 1_000_000, nbytes=4_000_000)
    scratch = call._dir
    out = call.result()
    assert out["text"] == "ok" and out["small"].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(out["a"], np.arange(1_000_000, dtype=np.float32).reshape(-1, 10))
    out["a"][0, 0] = -1  # copy-on-write: the result is writable
    assert not os.path.exists(scratch)


def test_forked_call_raises_the_child_error():
    call = ForkedCall(_fail)
    with pytest.raises(ToolError, match="broken on purpose"):
        call.result()
    assert not os.path.exists(call._dir)


def test_closing_an_uncollected_call_kills_the_child_and_cleans_up():
    import time
    call = ForkedCall(time.sleep, 60)
    pid, scratch = call._pid, call._dir
    call.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
    assert not os.path.exists(scratch)


def _interrupt_parent_when(marker):
    """In the child: wait until the parent says it is collecting, then interrupt it, then linger."""
    import signal
    import time
    while not os.path.exists(marker):
        time.sleep(0.01)
    os.kill(os.getppid(), signal.SIGUSR1)
    time.sleep(60)


class _OsSayingWhenCollecting:
    """``os`` for terapix_fw.forked whose ``read`` first creates ``marker``: the child interrupts the parent
    only once result() is reading its pipe (touched before calling result(), the interrupt could come before
    it, and nothing would then reap the child)."""

    def __init__(self, marker):
        self._marker = marker

    def __getattr__(self, name):
        return getattr(os, name)

    def read(self, fd, n):
        self._marker.touch()
        return os.read(fd, n)


def test_an_interrupted_collection_raises_the_interrupt_and_cleans_up(tmp_path, monkeypatch):
    """Ctrl-C while result() reads the child's pipe: the KeyboardInterrupt comes out (the pipe's file
    object had closed the descriptor, and close() closing it again raised EBADF instead), the child is
    killed and reaped, and its files are removed."""
    import signal

    import terapix_fw.forked

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    marker = tmp_path / "collecting"
    saved = signal.signal(signal.SIGUSR1, interrupt)
    try:
        call = ForkedCall(_interrupt_parent_when, str(marker))
        pid, scratch = call._pid, call._dir
        monkeypatch.setattr(terapix_fw.forked, "os", _OsSayingWhenCollecting(marker))
        with pytest.raises(KeyboardInterrupt):
            call.result()
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGUSR1, saved)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
    assert not os.path.exists(scratch)
