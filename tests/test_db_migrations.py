"""RDBix schema and migrations on SQLite and MariaDB: init, upgrade, status, downgrade, and the
fast path (create_all + stamp) giving exactly the migrated schema."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect

from terapix_fw.db import migrate
from terapix_fw.db.engine import HEAD_REVISION, connect, schema_revision
from terapix_fw.db.schema import metadata
from terapix_testing.rdbix import empty_db_url, mariadb_server  # noqa: F401 - pytest fixtures


def _schema_diff(url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    engine = connect(url, create=False)
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_init_upgrade_status(empty_db_url):
    st = migrate.status(empty_db_url)
    assert st.current is None and st.pending == ["0001", "0002", "0003", "0004", "0005", "0006"] and not st.up_to_date
    migrate.upgrade(empty_db_url, "0001")
    st = migrate.status(empty_db_url)
    assert (st.current, st.pending) == ("0001", ["0002", "0003", "0004", "0005", "0006"])
    engine = connect(empty_db_url, create=False)
    assert not inspect(engine).has_table("sources")
    assert "healpix" not in {c["name"] for c in inspect(engine).get_columns("exposures")}
    # rows written at 0001 survive the upgrade and get their sky index filled in
    import sqlalchemy as sa
    old = sa.table("exposures", sa.column("filename"), sa.column("ra"), sa.column("dec"))
    with engine.begin() as conn:
        conn.execute(old.insert().values(filename="old.fits", ra=150.0, dec=2.0))
    migrate.upgrade(empty_db_url)
    st = migrate.status(empty_db_url)
    assert st.up_to_date and st.current == HEAD_REVISION == st.head and st.pending == []
    engine = connect(empty_db_url, create=False)
    assert inspect(engine).has_table("sources")
    with engine.connect() as conn:
        pix = conn.exec_driver_sql("SELECT healpix FROM exposures WHERE filename = 'old.fits'").scalar()
    import healpy
    assert pix == healpy.ang2pix(256, 150.0, 2.0, nest=True, lonlat=True)
    assert _schema_diff(empty_db_url) == []
    migrate.downgrade(empty_db_url, "0001")
    assert migrate.status(empty_db_url).current == "0001"
    assert not inspect(connect(empty_db_url, create=False)).has_table("sources")


def test_init_refuses_initialised_database(empty_db_url):
    migrate.init(empty_db_url)
    assert schema_revision(connect(empty_db_url, create=False)) == HEAD_REVISION
    from terapix_fw.db.errors import DatabaseError
    with pytest.raises(DatabaseError, match="already initialised.*revision 0006"):
        migrate.init(empty_db_url)


def test_create_all_fast_path_equals_migrations(empty_db_url):
    """connect() builds an empty database with create_all and stamps head: same schema as migrations."""
    engine = connect(empty_db_url)
    assert schema_revision(engine) == HEAD_REVISION
    assert _schema_diff(empty_db_url) == []
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_old_database_upgraded_on_connect(empty_db_url):
    migrate.upgrade(empty_db_url, "0001")
    from terapix_fw.db.engine import dispose_all
    dispose_all()
    engine = connect(empty_db_url)
    assert schema_revision(engine) == HEAD_REVISION


def test_head_constant_matches_migrations():
    from alembic.script import ScriptDirectory
    assert ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head() == HEAD_REVISION


def test_cli_init_upgrade_status(empty_db_url, capsys):
    from terapix_fw.cli import main
    assert main(["db", "status", "--db", empty_db_url]) == 1
    assert "current revision none" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", empty_db_url, "--revision", "0001"]) == 0
    assert "5 pending: 0002, 0003, 0004, 0005, 0006" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", empty_db_url]) == 0
    assert main(["db", "status", "--db", empty_db_url]) == 0
    out = capsys.readouterr().out
    assert "current revision 0006" in out and "up to date" in out
    assert main(["db", "init", "--db", empty_db_url]) == 2  # TerapixError: already initialised
    assert "already initialised" in capsys.readouterr().err


def test_sqlite_settings(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path):
    """WAL + deferred BEGIN for readers: a query runs while a writer holds its (immediate) transaction;
    a second writer waits for the first instead of failing half-way."""
    import threading
    import time

    from sqlalchemy import func, insert, select

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import write_connection
    engine = connect(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with write_connection(engine) as writer, writer.begin():
        writer.execute(insert(S.nodes), {"name": "n1"})
        with engine.connect() as reader:
            # busy_timeout 0: a reader that needed the writer's lock would fail at once instead of waiting
            patience = reader.exec_driver_sql("PRAGMA busy_timeout").scalar()
            reader.exec_driver_sql("PRAGMA busy_timeout = 0")
            assert reader.execute(select(func.count()).select_from(S.nodes)).scalar() == 0  # not yet committed
            reader.exec_driver_sql(f"PRAGMA busy_timeout = {int(patience)}")  # the connection goes back to the pool
        done = []
        about_to_write = threading.Event()

        def second_writer():
            about_to_write.set()
            with write_connection(engine) as conn, conn.begin():  # BEGIN IMMEDIATE: waits here for the lock
                conn.execute(insert(S.nodes), {"name": "n2"})
            done.append(time.monotonic())

        thread = threading.Thread(target=second_writer)
        thread.start()
        assert about_to_write.wait(30), "second writer never started"
        time.sleep(0.2)  # let it reach the lock; the assertion below holds whether or not it got there
        released = time.monotonic()
    thread.join(30)
    assert done and done[0] >= released
    with engine.connect() as reader:
        assert reader.execute(select(func.count()).select_from(S.nodes)).scalar() == 2


def test_default_url_is_workdir_sqlite(tmp_path, monkeypatch):
    from terapix_fw.db.engine import resolve_url
    monkeypatch.delenv("TERAPIX_DB_URL", raising=False)
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'rdbix.sqlite'}"
    monkeypatch.setenv("TERAPIX_DB_URL", "mysql+mysqldb://u@h/db")
    assert resolve_url(None, tmp_path) == "mysql+mysqldb://u@h/db"
    assert resolve_url("sqlite:///x", tmp_path) == "sqlite:///x"


def test_unsupported_url_named():
    with pytest.raises(ValueError, match="unsupported back end 'postgresql'"):
        connect("postgresql://u@h/db")


def test_init_creates_missing_mysql_database(mariadb_server):
    import uuid

    from terapix_testing.rdbix import drop_mysql_database
    url = f"{mariadb_server}/terapix_test_init_{uuid.uuid4().hex[:8]}"
    try:
        migrate.init(url)
        st = migrate.status(url)
        assert st.up_to_date and st.current == HEAD_REVISION
        with connect(url, create=False).connect() as conn:
            collation = conn.exec_driver_sql("SELECT @@collation_database").scalar()
        assert collation == "utf8mb4_bin"
    finally:
        from terapix_fw.db.engine import dispose_all
        dispose_all()
        drop_mysql_database(url)


def test_unreachable_database_named_in_error(mariadb_server, capsys):
    from terapix_fw.cli import main
    url = mariadb_server.replace("root@", "nobody_terapix:wrong@") + "/nosuchdb"
    assert main(["db", "query", "images", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open or create the RDBix schema" in err and "nosuchdb" in err and "wrong" not in err
