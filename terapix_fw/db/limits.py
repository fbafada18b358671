"""The same limits on every back end: a value that MariaDB would refuse is refused on SQLite too.

The limits are the ones declared in :mod:`terapix_fw.db.schema` (``String(255)``, ``Integer``, ``Text``...):
:func:`enforce` wraps every column's type in a checking type that keeps the declared SQL type (the DDL and
the migrations are unchanged) and checks each bound value before it is sent:

* ``String(n)``: at most ``n`` characters (MariaDB's ``VARCHAR(n)`` counts characters, SQLite none);
* ``Text``: at most 65,535 bytes in UTF-8 (MariaDB's ``TEXT``);
* ``Integer`` / ``BigInteger``: the signed 32 / 64-bit range (MariaDB's ``INT`` / ``BIGINT``);
* ``Double``: finite (MariaDB has no infinity);
* times: years 1000-9999 (MariaDB's ``DATETIME``; see :class:`~terapix_fw.db.types.UTCDateTime`).

A value out of its limit raises :class:`LimitError` (a ValueError) inside SQLAlchemy, which reports it as a
``StatementError`` naming the table and column: the dbClient server rejects that document with the reason
on either back end, and nothing of it is applied.
"""
from __future__ import annotations

import math

from sqlalchemy import BigInteger, Double, Integer, String, Text
from sqlalchemy.types import TypeDecorator

__all__ = ["LimitError", "enforce", "TEXT_BYTES"]

TEXT_BYTES = 65_535


class LimitError(ValueError):
    """A value larger than its column holds on one of the back ends."""


class _Checked(TypeDecorator):
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True

    def __init__(self, *args, where: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.where = where


class CheckedString(_Checked):
    """A VARCHAR that refuses a string longer than its length instead of truncating it (MySQL) or storing it (SQLite)."""
    impl = String
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Refuse a value the column cannot hold, naming the table and column.

        Parameters
        ----------
        value : Any
            The value bound to the statement.
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        Any
            ``value`` unchanged.

        Raises
        ------
        LimitError
            If the value does not fit.
        """
        if value is not None and self.impl.length is not None and len(value) > self.impl.length:
            raise LimitError(f"{self.where}: {len(value)} characters, more than the {self.impl.length} "
                             f"the column holds")
        return value


class CheckedText(_Checked):
    """A TEXT that refuses more bytes than MySQL's TEXT holds, on every back end."""
    impl = Text
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Refuse a value the column cannot hold, naming the table and column.

        Parameters
        ----------
        value : Any
            The value bound to the statement.
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        Any
            ``value`` unchanged.

        Raises
        ------
        LimitError
            If the value does not fit.
        """
        if value is not None and len(value) > TEXT_BYTES // 4 and len(value.encode("utf-8")) > TEXT_BYTES:
            raise LimitError(f"{self.where}: {len(value.encode('utf-8'))} bytes, more than the {TEXT_BYTES} "
                             f"the column holds")
        return value


class CheckedInteger(_Checked):
    """An INTEGER that refuses a value out of the 32-bit range, on every back end."""
    impl = Integer
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True
    bound = 2 ** 31

    def process_bind_param(self, value, dialect):
        """Refuse a value the column cannot hold, naming the table and column.

        Parameters
        ----------
        value : Any
            The value bound to the statement.
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        Any
            ``value`` unchanged.

        Raises
        ------
        LimitError
            If the value does not fit.
        """
        if value is not None and not -self.bound <= int(value) < self.bound:
            raise LimitError(f"{self.where}: {value} is out of the column's range "
                             f"[{-self.bound}, {self.bound - 1}]")
        return value


class CheckedBigInteger(CheckedInteger):
    """A BIGINT that refuses a value out of the 64-bit range."""
    impl = BigInteger
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True
    bound = 2 ** 63


class CheckedDouble(_Checked):
    """A DOUBLE that refuses NaN and infinities (MySQL cannot store them)."""
    impl = Double
    #: no state that changes the SQL: statements using the type may be cached
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Refuse a value the column cannot hold, naming the table and column.

        Parameters
        ----------
        value : Any
            The value bound to the statement.
        dialect : sqlalchemy.engine.Dialect

        Returns
        -------
        Any
            ``value`` unchanged.

        Raises
        ------
        LimitError
            If the value does not fit.
        """
        if value is not None and not math.isfinite(value):
            raise LimitError(f"{self.where}: {value} cannot be stored (the column holds finite numbers)")
        return value


def _checked(column):
    t = column.type
    where = f"{column.table.name}.{column.name}"
    if type(t) is String:
        return CheckedString(t.length, where=where)
    if type(t) is Text:
        return CheckedText(where=where)
    if type(t) is BigInteger:
        return CheckedBigInteger(where=where)
    if type(t) is Integer:
        return CheckedInteger(where=where)
    if type(t) is Double:
        return CheckedDouble(where=where)
    return None


def enforce(metadata) -> None:
    """Replace the type of every String, Text, Integer, BigInteger and Double column of ``metadata`` by
    its checking counterpart (same SQL type).  Called once, at the end of the schema module.

    Parameters
    ----------
    metadata : sqlalchemy.MetaData
        The schema, modified in place.
    """
    for table in metadata.tables.values():
        for column in table.columns:
            checked = _checked(column)
            if checked is not None:
                column.type = checked
