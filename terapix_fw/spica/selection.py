"""Image selection: every registered exposure against a :class:`~.criteria.Criteria`, recorded in RDBix.

The result keeps the selected exposures and, for each rejected one, the first criterion it failed with
the value and the limit (``selection_results``), so that an operator can answer "why is 751034p not in
the W3 stack?" from the database.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import insert, select

from ..db import schema as S
from ..db.query import find_images
from .criteria import Criteria

__all__ = ["Selection", "select_exposures", "record_selection", "latest_selection", "selected_filenames"]


@dataclass
class Selection:
    """The outcome of applying criteria to RDBix's exposures.

    Attributes
    ----------
    criteria : Criteria
    selected : list of dict
        Exposure rows that pass.
    rejected : dict of str to (str, str)
        File name -> (criterion, reason).
    selection_id : int or None
        Its RDBix id once recorded.
    ids : dict of str to int
        File name -> exposure id of every exposure examined.
    """
    criteria: Criteria
    selected: list[dict] = field(default_factory=list)
    #: filename -> (criterion, reason)
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    selection_id: int | None = None
    #: filename -> exposures.id of every exposure examined
    ids: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def filenames(self) -> list[str]:
        """File names of the selected exposures."""
        return [r["filename"] for r in self.selected]

    def report(self) -> str:
        """What ``terapix spica select`` prints: counts, then each exposure and why it was rejected.

        Returns
        -------
        str
        """
        lines = [f"selection {self.criteria.name}: {len(self.selected)} selected, {len(self.rejected)} rejected"]
        lines += [f"  selected {name}" for name in self.filenames]
        lines += [f"  rejected {name}: {crit}: {why}" for name, (crit, why) in sorted(self.rejected.items())]
        return "\n".join(lines)


def select_exposures(db, criteria: Criteria, record: bool = True) -> Selection:
    """Apply ``criteria`` to every exposure of RDBix (``grade`` is the effective grade: the latest human
    grade, else QualityFITS' suggestion); with ``record`` the result is written to RDBix.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    criteria : Criteria
    record : bool

    Returns
    -------
    Selection
    """
    result = Selection(criteria)
    for row in find_images(db):
        result.ids[row["filename"]] = row["id"]
        failed = criteria.first_failure(row)
        if failed is None:
            result.selected.append(row)
        else:
            result.rejected[row["filename"]] = failed
    if record:
        record_selection(db, result)
    return result


def record_selection(db, result: Selection) -> int:
    """Write a selection and each exposure's outcome to RDBix.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    result : Selection

    Returns
    -------
    int
        The selection's id.
    """
    from ..db.engine import connect
    engine = connect(db)
    with engine.begin() as conn:
        sel_id = conn.execute(insert(S.selections).values(
            name=result.criteria.name, criteria_file=result.criteria.path, criteria=result.criteria.to_json(),
            time=dt.datetime.now(dt.timezone.utc), nselected=len(result.selected),
            nrejected=len(result.rejected))).inserted_primary_key[0]
        payload = [{"selection_id": sel_id, "exposure_id": r["id"], "selected": True, "criterion": None,
                    "detail": None} for r in result.selected]
        payload += [{"selection_id": sel_id, "exposure_id": result.ids[name], "selected": False, "criterion": crit,
                     "detail": why} for name, (crit, why) in result.rejected.items()]
        for i in range(0, len(payload), 5000):
            conn.execute(insert(S.selection_results), payload[i:i + 5000])
    result.selection_id = sel_id
    return sel_id


def latest_selection(db, name: str | None = None) -> int | None:
    """Id of the latest recorded selection (of criteria ``name`` if given).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    name : str, optional

    Returns
    -------
    int or None
    """
    from ..db.engine import connect
    query = select(S.selections.c.id).order_by(S.selections.c.id.desc()).limit(1)
    if name:
        query = query.where(S.selections.c.name == name)
    with connect(db).connect() as conn:
        row = conn.execute(query).first()
    return row[0] if row else None


def selected_filenames(db, selection_id: int) -> set[str]:
    """The file names a recorded selection kept.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    selection_id : int

    Returns
    -------
    set of str
    """
    from ..db.engine import connect
    r, e = S.selection_results, S.exposures
    with connect(db).connect() as conn:
        return {n for (n,) in conn.execute(select(e.c.filename).join(r, r.c.exposure_id == e.c.id)
                                           .where(r.c.selection_id == selection_id, r.c.selected.is_(True)))}
