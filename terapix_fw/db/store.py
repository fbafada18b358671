"""Writing documents to RDBix: one document per transaction (direct writes), or a batch of documents in
one transaction with a savepoint each (the dbClient server), which keeps every document atomic and
idempotent while paying for one commit per batch."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from .engine import write_connection
from .ops import Document, RecordError, apply_document, forget_ids

__all__ = ["write_document", "apply_batch", "BatchResult", "REJECTING_ERRORS"]

log = logging.getLogger("terapix.db")

#: errors that say the document itself cannot be applied (never retried, the document is rejected)
REJECTING_ERRORS = (RecordError, DataError, StatementError)


@dataclass
class BatchResult:
    """What became of one document of a batch.

    Attributes
    ----------
    doc_id : str
    status : str
        ``applied``, ``duplicate``, ``rejected`` or ``error``.
    reason : str
    """
    doc_id: str
    status: str  # applied | duplicate | rejected | error
    reason: str = ""


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig if orig is not None else exc}"


def write_document(engine: Engine, doc: Document, attempts: int = 4) -> bool:
    """Apply ``doc`` in its own transaction; True if applied, False if it had been applied before.

    A lost race between direct writers (IntegrityError on MySQL) or a lock/deadlock timeout is retried;
    the document id makes the retry safe.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    doc : Document
    attempts : int
        Tries on a lost race or lock timeout.

    Returns
    -------
    bool
    """
    for attempt in range(1, attempts + 1):
        with write_connection(engine) as conn:
            try:
                with conn.begin():
                    return apply_document(conn, doc)
            except IntegrityError:
                forget_ids(conn)  # ids learnt in the rolled-back transaction are not valid
                if attempt == attempts:
                    raise
            except OperationalError as exc:
                forget_ids(conn)
                text = str(exc).lower()
                if attempt == attempts or ("locked" not in text and "deadlock" not in text):
                    raise
            except BaseException:
                forget_ids(conn)
                raise
        time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _existing_ids(conn: Connection, ids: list[str]) -> set[str]:
    from sqlalchemy import select
    from .schema import documents
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        found.update(conn.execute(select(documents.c.doc_id).where(documents.c.doc_id.in_(ids[i:i + 500])))
                     .scalars())
    return found


def apply_batch(conn: Connection, docs: list[Document]) -> list[BatchResult]:
    """Apply ``docs`` in order inside the caller's transaction; the caller commits, then acknowledges.

    Documents already applied (or repeated in the batch) are reported ``duplicate``.  The others are
    applied under one savepoint; if one of them fails, that savepoint is rolled back and they are
    applied again one savepoint each, so that only the failing document is ``rejected`` (with the
    reason) and nothing of it is kept.  Round trips matter on MySQL: the common case costs one query
    for the ids, one multi-row insert of the document rows and the instructions themselves.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    docs : list of Document

    Returns
    -------
    list of BatchResult
        One per document, in order.
    """
    from sqlalchemy import insert
    from .ops import apply_instructions, document_row
    from .schema import documents
    existing = _existing_ids(conn, [d.id for d in docs])
    outcome: dict[int, BatchResult] = {}
    todo: list[tuple[int, Document]] = []
    for i, doc in enumerate(docs):
        if doc.id in existing:
            outcome[i] = BatchResult(doc.id, "duplicate")
        else:
            existing.add(doc.id)
            todo.append((i, doc))
    if todo:
        savepoint = conn.begin_nested()
        try:
            for _, doc in todo:
                apply_instructions(conn, doc)
            conn.execute(insert(documents), [document_row(doc) for _, doc in todo])
            savepoint.commit()
            for i, doc in todo:
                outcome[i] = BatchResult(doc.id, "applied")
        except (*REJECTING_ERRORS, IntegrityError):
            savepoint.rollback()
            forget_ids(conn)
            for i, doc in todo:
                outcome[i] = _apply_one(conn, doc)
    return [outcome[i] for i in range(len(docs))]


def _apply_one(conn: Connection, doc: Document) -> BatchResult:
    savepoint = conn.begin_nested()
    try:
        applied = apply_document(conn, doc)
        savepoint.commit()
        return BatchResult(doc.id, "applied" if applied else "duplicate")
    except REJECTING_ERRORS as exc:
        savepoint.rollback()
        forget_ids(conn)
        return BatchResult(doc.id, "rejected", _reason(exc))
    except IntegrityError as exc:
        # the upserts absorb unique-key races; what is left (e.g. a row another writer has not yet
        # committed) is transient: the client keeps the document and sends it again
        savepoint.rollback()
        forget_ids(conn)
        return BatchResult(doc.id, "error", _reason(exc))
