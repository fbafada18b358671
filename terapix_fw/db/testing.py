"""Test fixtures for RDBix, shared by the test files of the db and dbclient packages.

``db_url`` is parametrised over the two back ends: a SQLite file in ``tmp_path``, and a uniquely named
database on the local MariaDB server (127.0.0.1:3306, root, empty password unless ``TERAPIX_TEST_MYSQL``
gives another server URL without a database).  The MariaDB server is started if it is not running; the
MariaDB case is skipped only if no server can be reached or started.

Use in a test module::

    from terapix_fw.db.testing import db_url, mariadb_server  # noqa: F401  (pytest fixtures)
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

__all__ = ["db_url", "mariadb_server", "MYSQL_SERVER_URL", "create_mysql_database", "drop_mysql_database",
           "start_mariadb"]

MYSQL_SERVER_URL = os.environ.get("TERAPIX_TEST_MYSQL", "mysql+mysqldb://root@127.0.0.1:3306")


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_mariadb(host: str = "127.0.0.1", port: int = 3306, wait: float = 30.0) -> str | None:
    """Make sure a MariaDB server listens on host:port; None if it does, else the reason it cannot."""
    if _port_open(host, port):
        return None
    daemon = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
    starter = shutil.which("start-stop-daemon", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if not daemon or not starter:
        return "MariaDB is not running and mariadbd/start-stop-daemon are not installed"
    os.makedirs("/run/mysqld", exist_ok=True)
    try:
        shutil.chown("/run/mysqld", "mysql", "mysql")
    except (LookupError, PermissionError, OSError):
        pass
    proc = subprocess.run([starter, "--start", "--oknodo", "--background", "--exec", daemon],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"cannot start MariaDB: {proc.stderr.strip() or proc.stdout.strip()}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return None
        time.sleep(0.2)
    return f"MariaDB started but {host}:{port} did not open within {wait:.0f} s"


def create_mysql_database(server_url: str = MYSQL_SERVER_URL, prefix: str = "terapix_test") -> str:
    """Create a uniquely named utf8mb4 database; return its URL."""
    import MySQLdb
    from sqlalchemy.engine import make_url
    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = MySQLdb.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           passwd=url.password or "")
    try:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_mysql_database(db_url: str) -> None:
    import MySQLdb
    from sqlalchemy.engine import make_url
    url = make_url(db_url)
    conn = MySQLdb.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           passwd=url.password or "")
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{url.database}`")
    finally:
        conn.close()


@pytest.fixture(scope="session")
def mariadb_server():
    """The MariaDB server URL (without database); skips if no server can be reached or started."""
    from sqlalchemy.engine import make_url
    url = make_url(MYSQL_SERVER_URL)
    reason = start_mariadb(url.host or "127.0.0.1", url.port or 3306)
    if reason:
        pytest.skip(reason)
    return MYSQL_SERVER_URL


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request, tmp_path):
    """A fresh, empty database URL on each back end; the MariaDB database is dropped afterwards."""
    from .engine import dispose_all
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
        dispose_all()
        return
    server = request.getfixturevalue("mariadb_server")
    url = create_mysql_database(server)
    try:
        yield url
    finally:
        dispose_all()
        drop_mysql_database(url)
