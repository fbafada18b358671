"""Hook implementations of RDBix: the recorder of every run, step, unit, product and record, and the
``terapix db``, ``terapix grade`` and ``terapix dbclient`` commands."""
from __future__ import annotations

import logging

from ..hookspecs import hookimpl

log = logging.getLogger("terapix.db.recorder")


def _send(run, build, what: str) -> None:
    from .recorder import recorder_for
    try:
        rec = recorder_for(run)
    except Exception as exc:  # noqa: BLE001 - reported once per call, the run goes on
        log.error("RDBix: cannot record %s of run %s: %s", what, run.run_id, exc)
        return
    try:
        rec.send(build())
    except Exception as exc:  # noqa: BLE001 - recording must not kill a run; the reason is logged
        log.error("RDBix (%s): failed to record %s of run %s: %s", rec.target, what, run.run_id, exc)


@hookimpl
def run_started(run):
    """Implements :func:`terapix_fw.hookspecs.run_started`: record the run in RDBix (an unreachable database stops the run before any work)."""
    from .errors import DatabaseError
    from .recorder import recorder_for, run_started_doc
    try:
        recorder_for(run)  # a wrong URL or unreachable database stops the run before any work
    except Exception as exc:  # noqa: BLE001
        raise DatabaseError(f"RDBix: cannot open the database for run {run.name!r} "
                            f"(db_url={run.db_url!r}, workdir={run.workdir!r}): {exc}") from exc
    _send(run, lambda: run_started_doc(run), "the start")


@hookimpl
def run_finished(run, summary):
    """Implements :func:`terapix_fw.hookspecs.run_finished`: record the run's end and drain the dbClient spool."""
    from .recorder import recorder_for, run_finished_doc
    _send(run, lambda: run_finished_doc(run, summary), "the end")
    try:
        recorder_for(run).finish()
    except Exception as exc:  # noqa: BLE001
        log.error("RDBix: cannot finish recording run %s: %s", run.run_id, exc)


@hookimpl
def step_started(run, step):
    """Implements :func:`terapix_fw.hookspecs.step_started`: record the step and its effective configuration."""
    from .recorder import step_started_doc
    _send(run, lambda: step_started_doc(run, step), f"step {step.id}")


@hookimpl
def step_finished(run, step, summary):
    """Implements :func:`terapix_fw.hookspecs.step_finished`: record the step's end."""
    from .recorder import step_ended_doc
    _send(run, lambda: step_ended_doc(run, step, summary, failed=False), f"the end of step {step.id}")


@hookimpl
def step_failed(run, step, summary):
    """Implements :func:`terapix_fw.hookspecs.step_failed`: record the step's failure."""
    from .recorder import step_ended_doc
    _send(run, lambda: step_ended_doc(run, step, summary, failed=True), f"the failure of step {step.id}")


@hookimpl
def unit_finished(run, step, unit, result):
    """Implements :func:`terapix_fw.hookspecs.unit_finished`: record the unit (status, host, times, error, log)."""
    from .recorder import unit_doc
    _send(run, lambda: unit_doc(run, step, unit, result), f"unit {step.id}/{unit.id}")


@hookimpl
def product_recorded(run, step, unit, product):
    """Implements :func:`terapix_fw.hookspecs.product_recorded`: record the product and the inputs it was made from."""
    from .recorder import product_doc
    _send(run, lambda: product_doc(run, step, unit, product), f"product {product.path}")


@hookimpl
def record_emitted(run, step, unit, kind, data):
    """Implements :func:`terapix_fw.hookspecs.record_emitted`: turn a tool's record into its RDBix instruction."""
    from .recorder import document_for_record
    _send(run, lambda: document_for_record(run.run_id, step.id if step else None, kind, data,
                                              unit=getattr(unit, "id", None)),
          f"record {kind} of step {getattr(step, 'id', '?')}")


@hookimpl
def register_commands(subparsers):
    """Implements :func:`terapix_fw.hookspecs.register_commands`: add ``terapix db``."""
    from .commands import register
    register(subparsers)
