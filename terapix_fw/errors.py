"""Exception classes of terapix-fw.

Every error that reaches a user names where the problem is (file, line, column, keyword) and what was
expected.  The executor uses the class to decide what to do: a :class:`ToolError` is deterministic and is
never retried; a :class:`WorkerLost` is retried.
"""
from __future__ import annotations

__all__ = ["TerapixError", "ConfigError", "InstructionError", "ToolError", "WorkerLost", "UnknownTool"]


class TerapixError(Exception):
    """Base class of every error raised by terapix-fw."""


class ConfigError(TerapixError):
    """A bad configuration value or keyword.

    ``where`` is a human-readable location such as ``default.sex:12`` or ``release.xml:14:7``.
    """

    def __init__(self, message: str, where: str | None = None, keyword: str | None = None):
        self.where = where
        self.keyword = keyword
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)


class InstructionError(ConfigError):
    """An instruction file that is malformed, invalid against its schema, or inconsistent."""


class UnknownTool(InstructionError):
    """A step names a tool that no installed plugin provides."""


class ToolError(TerapixError):
    """A tool failed deterministically on its input (bad data, bad configuration). Not retried."""


class WorkerLost(TerapixError):
    """The process running a unit died (killed, out of memory, node lost). Retried."""
