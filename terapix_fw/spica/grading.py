"""Validation of release products by the control team (CFHTLS report, 3.2.1): every stack is graded A, B,
C or D with, for C/D, a short problem report; the latest grade wins and the history is kept.  Only A/B
stacks enter the manifest.  An accepted (A/B) stack supersedes the products of the same stack position,
component and filter made earlier — by an earlier release (T0001 when T0002 is accepted) or by an earlier
run of the same release that was rejected and re-run after a fix.
"""
from __future__ import annotations

import datetime as dt
import getpass

from sqlalchemy import and_, func, insert, select, update

from ..db import schema as S
from ..errors import TerapixError


class SpicaError(TerapixError):
    """A Spica operation that cannot be done as asked (unknown stack, missing problem report...)."""


def is_stack(db, name: str) -> bool:
    """Is ``name`` a Spica stack (of any release)?

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    name : str

    Returns
    -------
    bool
    """
    from ..db.engine import connect
    with connect(db).connect() as conn:
        return conn.execute(select(S.stacks.c.id).where(S.stacks.c.name == name, S.stacks.c.version != "")
                            .limit(1)).first() is not None

__all__ = ["SpicaError", "is_stack", "grade_stack", "stack_grades", "latest_grades", "accepted_stacks", "same_position"]


def _stack_row(conn, name: str, version: str | None):
    query = select(S.stacks).where(S.stacks.c.name == name)
    if version:
        query = query.where(S.stacks.c.version == version)
    rows = conn.execute(query.where(S.stacks.c.version != "").order_by(S.stacks.c.id.desc())).all()
    if not rows:
        raise SpicaError(f"no stack {name!r}" + (f" in release {version}" if version else "") +
                         " (names as in terapix spica status)")
    return rows[0]


def same_position(conn, stack) -> list:
    """Other stacks of the same component, filter and centre (to 0.1 arcsec), any release.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    stack : Row
        A ``stacks`` row.

    Returns
    -------
    list of Row
    """
    tol = 0.1 / 3600
    st = S.stacks
    return conn.execute(select(st).where(
        st.c.id != stack.id, st.c.survey_component == stack.survey_component, st.c.filter == stack.filter,
        st.c.version != "", func.abs(st.c.ra - stack.ra) < tol, func.abs(st.c.dec - stack.dec) < tol)).all()


def grade_stack(db, name: str, grade: str, author: str | None = None, comment: str | None = None,
                version: str | None = None, when=None) -> dict:
    """Grade a stack (its latest release if ``version`` is None); returns the stacks it superseded.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    name : str
    grade : str
        A, B, C or D (C and D need a ``comment``).
    author : str, optional
    comment : str, optional
    version : str, optional
    when : datetime, optional

    Returns
    -------
    dict
        ``stack``, ``version``, ``grade`` and ``superseded``.

    Raises
    ------
    SpicaError
        On an unknown grade or stack, or a C/D grade without a comment.
    """
    from ..db.engine import connect
    grade = str(grade).upper()
    if grade not in S.GRADES:
        raise SpicaError(f"grade {grade!r}: expected one of {', '.join(S.GRADES)}")
    if grade in "CD" and not (comment or "").strip():
        raise SpicaError(f"grade {grade} of {name}: a problem report is needed (--comment 'what is wrong')")
    superseded: list[str] = []
    with connect(db).begin() as conn:
        stack = _stack_row(conn, name, version)
        conn.execute(insert(S.stack_grades).values(stack_id=stack.id, grade=grade, author=author or getpass.getuser(),
                                                   time=when or dt.datetime.now(dt.timezone.utc), comment=comment))
        if grade in "AB":
            for other in same_position(conn, stack):
                if (other.version, other.id) < (stack.version, stack.id):
                    conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.stack_id == other.id)
                                 .values(superseded_by=stack.id))
                    superseded.append(f"{other.name} ({other.version})")
    return {"stack": name, "version": stack.version, "grade": grade, "superseded": superseded}


def stack_grades(db, name: str, version: str | None = None) -> list[dict]:
    """The grade history of a stack, oldest first.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    name : str
    version : str, optional

    Returns
    -------
    list of dict
    """
    from ..db.engine import connect
    with connect(db).connect() as conn:
        stack = _stack_row(conn, name, version)
        return [dict(r._mapping) for r in conn.execute(
            select(S.stack_grades.c.grade, S.stack_grades.c.author, S.stack_grades.c.time, S.stack_grades.c.comment)
            .where(S.stack_grades.c.stack_id == stack.id).order_by(S.stack_grades.c.id))]


def latest_grades(conn) -> dict[int, str]:
    """stack id -> its latest grade.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection

    Returns
    -------
    dict of int to str
    """
    g = S.stack_grades
    latest = select(g.c.stack_id, func.max(g.c.id).label("gid")).group_by(g.c.stack_id).subquery()
    return dict(conn.execute(select(g.c.stack_id, g.c.grade).join(latest, and_(latest.c.gid == g.c.id))).all())


def accepted_stacks(conn, version: str) -> list:
    """Stacks of release ``version`` whose latest grade is A or B and that nothing has superseded.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    version : str

    Returns
    -------
    list of Row
    """
    grades = latest_grades(conn)
    st, j = S.stacks, S.spica_jobs
    rows = conn.execute(select(st, j.c.superseded_by, j.c.status, j.c.instruction_file, j.c.command_file,
                               j.c.workdir, j.c.mode).join(j, j.c.stack_id == st.c.id)
                        .where(st.c.version == version).order_by(st.c.name)).all()
    return [r for r in rows if grades.get(r.id) in ("A", "B") and r.superseded_by is None and r.status == "done"]
