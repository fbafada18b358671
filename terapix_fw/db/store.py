"""Writing documents to RDBix: one document per transaction (direct writes), or a batch of documents in
one transaction with a savepoint each (the dbClient server), which keeps every document atomic and
idempotent while paying for one commit per batch."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from .ops import Document, RecordError, apply_document

__all__ = ["write_document", "apply_batch", "BatchResult", "REJECTING_ERRORS"]

log = logging.getLogger("terapix.db")

#: errors that say the document itself cannot be applied (never retried, the document is rejected)
REJECTING_ERRORS = (RecordError, DataError, StatementError)


@dataclass
class BatchResult:
    doc_id: str
    status: str  # applied | duplicate | rejected | error
    reason: str = ""


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig if orig is not None else exc}"


def write_document(engine: Engine, doc: Document, attempts: int = 4) -> bool:
    """Apply ``doc`` in its own transaction; True if applied, False if it had been applied before.

    A lost race between direct writers (IntegrityError on MySQL) or a deadlock is retried; the
    document id makes the retry safe."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return apply_document(conn, doc)
        except IntegrityError:
            if attempt == attempts:
                raise
        except OperationalError as exc:
            if attempt == attempts or "locked" not in str(exc).lower() and "deadlock" not in str(exc).lower():
                raise
        time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def apply_batch(conn: Connection, docs: list[Document]) -> list[BatchResult]:
    """Apply ``docs`` in order inside the caller's transaction, each under its own savepoint.

    A document that cannot be applied is rolled back alone and reported ``rejected`` with the reason;
    the caller commits and then acknowledges every document."""
    results = []
    for doc in docs:
        savepoint = conn.begin_nested()
        try:
            applied = apply_document(conn, doc)
            savepoint.commit()
            results.append(BatchResult(doc.id, "applied" if applied else "duplicate"))
        except (*REJECTING_ERRORS, IntegrityError) as exc:
            savepoint.rollback()
            results.append(BatchResult(doc.id, "rejected", _reason(exc)))
    return results
