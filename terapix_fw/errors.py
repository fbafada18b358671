"""Exception classes of terapix-fw.

Every error that reaches a user names where the problem is (file, line, column, keyword) and what was
expected.  The executor uses the class to decide what to do: a :class:`ToolError` is deterministic and is
never retried; a :class:`WorkerLost` is retried.
"""
from __future__ import annotations

import contextlib

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


class ErrorCollector:
    """Collects the independent errors of one document so that all of them are reported at once.

    ``with errors.check(): ...`` records an :class:`InstructionError` raised in the block and goes on;
    :meth:`raise_if_any` then raises the first one, its message counting the others and its
    ``all_errors`` attribute holding every one (``terapix validate`` prints them all).  The first error
    keeps its own class, so callers that catch a specific error still see it.
    """

    def __init__(self, kind: type[Exception] | None = None) -> None:
        self.kind = kind or InstructionError  # the errors collected; anything else goes on up at once
        self.errors: list[Exception] = []

    def add(self, error: Exception) -> None:
        """Record an error found without raising it.

        Parameters
        ----------
        error : Exception
            The error, usually a :class:`ConfigError` with ``where``.
        """
        self.errors.append(error)

    @contextlib.contextmanager
    def check(self):
        """Record an error raised in the block (a check written to raise) and go on."""
        try:
            yield
        except self.kind as exc:
            self.errors.append(exc)

    def raise_if_any(self) -> None:
        """Raise the first collected error, carrying all of them, if any was collected.

        Raises
        ------
        Exception
            The first error, with ``all_errors`` listing every one and its message saying how many more.
        """
        if not self.errors:
            return
        first = self.errors[0]
        first.all_errors = list(self.errors)
        if len(self.errors) > 1 and not getattr(first, "_counted", False):
            first.single_message = str(first)
            first.args = (f"{first.args[0]} (and {len(self.errors) - 1} more error(s): terapix validate lists them)",)
            first._counted = True
        raise first


def all_errors(exc: BaseException) -> list[str]:
    """The message of every error an exception stands for (the collected ones, else itself).

    Parameters
    ----------
    exc : BaseException
        An error, possibly raised by :meth:`ErrorCollector.raise_if_any` with others attached.

    Returns
    -------
    list of str
        One message per error, in the order of their place (line, column) in the file.
    """
    import re

    errors = list(getattr(exc, "all_errors", None) or [exc])

    def place(error) -> tuple[int, int]:
        found = re.match(r"[^:]*:(\d+)(?::(\d+))?", getattr(error, "where", None) or "")
        return (int(found.group(1)), int(found.group(2) or 0)) if found else (0, 0)
    return [getattr(e, "single_message", None) or str(e) for e in sorted(errors, key=place)]
