"""A warm process for drop-in runs, started and used transparently (issue 14: a script running
``terapix tool sextractor`` on thousands of cut-outs paid Python, numpy, astropy and numba's start-up on
every one).

By default (``TERAPIX_TOOL_SERVER`` unset), ``terapix tool ...`` first asks the user's tool server at
``$TERAPIX_HOME/tool-server.sock`` to run the command; if none answers, the command runs itself and
starts a detached server for the next commands, as gradle's or sccache's daemons are started: a new
session, no inherited standard streams (its output goes to ``$TERAPIX_HOME/tool-server.log``), one
server however many first commands start at once (a lock held by the server for its whole life), and an
exit of its own after ``TERAPIX_TOOL_SERVER_IDLE`` seconds without a command (600 by default).
``TERAPIX_TOOL_SERVER=off`` runs every command itself and starts nothing; ``TERAPIX_TOOL_SERVER=PATH``
uses the server at PATH (started by hand with ``terapix tool-server --socket PATH``) and starts none.
``terapix tool-server --status`` and ``--stop`` query and stop the server.

A served command (the client) sends its command line, working directory, environment and umask, and
its standard input, output and error themselves (file descriptors passed over the Unix socket), to a
process forked from the server: it writes where the command would have written, in the same
directory, and the command exits with its exit code.  Ctrl-C or a kill of the command is passed on
to that process, which handles it as the command would (:mod:`terapix_fw.toolsignals`).  The run is
the same drop-in run, recorded in RDBix the same way.

A server runs the code it loaded, in the environment it started with.  So before anything runs, the
client sends a fingerprint (:func:`fingerprint`): the interpreter, ``sys.path`` and the contents of
its directories, the size and modification times of the Python files of terapix_fw and of every
plugin the server loaded (an editable install changes without a version bump), and the environment
variables read at start-up (``PYTHON*``, ``NUMBA_*``, thread counts, locale...).  A server whose
fingerprint differs refuses, and leaves: the command runs itself and, by default, starts a new one.

Only the user who started it can use it: the socket is 0600 in a directory no one else can write,
both ends check the other's credentials (SO_PEERCRED) before anything is read, and every message has
a size limit.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from .cli import TOOL_SERVER_OFF, interrupted
from .toolsignals import Forwarder, adopt

__all__ = ["ENV_VAR", "IDLE_VAR", "NotServed", "default_socket", "fingerprint", "query", "run_remote",
           "run_served", "serve", "start_detached"]

#: ``off`` (or 0/no/false/none): never; unset, empty or ``auto``: the user's server, started on demand;
#: a path: the server listening there, never started on demand
ENV_VAR = "TERAPIX_TOOL_SERVER"
#: seconds without a command after which a server started on demand exits (default 600)
IDLE_VAR = "TERAPIX_TOOL_SERVER_IDLE"
DEFAULT_IDLE = 600.0
_AUTO = ("", "auto", "on", "1", "yes", "true")
_INT = struct.Struct("!i")
_MAX_HELLO = 1 << 16        # the server's first message: its pid and the directories it watches
_MAX_HANDSHAKE = 1 << 18    # the client's operation and fingerprint
_MAX_REQUEST = 1 << 22      # the command line, directory and environment of a run
_HANDSHAKE_TIMEOUT = 5.0    # a server busy forking answers late, a hung one not at all
_QUIET = 0.2                # how often a server waiting to load another tool's code looks for running commands
_RETRY_AFTER = 60.0         # seconds before starting again a server whose last start failed
#: environment variables read when Python, numpy, numba or astropy start (a forked run keeps what the
#: server read then): exact names and prefixes
_STARTUP_VARS = ("HOME", "LANG", "LANGUAGE", "TZ", "GOTO_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_STARTUP_PREFIXES = ("PYTHON", "NUMBA_", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "ASTROPY_", "LC_",
                     "XDG_CONFIG_", "XDG_CACHE_", "SQLALCHEMY_")
#: the detached server's interpreter: sys.path[0] as for the ``terapix`` console script (the
#: interpreter's directory), not the current directory as ``python -c`` would have it
_BOOT = ("import os, sys; sys.path[0] = os.path.dirname(sys.executable); sys.argv[0] = 'terapix'; "
         "from terapix_fw.cli import run; run()")


def default_socket() -> Path:
    """``$TERAPIX_HOME/tool-server.sock`` (default ``~/.terapix``), where drop-in runs keep their logs.

    Returns
    -------
    Path
    """
    return Path(os.environ.get("TERAPIX_HOME", Path.home() / ".terapix")) / "tool-server.sock"


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _log_path(path: Path) -> Path:
    return path.with_name(path.stem + ".log")


# ------------------------------------------------------------------------------------------ fingerprint
def _startup_var(name: str) -> bool:
    return name in _STARTUP_VARS or name.startswith(_STARTUP_PREFIXES)


def _code_of(directory: str) -> list:
    """[directory, number of .py files, largest and summed mtimes in ns] (``__pycache__`` left out:
    Python writes there when it imports, which changes no code)."""
    count = newest = total = 0
    pending = [directory]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py"):
                try:
                    mtime = entry.stat().st_mtime_ns
                except OSError:
                    continue
                count += 1
                newest = max(newest, mtime)
                total += mtime
            elif entry.name != "__pycache__" and not entry.name.startswith(".") and entry.is_dir():
                pending.append(entry.path)
    return [directory, count, newest, total]


def _listing_of(directory: str) -> list:
    """[directory, checksum of its entry names]: an installed, removed or upgraded distribution changes
    the names in site-packages (``name-version.dist-info``, ``.pth`` files of editable installs)."""
    import zlib

    try:
        names = sorted(n for n in os.listdir(directory) if n != "__pycache__")
    except OSError:
        return [directory, None]
    return [directory, zlib.crc32("\0".join(names).encode("utf-8", "surrogateescape"))]


def fingerprint(watch: list[str]) -> dict:
    """What a warm process must share with a command to run it: interpreter, import path, code and
    the environment read at start-up (about 1 ms: a few hundred ``stat`` calls).

    Parameters
    ----------
    watch : list of str
        Package directories whose Python files are checked (the server's: terapix_fw's and its
        plugins'); terapix_fw's directory as this process imports it is always added.

    Returns
    -------
    dict
        JSON-serialisable; two processes can share a run when theirs are equal.
    """
    import terapix_fw

    own = os.path.dirname(os.path.abspath(terapix_fw.__file__))
    return {"python": [sys.executable, sys.version, terapix_fw.__version__],
            # sys.path[0] is the script's directory (or the current one for python -c): not shared
            "path": [_listing_of(p) for p in sys.path[1:] if p],
            "code": [_code_of(d) for d in sorted(set(watch) | {own})],
            "env": {k: v for k, v in sorted(os.environ.items()) if _startup_var(k)}}


def _differences(a: dict, b: dict) -> list[str]:
    """The parts of two fingerprints that differ (``env PYTHONPATH``, ``code /x/terapix_fw``...)."""
    out = [key for key in ("python", "path") if a.get(key) != b.get(key)]
    code_a = {c[0]: c for c in a.get("code", [])}
    code_b = {c[0]: c for c in b.get("code", [])}
    out += [f"code {d}" for d in sorted(set(code_a) | set(code_b)) if code_a.get(d) != code_b.get(d)]
    env_a, env_b = a.get("env", {}), b.get("env", {})
    out += [f"env {k}" for k in sorted(set(env_a) | set(env_b)) if env_a.get(k) != env_b.get(k)]
    return out


# ------------------------------------------------------------------------------------------- messages
def _send_msg(conn: socket.socket, obj) -> None:
    data = json.dumps(obj).encode()
    conn.sendall(_INT.pack(len(data)) + data)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        data += chunk
    return data


def _recv_msg(conn: socket.socket, limit: int):
    size = _INT.unpack(_recv_exact(conn, _INT.size))[0]
    if not 0 <= size <= limit:
        raise ValueError(f"message of {size} bytes (limit {limit})")
    return json.loads(_recv_exact(conn, size))


def _read_int(conn: socket.socket) -> int | None:
    try:
        return _INT.unpack(_recv_exact(conn, _INT.size))[0]
    except ConnectionError:
        return None


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _private_dir(directory: Path) -> bool:
    """Whether only this user can create or replace files in ``directory``."""
    try:
        st = directory.stat()
    except OSError:
        return False
    if st.st_uid != os.getuid() or st.st_mode & 0o002:
        return False
    if not st.st_mode & 0o020:
        return True
    import grp  # group-writable: fine for the user's private group (umask 002 systems), no other

    try:
        group = grp.getgrgid(st.st_gid)
    except KeyError:
        return False
    return st.st_gid == os.getgid() and not [m for m in group.gr_mem if m != _user_name()]


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


# ---------------------------------------------------------------------------------------------- client
class NotServed(Exception):
    """The server did not take the command; the caller runs it itself.

    Parameters
    ----------
    message : str
        Why, for a message on stderr.
    absent : bool
        No server answered at the socket.
    replaced : bool
        A server answered but runs other code or another start-up environment: it refused and is
        leaving (a new one may be started at once).
    """

    def __init__(self, message: str, absent: bool = False, replaced: bool = False):
        super().__init__(message)
        self.absent = absent
        self.replaced = replaced


def _connect(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as exc:
        conn.close()
        raise NotServed(f"no tool server answers at {path}", absent=True) from exc
    if _peer_uid(conn) != os.getuid():  # our environment and streams go to nobody else
        conn.close()
        raise NotServed(f"the tool server at {path} belongs to another user")
    return conn


def _handshake(conn: socket.socket, path: str, op: str, tool: str | None = None) -> dict:
    """Read the server's hello, send ``op`` with this process's fingerprint; the server's answer."""
    conn.settimeout(_HANDSHAKE_TIMEOUT)
    try:
        hello = _recv_msg(conn, _MAX_HELLO)
        watch = [str(d) for d in hello.get("watch", [])]
        _send_msg(conn, {"op": op, "tool": tool, "fingerprint": fingerprint(watch)})
        return _recv_msg(conn, _MAX_HELLO)
    except (OSError, ValueError, ConnectionError, AttributeError) as exc:
        raise NotServed(f"the tool server at {path} did not answer ({type(exc).__name__}: {exc})",
                        absent=True) from exc


def query(path: str, op: str = "status") -> dict:
    """Ask the server at ``path`` for its status, or to stop.

    Parameters
    ----------
    path : str
        The server's socket.
    op : {"status", "stop"}
        What to ask.

    Returns
    -------
    dict
        The server's status: ``pid``, ``socket``, ``started`` (Unix time), ``served`` (runs so far),
        ``idle_timeout`` (seconds or None), ``preloaded`` (tools), ``compatible`` (whether it would
        run this process's commands) and ``differences`` (what differs if not).

    Raises
    ------
    NotServed
        When no server answers there.
    """
    conn = _connect(path)
    with conn:
        return _handshake(conn, path, op)


def run_remote(argv: list[str], path: str) -> int:
    """Run ``terapix ARGV`` in the server listening at ``path``.

    Parameters
    ----------
    argv : list of str
        The command line after ``terapix`` (``tool NAME ...``).
    path : str
        The server's Unix socket.

    Returns
    -------
    int
        The command's exit code.

    Raises
    ------
    NotServed
        When no server answers there, or it refuses the command: nothing ran, the caller runs it.
    """
    words = [w for w in argv if not w.startswith("-")]
    tool = words[1] if len(words) > 1 else None
    conn = _connect(path)
    with conn:
        answer = _handshake(conn, path, "run", tool)
        if not answer.get("accept"):
            raise NotServed(f"the tool server at {path} runs other code or another start-up environment "
                            f"({', '.join(answer.get('differences', []))}): it is leaving", replaced=True)
        umask = os.umask(0)
        os.umask(umask)
        try:
            cwd = os.getcwd()
        except OSError as exc:  # a directory removed under the command: it fails here as it would alone
            raise NotServed(f"no current directory ({exc})") from exc
        signals = Forwarder()  # the command's dispositions and mask, taken by its run
        request = json.dumps({"argv": argv, "cwd": cwd, "env": dict(os.environ), "umask": umask,
                              "ignored": signals.ignored, "blocked": signals.blocked}).encode()
        # Ctrl-C and kill reach the processes doing the work, as from a terminal; installed before the run
        # exists: a signal that comes first is passed on once its pid is known
        with signals:
            try:
                socket.send_fds(conn, [_INT.pack(len(request)) + request], [0, 1, 2])
            except OSError as exc:  # e.g. a standard stream closed: run here, where that is handled as usual
                raise NotServed(f"the tool server at {path} could not take the command ({exc})") from exc
            pid = _read_int(conn)
            if pid is None:
                raise NotServed(f"the tool server at {path} dropped the command before running it")
            signals.started(pid)
            conn.settimeout(None)
            code = _read_int(conn)
    received = signals.received
    if code is None and received:  # killed by the signal, as the command itself would have been
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    if code is None:
        print(f"terapix: the tool server's process {pid} ended without an exit code", file=sys.stderr)
        return 1
    return code


def _starts_server(argv: list[str]) -> bool:
    """Whether a command is worth starting a server for: a run, not ``-d``, ``-v`` or ``--help``."""
    words = argv[argv.index("tool") + 1:] if "tool" in argv else []
    return len(words) >= 2 and not words[0].startswith("-") and words[0] != "help" \
        and not {"-d", "-dd", "-v", "--version", "-h", "--help"} & set(words[1:])


def start_detached(path: Path, tool: str | None) -> int | None:
    """Start a server at ``path`` in the background, unless one is running or starting there.

    The server is a new session's leader with standard input from /dev/null and its output appended
    to ``tool-server.log`` beside the socket; it inherits no other descriptor of this process (a
    harness reading this command's pipes sees them close when the command exits) but the lock, which it
    holds until it exits: a second command that finds the lock taken starts nothing.

    Parameters
    ----------
    path : Path
        The socket, in a directory only this user can write (created 0700 if missing).
    tool : str or None
        A tool to preload (the command's).

    Returns
    -------
    int or None
        The server's pid, or None when none was started (one holds the lock, or the directory is not
        private).
    """
    import fcntl

    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    if not _private_dir(directory) or len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes
        return None
    lock = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a server holds it: running, starting or leaving
            return None
        st = os.fstat(lock)
        if st.st_size and b"listening" not in os.pread(lock, 64, 0) and time.time() - st.st_mtime < _RETRY_AFTER:
            return None  # the last server started lately died before listening (see its log): not at every command
        os.ftruncate(lock, 0)
        os.pwrite(lock, b"starting\n", 0)
        import subprocess

        log = os.open(_log_path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        after = None
        try:
            try:
                idle = str(float(os.environ.get(IDLE_VAR) or DEFAULT_IDLE))
            except ValueError:
                idle = str(DEFAULT_IDLE)
            # the server loads its code once this command has exited (it waits on this process's pidfd):
            # on a machine with few cores the two would otherwise compete, and the first command is slower
            after = os.pidfd_open(os.getpid())
            cmd = [sys.executable, "-c", _BOOT, "tool-server", "--socket", str(path), "--idle-timeout", idle,
                   "--detached", "--lock-fd", str(lock), "--after-fd", str(after)] + \
                (["--preload", tool] if tool else [])
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=directory,
                                    start_new_session=True, pass_fds=(lock, after), close_fds=True)
        finally:
            os.close(log)
            if after is not None:
                os.close(after)
        proc.returncode = 0  # never waited for: it outlives this command (and Popen must not warn)
        return proc.pid
    except OSError:
        return None
    finally:
        os.close(lock)  # the server's copy keeps the lock


def run_served(argv: list[str]) -> int | None:
    """A drop-in command's exit code when a tool server ran it, or None to run it here.

    ``TERAPIX_TOOL_SERVER`` decides (see the module's documentation): off; a path (the server there,
    or a message on stderr and None); else the user's server at :func:`default_socket`, silently, and
    when there is none or it is stale, a new one is started (:func:`start_detached`) for the next
    commands.

    Parameters
    ----------
    argv : list of str
        The command line after ``terapix`` (``tool NAME ...``).

    Returns
    -------
    int or None
    """
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() in TOOL_SERVER_OFF or not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return None
    explicit = setting.lower() not in _AUTO
    path = Path(setting) if explicit else default_socket()
    try:
        return run_remote(argv, str(path))
    except KeyboardInterrupt:  # Ctrl-C before the run started (after, it is passed on to the run)
        print("terapix: interrupted", file=sys.stderr)
        return 130
    except NotServed as why:
        if explicit:
            print(f"terapix: {why} ({ENV_VAR}); running here", file=sys.stderr)
        elif (why.absent or why.replaced) and _starts_server(argv):
            words = argv[argv.index("tool") + 1:]
            start_detached(path, words[0])
        return None


# ---------------------------------------------------------------------------------------------- server
def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tool-server[{os.getpid()}]: {message}", file=sys.stderr,
          flush=True)


def _watched_dirs() -> list[str]:
    """terapix_fw's package directory and each loaded plugin's."""
    from .plugins import get_plugin_manager

    out = set()
    for plugin in [sys.modules["terapix_fw"], *get_plugin_manager().get_plugins()]:
        name = getattr(plugin, "__name__", type(plugin).__module__).split(".")[0]
        module = sys.modules.get(name)
        for d in list(getattr(module, "__path__", None) or []) or \
                ([os.path.dirname(module.__file__)] if getattr(module, "__file__", None) else []):
            out.add(os.path.abspath(d))
    return sorted(out)


def _preload(tools: list[str], done: set[str]) -> None:
    from .plugins import get_tool
    from .tool import import_preload

    for name in tools:
        if name in done:
            continue
        done.add(name)
        try:
            modules = get_tool(name).cls.preload_modules()
        except Exception:  # noqa: BLE001 - an unknown tool: its runs say so
            continue
        import_preload(modules)


def _take_lock(path: Path, lock_fd: int | None) -> int:
    import fcntl

    from .errors import TerapixError

    fd = lock_fd if lock_fd is not None else os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    if lock_fd is None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = (os.pread(fd, 32, 0).decode(errors="replace").split() or ["?"])[0]
            os.close(fd)
            raise TerapixError(f"a tool server is running or starting at {path} (pid {holder})") from None
    os.set_inheritable(fd, False)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def serve(path: Path, preload: list[str], ready=None, idle_timeout: float | None = None,
          lock_fd: int | None = None, after_fd: int | None = None) -> int:
    """Listen at ``path`` until stopped, running each drop-in command in a forked process.

    Parameters
    ----------
    path : Path
        The Unix socket to create (mode 0600, in a directory only this user can write; created 0700).
    preload : list of str
        The tools whose code is loaded now (:meth:`terapix_fw.tool.Tool.preload_modules`); another
        tool's code is loaded after its first command has been handed to its process.
    ready : callable, optional
        ``ready(path)`` is called once the socket accepts connections.
    idle_timeout : float, optional
        Exit after this many seconds without a command (never by default).
    lock_fd : int, optional
        A descriptor of ``PATH.lock`` already locked by the process that started this one (else the
        lock is taken here).
    after_fd : int, optional
        A pidfd of the command that started this server: the tools' code is loaded once that process
        has exited (on a machine with few cores, loading beside it would slow that first command down).

    Returns
    -------
    int
        The exit code: 0 after SIGTERM, Ctrl-C, ``--stop``, the idle timeout, or a command run with other
        code or environment (the server is stale).

    Raises
    ------
    TerapixError
        When another server holds the lock or listens at ``path``, or the directory is not private.
    """
    from .errors import TerapixError

    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private_dir(path.parent):
        raise TerapixError(f"{path.parent} can be written by other users: the tool server's socket must be "
                           "in a directory only you can change (chmod go-w, or choose another --socket)")
    lock = _take_lock(path, lock_fd)
    # SIGTERM while loading (numba may run inside a ctypes callback that swallows exceptions): the
    # default, an exit that leaves nothing behind (no socket yet; the kernel drops the lock)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if after_fd is not None:
        import select

        select.select([after_fd], [], [])
        os.close(after_fd)
    try:
        watch = _watched_dirs()
        own = fingerprint(watch)  # before the tools' code is read: what a command compares against
        loaded: set[str] = set()
        _preload(preload, loaded)
        import terapix_fw.db.recorder  # noqa: F401 - SQLAlchemy and RDBix's documents; no database is opened here
        import terapix_fw.dropin  # noqa: F401

        try:
            import sqlalchemy.dialects.sqlite  # noqa: F401 - the user's RDBix, where drop-in runs are recorded
        except ImportError:
            pass

        listener = _listen(path)
    except BaseException:
        os.close(lock)
        raise
    inode = os.stat(path).st_ino
    terminated: list[int] = []

    def terminate(signum, _frame):
        terminated.append(signum)  # seen by the loop if a callback swallowed the exception
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, terminate)
    started = last = time.time()
    served = 0
    os.pwrite(lock, f"{os.getpid()} listening\n".encode(), 0)  # a start that succeeded (see start_detached)
    _log(f"listening at {path} (idle timeout {idle_timeout or 'none'}; preloaded: {', '.join(sorted(loaded)) or '-'})")
    if ready is not None:
        ready(path)

    def leave(reason: str) -> int:
        try:
            if os.stat(path).st_ino == inode:  # not a newer server's socket
                path.unlink()
        except OSError:
            pass
        listener.close()
        os.close(lock)  # a new server may start from here on
        _log(f"exiting: {reason} ({served} commands served)")
        return 0

    running: set[int] = set()
    wanted: list[str] = []  # tools whose first command was served here: loaded once no command runs

    def reap(_signum, _frame):
        try:
            while (done := os.waitpid(-1, os.WNOHANG)[0]):
                running.discard(done)
        except ChildProcessError:
            pass
    signal.signal(signal.SIGCHLD, reap)
    try:
        while not terminated:
            for child in list(running):  # reaped already (maybe before it was added), or ended since
                try:
                    if os.waitpid(child, os.WNOHANG)[0]:
                        running.discard(child)
                except ChildProcessError:
                    running.discard(child)
            if wanted:
                if not running:  # loaded between runs, not while one competes for the cores
                    _preload(wanted, loaded)
                    _log(f"preloaded {', '.join(wanted)}")
                    wanted.clear()
            timeout = None
            if idle_timeout:
                timeout = last + idle_timeout - time.time()
                if timeout <= 0:
                    return leave(f"no command for {idle_timeout:g} s")
            if wanted:  # look again when the runs have ended
                timeout = min(timeout or _QUIET, _QUIET)
            listener.settimeout(timeout)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                if _peer_uid(conn) != os.getuid():  # nothing is read from anyone else
                    continue
                try:
                    conn.settimeout(_HANDSHAKE_TIMEOUT)
                    _send_msg(conn, {"pid": os.getpid(), "watch": watch})
                    msg = _recv_msg(conn, _MAX_HANDSHAKE)
                    op, theirs = msg.get("op"), msg.get("fingerprint")
                    differences = _differences(own, theirs if isinstance(theirs, dict) else {})
                except (OSError, ValueError, ConnectionError, AttributeError) as exc:
                    _log(f"a client's handshake failed: {type(exc).__name__}: {exc}")
                    continue
                if op in ("status", "stop"):
                    status = {"pid": os.getpid(), "socket": str(path), "started": started, "served": served,
                              "idle_timeout": idle_timeout, "preloaded": sorted(loaded),
                              "compatible": not differences, "differences": differences}
                    if op == "stop":
                        code = leave("stopped by `terapix tool-server --stop`")
                        _try_send(conn, status)
                        return code
                    _try_send(conn, status)
                    continue
                if op != "run":
                    continue
                if differences:  # stale: leave first, so that the client can start a new server at once
                    code = leave(f"a command runs other code or environment: {', '.join(differences)}")
                    _try_send(conn, {"accept": False, "differences": differences})
                    return code
                if not _try_send(conn, {"accept": True}):
                    continue
                conn.settimeout(None)
                sys.stdout.flush()  # a forked process must not write the server's buffered output again
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    try:  # the server's handlers and sockets are not the run's, whatever happens
                        listener.close()
                        os.close(lock)
                        _run_request(conn)  # never returns
                    finally:
                        os._exit(1)
                running.add(pid)
                served += 1
                last = time.time()
                tool = msg.get("tool")
                _log(f"served pid {pid}: tool {tool}")
                if isinstance(tool, str) and tool not in loaded and tool not in wanted:
                    wanted.append(tool)  # the next command of this tool starts warm
        return leave("terminated")
    except (KeyboardInterrupt, SystemExit):
        return leave("interrupted or terminated")
    finally:
        if listener.fileno() != -1:
            leave("error")


def _try_send(conn: socket.socket, obj) -> bool:
    try:
        _send_msg(conn, obj)
        return True
    except OSError:
        return False


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


def _reopen_streams() -> None:
    """The standard streams as the command's own process would have them on its descriptors:
    line-buffered on a terminal, block-buffered on a file or pipe."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        old = getattr(sys, name)
        encoding, errors = getattr(old, "encoding", None), getattr(old, "errors", None)
        try:
            line = fd == 2 or os.isatty(fd)
            stream = open(fd, "r" if fd == 0 else "w", buffering=1 if line and fd else -1, encoding=encoding,
                          errors=errors, closefd=False)
        except OSError:
            continue
        setattr(sys, name, stream)


def _run_request(conn: socket.socket) -> None:
    """The forked process: become the client's command (its streams, directory, environment), run it,
    send the exit code and leave without the interpreter's teardown (as :func:`terapix_fw.cli.run`)."""
    code = 1
    try:
        os.setpgid(0, 0)  # a process group of its own (with the processes it forks), as a command's in a shell
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        adopt()  # never the server's handlers, whatever happens before the request is read
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST + _INT.size, 3)
        if len(data) < _INT.size or len(fds) != 3:
            raise ConnectionError("request without its header or standard streams")
        size = _INT.unpack(data[:_INT.size])[0]
        if not 0 <= size <= _MAX_REQUEST:
            raise ValueError(f"request of {size} bytes (limit {_MAX_REQUEST})")
        data += _recv_exact(conn, size + _INT.size - len(data)) if len(data) < size + _INT.size else b""
        request = json.loads(data[_INT.size:])
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _reopen_streams()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        adopt(request["ignored"], request["blocked"])  # before the client knows the pid and passes signals on
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
    except KeyboardInterrupt:  # a Ctrl-C passed on before or after main() handles it: as main() would
        code = interrupted()
    except BaseException as exc:  # noqa: BLE001 - reported to the client's stderr, never to the server
        print(f"terapix: tool server: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
    finally:
        try:
            conn.sendall(_INT.pack(code))
        except OSError:
            pass
        os._exit(code)
