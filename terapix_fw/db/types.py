"""Portable column types: times are stored as naive UTC with microseconds on every back end."""
from __future__ import annotations

import datetime as _dt

from sqlalchemy import DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

__all__ = ["UTCDateTime", "to_datetime"]


def to_datetime(value) -> _dt.datetime | None:
    """Accept a datetime, Unix seconds or an ISO-8601 string (FITS ``DATE-OBS`` style) and return an
    aware UTC datetime.  Naive datetimes and strings without a zone are taken as UTC (FITS convention).

    Parameters
    ----------
    value : datetime, float, str or None

    Returns
    -------
    datetime or None

    Raises
    ------
    ValueError
        On a string that is not ISO-8601.
    TypeError
        On another type.
    """
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, _dt.date):
        dt = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time {value!r}: expected ISO-8601 (YYYY-MM-DD[THH:MM:SS[.ffffff]][+HH:MM]) "
                             "or Unix seconds") from None
    else:
        raise TypeError(f"time {value!r}: expected datetime, Unix seconds or ISO-8601 string")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.astimezone(_dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """A point in time, stored as naive UTC ``DATETIME(6)`` (MySQL) or ISO text (SQLite); read back as an
    aware UTC datetime.  Accepts anything :func:`to_datetime` accepts."""

    impl = DateTime
    #: the type has no state that changes its SQL: statements using it may be cached
    cache_ok = True

    def load_dialect_impl(self, dialect):
        """DATETIME with microseconds on MySQL/MariaDB, DateTime elsewhere.

        Parameters
        ----------
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        sqlalchemy.types.TypeEngine
        """
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        """Store a time as naive UTC.

        Parameters
        ----------
        value : datetime, float, str or None
            See :func:`to_datetime`.
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        datetime or None

        Raises
        ------
        ValueError
            Outside the years 1000-9999 (MariaDB's DATETIME range, on every back end).
        """
        dt = to_datetime(value)
        if dt is not None and not 1000 <= dt.year <= 9999:  # MariaDB's DATETIME range, on every back end
            raise ValueError(f"time {dt.isoformat()} is outside the years 1000-9999 a DATETIME holds")
        return None if dt is None else dt.replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        """Read a stored time back as an aware UTC datetime.

        Parameters
        ----------
        value : datetime, str or None
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        datetime or None
        """
        if value is None:
            return None
        if isinstance(value, str):  # SQLite
            value = _dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=_dt.timezone.utc)
