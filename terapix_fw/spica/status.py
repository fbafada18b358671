"""Status data for operators (the SPICA operation interface of the CFHTLS report): pending jobs, jobs in
progress with the current step of their command sequence, remaining stacks by survey component, node and
filter, the longest remaining stacks, and grades.  Plain functions returning dicts and lists, for
``terapix spica status`` and for the web pages.
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from ..db import schema as S
from .grading import latest_grades

__all__ = ["job_table", "status_summary", "format_status"]


def job_table(db, version: str | None = None) -> list[dict]:
    """Every Spica job (of release ``version``), highest priority first, with its stack's latest grade.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str, optional

    Returns
    -------
    list of dict
    """
    from ..db.engine import connect
    j = S.spica_jobs
    query = select(j).order_by(j.c.priority.desc(), j.c.id)
    if version:
        query = query.where(j.c.version == version)
    with connect(db).connect() as conn:
        grades = latest_grades(conn)
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for r in rows:
        r["grade"] = grades.get(r["stack_id"]) if r["stack_id"] is not None else None
    return rows


def status_summary(db, version: str | None = None, longest: int = 10) -> dict:
    """The operator's tables: ``pending``, ``in_progress`` (with ``current_step``), ``remaining_by_component``,
    ``remaining_by_node``, ``remaining_by_filter``, ``longest_remaining`` (most stack images first),
    ``by_status``, ``by_grade`` (stacks done), ``failed`` (with the error).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    version : str, optional
    longest : int
        Rows of ``longest_remaining``.

    Returns
    -------
    dict
    """
    rows = job_table(db, version)
    remaining = [r for r in rows if r["status"] in ("pending", "running")]
    keep = ("name", "version", "mode", "kind", "survey_component", "filter", "node", "priority", "n_stack",
            "n_astrometric", "status", "current_step", "start", "end", "error", "grade", "astrometric_group")

    def brief(r):
        return {k: r.get(k) for k in keep}

    stacks_done = [r for r in rows if r["kind"] in ("stack", "image") and r["status"] == "done"]
    return {
        "version": version,
        "total": len(rows),
        "by_status": dict(Counter(r["status"] for r in rows)),
        "pending": [brief(r) for r in rows if r["status"] == "pending"],
        "in_progress": [brief(r) for r in rows if r["status"] == "running"],
        "failed": [brief(r) for r in rows if r["status"] == "failed"],
        "remaining_by_component": dict(Counter(r["survey_component"] or "-" for r in remaining)),
        "remaining_by_node": dict(Counter(r["node"] or "-" for r in remaining)),
        "remaining_by_filter": dict(Counter(r["filter"] or "-" for r in remaining if r["kind"] != "field")),
        "longest_remaining": [brief(r) for r in sorted(remaining, key=lambda r: -(r["n_stack"] or 0))[:longest]],
        "by_grade": dict(Counter(r["grade"] or "not graded" for r in stacks_done)),
        "superseded": [brief(r) | {"superseded_by": r["superseded_by"]} for r in rows if r["superseded_by"]],
    }


def _table(title: str, counts: dict) -> list[str]:
    lines = [f"{title}:"]
    total = sum(counts.values()) or 1
    lines += [f"  {k:<24} {v:>6}  {100 * v / total:5.1f} %" for k, v in sorted(counts.items())]
    return lines if counts else [f"{title}: none"]


def format_status(summary: dict) -> str:
    """The summary as the text of ``terapix spica status``.

    Parameters
    ----------
    summary : dict
        From :func:`status_summary`.

    Returns
    -------
    str
    """
    lines = [f"release {summary['version'] or '(all)'}: {summary['total']} jobs " +
             ", ".join(f"{v} {k}" for k, v in sorted(summary["by_status"].items()))]
    lines.append("in progress:" if summary["in_progress"] else "in progress: none")
    lines += [f"  {r['name']:<40} {r['mode']:<8} {r['node'] or '-':<10} {r['current_step'] or 'starting'}"
              for r in summary["in_progress"]]
    lines += _table("remaining by component", summary["remaining_by_component"])
    lines += _table("remaining by node", summary["remaining_by_node"])
    lines += _table("remaining by filter", summary["remaining_by_filter"])
    lines.append("longest remaining:" if summary["longest_remaining"] else "longest remaining: none")
    lines += [f"  {r['name']:<40} {r['node'] or '-':<10} {r['n_stack'] or 0:>5} images"
              for r in summary["longest_remaining"]]
    lines.append("pending:" if summary["pending"] else "pending: none")
    lines += [f"  {r['name']:<40} priority {r['priority']:>3}  {r['mode']}" for r in summary["pending"]]
    lines += _table("grades of finished stacks", summary["by_grade"])
    for r in summary["failed"]:
        lines.append(f"FAILED {r['name']}: {r['error']}")
    return "\n".join(lines)
