"""RDBix: the pipeline's database (SQLite embedded default, MySQL/MariaDB at a data centre).

Modules: ``schema`` (tables), ``engine`` (URLs, back-end set-up), ``migrate`` (Alembic), ``ops``
(instruction set and documents), ``store`` (transactions), ``recorder`` (lifecycle hooks -> documents),
``query`` (selection, provenance, grades), ``plugin`` (hook implementations and commands).
Heavy modules are imported lazily so that ``import terapix_fw.db`` stays cheap.
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
