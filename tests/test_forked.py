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
