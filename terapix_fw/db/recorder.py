"""The RDBix recorder: turns the core's lifecycle hooks into documents of instructions.

The same documents are either written directly to the database (embedded default: the run's
``db_url``, else ``$TERAPIX_DB_URL``, else ``sqlite:///<workdir>/rdbix.sqlite``) or, when
``$TERAPIX_DBCLIENT_URL`` is set, sent through the dbClient client (spooled durably, replayed when the
server is back).  Recording never breaks a run: after the run has started, a failure to record is logged
as an error with the reason (and, with dbClient, the document stays in the spool).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .ops import OPS, RECORD_KINDS, Document, RecordError

__all__ = ["Recorder", "recorder_for", "reset_recorders", "document_for_record"]

log = logging.getLogger("terapix.db.recorder")


class Recorder:
    """Sends documents to one destination: a database engine, or a dbClient client."""

    def __init__(self, db_url: str | None = None, workdir: str | os.PathLike | None = None,
                 dbclient_url: str | None = None, node: str | None = None):
        import socket
        self.node = node or socket.gethostname()
        self.dbclient_url = dbclient_url
        self._client = None
        self._engine = None
        if dbclient_url:
            from ..dbclient.client import Client
            self._client = Client(dbclient_url)
            self.target = f"dbClient server {dbclient_url}"
        else:
            from .engine import connect, resolve_url
            url = resolve_url(db_url, workdir)
            self._engine = connect(url)
            self.target = _redact(url)

    def send(self, doc: Document) -> None:
        """Record a document: through dbClient (spooled on local disk, sent in the background) or directly.

        Parameters
        ----------
        doc : Document
        """
        doc.node = doc.node or self.node
        if self._client is not None:
            self._client.submit(doc, wait=False)  # durable on local disk now, sent in the background
        else:
            from .store import write_document
            write_document(self._engine, doc)

    def finish(self, timeout: float = 60.0) -> None:
        """End of a run: with dbClient, send what is spooled (bounded wait; the rest is replayed later).

        Parameters
        ----------
        timeout : float
            Seconds to wait for the spool to drain.
        """
        if self._client is not None:
            result = self._client.drain(timeout)
            if result.remaining:
                log.warning("RDBix: %d document(s) left in the dbClient spool %s (%s); "
                            "`terapix dbclient flush` replays them", result.remaining, self._client.spool_dir,
                            result.error or "server busy")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


_recorders: dict[tuple, Recorder] = {}


def recorder_for(run) -> Recorder:
    """The recorder of a run (cached per destination).

    Through dbClient when ``$TERAPIX_DBCLIENT_URL`` is set, else directly into the run's database.

    Parameters
    ----------
    run : RunInfo

    Returns
    -------
    Recorder
    """
    dbclient_url = os.environ.get("TERAPIX_DBCLIENT_URL") or None
    from .engine import resolve_url
    key = (dbclient_url,) if dbclient_url else (resolve_url(run.db_url, run.workdir),)
    rec = _recorders.get(key)
    if rec is None:
        rec = Recorder(db_url=run.db_url, workdir=run.workdir, dbclient_url=dbclient_url)
        _recorders[key] = rec
    return rec


def reset_recorders() -> None:
    """Forget the cached recorders (tests; a process that changes database)."""
    _recorders.clear()


def document_for_record(run_id: str | None, step: str | None, kind: str, data: dict[str, Any],
                        unit: str | None = None) -> Document:
    """The document for a tool's ``ctx.record(kind, **data)``.

    A known kind becomes its instruction (``run_id`` and ``step`` filled in when the instruction has
    such fields); a record of another kind, or one with fields the instruction does not know, is also
    stored whole as a ``record`` instruction (JSON), so nothing the tool reported is lost.

    Parameters
    ----------
    run_id : str or None
    step : str or None
        Step id.
    kind : str
        Record kind.
    data : dict
        Record fields.
    unit : str, optional
        Unit id.

    Returns
    -------
    Document
    """
    import json
    doc = Document()
    extra = True
    if kind in RECORD_KINDS:
        spec = OPS[kind]
        known = {k: v for k, v in data.items() if spec.field(k) is not None}
        extra = len(known) != len(data)
        if run_id and spec.field("run_id") and "run_id" not in known:
            known["run_id"] = run_id
        if step and spec.field("step") and "step" not in known:
            known["step"] = step
        try:
            doc.add(kind, **known)
        except RecordError as exc:
            log.warning("record %s of step %s kept verbatim only: %s", kind, step, exc)
            extra = True
    if extra:
        doc.add("record", kind=kind, run_id=run_id, step=step, unit=unit,
                data=json.dumps(data, sort_keys=True, default=_jsonable))
    return doc


def _jsonable(value):
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _status(summary: dict) -> str:
    if summary.get("interrupted"):  # killed or stopped before every unit ended
        return "interrupted"
    return "failed" if summary.get("failed") else "done"


def run_started_doc(run) -> Document:
    """The RDBix document of a run's start.

    Parameters
    ----------
    run : RunInfo

    Returns
    -------
    Document
    """
    return Document().add("run_start", run_id=run.run_id, name=run.name, version=run.version,
                          instruction_file=run.instruction_file, workdir=str(run.workdir), mode=run.mode,
                          executor=run.executor, host=run.host, user=run.user, start=run.start,
                          parameters=run.parameters)


def run_finished_doc(run, summary) -> Document:
    """The RDBix document of a run's end.

    Parameters
    ----------
    run : RunInfo
    summary : dict of str to int
        Units by status.

    Returns
    -------
    Document
    """
    import time
    return Document().add("run_end", run_id=run.run_id, end=time.time(), status=_status(summary),
                          summary=summary)


def step_started_doc(run, step) -> Document:
    """The RDBix document of a step's start, with its configuration.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo

    Returns
    -------
    Document
    """
    import time
    return Document().add("step_start", run_id=run.run_id, step=step.id, tool=step.tool,
                          tool_version=step.tool_version, distribution=step.distribution, fanout=step.fanout,
                          priority=step.priority, depends=step.depends, config=step.config,
                          non_defaults=step.non_defaults, config_file=step.config_file, start=time.time())


def step_ended_doc(run, step, summary, failed: bool) -> Document:
    """The RDBix document of a step's end.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    summary : dict of str to int
    failed : bool

    Returns
    -------
    Document
    """
    import time
    return Document().add("step_end", run_id=run.run_id, step=step.id, status="failed" if failed else "done",
                          end=time.time(), summary=summary)


def unit_doc(run, step, unit, result) -> Document:
    """The RDBix document of a finished unit.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    unit : UnitInfo
    result : UnitResult

    Returns
    -------
    Document
    """
    return Document().add("unit", run_id=run.run_id, step=step.id, unit=unit.id, key=unit.key or result.key,
                          inputs=unit.inputs, extension=unit.extension, group=unit.group, attempt=unit.attempt,
                          status=result.status, host=result.host, start=result.start or None,
                          end=result.end or None, error=result.error, log_path=result.log_path,
                          config=unit.config)


def _absolute(run, path) -> str:
    if "://" in str(path):  # a URL (snooppix's remote origin), not a local path
        return str(path)
    path = Path(path)
    return str(path if path.is_absolute() else (Path(run.workdir) / path).resolve())


def product_doc(run, step, unit, product) -> Document:
    """The RDBix document of a product (absolute path) and its inputs.

    Parameters
    ----------
    run : RunInfo
    step : StepInfo
    unit : UnitInfo
    product : Product

    Returns
    -------
    Document
    """
    return Document().add("product", run_id=run.run_id, step=step.id, unit=unit.id,
                          path=_absolute(run, product.path), kind=product.kind, checksum=product.checksum,
                          size=product.size, inputs=[_absolute(run, p) for p in unit.inputs],
                          meta={k: v for k, v in (product.meta or {}).items()})
