"""Errors of RDBix."""
from __future__ import annotations

from ..errors import TerapixError

__all__ = ["DatabaseError"]


class DatabaseError(TerapixError):
    """The database cannot be opened, created or migrated; the message names the URL and the reason."""
