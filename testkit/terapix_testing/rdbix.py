"""Pytest fixtures of RDBix, shared by the test files of the db and dbclient packages.

``db_url`` is parametrised over the two back ends: a SQLite file in ``tmp_path``, and a uniquely named
database on the local MariaDB server (127.0.0.1:3306, root, empty password unless ``TERAPIX_TEST_MYSQL``
gives another server URL without a database), created for the session, emptied before each test and
dropped at the end.  ``empty_db_url`` gives a database without tables (a fresh one per test).  The
MariaDB server is started if it is not running; the MariaDB case is skipped only if no server can be
reached or started.  Helpers that do not need pytest are in :mod:`terapix_testing.services`.

Use in a test module::

    from terapix_testing.rdbix import _mariadb_session_database, db_url, mariadb_server  # noqa: F401

``recorded_dropin`` records the drop-in runs of a test in a fresh SQLite RDBix.  The root ``conftest.py``
loads this module as a pytest plugin, so every test (the built-in plugins' too) has it; a third party's
tools get it with ``pytest_plugins = ["terapix_testing.rdbix"]`` in their top-level ``conftest.py``.
"""
from __future__ import annotations

import pytest

from .services import (MYSQL_SERVER_URL, ServerProcess, client_main, create_mysql_database,  # noqa: F401
                      drop_mysql_database, empty_tables, make_documents, snapshot, start_mariadb)

__all__ = ["db_url", "empty_db_url", "mariadb_server", "recorded_dropin", "ServerProcess", "make_documents", "snapshot",
           "create_mysql_database", "drop_mysql_database", "empty_tables", "start_mariadb", "MYSQL_SERVER_URL"]


@pytest.fixture(scope="session")
def mariadb_server():
    """The MariaDB server URL (without database); skips if no server can be reached or started."""
    from sqlalchemy.engine import make_url
    url = make_url(MYSQL_SERVER_URL)
    reason = start_mariadb(url.host or "127.0.0.1", url.port or 3306)
    if reason:
        pytest.skip(reason)
    return MYSQL_SERVER_URL


@pytest.fixture(scope="session")
def _mariadb_session_database(mariadb_server):
    """One MariaDB database with the schema, created for the session and dropped at its end (creating
    twenty InnoDB tables costs seconds; emptying them costs milliseconds)."""
    from terapix_fw.db.engine import connect, dispose_all
    url = create_mysql_database(mariadb_server)
    try:
        connect(url)
        dispose_all()
        yield url
    finally:
        dispose_all()
        drop_mysql_database(url)


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request, tmp_path):
    """A database with the current schema and no rows, on each back end: a new SQLite file in
    ``tmp_path``, or the session's MariaDB database emptied for this test."""
    from terapix_fw.db.engine import dispose_all
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
        dispose_all()
        return
    url = request.getfixturevalue("_mariadb_session_database")
    empty_tables(url)
    dispose_all()  # no cached ids may survive from another test
    try:
        yield url
    finally:
        dispose_all()


@pytest.fixture(params=["sqlite", "mariadb"])
def empty_db_url(request, tmp_path):
    """A database without any table (migration tests), on each back end; the MariaDB one is created for
    the test and dropped afterwards."""
    from terapix_fw.db.engine import dispose_all
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        dispose_all()
        return
    server = request.getfixturevalue("mariadb_server")
    url = create_mysql_database(server)
    try:
        yield url
    finally:
        dispose_all()
        drop_mysql_database(url)


@pytest.fixture
def recorded_dropin(tmp_path, monkeypatch):
    """Drop-in runs (``terapix tool ...``) made in the test are recorded in a fresh SQLite RDBix in tmp_path.

    The test runs in tmp_path with its own TERAPIX_HOME; yields the database URL. Recorders and engines are
    reset before and after, so no connection outlives the test's temporary directory.
    """
    from terapix_fw.db.engine import dispose_all
    from terapix_fw.db.recorder import reset_recorders

    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    monkeypatch.setenv("TERAPIX_DB_URL", url)
    monkeypatch.setenv("TERAPIX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    reset_recorders()
    try:
        yield url
    finally:
        reset_recorders()
        dispose_all()
