"""The objects the runner passes to lifecycle hooks: a run, its steps and their units.

Observers (the RDBix recorder, the progress display, third-party plugins) receive these; they are plain
data so that they can be serialised into dbClient documents.
"""
from __future__ import annotations

import getpass
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunInfo", "StepInfo", "UnitInfo"]


@dataclass
class RunInfo:
    """A run, as lifecycle hooks receive it.

    Attributes
    ----------
    name, version : str
        Of the instruction file (a drop-in run: the tool).
    instruction_file, workdir : str
    mode : str
        ``pipeline`` or ``tool`` (a drop-in run).
    executor : str
    db_url : str or None
    run_id : str
        Unique id.
    start : float
        Unix time.
    host, user : str
    parameters : dict of str to str
        The instruction parameters.
    """
    name: str
    version: str = ""
    instruction_file: str = ""
    workdir: str = "."
    mode: str = "pipeline"  # pipeline | tool
    executor: str = "local"
    db_url: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    start: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=lambda: _user())
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class StepInfo:
    """A step, as lifecycle hooks receive it.

    Attributes
    ----------
    id, tool, tool_version, distribution : str
    fanout : str
    priority : int
    depends : list of str
    config : dict of str to str
        Effective configuration, as strings.
    non_defaults : dict of str to str
    config_file : str or None
    """
    id: str
    tool: str
    tool_version: str
    distribution: str = ""
    fanout: str = "file"
    priority: int = 0
    depends: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)  # effective configuration, as strings
    non_defaults: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None


@dataclass
class UnitInfo:
    """A unit, as lifecycle hooks receive it.

    Attributes
    ----------
    id, step : str
    inputs : list of str
    extension : int or None
    group : str or None
    key : str
        ``step/unit``.
    config : dict of str to str
    attempt : int
    meta : dict
    """
    id: str
    step: str
    inputs: list[str] = field(default_factory=list)
    extension: int | None = None
    group: str | None = None
    key: str = ""
    config: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"
