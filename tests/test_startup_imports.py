"""Start-up of drop-in runs (issue 14: `terapix tool sextractor cutout.fits` is run on thousands of
cut-outs from scripts, and its start-up is mostly imports): what a run imports, each case in a fresh
interpreter listing the modules it loaded, and runs forked from a warm ``terapix tool-server``.  No
timing is asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

#: prints, at the exit of the process that runs it (a forked tool process leaves by os._exit, so only
#: the process that parsed the command line reports), the names of the modules it imported
_REPORT = """
import atexit, json, sys
def report(path=sys.argv[1]):
    with open(path, "w") as handle:
        json.dump(sorted(sys.modules), handle)
atexit.register(report)
sys.argv = ["terapix"] + sys.argv[2:]
from terapix_fw.cli import run
run()
"""

#: a plugin's own subcommands, and other plugins' tool modules: none is needed to run one tool
_OTHER_PLUGINS = ("terapix_fw.db.commands", "terapix_fw.spica.commands", "terapix_scamp.tool",
                  "terapix_swarp.tool", "terapix_psfex.tool")


def _env(home, **extra) -> dict:
    env = {"TERAPIX_HOME": str(home), "PATH": "/usr/bin:/bin", "TERAPIX_TOOL_SERVER": "off", **extra}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _modules_of(tmp_path, *argv: str, env=None, expect: int = 0) -> set[str]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _REPORT, str(out), *argv], cwd=tmp_path,
                          env=env or _env(tmp_path / "home"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, proc.stderr
    return set(json.loads(out.read_text()))


def _loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_tool_help_and_defaults_load_only_the_named_tool(tmp_path):
    """`terapix tool sextractor -dd` and `--help` print from the parameter declarations alone: no
    numerical library, no database, and no other plugin's tools or commands."""
    for argv in (("-dd",), ("--help",)):
        modules = _modules_of(tmp_path, "tool", "sextractor", *argv)
        assert "terapix_sextractor.tool" in modules
        for heavy in ("numpy", "astropy", "numba", "sqlalchemy", "sep"):
            assert not _loaded(modules, heavy), f"`terapix tool sextractor {argv[0]}` imported {heavy}"
        assert not [m for m in _OTHER_PLUGINS if m in modules]


def test_drop_in_run_parent_does_the_recording_only(tmp_path, small_image):
    """The process that parses the command line records the run in RDBix (SQLAlchemy) while the tool
    runs in a forked process: it never imports the tool's numerical stack itself, nor other plugins'
    tools and commands."""
    modules = _modules_of(tmp_path, "tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET")
    assert (tmp_path / "test.cat").exists()
    assert _loaded(modules, "sqlalchemy")  # recording is on: the run is in $TERAPIX_HOME/rdbix.sqlite
    for heavy in ("numpy", "astropy", "numba", "sep"):
        assert not _loaded(modules, heavy), f"the drop-in's parent process imported {heavy}"
    assert not [m for m in _OTHER_PLUGINS if m in modules]
    assert "terapix_fw.toolserver" not in modules  # TERAPIX_TOOL_SERVER=off: not even the client


def test_sextractor_world_coordinates_without_astropy_coordinates(tmp_path, small_image):
    """The whole drop-in in one process (as a script calling the tool would run it): world coordinates
    of a TAN header come without astropy.wcs, hence without astropy.coordinates and its frames."""
    script = """
import json, sys
from terapix_fw.dropin import run_tool_command
code = run_tool_command("sextractor", ["cutout.fits[1]", "-VERBOSE_TYPE", "QUIET", "-CATALOG_TYPE", "FITS_1.0"])
with open("modules.json", "w") as handle:
    json.dump(sorted(sys.modules), handle)
sys.exit(code)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads((tmp_path / "modules.json").read_text()))
    assert _loaded(modules, "numba")  # the measurements ran (and the catalogue below has world positions)
    assert not _loaded(modules, "astropy.coordinates") and not _loaded(modules, "astropy.wcs")
    # the catalogue is written from the measured columns: astropy.table (every astropy I/O format) is not
    # loaded for it
    assert not _loaded(modules, "astropy.table")
    with fits.open(tmp_path / "test.cat") as hdul:
        table = hdul[1].data
        assert len(table) == 2
        assert np.all(np.abs(table["ALPHA_J2000"] - 150.0) < 0.01)
        assert np.all(np.abs(table["DELTA_J2000"] - 2.0) < 0.01)


@pytest.fixture
def tool_server(tmp_path):
    """A `terapix tool-server` with sextractor loaded, listening on a socket in tmp_path (its own
    TERAPIX_HOME: the runs must use their client's); stopped by SIGTERM at the end."""
    sock = tmp_path / "s.sock"
    cmd = [sys.executable, "-c", "import sys; from terapix_fw.cli import run; sys.argv[0] = 'terapix'; run()",
           "tool-server", "--socket", str(sock), "--preload", "sextractor"]
    server = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path / "server-home"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # printed once the socket accepts connections
        assert f"TERAPIX_TOOL_SERVER={sock}" in line, server.stderr.read()
        yield sock
    finally:
        server.terminate()
        server.communicate(timeout=60)  # reaps it and closes its pipes
    assert not sock.exists()


def test_served_drop_in_run_is_the_same_run(tmp_path, small_image, tool_server):
    """With TERAPIX_TOOL_SERVER set, `terapix tool` hands its command line, directory, environment and
    standard streams to a process forked from the warm server: the catalogue lands in the command's
    directory, the run is recorded in the command's RDBix, output and exit codes are the command's, and
    the command's own process loads none of the tool's code."""
    served = _env(tmp_path / "home", TERAPIX_TOOL_SERVER=str(tool_server))
    modules = _modules_of(tmp_path, "tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET",
                          "-CATALOG_TYPE", "FITS_1.0", env=served)
    for heavy in ("numpy", "sqlalchemy", "terapix_sextractor", "terapix_fw.dropin"):
        assert not _loaded(modules, heavy), f"the served command's own process imported {heavy}"
    with fits.open(tmp_path / "test.cat") as hdul:
        assert len(hdul[1].data) == 2
    assert (tmp_path / "home" / "rdbix.sqlite").exists() and not (tmp_path / "server-home" / "rdbix.sqlite").exists()
    # stdout and stderr are the command's; exit codes too (a failed run, a usage error)
    cmd = [sys.executable, "-c", _REPORT, str(tmp_path / "m.json"), "tool", "sextractor"]
    version = subprocess.run(cmd + ["-v"], cwd=tmp_path, env=served, capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.startswith("sextractor version ")
    missing = subprocess.run(cmd + ["nosuch.fits"], cwd=tmp_path, env=served, capture_output=True, text=True,
                             timeout=300)
    local = subprocess.run(cmd + ["nosuch.fits"], cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True,
                           text=True, timeout=300)
    assert missing.returncode == local.returncode != 0
    assert "nosuch.fits" in missing.stderr and missing.stderr.split("(log:")[0] == local.stderr.split("(log:")[0]


def test_no_server_answering_runs_here(tmp_path, small_image):
    gone = _env(tmp_path / "home", TERAPIX_TOOL_SERVER=str(tmp_path / "none.sock"))
    proc = subprocess.run([sys.executable, "-c", _REPORT, str(tmp_path / "m.json"), "tool", "sextractor",
                           "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path, env=gone, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and (tmp_path / "test.cat").exists()
    assert f"no tool server answers at {tmp_path / 'none.sock'}" in proc.stderr


def test_load_cached_kernels_loads_what_the_cache_holds_and_compiles_nothing(tmp_path):
    """A warm module's kernels come from numba's on-disk cache: a first process compiles and caches a
    kernel; a second loads it without a call and without compiling, and leaves parallel kernels alone."""
    (tmp_path / "kern.py").write_text(
        "import numba\n"
        "@numba.njit(cache=True)\n"
        "def twice(x):\n    return 2 * x\n"
        "@numba.njit(cache=True, parallel=True)\n"
        "def total(a):\n    s = 0.0\n    for i in numba.prange(a.size):\n        s += a[i]\n    return s\n")
    first = subprocess.run([sys.executable, "-c", "import numpy as np, kern; kern.twice(1.5); kern.total(np.ones(3))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    check = """
import json, kern
from terapix_fw.tool import load_cached_kernels
n = load_cached_kernels(kern)
print(json.dumps([n, len(kern.twice.overloads), sum(kern.twice.stats.cache_hits.values()),
                  sum(kern.twice.stats.cache_misses.values()), len(kern.total.overloads)]))
"""
    second = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("tool", ["sextractor", "swarp", "psfex", "weightwatcher"])
def test_worker_preload_modules_load_and_start_no_thread(tmp_path, tool):
    """What the tool server and the pipeline's fork server import for a tool loads, and starts no
    Python thread (they fork afterwards)."""
    script = f"""
import importlib, threading
from terapix_fw.plugins import get_tool
modules = get_tool({tool!r}).cls.preload_modules()
assert len(modules) > 1, modules
for m in modules:
    importlib.import_module(m)
assert threading.active_count() == 1, threading.enumerate()
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_import_preload_pauses_the_collector_and_freezes_what_it_loaded(tmp_path):
    """A tool's preload modules (tool server, a drop-in run's tool process) are imported with the cyclic
    garbage collector paused, then frozen; the collector is on again for the run; a module that cannot
    be imported is left to the run."""
    (tmp_path / "mod_a.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    script = """
import gc, json
from terapix_fw.tool import import_preload
before = gc.get_freeze_count()
import_preload(["mod_a", "no_such_module_here"])
import mod_a
print(json.dumps([mod_a.COLLECTING, gc.isenabled(), gc.get_freeze_count() > before]))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [False, True, True]
