"""Connecting to RDBix: URL resolution, engine set-up per back end, schema creation on first use.

SQLite (the embedded default) gets WAL journaling, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
for every transaction, so that concurrent writers wait for the lock instead of failing half-way with
"database is locked" on a read-to-write upgrade.  MySQL/MariaDB uses mysqlclient (``mysql+mysqldb://``),
utf8mb4 and READ COMMITTED.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine, make_url

from .errors import DatabaseError

__all__ = ["DatabaseError", "write_connection", "DEFAULT_FILENAME", "resolve_url", "connect", "ensure_schema", "schema_revision",
           "HEAD_REVISION", "dispose_all"]

DEFAULT_FILENAME = "rdbix.sqlite"
#: Alembic head revision of this version of the code (checked by a test against the migrations).
HEAD_REVISION = "0006"
SQLITE_BUSY_TIMEOUT_MS = 60_000

_engines: dict[str, Engine] = {}
_ready: set[str] = set()
_lock = threading.Lock()
_schema_lock = threading.Lock()  # threads of one process (the runner's recorder and digest cache) create it once


def resolve_url(url: str | None = None, workdir: str | os.PathLike | None = None) -> str:
    """The database URL: ``url`` if given, else ``$TERAPIX_DB_URL``, else ``sqlite:///<workdir>/rdbix.sqlite``.

    Parameters
    ----------
    url : str, optional
    workdir : str or path-like, optional
        Directory of the default SQLite file (the current directory by default).

    Returns
    -------
    str
    """
    if url:
        return str(url)
    env = os.environ.get("TERAPIX_DB_URL")
    if env:
        return env
    base = Path(workdir if workdir is not None else os.getcwd()).resolve()
    return f"sqlite:///{base / DEFAULT_FILENAME}"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite would defer it)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        try:
            cur.execute("PRAGMA journal_mode = WAL")
        except Exception:  # noqa: BLE001 - e.g. read-only media: keep the default journal
            pass
        cur.execute("PRAGMA synchronous = NORMAL")  # durable with WAL except on power loss mid-checkpoint
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # writers take the write lock at BEGIN (no deadlock-prone read-to-write upgrade); readers do not,
        # so that in WAL mode queries and web pages never wait for the recorder
        if conn.get_execution_options().get("rdbix_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def connect(url: str | Engine | None = None, workdir: str | os.PathLike | None = None,
            create: bool = True) -> Engine:
    """An engine for ``url`` (see :func:`resolve_url`), cached per process.

    With ``create`` the schema is created (and stamped at :data:`HEAD_REVISION`) in an empty database,
    and an older schema is upgraded with the Alembic migrations.

    Parameters
    ----------
    url : str or Engine, optional
        See :func:`resolve_url`; an Engine is returned as it is (schema ensured).
    workdir : str or path-like, optional
    create : bool
        Create or upgrade the schema.

    Returns
    -------
    sqlalchemy.engine.Engine

    Raises
    ------
    DatabaseError
        If the database cannot be opened or created.
    """
    if isinstance(url, Engine):
        engine = url
    else:
        url = resolve_url(url, workdir)
        with _lock:
            engine = _engines.get(url)
            if engine is None:
                engine = _make_engine(url)
                _engines[url] = engine
    if create:
        from sqlalchemy.exc import SQLAlchemyError
        try:
            ensure_schema(engine)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise DatabaseError(f"{engine.url.render_as_string(hide_password=True)}: cannot open or create the "
                                f"RDBix schema: {reason}") from exc
    return engine


def open_existing(url: str | None = None, workdir: str | os.PathLike | None = None) -> Engine:
    """An engine for a database that must already exist: read-only commands (queries, web pages,
    grades) never create one.  A missing SQLite file is an error naming it; a server database that
    cannot be reached fails on first use as usual.

    Parameters
    ----------
    url : str, optional
    workdir : str or path-like, optional

    Returns
    -------
    sqlalchemy.engine.Engine

    Raises
    ------
    DatabaseError
        If the SQLite file does not exist.
    """
    url = resolve_url(url, workdir)
    missing = missing_sqlite_file(url)
    if missing:
        raise DatabaseError(f"no RDBix database at {missing} (give --db URL or --workdir DIR, or "
                            "set TERAPIX_DB_URL; `terapix db init` creates one)")
    return connect(url, create=False)


def missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names if that file does not exist (None otherwise, and for a
    server database).

    Parameters
    ----------
    url : str

    Returns
    -------
    str or None
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if not Path(parsed.database).is_file():
            return parsed.database
    return None


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"{url}: cannot create the directory of the SQLite file: {exc}") from None
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                     "check_same_thread": False})
        _sqlite_setup(engine)
        return engine
    if backend in ("mysql", "mariadb"):
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600,
                             isolation_level="READ COMMITTED")
    raise ValueError(f"database URL {url!r}: unsupported back end {backend!r} "
                     "(expected sqlite:///FILE or mysql+mysqldb://USER:PASSWORD@HOST:PORT/DATABASE)")


def write_connection(engine: Engine):
    """A connection whose transactions write (SQLite: ``BEGIN IMMEDIATE``).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Returns
    -------
    sqlalchemy.engine.Connection
    """
    return engine.connect().execution_options(rdbix_write=True)


def dispose_all() -> None:
    """Close every cached engine (tests, forked workers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _ready.clear()


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision stamped in the database, or None for an empty (or foreign) database.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Returns
    -------
    str or None
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty database, upgrade an old one; a no-op once done in this process.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Raises
    ------
    DatabaseError
        If the database holds a schema newer than this version knows, or a foreign one.
    """
    key = str(engine.url)
    if key in _ready:
        return
    with _schema_lock:
        if key not in _ready:
            _ensure_schema(engine)
            _ready.add(key)


def _ensure_schema(engine: Engine) -> None:
    revision = schema_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        from .schema import metadata
        if tables & set(metadata.tables):
            raise DatabaseError(f"database {engine.url.render_as_string(hide_password=True)} has RDBix "
                                "tables but no alembic_version table: not created by terapix-fw?")
        init_database(engine)
    else:
        from .migrate import upgrade
        upgrade(engine)


def init_database(engine: Engine) -> None:
    """Create every table of the current schema and stamp it at head (faster than replaying migrations;
    a test checks both give the same schema).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    """
    from .schema import metadata
    from sqlalchemy import Column, MetaData, String, Table
    version = Table("alembic_version", MetaData(),
                    Column("version_num", String(32), primary_key=True, nullable=False))
    with write_connection(engine) as conn, conn.begin():
        metadata.create_all(conn)
        version.create(conn, checkfirst=True)
        if conn.execute(select(version.c.version_num)).first() is None:
            conn.execute(version.insert().values(version_num=HEAD_REVISION))
