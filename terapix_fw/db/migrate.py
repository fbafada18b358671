"""Schema migrations (Alembic, shipped inside the package so that they work after ``pip install``).

``init`` builds an empty database by replaying every migration, ``upgrade`` brings an existing one to a
revision (head by default), ``status`` reports the current and head revisions and what is pending.
SQLite migrations run in Alembic batch mode (table copy), since SQLite cannot ALTER most things.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from .engine import write_connection

__all__ = ["init", "upgrade", "downgrade", "status", "Status", "MIGRATIONS"]

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _engine(db) -> Engine:
    from .engine import connect
    return connect(db, create=False)


def upgrade(db, revision: str = "head") -> None:
    """Upgrade the schema with the Alembic migrations.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    revision : str
        Target revision.
    """
    from alembic import command
    engine = _engine(db)
    with write_connection(engine) as conn, conn.begin():
        command.upgrade(_config(conn), revision)


def downgrade(db, revision: str) -> None:
    """Downgrade the schema with the Alembic migrations.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    revision : str
        Target revision.
    """
    from alembic import command
    engine = _engine(db)
    with write_connection(engine) as conn, conn.begin():
        command.downgrade(_config(conn), revision)


def create_database(url: str) -> bool:
    """MySQL/MariaDB: create the database named in ``url`` (utf8mb4, binary collation so that file
    names and keywords compare exactly) if it does not exist; True if created.  SQLite: nothing to do.

    Parameters
    ----------
    url : str

    Returns
    -------
    bool
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("mysql", "mariadb") or not parsed.database:
        return False
    server = create_engine(parsed._replace(database=None))  # URL.set() ignores None
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = :n"),
                                  {"n": parsed.database}).scalar()
            if exists:
                return False
            name = parsed.database.replace("`", "``")
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            return True
    finally:
        server.dispose()


def init(db) -> None:
    """Create the schema in an empty database by running every migration (creating the MySQL database
    itself if needed).

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).

    Raises
    ------
    DatabaseError
        If the database already holds a schema.
    """
    from .engine import DatabaseError, schema_revision
    if isinstance(db, str):
        create_database(db)
    engine = _engine(db)
    current = schema_revision(engine)
    if current is not None:
        raise DatabaseError(f"{engine.url.render_as_string(hide_password=True)}: already initialised "
                            f"(revision {current}); use `terapix db upgrade`")
    upgrade(engine, "head")


@dataclass
class Status:
    """The schema revision of a database.

    Attributes
    ----------
    url : str
        The database, password hidden.
    current : str or None
        Its revision (None: empty).
    head : str
        The latest revision this version knows.
    pending : list of str
        Revisions still to apply.
    """
    url: str
    current: str | None
    head: str
    pending: list[str]

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at the head revision."""
        return self.current == self.head

    def __str__(self) -> str:
        cur = self.current or "none (empty database: run `terapix db init`)"
        state = "up to date" if self.up_to_date else f"{len(self.pending)} pending: {', '.join(self.pending)}"
        return f"database {self.url}\ncurrent revision {cur}\nhead revision {self.head}\n{state}"


def status(db) -> Status:
    """The schema revision of a database and the migrations it lacks.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).

    Returns
    -------
    Status
    """
    from alembic.script import ScriptDirectory
    from .engine import schema_revision
    engine = _engine(db)
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    current = schema_revision(engine)
    pending = [rev.revision for rev in script.iterate_revisions(head, current or "base")]
    pending.reverse()
    if current is not None:
        pending = [r for r in pending if r != current]
    return Status(engine.url.render_as_string(hide_password=True), current, head, pending)
