"""Drop-in tool runs: ``terapix tool NAME INPUT... [-c FILE] [-KEYWORD value ...]``.

Behaves like the AstrOmatic programs: outputs named by the configuration are relative to the current
directory, ``-d``/``-dd`` prints the default configuration, and the command line overrides the
configuration file, which overrides the defaults.  The run is recorded like any pipeline step.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from .config import parse_command_line, read_config_file
from .errors import ConfigError, ToolError
from .execute import UnitSpec, execute_unit
from .model import RunInfo, StepInfo, UnitInfo
from .plugins import get_plugin_manager, get_tool
from .tool import UnitResult

__all__ = ["run_tool_command", "log_directory", "tool_usage", "tools_overview"]


def log_directory() -> Path:
    """Where drop-in runs keep their logs: ``$TERAPIX_HOME/logs`` (default ``~/.terapix/logs``)."""
    home = Path(os.environ.get("TERAPIX_HOME", Path.home() / ".terapix"))
    return home / "logs"


_EXTENSION = re.compile(r"^(.*)\[([^\[\]]+)\]$")


def _split_extension(inputs: list[str]) -> tuple[list[str], int | str | None]:
    """``image.fits[3]`` (the 3rd image extension) or ``image.fits[ccd10]`` (by EXTNAME) selects one
    extension, as the AstrOmatic programs accept it (see :mod:`terapix_fw.fitsimage`)."""
    extensions = {m.group(2).strip() for m in map(_EXTENSION.match, inputs) if m}
    if not extensions:
        return inputs, None
    if len(extensions) > 1:
        raise ConfigError(f"inputs select different extensions {sorted(extensions)}; give one", "command line")
    sel = extensions.pop()
    return [m.group(1) if (m := _EXTENSION.match(p)) else p for p in inputs], int(sel) if sel.isdigit() else sel


def tool_usage(name: str) -> str:
    """The ``--help`` text of a drop-in tool: usage line, conventions and one line per parameter.

    Parameters
    ----------
    name : str
        The tool.

    Returns
    -------
    str
    """
    info = get_tool(name)
    lines = [f"usage: terapix tool {name} INPUT... [-c CONFIG_FILE] [-KEYWORD value ...]",
             f"       terapix tool {name} -d | -dd     print the default configuration",
             f"       terapix tool {name} -v           print the version",
             "",
             f"{name} {info.version} ({info.distribution}). "
             "The command line overrides the configuration file, which overrides the defaults;",
             "image.fits[N] selects extension N. Parameters (terapix config "
             f"{name} prints them as a configuration file):", ""]
    params = list(info.cls.parameter_set())
    width = max((len(p.name) for p in params), default=0)
    for p in params:
        lines.append(f"  -{p.name:<{width}}  {p.help} [{p.format(p.default)}]")
    return "\n".join(lines) + "\n"


def tools_overview() -> str:
    """The ``terapix tool --help`` text: usage and the installed tools."""
    from .plugins import get_tools
    tools = get_tools()
    width = max((len(n) for n in tools), default=0)
    lines = ["usage: terapix tool NAME INPUT... [-c CONFIG_FILE] [-KEYWORD value ...]",
             "       terapix tool NAME --help | -d | -v", "", "Runs one tool as the AstrOmatic program "
             "would run; the run is recorded in RDBix.", "", "installed tools:"]
    for tool_name in sorted(tools):
        info = tools[tool_name]
        summary = (info.cls.description or (info.cls.__doc__ or "").strip().split("\n")[0]).strip()
        lines.append(f"  {tool_name:<{width}}  {info.version:<8}  {summary}")
    return "\n".join(lines) + "\n"


def run_tool_command(name: str, argv: list[str], out=None, overlap: bool = False) -> int:
    """Run tool ``name`` with an AstrOmatic-style command line.

    ``overlap`` (the ``terapix tool`` command) runs a tool that asks for it (``Tool.dropin_overlap``) in
    a forked process while this one opens RDBix, as a pipeline runs its units in worker processes;
    otherwise the tool runs in this process.

    Parameters
    ----------
    name : str
        The tool.
    argv : list of str
        Its command line (see :func:`terapix_fw.config.parse_command_line`).
    out : file, optional
        Where ``-d``, ``-v`` and ``--help`` print (stdout by default).
    overlap : bool
        Allow the forked overlap.

    Returns
    -------
    int
        The exit code: 0 when the unit is done, 1 when it failed.

    Raises
    ------
    ConfigError
        On a bad command line or configuration, or no input.
    """
    out = out or sys.stdout  # looked up now: a default bound at import would miss a later redirection
    info = get_tool(name)
    cmd = parse_command_line(argv)
    params = info.cls.parameter_set()
    if cmd.dump_defaults:
        out.write(info.cls().default_config_text())
        return 0
    if cmd.version:
        out.write(f"{name} version {info.version} ({info.distribution}, terapix-fw)\n")
        return 0
    if cmd.help:
        out.write(tool_usage(name))
        return 0
    layers = []
    if cmd.config_file:
        layers.append(read_config_file(cmd.config_file))
    layers.append(cmd.overrides)
    config = params.resolve(*layers)  # validate before anything runs
    if not cmd.inputs:
        raise ConfigError(f"no input given; usage: terapix tool {name} INPUT... [-c FILE] [-KEYWORD value]",
                          "command line")
    inputs, extension = _split_extension(info.cls().describe_inputs(cmd.inputs))
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    # drop-in runs are recorded in TERAPIX_DB_URL, else in the user's own RDBix under $TERAPIX_HOME,
    # never in a file dropped into the current directory
    home = log_directory().parent
    home.mkdir(parents=True, exist_ok=True)
    run = RunInfo(name=f"tool {name}", mode="tool", workdir=os.getcwd(),
                  db_url=os.environ.get("TERAPIX_DB_URL") or f"sqlite:///{home / 'rdbix.sqlite'}")
    step = StepInfo(id=name, tool=name, tool_version=info.version, distribution=info.distribution,
                    fanout="all", config=config.as_strings(),
                    non_defaults={k: params[k].format(v) for k, v in config.non_defaults().items()},
                    config_file=cmd.config_file)
    # a URL input (snooppix) is recorded as it is: resolving it as a path would mangle it
    unit = UnitInfo(id="1", step=name,
                    inputs=[p if "://" in str(p) else str(Path(p).resolve()) for p in inputs],
                    config=config.as_strings())
    spec = UnitSpec(step=name, unit="1", tool=name, config_layers=layers, inputs=list(inputs),
                    outdir=os.getcwd(), log_path=str(log_directory() / f"{name}-{stamp}-{os.getpid()}.log"),
                    nthreads=os.cpu_count() or 1, confine_outputs=False, extension=extension)
    hook = get_plugin_manager().hook
    result = _execute_recorded(hook, run, step, spec, info.cls.preload_modules() if overlap and
                               info.cls.dropin_overlap else None)
    hook.unit_finished(run=run, step=step, unit=unit, result=result)
    for product in result.products:
        hook.product_recorded(run=run, step=step, unit=unit, product=product)
    for kind, data in result.records:
        hook.record_emitted(run=run, step=step, unit=unit, kind=kind, data=data)
    summary = {result.status: 1}
    if result.status == "failed":
        hook.step_failed(run=run, step=step, summary=summary)
        sys.stderr.write(f"terapix tool {name}: {result.error} (log: {result.log_path})\n")
    else:
        hook.step_finished(run=run, step=step, summary=summary)
    hook.run_finished(run=run, summary=summary)
    return 0 if result.status == "done" else 1


def _execute_recorded(hook, run, step, spec: UnitSpec, preload):
    """The run and step start recorded, then the unit executed.  With ``preload`` (the tool's preload
    modules, not None) the unit starts first, in a forked process: opening RDBix (importing SQLAlchemy, checking the
    schema) costs ~0.2 s that a drop-in run on one CCD would otherwise add to its wall time.  A database
    that cannot be opened still stops the run: the tool's process is killed before it has written
    anything (products are renamed into place only when complete)."""
    from .forked import ForkedCall, can_fork

    start = time.time()
    call = ForkedCall(_execute_preloaded, spec, preload) if preload is not None and can_fork() else None
    try:
        hook.run_started(run=run)
        hook.step_started(run=run, step=step)
    except BaseException:
        if call is not None:
            call.close()
        raise
    if call is None:
        return execute_unit(spec, echo=True)
    try:
        return call.result()
    except ToolError as exc:  # the tool's process died (killed, out of memory): a failed run, recorded as one
        import socket

        return UnitResult(step=spec.step, unit=spec.unit, status="failed", log_path=spec.log_path,
                          error=f"{spec.tool} on {', '.join(spec.inputs)}: {exc}", host=socket.gethostname(),
                          start=start, end=time.time())


def _execute_preloaded(spec: UnitSpec, modules: list[str]):
    """The forked process of a drop-in run: the tool's code loaded as a warm process loads it
    (:func:`terapix_fw.tool.import_preload`: the garbage collector paused meanwhile), then the unit."""
    from .tool import import_preload

    import_preload(modules)
    return execute_unit(spec, echo=True)
