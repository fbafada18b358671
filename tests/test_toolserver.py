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
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from terapix_fw.toolserver import _INT, NotServed, _differences, _recv_exact, _recv_msg, _send_msg, fingerprint, query

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="no os.fork on this platform")

TERAPIX = [sys.executable, "-c", "import sys; from terapix_fw.cli import run; sys.argv[0] = 'terapix'; run()"]
DEADLINE = 180.0
_SIGNALS = "(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)"
#: a command started as a shell starts a foreground one, whatever this process's signals are (a suite run
#: in a background job ignores SIGINT)
FOREGROUND = [sys.executable, "-c", "import signal, sys; from terapix_fw.cli import run; "
              f"[signal.signal(s, signal.SIG_DFL) for s in {_SIGNALS}]; "
              "signal.signal(signal.SIGINT, signal.default_int_handler); "
              "signal.pthread_sigmask(signal.SIG_SETMASK, []); "
              "sys.argv[0] = 'terapix'; run()"]
#: a foreground command under nohup
NOHUP = FOREGROUND[:2] + [FOREGROUND[2].replace("sys.argv[0]",
                                                 "signal.signal(signal.SIGHUP, signal.SIG_IGN); sys.argv[0]")]
#: a command under nohup in a background job, from a harness that blocks SIGINT and SIGHUP: a server it
#: starts inherits that
SHIELDED = [sys.executable, "-c", "import signal, sys; from terapix_fw.cli import run; "
            f"[signal.signal(s, signal.SIG_IGN) for s in {_SIGNALS}]; "
            "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGHUP]); "
            "sys.argv[0] = 'terapix'; run()"]


def _env(home: Path, **extra) -> dict:
    """A user's environment with TERAPIX_TOOL_SERVER unset (the default: servers on demand)."""
    env = {k: v for k, v in os.environ.items() if k != "TERAPIX_TOOL_SERVER"}
    env.update({"TERAPIX_HOME": str(home), "TERAPIX_TOOL_SERVER_IDLE": "300", **extra})
    return env


def _sex(tmp_path, env, *extra, command=TERAPIX, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(command + ["tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET", *extra],
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


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def _working_in(directory: Path) -> list[int]:
    """Pids of the processes whose current directory is ``directory``: a command run there, and the
    run a server forked for it (which changes to the command's directory before it runs anything)."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{entry}/cwd") == str(directory):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def _open_writer(fifo: Path, proc: subprocess.Popen) -> int:
    """A writing end of ``fifo`` once a reader has it open (the command's run, blocked in open())."""
    def opened():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        if proc.poll() is not None:
            pytest.fail(f"the command ended ({proc.returncode}) before opening {fifo}")
        return None
    return _until(opened, f"a run to open {fifo}")


def _end(proc: subprocess.Popen, directory: Path) -> None:
    """Whatever failed, nothing left behind: the command and any run still working in its directory
    (an orphaned run holds the command's pipes, and communicate() would wait for it forever)."""
    for pid in _working_in(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"command {proc.pid}'s pipes still open {DEADLINE:g} s after it was killed")


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


@pytest.mark.parametrize("signum, nohup", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGHUP, False),
                                           (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGINT-after-SIGHUP-under-nohup"])
def test_signal_to_the_command_reaches_its_served_run(tmp_path, home, signum, nohup):
    """The served run blocks reading its configuration file (a FIFO nobody writes); the signal sent
    to the command ends it: SIGTERM and SIGHUP kill both as they would kill the command, Ctrl-C
    interrupts the run (exit code 130).  The server was started by a command that ignores and blocks
    these signals: the run handles them as its own command does, not as the server would; a command
    under nohup ignores a SIGHUP sent first, and so does its run (else it would end of it)."""
    env = _env(home)
    assert _sex(tmp_path, env, command=SHIELDED).returncode == 0
    server = _ready(home)["pid"]
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    command = NOHUP if nohup else FOREGROUND
    proc = subprocess.Popen(command + ["tool", "sextractor", "cutout.fits[1]", "-c", str(fifo)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        writer = _open_writer(fifo, proc)
        # the process reading it is the server's run, not the command itself (which changed to this
        # directory before the run did: both are there)
        runs = [p for p in _working_in(tmp_path) if p != proc.pid]
        assert len(runs) == 1 and _ppid(runs[0]) == server, \
            f"not served (command {proc.pid}, others there {runs}, server {server}): {_log(home)}"
        run = os.pidfd_open(runs[0])  # waited on below; the pid may be reused once it has ended
        if nohup:
            proc.send_signal(signal.SIGHUP)  # discarded at once by the command, or passed on before signum
        proc.send_signal(signum)
        try:
            out, err = proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command did not end {DEADLINE:g} s after {signum.name} (run {runs[0]} alive: "
                        f"{_alive(runs[0])})")
        if signum == signal.SIGINT:
            assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)
        else:
            assert proc.returncode == -signum, (proc.returncode, err)
        try:
            assert select.select([run], [], [], DEADLINE)[0], f"run {runs[0]} did not end"
        finally:
            os.close(run)
        with pytest.raises(BrokenPipeError):  # the run's end of the FIFO is closed
            os.write(writer, b"DETECT_MINAREA 5\n")
    finally:
        if writer is not None:
            os.close(writer)
        _end(proc, tmp_path)


class _DroppingServer:
    """A tool server that accepts a command, takes its request and streams, then waits for ``drop``
    to be set and closes the connection without running anything (as a server killed right then)."""

    def __init__(self, path: Path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(DEADLINE)
        self.request = threading.Event()  # the command sent its request: its handlers are installed
        self.drop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        with self.listener, self.listener.accept()[0] as conn:
            _send_msg(conn, {"pid": os.getpid(), "watch": []})
            _recv_msg(conn, 1 << 18)
            _send_msg(conn, {"accept": True})
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            for fd in fds:
                os.close(fd)
            _recv_exact(conn, _INT.unpack(data[:_INT.size])[0] + _INT.size - len(data))
            self.request.set()
            self.drop.wait(DEADLINE)


@pytest.mark.usefixtures("small_image")
def test_a_signal_before_the_run_started_interrupts_the_command(tmp_path):
    """Ctrl-C while the server holds the request; the server then drops the command: the command is
    interrupted (the Ctrl-C was kept for a run that never came, and then was lost as the command ran
    itself, to the end)."""
    server = _DroppingServer(tmp_path / "s.sock")
    proc = subprocess.Popen(FOREGROUND + ["tool", "sextractor", "cutout.fits[1]", "-VERBOSE_TYPE", "QUIET"],
                            cwd=tmp_path, env=_env(tmp_path / "h", TERAPIX_TOOL_SERVER=str(tmp_path / "s.sock")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.request.wait(DEADLINE), "no request reached the server"
        proc.send_signal(signal.SIGINT)  # queued before the drop: the command handles it before it sees the drop
        server.drop.set()
        _, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)
        assert not (tmp_path / "test.cat").exists() and "running here" not in err
    finally:
        server.drop.set()
        _end(proc, tmp_path)


@pytest.mark.usefixtures("small_image")
def test_a_command_the_server_dropped_runs_here_with_its_own_handlers(tmp_path):
    """The server drops the command; it runs itself, and a SIGTERM ends it (the handlers that would
    pass it on to a run are gone: they kept it for a run that never came)."""
    server = _DroppingServer(tmp_path / "s.sock")
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(FOREGROUND + ["tool", "sextractor", "cutout.fits[1]", "-c", str(fifo)], cwd=tmp_path,
                            env=_env(tmp_path / "h", TERAPIX_TOOL_SERVER=str(tmp_path / "s.sock")),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        assert server.request.wait(DEADLINE), "no request reached the server"
        server.drop.set()
        writer = _open_writer(fifo, proc)  # the command itself reads it: no server runs anything
        assert _working_in(tmp_path) == [proc.pid]
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command ran here did not end {DEADLINE:g} s after SIGTERM")
        assert proc.returncode == -signal.SIGTERM and "dropped the command" in err, (proc.returncode, err)
    finally:
        server.drop.set()
        if writer is not None:
            os.close(writer)
        _end(proc, tmp_path)


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
