"""RDBix: the pipeline's database (SQLite embedded default, MySQL/MariaDB at a data centre).

Modules: ``schema`` (tables), ``engine`` (URLs, back-end set-up), ``migrate`` (Alembic), ``ops``
(instruction set and documents), ``store`` (transactions), ``recorder`` (lifecycle hooks -> documents),
``query`` (selection, provenance, grades), ``plugin`` (hook implementations and commands), ``digests``
(the persistent SHA-256 cache of files already read).
Heavy modules are imported lazily so that ``import terapix_fw.db`` stays cheap.

Where records go
----------------
* ``$TERAPIX_DBCLIENT_URL`` set (``http://master:8765``): every document is spooled durably under
  ``$TERAPIX_DBCLIENT_SPOOL`` (default ``$TERAPIX_HOME/dbclient-spool``) and sent to the dbClient
  server (``terapix dbclient serve --port 8765 --db mysql+mysqldb://...``), signed with
  ``$TERAPIX_DBCLIENT_SECRET`` (or ``--secret-file``); ``terapix dbclient flush`` replays the spool.
* otherwise directly to the run's database: ``terapix run --db URL``, else ``$TERAPIX_DB_URL``, else
  ``sqlite:///<workdir>/rdbix.sqlite``.

Tools report with ``ctx.record(kind, **fields)``; ``terapix db kinds`` lists the kinds and fields
(:mod:`terapix_fw.db.ops`).  Operators use ``terapix db query images|provenance|grades``,
``terapix grade EXPOSURE A|B|C|D --comment TEXT`` and ``terapix db init|upgrade|status``.
"""
from __future__ import annotations

__all__ = ["connect", "resolve_url", "Document", "write_document", "find_images", "provenance", "set_grade",
           "grade_history", "effective_grade", "cone_search_sources"]


def __getattr__(name):
    if name in ("connect", "resolve_url"):
        from . import engine
        return getattr(engine, name)
    if name == "Document":
        from .ops import Document
        return Document
    if name == "write_document":
        from .store import write_document
        return write_document
    if name in ("find_images", "provenance", "set_grade", "grade_history", "effective_grade",
                "cone_search_sources"):
        from . import query
        return getattr(query, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
