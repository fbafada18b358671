"""Signals of a served command (:mod:`terapix_fw.toolserver`): SIGINT, SIGTERM and SIGHUP sent to the
command are passed on to the process group of the run the server forked for it, and that run handles
them as the command itself would.

The run is forked from the server, not from the command, so it would otherwise inherit the server's
dispositions and signal mask, which come from whatever started the server's first command: under
``nohup`` or in a background job a signal is ignored, from a harness that blocks it, it stays pending.
The command sends its own (:class:`Forwarder`), and the run takes them (:func:`adopt`).
"""
from __future__ import annotations

import os
import signal

__all__ = ["FORWARDED", "Forwarder", "adopt"]

#: the signals a served command passes on to its run
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Forwarder:
    """A served command's handlers for :data:`FORWARDED`, installed while it talks to the server.

    A signal that comes before the run's pid is known is kept and passed on once it is; if no run
    starts (the server dropped the command), it is raised again under the command's own handlers when
    the ``with`` block ends (a Ctrl-C then interrupts the command rather than being lost while the
    command runs itself).  Signals the command ignores are not passed on: under ``nohup`` a hang-up
    ends neither the command nor its run.

    Attributes
    ----------
    ignored : list of int
        The signals of :data:`FORWARDED` this process ignores.
    blocked : list of int
        This thread's signal mask.
    received : list of int
        Every signal received inside the ``with`` block, in order.
    """

    def __init__(self):
        self.ignored = [int(s) for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN]
        self.blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        self.received: list[int] = []
        self._pid: int | None = None
        self._pending: list[int] = []  # received while no run is known
        self._previous: dict = {}

    def __enter__(self) -> Forwarder:
        for signum in FORWARDED:
            if signum not in self.ignored:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.received.append(signum)
        if self._pid is None:
            self._pending.append(signum)
        else:
            _killpg(self._pid, signum)

    def started(self, pid: int) -> None:
        """Pass on, from now on, to the process group ``pid``; the signals kept so far first.

        Parameters
        ----------
        pid : int
            The run's pid, the leader of its process group.
        """
        self._pid = pid
        # a handler running from here on passes its signal on itself: each is passed on once
        while self._pending:
            _killpg(pid, self._pending.pop(0))

    def __exit__(self, *exc_info) -> bool:
        for signum, old in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)
        if self._pid is None:  # no run took them: the command's own handlers do, here
            while self._pending:
                signal.raise_signal(self._pending.pop(0))
        return False


def _killpg(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:  # the run has ended
        pass


def adopt(ignored=(), blocked=()) -> None:
    """Handle :data:`FORWARDED` as a command does: Python's default (KeyboardInterrupt on SIGINT, an
    end on SIGTERM and SIGHUP) unless ignored, with the given signal mask.

    Parameters
    ----------
    ignored : iterable of int
        The signals of :data:`FORWARDED` to ignore (the command's :attr:`Forwarder.ignored`).
    blocked : iterable of int
        The signal mask to take (the command's :attr:`Forwarder.blocked`).
    """
    ignored = {int(s) for s in ignored}
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_IGN if signum in ignored else
                      signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [int(s) for s in blocked])
