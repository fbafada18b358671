"""The tool server started on demand (issue 14): ``terapix tool`` with ``TERAPIX_TOOL_SERVER`` unset
runs itself and starts a detached server the first time; the next commands are forked from it.  Real
servers and real commands in subprocesses, each test with its own ``TERAPIX_HOME``; every server a test
starts is stopped at its end.  Nothing waits a fixed time: each wait is on the event itself (the
server answering, a process exiting, a FIFO getting its reader), with a deadline."""
from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terapix_fw.toolserver import NotServed, _differences, fingerprint, query

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="no os.fork on this platform")

TERAPIX = [sys.executable, "-c", "import sys; from terapix_fw.cli import run; sys.argv[0] = 'terapix'; run()"]
DEADLINE = 180.0


def _env(home: Path, **extra) -> dict:
    """A user's environment with TERAPIX_TOOL_SERVER unset (the default: servers on demand)."""
    env = {k: v for k, v in os.environ.items() if k != "TERAPIX_TOOL_SERVER"}
    env.update({"TERAPIX_HOME": str(home), "TERAPIX_TOOL_SERVER_IDLE": "300", **extra})
    return env


def _sex(tmp_path, env, *extra, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(TERAPIX + ["tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE, **kw)


def _until(condition, what: str):
    """Poll ``condition()`` until it returns something true (returned), failing after the deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def _status(home: Path) -> dict | None:
    try:
        return query(str(home / "tool-server.sock"))
    except NotServed:
        return None


def _ready(home: Path) -> dict:
    return _until(lambda: _status(home), f"a tool server answering in {home}")


def _log(home: Path) -> str:
    path = home / "tool-server.log"
    return path.read_text() if path.exists() else ""


def _wait_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], DEADLINE)[0], f"process {pid} did not exit"
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for its adoptive parent to reap has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _servers_of(home: Path) -> list[int]:
    sock = str(home / "tool-server.sock")
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "tool-server" in argv and sock in argv:
            pids.append(int(entry))
    return pids


@pytest.fixture
def home(tmp_path, small_image):
    """The user's TERAPIX_HOME (short path: a Unix socket's name holds 108 bytes); every server started
    there is stopped at the end."""
    path = tmp_path / "h"
    yield path
    for pid in _servers_of(path):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        _wait_exit(pid)


def test_first_command_starts_a_server_and_the_next_is_served(tmp_path, home):
    env = _env(home)
    first = _sex(tmp_path, env)  # pipes: returns only when every writer of them has closed them
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "test.cat").exists() and first.stderr == ""
    # the server was started by this command, outlives it, and did not hold its pipes
    server = int(_until(lambda: (home / "tool-server.sock.lock").read_text().split(), "the server's pid")[0])
    assert _alive(server)
    status = _ready(home)
    assert status["pid"] == server and status["served"] == 0 and "sextractor" in status["preloaded"]
    assert oct(os.stat(home / "tool-server.sock").st_mode & 0o777) == "0o600"
    (tmp_path / "test.cat").unlink()

    second = _sex(tmp_path, env)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "test.cat").exists()
    assert query(str(home / "tool-server.sock"))["served"] == 1
    assert "served pid" in _log(home) and "tool sextractor" in _log(home)
    # the run is recorded in the command's RDBix, and a failing command's code and message are its own
    assert (home / "rdbix.sqlite").exists()
    missing = subprocess.run(TERAPIX + ["tool", "sextractor", "nosuch.fits"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=DEADLINE)
    assert missing.returncode != 0 and "nosuch.fits" in missing.stderr
    assert query(str(home / "tool-server.sock"))["served"] == 2
    # another tool's first command is served too; its code is loaded afterwards, for the next ones
    version = subprocess.run(TERAPIX + ["tool", "swarp", "-v"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=DEADLINE)
    assert version.returncode == 0 and version.stdout.startswith("swarp version ")
    _until(lambda: "swarp" in query(str(home / "tool-server.sock"))["preloaded"], "swarp's code to be loaded")

    status_cmd = subprocess.run(TERAPIX + ["tool-server", "--status"], env=env, capture_output=True, text=True,
                                timeout=DEADLINE)
    assert status_cmd.returncode == 0 and f"pid {server} listening" in status_cmd.stdout
    stop = subprocess.run(TERAPIX + ["tool-server", "--stop"], env=env, capture_output=True, text=True,
                          timeout=DEADLINE)
    assert stop.returncode == 0 and f"stopped pid {server}" in stop.stdout
    assert not _alive(server) and not (home / "tool-server.sock").exists()
    after = subprocess.run(TERAPIX + ["tool-server", "--status"], env=env, capture_output=True, text=True,
                           timeout=DEADLINE)
    assert after.returncode == 3 and "no tool server answers" in after.stdout


def test_off_runs_here_and_starts_nothing(tmp_path, home):
    proc = _sex(tmp_path, _env(home, TERAPIX_TOOL_SERVER="off"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "test.cat").exists()
    assert not [p for p in ("tool-server.sock", "tool-server.sock.lock", "tool-server.log") if (home / p).exists()]
    assert not _servers_of(home)


def test_a_server_with_another_environment_refuses_and_is_replaced(tmp_path, home):
    env = _env(home)
    assert _sex(tmp_path, env).returncode == 0
    old = _ready(home)["pid"]
    # read by numba's threading layer when it starts; another value than the suite's own (a Dask
    # cluster started by an earlier test sets OMP_NUM_THREADS=1 in this process)
    threads = "2" if os.environ.get("OMP_NUM_THREADS") == "1" else "1"
    other = _env(home, OMP_NUM_THREADS=threads)
    proc = _sex(tmp_path, other)
    assert proc.returncode == 0 and proc.stderr == ""  # it ran itself, silently
    _wait_exit(old)
    assert "env OMP_NUM_THREADS" in _log(home) and "served pid" not in _log(home)
    new = _until(lambda: (s := _status(home)) and s["pid"] != old and s, "the new server")
    assert new["served"] == 0
    assert _sex(tmp_path, other).returncode == 0
    assert query(str(home / "tool-server.sock"))["served"] == 1  # the new one serves that environment


def test_fingerprint_follows_the_code_and_the_startup_environment(tmp_path, monkeypatch):
    """An edited, added or removed Python file of a watched package changes the fingerprint (an
    editable install changes without a version bump); what Python writes when it imports does not."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    base = fingerprint([str(package)])
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint([str(package)]) == base
    os.utime(package / "sub" / "b.py", ns=(1, 1))
    edited = fingerprint([str(package)])
    assert _differences(base, edited) == [f"code {package}"]
    (package / "c.py").write_text("")
    assert fingerprint([str(package)]) != edited
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    monkeypatch.setenv("TERAPIX_DB_URL", "sqlite:///x.sqlite")  # read by the run: not a difference
    assert [d for d in _differences(edited, fingerprint([str(package)])) if d.startswith("env")] == \
        ["env NUMBA_NUM_THREADS"]


def test_idle_server_exits(tmp_path, home):
    proc = _sex(tmp_path, _env(home, TERAPIX_TOOL_SERVER_IDLE="2"))
    assert proc.returncode == 0, proc.stderr
    server = int(_until(lambda: (home / "tool-server.sock.lock").read_text().split(), "the server's pid")[0])
    _wait_exit(server)
    assert "exiting: no command for 2 s" in _log(home)
    assert not (home / "tool-server.sock").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_command_reaches_its_served_run(tmp_path, home, signum):
    """The served run blocks reading its configuration file (a FIFO nobody writes); the signal sent
    to the command ends it: SIGTERM kills both as it would kill the command, Ctrl-C interrupts the run
    (exit code 130)."""
    env = _env(home)
    assert _sex(tmp_path, env).returncode == 0
    _ready(home)
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(TERAPIX + ["tool", "sextractor", "cutout.fits[1]", "-c", str(fifo)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def reader_opened():
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                return None
        writer = _until(reader_opened, "the served run to open its configuration file")
        # the run waiting there is the server's, not the command's own
        run = int(_log(home).split("served pid ")[-1].split(":")[0])
        assert _alive(run)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEADLINE)
        if signum == signal.SIGTERM:
            assert proc.returncode == -signal.SIGTERM
        else:
            assert proc.returncode == 130 and "interrupted" in err
        _wait_exit(run)
        with pytest.raises(BrokenPipeError):  # the run's end of the FIFO is closed
            os.write(writer, b"DETECT_MINAREA 5\n")
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_concurrent_first_commands_start_one_server(tmp_path, home):
    env = _env(home)
    procs = [subprocess.Popen(TERAPIX + ["tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET",
                                         "-CATALOG_NAME", f"c{k}.cat"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
    status = _ready(home)
    assert _servers_of(home) == [status["pid"]]
    assert _log(home).count("listening at") == 1


def test_no_new_start_right_after_a_server_that_died_starting(tmp_path):
    """A server that died before listening (its error is in the log) is not started again by every
    following command: the next start waits a minute."""
    from terapix_fw.toolserver import start_detached

    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    (home / "tool-server.sock.lock").write_text("starting\n")  # what a start that never listened leaves
    assert start_detached(home / "tool-server.sock", "sextractor") is None
    assert not (home / "tool-server.log").exists() and not _servers_of(home)
