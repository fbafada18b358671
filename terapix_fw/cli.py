"""The ``terapix`` command.  Subcommands come from the core and from plugins (hook ``register_commands``).

Heavy modules are imported inside each command so that ``terapix --help`` and drop-in runs start fast.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .errors import TerapixError

__all__ = ["main", "build_parser"]


def _cmd_plugins(args) -> int:
    from .plugins import get_tools
    tools = get_tools()
    width = max((len(n) for n in tools), default=4)
    for name in sorted(tools):
        info = tools[name]
        print(f"{name:<{width}}  {info.version:<10}  {info.distribution}")
    from .plugins import plugin_errors
    for label, error in plugin_errors().items():
        print(f"broken plugin {label}: {error}", file=sys.stderr)
    return 0


def _cmd_config(args) -> int:
    from .plugins import get_tool
    sys.stdout.write(get_tool(args.tool).cls().default_config_text())
    return 0


def _cmd_tool(args) -> int:
    from .dropin import run_tool_command, tools_overview
    if args.name in ("-h", "--help", "help"):
        sys.stdout.write(tools_overview())
        return 0
    return run_tool_command(args.name, args.arguments, overlap=True)


def _cmd_tool_server(args) -> int:
    from pathlib import Path

    from .toolserver import NotServed, default_socket, query, serve

    path = Path(args.socket) if args.socket else default_socket()
    if args.status or args.stop:
        try:
            status = query(str(path), "stop" if args.stop else "status")
        except NotServed as why:
            print(f"terapix tool-server: {why}")
            return 0 if args.stop else 3  # as `systemctl status` of a service that is not running
        if args.stop:
            _wait_exit(int(status["pid"]))
            print(f"terapix tool-server: stopped pid {status['pid']} at {path}")
            return 0
        idle = status["idle_timeout"]
        print(f"terapix tool-server: pid {status['pid']} listening at {path}; {status['served']} commands served; "
              f"idle timeout {f'{idle:g} s' if idle else 'none'}; preloaded: {', '.join(status['preloaded']) or '-'}")
        if not status["compatible"]:
            print("  it would refuse this environment's commands (and leave): differs in "
                  + ", ".join(status["differences"]))
        return 0

    def ready(path):
        if not args.detached:
            print(f"terapix tool-server: listening; export TERAPIX_TOOL_SERVER={path}", flush=True)

    idle = args.idle_timeout if args.idle_timeout and args.idle_timeout > 0 else None
    return serve(path, args.preload or ["sextractor"], ready, idle_timeout=idle, lock_fd=args.lock_fd,
                 after_fd=args.after_fd)


def _wait_exit(pid: int, timeout: float = 30.0) -> None:
    """Return once process ``pid`` (not a child of this one) has exited, or after ``timeout`` seconds."""
    import os
    import select

    try:
        fd = os.pidfd_open(pid)
    except OSError:  # already gone
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _cmd_validate(args) -> int:
    """Check every file given, whatever its document type; report every fault of each; 2 if any failed."""
    from .doctypes import check_document
    from .errors import all_errors
    failed = 0
    for path in args.files:
        try:
            doctype, summary = check_document(path, overrides=dict(args.param or []), workdir=args.workdir)
        except TerapixError as exc:
            failed += 1
            for error in all_errors(exc):
                print(f"terapix: error: {error}", file=sys.stderr)
            continue
        except FileNotFoundError as exc:
            failed += 1
            print(f"terapix: error: {path}: {exc.strerror or exc}", file=sys.stderr)
            continue
        print(f"{path}: valid {doctype.label} ({summary})")
    if failed and len(args.files) > 1:
        print(f"terapix: {failed} of {len(args.files)} file(s) invalid", file=sys.stderr)
    return 2 if failed else 0  # as every terapix command ending on an error


def _cmd_run(args) -> int:
    from .runner import run_instructions
    summary = run_instructions(args.file, workdir=args.workdir, jobs=args.jobs, executor=args.executor,
                               scheduler=args.scheduler, force=args.force, retries=args.retries,
                               overrides=dict(args.param or []), db_url=args.db)
    return 0 if summary.get("failed", 0) == 0 else 1


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key, value


#: the core's own subcommands: running one of them needs no plugin's ``register_commands``
CORE_COMMANDS = ("run", "validate", "plugins", "config", "tool", "tool-server")


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on a command line (its first word that is not an option), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The ``terapix`` argument parser, with the subcommands of the core and of every plugin.

    Parameters
    ----------
    plugin_commands : bool
        False leaves out the plugins' subcommands (whose registration imports their command modules),
        for a command line that names a core command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(prog="terapix", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run an XML instruction file")
    p.add_argument("file", help="instruction file")
    p.add_argument("--workdir", default=None, help="work directory (default: ./work/<name>)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="local worker processes (default: cores)")
    p.add_argument("--executor", choices=["local", "dask"], default="local", help="execution backend")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://HOST:PORT)")
    p.add_argument("--force", action="store_true", help="re-run units even if their products are up to date")
    p.add_argument("--retries", type=int, default=2, help="retries of a unit whose worker was lost")
    p.add_argument("--param", "-p", type=_key_value, action="append", help="override a parameter NAME=VALUE")
    p.add_argument("--db", default=None, help="RDBix URL (default: TERAPIX_DB_URL or SQLite in the workdir)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("validate", help="check XML documents (instructions, surveys, site, selection and release "
                                        "files, dbClient documents) without running anything")
    p.add_argument("files", nargs="+")
    p.add_argument("--param", "-p", type=_key_value, action="append", help="override a parameter NAME=VALUE")
    p.add_argument("--workdir", default=None, help="work directory the run will use, for the checks of output "
                   "names (default: ./work/<name>)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("plugins", help="list installed tools, their versions and distributions")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("config", help="print a tool's default configuration (AstrOmatic format, like sex -dd)")
    p.add_argument("tool")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("tool", help="run a tool directly: terapix tool NAME INPUT... [-c FILE] [-KEY value]",
                       prefix_chars="+")
    p.add_argument("name", help="tool name (terapix tool --help lists them)")
    p.add_argument("arguments", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_tool)

    p = sub.add_parser("tool-server", help="keep the tools loaded in a warm process that `terapix tool` runs are "
                       "forked from (started on demand by `terapix tool` unless TERAPIX_TOOL_SERVER=off)")
    p.add_argument("--socket", default=None, help="Unix socket (default: $TERAPIX_HOME/tool-server.sock)")
    p.add_argument("--preload", action="append", default=None, metavar="TOOL",
                   help="tool whose code is loaded at once (repeatable; default: sextractor)")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="exit after this long without a command (default: never; a server started on demand: "
                   "$TERAPIX_TOOL_SERVER_IDLE or 600)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--status", action="store_true", help="say whether a server listens at the socket, and what it has")
    group.add_argument("--stop", action="store_true", help="stop the server listening at the socket")
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # started by `terapix tool`
    p.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--after-fd", type=int, default=None, help=argparse.SUPPRESS)  # pidfd of the starting command
    p.set_defaults(func=_cmd_tool_server)

    if plugin_commands:
        from .plugins import call_each
        call_each("register_commands", subparsers=sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``terapix`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        Exit code: 0 success, 1 failure, 2 usage or input error, 130 interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    # `terapix tool NAME ...` on thousands of cut-outs: a core command does not load the plugins' commands
    parser = build_parser(plugin_commands=_command_of(argv) not in CORE_COMMANDS)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the run log file gets INFO; the terminal what was asked
        handler.setLevel(level)
    try:
        return int(args.func(args) or 0)
    except TerapixError as exc:
        print(f"terapix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:  # `terapix db query ... | head`: the reader has gone, which is not an error
        return _quiet_broken_pipe()


def interrupted() -> int:
    """Say that a command was interrupted (Ctrl-C), on stderr; its exit code, 130 (128 + SIGINT), as a shell's.

    Returns
    -------
    int
    """
    print("terapix: interrupted", file=sys.stderr)
    return 130


def _quiet_broken_pipe() -> int:
    """Point stdout at /dev/null so that the final flush cannot raise again; 141 = 128 + SIGPIPE, what
    the shell reports for a C program stopped by the same closed pipe."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def exit_code_of_main(argv: list[str] | None = None) -> int:
    """:func:`main`'s exit code, also for what leaves it by SystemExit.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        :func:`main`'s code; argparse's --help gives 0 and its usage errors 2; ``sys.exit("message")``
        prints the message and gives 1.
    """
    try:
        return main(argv)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            return 1
        return code


def settle(code: int) -> int:
    """What a clean exit does that matters, in the same order: the exit handlers run (logging flushes
    and closes its files, executors join their workers), then the standard streams are flushed.

    Parameters
    ----------
    code : int
        The exit code so far.

    Returns
    -------
    int
        ``code``, or 141 when stdout's reader has gone.
    """
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _quiet_broken_pipe()
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    return code


#: ``TERAPIX_TOOL_SERVER`` values that turn the tool server off (checked before importing its client)
TOOL_SERVER_OFF = ("off", "0", "no", "false", "none")


def _served(argv: list[str]) -> int | None:
    """The exit code of a drop-in run done by a tool server (:func:`terapix_fw.toolserver.run_served`:
    the user's, started on demand, unless ``TERAPIX_TOOL_SERVER`` says otherwise), or None to run here."""
    import os

    if _command_of(argv) != "tool" or os.environ.get("TERAPIX_TOOL_SERVER", "").strip().lower() in TOOL_SERVER_OFF:
        return None
    from .toolserver import run_served

    return run_served(argv)


def run() -> None:
    """The ``terapix`` console command: :func:`main` (or a tool server, for a drop-in run: see
    :mod:`terapix_fw.toolserver`), then a process exit that skips the interpreter's teardown.

    Python's finalisation frees every object of every loaded module one by one; with astropy, numba and
    SQLAlchemy loaded that takes 0.1-0.4 s, which a drop-in run of a tool on one CCD pays in full (its C
    counterpart exits at once).  What matters of a clean exit still happens (:func:`settle`).  Products
    are never left to the teardown: they are written to a temporary name, closed and renamed before the
    tool returns.
    """
    import os

    argv = sys.argv[1:]
    code = _served(argv)
    if code is None:
        code = exit_code_of_main(argv)
    os._exit(settle(code))


if __name__ == "__main__":
    run()
