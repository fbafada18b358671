"""What `terapix run` shows while it works: a bar naming the running steps on a terminal (a real
pseudo-terminal), one plain line per event in a pipe, and the warm-up of a compiled tool as a phase."""
from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import textwrap
import time

import pytest

from terapix_fw.progress import Progress, warmup_reason

WAIT = 180.0  # generous: the machine may be busy; a hang fails loudly instead of blocking the suite

WARM_TOOL = '''\
"""A tool whose package imports numba, like the SExtractor-like extraction (the import is never run here)."""
from terapix_fw.hookspecs import hookimpl
from terapix_fw.params import Parameter
from terapix_fw.tool import Tool


def _kernel():
    import numba
    return numba


class WarmTool(Tool):
    name = "warm"
    version = "1"
    parameters = [Parameter("OUTPUT_NAME", "str", "{stem}.txt", "output file name", output=True)]

    def run(self, ctx):
        with ctx.product(ctx.config["OUTPUT_NAME"], kind="note") as tmp:
            tmp.write_text(" ".join(str(p) for p in ctx.inputs))


@hookimpl
def register_tools(register):
    register(WarmTool)
'''

DRIVER = """
import logging, sys
import demo_tools, warmpkg
if sys.argv[3:] == ["console-log"]:  # as `terapix run` does: warnings and errors on the terminal
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
from terapix_fw import plugins
pm = plugins.get_plugin_manager()
pm.register(demo_tools, name="demo_tools")
pm.register(warmpkg, name="warmpkg")
plugins._tools.cache_clear()
from terapix_fw.runner import run_instructions
summary = run_instructions(sys.argv[1], workdir=sys.argv[2], jobs=1)
sys.exit(1 if summary["failed"] else 0)
"""

UNITS = ["scale/exp0", "scale/exp1", "scale/exp2", "warm/exp0", "warm/exp1", "warm/exp2"]


@pytest.fixture
def pipeline(tmp_path, fits_files):
    pkg = tmp_path / "lib" / "warmpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(WARM_TOOL)
    xml = tmp_path / "run.xml"
    xml.write_text(textwrap.dedent(f"""\
        <instructions name="p" version="1">
          <inputs><inputset id="raw"><files pattern="{tmp_path}/raw/*.fits"/></inputset></inputs>
          <steps>
            <step id="scale" tool="scale" fanout="file"><input set="raw"/></step>
            <step id="warm" tool="warm" fanout="file"><input step="scale" kind="image"/></step>
          </steps>
        </instructions>"""))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "lib"), os.environ["PYTHONPATH"]]))
    return xml, env


def run_on_pipe(xml, workdir, env) -> str:
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(xml), str(workdir)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=WAIT)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    return err


def run_on_terminal(xml, workdir, env, *extra: str, returncode: int = 0) -> str:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a 160-column terminal
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(xml), str(workdir), *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + WAIT
    try:
        while True:  # read until every holder of the terminal (runner, pool workers) closed it
            assert time.monotonic() < deadline, f"run still writing after {WAIT:.0f} s: {out.decode()[-2000:]}"
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=WAIT) == returncode, out.decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return out.decode()


def test_plain_lines_in_a_pipe(tmp_path, pipeline):
    xml, env = pipeline
    err = run_on_pipe(xml, tmp_path / "work", env)
    lines = err.splitlines()
    assert "\r" not in err and "|" not in err  # no bar, no redrawing
    assert lines and all(line.startswith("[terapix] ") for line in lines), err
    assert "[terapix] step scale (scale) started: 3 units" in lines
    assert "[terapix] step warm (warm) started: 3 units" in lines
    # one line per event, naming the unit and the running step
    for unit in UNITS:
        if unit != "warm/exp0":  # the first unit of the compiled tool is its warm-up (below)
            assert f"[terapix] {unit} started; running: {unit.split('/')[0]} (1)" in lines, err
        assert re.search(rf"^\[terapix\] [1-6]/6 {unit} done in [0-9.]+ s; running: nothing$", err, re.M), unit
    # the compiled tool's first unit is a phase of its own, announced once, its duration reported
    assert lines.count("[terapix] warming up warm (numba compilation, first run only)") == 1
    warm_up = lines.index("[terapix] warming up warm (numba compilation, first run only)")
    assert re.fullmatch(r"\[terapix\] warm warmed up in [0-9.]+ s \(first unit warm/exp0\)", lines[warm_up + 1])
    assert lines.index("[terapix] step scale (scale) finished: 3 done") < warm_up
    assert "[terapix] step warm (warm) finished: 3 done" in lines
    assert re.fullmatch(r"\[terapix\] 6/6 units \(6 done, 0 up to date, 0 failed, 0 blocked\), [0-9.]+ s", lines[-1])
    # again: everything up to date, nothing runs, nothing warms up
    again = run_on_pipe(xml, tmp_path / "work", env)
    assert "started;" not in again and "warming up" not in again
    assert "[terapix] step scale (scale) finished: 3 up to date" in again.splitlines()
    assert re.search(r"^\[terapix\] 6/6 units \(0 done, 6 up to date, 0 failed, 0 blocked\)", again, re.M)


def test_bar_on_a_terminal(tmp_path, pipeline):
    xml, env = pipeline
    out = run_on_terminal(xml, tmp_path / "work", env)
    assert "\r" in out  # the bar is redrawn in place
    text = out.replace("\r\n", "\n")
    # the bar's label names the running step, and the warm-up while the compiled tool's first unit runs
    assert re.search(r"scale \(1\) \|[^|\n]*\| [0-2]/6 units", text), out
    assert re.search(r"warming up warm; warm \(1\) \|[^|\n]*\| 3/6 units", text), out
    assert re.search(r"\| 6/6 units \[[0-9:]+, 6 done, 0 up to date, 0 failed, 0 blocked\]", text), out
    # events are printed above the bar; units are counted by the bar, not one line each
    assert "[terapix] step scale (scale) started: 3 units" in text
    assert "[terapix] warming up warm (numba compilation, first run only)" in text
    assert re.search(r"\[terapix\] warm warmed up in [0-9.]+ s \(first unit warm/exp0\)", text)
    assert "[terapix] step warm (warm) finished: 3 done" in text
    assert "started; running" not in text and "scale/exp1 done" not in text
    assert re.search(r"\[terapix\] 6/6 units \(6 done, 0 up to date, 0 failed, 0 blocked\), [0-9.]+ s", text)


def test_errors_logged_on_a_terminal_go_above_the_bar(tmp_path, pipeline):
    xml, env = pipeline
    xml.write_text(xml.read_text().replace('<step id="scale" tool="scale" fanout="file">',
                                           '<step id="scale" tool="scale" fanout="file">'
                                           '<config><param name="FAIL_ON">exp1</param></config>'))
    out = run_on_terminal(xml, tmp_path / "work", env, "console-log", returncode=1)
    text = out.replace("\r\n", "\n")
    # the error line starts a line of its own (the bar was cleared before it), never glued to the bar
    (error,) = re.findall(r"(.)ERROR terapix\.run: unit scale/exp1 failed: ToolError", text, re.S)
    assert error in "\r\n", out
    assert re.search(r"\| 6/6 units \[[0-9:]+, 4 done, 0 up to date, 1 failed, 1 blocked\]", text), out


def test_plain_events_for_failures_and_lost_workers():
    stream = io.StringIO()
    progress = Progress(3, stream=stream, tty=False)
    progress.step_started("sex", "sextractor", 2)
    progress.unit_started("sex", "a")
    progress.unit_lost("sex", "a")
    progress.unit_started("sex", "a")
    progress.unit_started("sex", "b")
    progress.unit_finished("sex", "a", "failed", 2.0)
    progress.unit_finished("sex", "b", "done", 1.0)
    progress.step_started("stack", "swarp", 1)
    progress.unit_finished("stack", "all", "blocked", was_running=False)
    progress.step_finished("sex", {"failed": 1, "done": 1})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[:7] == [
        "[terapix] step sex (sextractor) started: 2 units",
        "[terapix] sex/a started; running: sex (1)",
        "[terapix] worker lost while running sex/a: retrying",
        "[terapix] sex/a started; running: sex (1)",
        "[terapix] sex/b started; running: sex (2)",
        "[terapix] 1/3 sex/a failed in 2.0 s; running: sex (1)",
        "[terapix] 2/3 sex/b done in 1.0 s; running: nothing",
    ]
    assert lines[8] == "[terapix] 3/3 stack/all blocked; running: nothing"
    assert lines[9] == "[terapix] step sex (sextractor) finished: 1 failed, 1 done"
    assert lines[10].startswith("[terapix] 3/3 units (1 done, 0 up to date, 1 failed, 1 blocked), ")
    silent = io.StringIO()
    quiet = Progress(1, enabled=False, stream=silent, tty=False)
    quiet.step_started("a", "b", 1)
    quiet.unit_started("a", "u")
    quiet.unit_finished("a", "u", "done", 1.0)
    quiet.close()
    assert silent.getvalue() == ""


def test_warmup_reason_reads_the_package_and_numba_cache(tmp_path, monkeypatch):
    import importlib

    from terapix_fw import progress

    cold = tmp_path / "terapix_zzcold"
    (cold / "tests").mkdir(parents=True)
    (cold / "__init__.py").write_text("")
    (cold / "tool.py").write_text("from terapix_fw.tool import Tool\n\nclass T(Tool):\n    name = 'cold'\n")
    (cold / "tests" / "test_x.py").write_text("import numba\n")  # tests do not count
    # a tool of another plugin that runs this one's code (as qualityfits runs psfex's)
    user = tmp_path / "terapix_zzuser"
    user.mkdir()
    (user / "__init__.py").write_text("")
    (user / "tool.py").write_text("from terapix_fw.tool import Tool\n\nclass U(Tool):\n    name = 'user'\n\n"
                                  "    def run(self, ctx):\n        from terapix_zzcold.kernels import box\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    T = importlib.import_module("terapix_zzcold.tool").T
    U = importlib.import_module("terapix_zzuser.tool").U
    try:
        assert warmup_reason(T) is None and warmup_reason(U) is None  # no numba anywhere
        (cold / "kernels.py").write_text("import numpy as np\nfrom numba import njit\n")
        progress._scan.cache_clear()
        assert warmup_reason(T) == "numba compilation, first run only"
        assert warmup_reason(U) == "numba compilation, first run only"
        # numba wrote compiled code for kernels.py: loading it is quick, no warm-up phase
        cache = cold / "__pycache__"
        cache.mkdir(exist_ok=True)
        index = cache / "kernels.box-12.py311.nbi"
        index.write_bytes(b"")
        assert warmup_reason(T) is None and warmup_reason(U) is None
        # an index older than the source is stale: numba compiles again
        os.utime(index, (1, 1))
        assert warmup_reason(T) == "numba compilation, first run only"
        # with NUMBA_CACHE_DIR, numba keeps the cache under it, mirroring the source directory
        mirror = tmp_path / "numba-cache"
        mirrored = mirror / str(cold.resolve()).lstrip(os.sep)
        mirrored.mkdir(parents=True)
        (mirrored / "kernels.box-12.py311.nbi").write_bytes(b"")
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(mirror))
        assert warmup_reason(T) is None
    finally:
        progress._scan.cache_clear()
        for name in [m for m in sys.modules if m.startswith(("terapix_zzcold", "terapix_zzuser"))]:
            del sys.modules[name]
