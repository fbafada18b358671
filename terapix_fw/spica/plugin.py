"""Hook implementations of Spica: its tools, the ``terapix spica`` commands, the job status kept current
from the run hooks (run id, current step) and the mail notifier of finished stacks."""
from __future__ import annotations

import logging

from ..hookspecs import hookimpl

log = logging.getLogger("terapix.spica")


@hookimpl
def register_tools(register):
    """Implements :func:`terapix_fw.hookspecs.register_tools`: ``spica_release`` and ``spica_colour``."""
    from .tools import ColourTool, ReleaseTool
    register(ReleaseTool)
    register(ColourTool)


@hookimpl
def register_commands(subparsers):
    """Implements :func:`terapix_fw.hookspecs.register_commands`: add ``terapix spica``."""
    from .commands import register
    register(subparsers)


def _update_job(run, **values) -> None:
    """Update the Spica job whose instruction file this run executes (no-op for other runs)."""
    from .jobs import SOLUTION_PREFIX
    # an astrometric solution runs part of one job's file for the whole group: not that job's status
    if run.mode != "pipeline" or not run.instruction_file.endswith("_spica.xml") or \
            (run.name or "").startswith(SOLUTION_PREFIX):
        return
    try:
        from sqlalchemy import update

        from ..db import schema as S
        from ..db.engine import connect, resolve_url
        with connect(resolve_url(run.db_url, run.workdir)).begin() as conn:
            conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.instruction_file == run.instruction_file)
                         .values(**values))
    except Exception as exc:  # noqa: BLE001 - status display must never stop a run
        log.warning("spica: cannot update the status of %s: %s", run.instruction_file, exc)


@hookimpl
def run_started(run):
    """Implements :func:`terapix_fw.hookspecs.run_started`: mark the run's Spica job running."""
    _update_job(run, run_id=run.run_id, status="running")


@hookimpl
def step_started(run, step):
    """Implements :func:`terapix_fw.hookspecs.step_started`: show the job's current step."""
    _update_job(run, current_step=f"{step.id} ({step.tool})")


@hookimpl
def stack_finished(job):
    """Implements :func:`terapix_fw.hookspecs.stack_finished`: mail the job's end (see :func:`~terapix_fw.spica.notify.send_notification`)."""
    from .notify import send_notification
    send_notification(job)
