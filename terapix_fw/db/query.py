"""Queries of RDBix used by operators, release selection and the web pages.

Every function takes ``db``: an Engine, a URL, or None (``$TERAPIX_DB_URL`` / ``./rdbix.sqlite``).
Positions are ICRS degrees; radii are degrees.

>>> rows = find_images(db, filter="r", grade=["A", "B"], cone=(150.1, 2.2, 0.5))   # doctest: +SKIP
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from . import schema as S
from .ops import Document, RecordError, path_hash
from .types import to_datetime

__all__ = ["find_images", "find_ccds", "select_paths", "cone_search_sources", "provenance", "set_grade", "grade_history",
           "effective_grade", "angular_distance", "ProvenanceNode"]


def _engine(db) -> Engine:
    from .engine import connect
    return connect(db)


def angular_distance(ra1, dec1, ra2, dec2):
    """Great-circle distance in degrees (haversine, accurate at small separations).

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : float or array_like
        Degrees.

    Returns
    -------
    float or numpy.ndarray
        Degrees.
    """
    import numpy as np
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def _cone_pixels(ra: float, dec: float, radius: float):
    """HEALPix pixels (NESTED, HEALPIX_NSIDE) touching the cone; None if there are too many to list."""
    import healpy
    import numpy as np
    if radius < 0:
        raise RecordError(f"cone radius {radius!r}: expected >= 0 degrees")
    if radius > 10:
        return None  # a declination band is cheaper than a huge IN list
    vec = healpy.ang2vec(ra, dec, lonlat=True)
    pix = healpy.query_disc(S.HEALPIX_NSIDE, vec, math.radians(max(radius, 1e-6)), inclusive=True, nest=True)
    return np.asarray(pix, dtype=np.int64).tolist()


def _pixel_clause(column, pixels: list[int]):
    # chunks keep each IN list well under every back end's parameter limit
    chunks = [pixels[i:i + 500] for i in range(0, len(pixels), 500)]
    return or_(*[column.in_(chunk) for chunk in chunks])


def _latest_grades():
    """Subquery: the latest human grade of each exposure."""
    latest = (select(S.grades.c.exposure_id, func.max(S.grades.c.id).label("gid"))
              .group_by(S.grades.c.exposure_id).subquery("latest"))
    return (select(S.grades.c.exposure_id, S.grades.c.grade, S.grades.c.author)
            .join(latest, S.grades.c.id == latest.c.gid).subquery("human"))


def _as_list(value) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def find_images(db=None, *, filter: str | Iterable[str] | None = None, run_id: str | None = None,
                object: str | Iterable[str] | None = None,
                date_from=None, date_to=None, exptime_min: float | None = None,
                exptime_max: float | None = None, seeing_min: float | None = None,
                seeing_max: float | None = None, airmass_min: float | None = None,
                airmass_max: float | None = None, grade: str | Iterable[str] | None = None,
                survey: str | Iterable[str] | None = None, cone: tuple[float, float, float] | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Exposures matching every given criterion, ordered by observation date.

    ``run_id`` matches QRUNID or RUNID; ``date_from``/``date_to`` bound DATE-OBS (inclusive; datetime,
    ISO string or Unix seconds); ``grade`` is matched against the effective grade (the latest human
    grade, else the suggested one); ``cone`` is ``(ra, dec, radius)`` in degrees.  Each row is a dict
    of the exposure columns plus ``grade``, ``grade_source`` (human/suggested) and, with a cone,
    ``distance`` (degrees).

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    filter, object, grade, survey : str or iterable of str, optional
        One value or any of several.
    run_id : str, optional
    date_from, date_to : datetime, str or float, optional
    exptime_min, exptime_max, seeing_min, seeing_max, airmass_min, airmass_max : float, optional
        Inclusive bounds.
    cone : tuple of float, optional
    limit : int, optional
        Most rows returned.

    Returns
    -------
    list of dict

    Raises
    ------
    RecordError
        On an unknown grade.
    """
    engine = _engine(db)
    e = S.exposures
    human = _latest_grades()
    grade_expr = func.coalesce(human.c.grade, e.c.suggested_grade)
    query = (select(e, human.c.grade.label("human_grade"), grade_expr.label("grade"))
             .select_from(e.outerjoin(human, human.c.exposure_id == e.c.id)))
    conds = []
    if (filters := _as_list(filter)) is not None:
        conds.append(e.c.filter.in_(filters))
    if run_id is not None:
        conds.append(or_(e.c.qrunid == run_id, e.c.runid == run_id))
    if (objects := _as_list(object)) is not None:
        conds.append(e.c.object.in_(objects))
    if date_from is not None:
        conds.append(e.c.date_obs >= to_datetime(date_from))
    if date_to is not None:
        conds.append(e.c.date_obs <= to_datetime(date_to))
    for col, low, high in ((e.c.exptime, exptime_min, exptime_max), (e.c.seeing, seeing_min, seeing_max),
                           (e.c.airmass, airmass_min, airmass_max)):
        if low is not None:
            conds.append(col >= float(low))
        if high is not None:
            conds.append(col <= float(high))
    if (grades := _as_list(grade)) is not None:
        bad = [g for g in grades if g not in S.GRADES]
        if bad:
            raise RecordError(f"grade {bad[0]!r}: expected one of {', '.join(S.GRADES)}")
        conds.append(grade_expr.in_(grades))
    if (surveys := _as_list(survey)) is not None:
        conds.append(e.c.survey_component.in_(surveys))
    if cone is not None:
        ra0, dec0, radius = (float(v) for v in cone)
        pixels = _cone_pixels(ra0, dec0, radius)
        if pixels is None:
            conds.append(e.c.dec.between(dec0 - radius, dec0 + radius))
        else:
            conds.append(_pixel_clause(e.c.healpix, pixels))
    if conds:
        query = query.where(and_(*conds))
    query = query.order_by(e.c.date_obs, e.c.filename)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["grade_source"] = "human" if row.pop("human_grade") else ("suggested" if row["grade"] else None)
    if cone is not None and rows:
        dist = angular_distance(ra0, dec0, [r["ra"] for r in rows], [r["dec"] for r in rows])
        kept = []
        for row, d in zip(rows, dist):
            if d <= radius:
                row["distance"] = float(d)
                kept.append(row)
        rows = kept
    return rows[:limit] if limit else rows


#: attributes of an instruction file's <query> element -> find_images arguments
_QUERY_ATTRIBUTES = {"filter": "filter", "runid": "run_id", "object": "object", "survey": "survey",
                     "grades": "grade", "date_min": "date_from", "date_max": "date_to",
                     "exptime_min": "exptime_min", "exptime_max": "exptime_max", "seeing_max": "seeing_max",
                     "airmass_max": "airmass_max"}


def select_paths(db, criteria: dict[str, str], node: str | None = None) -> list[str]:
    """Paths of the exposures matching an instruction file's ``<query>`` criteria (used by the runner).

    Each exposure contributes its stored copy on ``node`` (default: this host) if there is one, else
    its first recorded copy; exposures with no recorded storage are reported by name in the error.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    criteria : dict of str to str
        The ``<query>`` element's attributes.
    node : str, optional
        Host whose copies are preferred.

    Returns
    -------
    list of str

    Raises
    ------
    RecordError
        On an unknown attribute, an incomplete cone, or matching exposures with no stored copy.
    """
    import socket
    args: dict[str, Any] = {}
    for key, value in criteria.items():
        if key in ("ra", "dec", "radius"):
            continue
        if key not in _QUERY_ATTRIBUTES:
            raise RecordError(f"query attribute {key!r}: expected one of "
                             f"{', '.join(list(_QUERY_ATTRIBUTES) + ['ra', 'dec', 'radius'])}")
        args[_QUERY_ATTRIBUTES[key]] = value
    cone_keys = [k for k in ("ra", "dec", "radius") if k in criteria]
    if cone_keys:
        if len(cone_keys) != 3:
            raise RecordError("query: ra, dec and radius go together (got only " + ", ".join(cone_keys) + ")")
        args["cone"] = (float(criteria["ra"]), float(criteria["dec"]), float(criteria["radius"]))
    rows = find_images(db, **args)
    if not rows:
        return []
    node = node or socket.gethostname()
    ids = [r["id"] for r in rows]
    with _engine(db).connect() as conn:
        copies = conn.execute(select(S.storage.c.exposure_id, S.storage.c.node, S.storage.c.path)
                              .where(S.storage.c.exposure_id.in_(ids)).order_by(S.storage.c.id)).all()
    best: dict[int, str] = {}
    for exp_id, copy_node, path in copies:
        if exp_id not in best or copy_node == node:
            if copy_node == node or exp_id not in best:
                best[exp_id] = path
    missing = [r["filename"] for r in rows if r["id"] not in best]
    if missing:
        raise RecordError(f"query {criteria}: no stored copy recorded for {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''}")
    return [best[r["id"]] for r in rows]


#: largest distance (degrees) from an exposure's pointing to a corner of its CCDs that find_ccds allows
#: for (MegaCam: 0.96 x 0.94 deg, half-diagonal 0.67)
CCD_REACH_DEG = 1.0


def find_ccds(db, ra: float, dec: float, radius: float = 0.0, **criteria) -> list[dict[str, Any]]:
    """CCDs whose footprint (the four WCS corners ingestion recorded) overlaps the cone of ``radius``
    degrees around (ra, dec) - with radius 0, the CCDs that contain the position.  ``criteria`` are
    those of :func:`find_images` (filter=, seeing_max=, grade=...).  Each row: the extension columns,
    ``filename`` of its exposure and ``distance`` (degrees from the position to the footprint, 0 inside).

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    ra, dec : float
        Degrees.
    radius : float
        Degrees.
    **criteria : Any
        As for :func:`find_images`.

    Returns
    -------
    list of dict

    Raises
    ------
    RecordError
        On a negative radius.
    """
    import numpy as np
    if radius < 0:
        raise RecordError(f"cone radius {radius!r}: expected >= 0 degrees")
    exposures = {r["id"]: r for r in find_images(db, cone=(ra, dec, radius + CCD_REACH_DEG), **criteria)}
    if not exposures:
        return []
    x = S.extensions
    with _engine(db).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(x).where(x.c.exposure_id.in_(list(exposures)), x.c.ra1.is_not(None))
            .order_by(x.c.exposure_id, x.c.ccd))]
    if not rows:
        return []
    # gnomonic projection at the position: the footprint is a quadrilateral there (CCDs span < 0.3 deg)
    cra = np.array([[r[f"ra{k}"] for k in (1, 2, 3, 4)] for r in rows])
    cdec = np.array([[r[f"dec{k}"] for k in (1, 2, 3, 4)] for r in rows])
    a0, d0 = math.radians(ra), math.radians(dec)
    a, d = np.radians(cra), np.radians(cdec)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.degrees(np.cos(d) * np.sin(a - a0) / cosc)
    eta = np.degrees((math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc)
    # distance from the origin to each edge segment, and whether the origin is inside (winding by signs)
    x1, y1 = xi, eta
    x2, y2 = np.roll(xi, -1, axis=1), np.roll(eta, -1, axis=1)
    dx, dy = x2 - x1, y2 - y1
    t = np.clip(-(x1 * dx + y1 * dy) / np.maximum(dx * dx + dy * dy, 1e-30), 0, 1)
    edge = np.hypot(x1 + t * dx, y1 + t * dy).min(axis=1)
    cross = x1 * dy - y1 * dx  # sign of the origin relative to each edge
    inside = np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)
    dist = np.where(inside, 0.0, edge)
    out = []
    for row, dd, ok in zip(rows, dist, cosc.min(axis=1) > 0):
        if ok and dd <= radius:
            row["filename"] = exposures[row["exposure_id"]]["filename"]
            row["distance"] = float(dd)
            out.append(row)
    return sorted(out, key=lambda r: (r["distance"], r["filename"], r["ccd"]))


def cone_search_sources(db, ra: float, dec: float, radius: float) -> list[dict[str, Any]]:
    """Sources of every recorded catalogue within ``radius`` degrees of (ra, dec), nearest first.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    ra, dec, radius : float
        Degrees.

    Returns
    -------
    list of dict
        Source columns, ``catalog`` and ``distance`` (degrees).
    """
    engine = _engine(db)
    s = S.sources
    query = select(s, S.catalogs.c.path.label("catalog")).join(S.catalogs, S.catalogs.c.id == s.c.catalog_id)
    pixels = _cone_pixels(ra, dec, radius)
    query = query.where(s.c.dec.between(dec - radius, dec + radius) if pixels is None
                        else _pixel_clause(s.c.healpix, pixels))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return []
    dist = angular_distance(ra, dec, [r["ra"] for r in rows], [r["dec"] for r in rows])
    out = []
    for row, d in zip(rows, dist):
        if d <= radius:
            row["distance"] = float(d)
            out.append(row)
    return sorted(out, key=lambda r: r["distance"])


@dataclass
class ProvenanceNode:
    """A product, the unit/step/run that made it (None for an external input), and its parents."""

    path: str
    kind: str | None
    checksum: str
    size: int | None
    run_id: str | None = None
    step: str | None = None
    unit: str | None = None
    tool: str | None = None
    tool_version: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    parents: list["ProvenanceNode"] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The tree as nested dicts (for JSON).

        Returns
        -------
        dict
        """
        return {k: ([p.to_dict() for p in v] if k == "parents" else v) for k, v in self.__dict__.items()}

    def format(self, indent: int = 0) -> str:
        """The tree as indented text, one product a line.

        Parameters
        ----------
        indent : int
            Depth of this node.

        Returns
        -------
        str
        """
        pad = "  " * indent
        made = (f" <- {self.tool} {self.tool_version} (run {self.run_id}, step {self.step}, unit {self.unit})"
                if self.tool else " (external input)")
        lines = [f"{pad}{self.path} [{self.kind}]{made}"]
        lines += [p.format(indent + 1) for p in self.parents]
        return "\n".join(lines)


def provenance(db, product: str | int, max_depth: int = 50) -> ProvenanceNode:
    """The provenance tree of a product, given by id or path (the latest version of that path).

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    product : str or int
        Product id or path.
    max_depth : int
        Deepest ancestry followed.

    Returns
    -------
    ProvenanceNode

    Raises
    ------
    RecordError
        If RDBix has no such product.
    """
    engine = _engine(db)
    p, u, st = S.products, S.units, S.steps
    base = (select(p.c.id, p.c.path, p.c.kind, p.c.checksum, p.c.size, u.c.unit, st.c.run_id, st.c.step,
                   st.c.tool, st.c.tool_version, st.c.config)
            .select_from(p.outerjoin(u, u.c.id == p.c.unit_pk).outerjoin(st, st.c.id == u.c.step_pk)))
    with engine.connect() as conn:
        if isinstance(product, int):
            row = conn.execute(base.where(p.c.id == product)).first()
        else:
            path = str(product)
            row = conn.execute(base.where(p.c.path_hash == path_hash(path)).order_by(p.c.id.desc())).first()
            if row is None and not os.path.isabs(path):
                row = conn.execute(base.where(p.c.path_hash == path_hash(str(Path(path).resolve())))
                                   .order_by(p.c.id.desc())).first()
        if row is None:
            raise RecordError(f"no product {product!r} in RDBix")

        def build(r, depth: int, seen: frozenset) -> ProvenanceNode:
            node = ProvenanceNode(r.path, r.kind, r.checksum, r.size, r.run_id, r.step, r.unit, r.tool,
                                  r.tool_version, json.loads(r.config) if r.config else {})
            if depth >= max_depth or r.id in seen:
                return node
            parents = conn.execute(base.join(S.provenance, S.provenance.c.parent_id == p.c.id)
                                   .where(S.provenance.c.product_id == r.id).order_by(p.c.path)).all()
            node.parents = [build(pr, depth + 1, seen | {r.id}) for pr in parents]
            return node

        return build(row, 0, frozenset())


def set_grade(db, exposure: str, grade: str, author: str, comment: str | None = None,
              when=None) -> None:
    """Grade an exposure A, B, C or D; the history is kept and the latest human grade wins.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    exposure : str
        Exposure file name (a path is reduced to its name).
    grade : str
        A, B, C or D.
    author : str
    comment : str, optional
    when : datetime, optional
        Now by default.
    """
    from .store import write_document
    doc = Document().add("grade", exposure=Path(exposure).name, grade=str(grade).upper(), author=author,
                         comment=comment, time=when or _dt.datetime.now(_dt.timezone.utc))
    write_document(_engine(db), doc)


def grade_history(db, exposure: str) -> list[dict[str, Any]]:
    """Every human grade of an exposure, oldest first.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    exposure : str

    Returns
    -------
    list of dict
        ``grade``, ``author``, ``time``, ``comment``.
    """
    engine = _engine(db)
    query = (select(S.grades.c.grade, S.grades.c.author, S.grades.c.time, S.grades.c.comment)
             .join(S.exposures, S.exposures.c.id == S.grades.c.exposure_id)
             .where(S.exposures.c.filename == Path(exposure).name).order_by(S.grades.c.id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def effective_grade(db, exposure: str) -> tuple[str | None, str | None]:
    """(grade, source) of an exposure: the latest human grade, else the suggested grade.

    Parameters
    ----------
    db : Engine, str or None
        DB connection: an Engine, a database URL, or None (``$TERAPIX_DB_URL``, else ``rdbix.sqlite``).
    exposure : str

    Returns
    -------
    tuple of (str or None, str or None)
        Grade and ``human``/``suggested``.

    Raises
    ------
    RecordError
        On an unknown exposure.
    """
    history = grade_history(db, exposure)
    if history:
        return history[-1]["grade"], "human"
    engine = _engine(db)
    with engine.connect() as conn:
        row = conn.execute(select(S.exposures.c.suggested_grade)
                           .where(S.exposures.c.filename == Path(exposure).name)).first()
    if row is None:
        raise RecordError(f"unknown exposure {exposure!r}")
    return (row[0], "suggested") if row[0] else (None, None)
