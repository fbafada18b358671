"""A warm process for drop-in runs: ``terapix tool-server`` loads the framework, RDBix and the tools'
numerical code once; ``terapix tool ...`` with ``TERAPIX_TOOL_SERVER`` set to its socket then runs in a
process forked from it instead of starting Python, numpy, astropy and numba again (issue 14: a script
running sextractor on thousands of cut-outs pays the start-up on every one).

The command's process (the client) sends its command line, working directory, environment and umask,
and its standard input, output and error themselves (file descriptors passed over the Unix socket):
the forked process writes where the command would have written, in the same directory, and the
command exits with its exit code.  Ctrl-C or a kill of the command is passed on to that process.
The run is the same drop-in run, recorded in RDBix the same way.

Limits, as for any such server: it runs the code it loaded when it started (restart it after an
upgrade); environment variables read at start-up by Python or numba (``PYTHONPATH``, ``NUMBA_*``) are
the server's; resource limits (``ulimit``) and the controlling terminal are the server's.  Only the
user who started it can connect (socket mode 0600, peer credentials checked).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

__all__ = ["ENV_VAR", "default_socket", "run_remote", "serve"]

#: the client side is opt-in: ``TERAPIX_TOOL_SERVER=/path/to/socket`` (the server prints it)
ENV_VAR = "TERAPIX_TOOL_SERVER"
_INT = struct.Struct("!i")
_MAX_REQUEST = 1 << 22


def default_socket() -> Path:
    """``$TERAPIX_HOME/tool-server.sock`` (default ``~/.terapix``), where drop-in runs keep their logs."""
    return Path(os.environ.get("TERAPIX_HOME", Path.home() / ".terapix")) / "tool-server.sock"


# ---------------------------------------------------------------------------------------------- client
def run_remote(argv: list[str], path: str) -> int | None:
    """Run ``terapix ARGV`` in the server listening at ``path``.

    Parameters
    ----------
    argv : list of str
        The command line after ``terapix``.
    path : str
        The server's Unix socket.

    Returns
    -------
    int or None
        The command's exit code, or None when no server answers there (the caller then runs the
        command itself).
    """
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask}).encode()
    with conn:
        try:
            socket.send_fds(conn, [_INT.pack(len(request)) + request], [0, 1, 2])
        except OSError:  # e.g. a standard stream closed: run here, where that is handled as usual
            return None
        pid = _read_int(conn)
        if pid is None:
            print(f"terapix: the tool server at {path} refused the command", file=sys.stderr)
            return 2

        received = []

        def forward(signum, _frame):  # Ctrl-C and kill reach the processes doing the work, as from a terminal
            received.append(signum)
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:
                pass
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        code = _read_int(conn)
    if code is None and received:  # killed by the signal, as the command itself would have been
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    if code is None:
        print(f"terapix: the tool server's process {pid} ended without an exit code", file=sys.stderr)
        return 1
    return code


def _read_int(conn: socket.socket) -> int | None:
    data = b""
    while len(data) < _INT.size:
        chunk = conn.recv(_INT.size - len(data))
        if not chunk:
            return None
        data += chunk
    return _INT.unpack(data)[0]


# ---------------------------------------------------------------------------------------------- server
def serve(path: Path, preload: list[str], ready=None) -> int:
    """Listen at ``path`` until SIGTERM or Ctrl-C, running each drop-in command in a forked process.

    Parameters
    ----------
    path : Path
        The Unix socket to create (mode 0600).
    preload : list of str
        The tools whose code is loaded now (:meth:`terapix_fw.tool.Tool.preload_modules`).
    ready : callable, optional
        ``ready(path)`` is called once the socket accepts connections.

    Returns
    -------
    int
        The exit code: 0 after SIGTERM or Ctrl-C.
    """
    import importlib

    from .plugins import get_tool

    for name in preload:
        for module in get_tool(name).cls.preload_modules():
            try:
                importlib.import_module(module)
            except ImportError:  # as multiprocessing's fork server: the run imports it and reports
                pass
    import terapix_fw.db.recorder  # noqa: F401 - SQLAlchemy and RDBix's documents; no database is opened here
    import terapix_fw.dropin  # noqa: F401

    path.parent.mkdir(parents=True, exist_ok=True)
    listener = _listen(path)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, _reap)
    if ready is not None:
        ready(path)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except InterruptedError:
                continue
            with conn:
                if not _same_user(conn):
                    continue
                sys.stdout.flush()  # a forked process must not write the server's buffered output again
                sys.stderr.flush()
                if os.fork() == 0:
                    listener.close()
                    _run_request(conn)  # never returns
    except KeyboardInterrupt:
        return 0
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def _listen(path: Path) -> socket.socket:
    from .errors import TerapixError

    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise TerapixError(f"a tool server already listens at {path}")
        except OSError:
            path.unlink()  # left by a server that was killed
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is created 0600: only its owner may connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    return listener


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


def _reap(_signum, _frame) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _run_request(conn: socket.socket) -> None:
    """The forked process: become the client's command (its streams, directory, environment), run it,
    send the exit code and leave without the interpreter's teardown (as :func:`terapix_fw.cli.run`)."""
    code = 1
    try:
        os.setpgid(0, 0)  # a process group of its own (with the processes it forks), as a command's in a shell
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST + _INT.size, 3)
        size = _INT.unpack(data[:_INT.size])[0]
        while len(data) < size + _INT.size:
            chunk = conn.recv(size + _INT.size - len(data))
            if not chunk:
                raise ConnectionError("request cut short")
            data += chunk
        request = json.loads(data[_INT.size:])
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        conn.sendall(_INT.pack(os.getpid()))
        import logging

        root = logging.getLogger()  # the command configures its own logging, as in a process of its own
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        from .cli import exit_code_of_main, settle

        # exit handlers and streams are settled before the client learns the code: a script reading
        # the output right after the command must find all of it
        code = settle(exit_code_of_main(list(request["argv"])))
    except BaseException as exc:  # noqa: BLE001 - reported to the client's stderr, never to the server
        print(f"terapix: tool server: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
    finally:
        try:
            conn.sendall(_INT.pack(code))
        except OSError:
            pass
        os._exit(code)
