"""Stack planning: which stacks a release makes and, for each, its astrometric list and stack list.

CFHTLS report, section 3.2.1: Deep stacks are centred on the Deep field centres and hold the selected
images whose run id belongs to the Deep survey; Wide stacks are centred on target positions and hold the
selected images whose centre lies within 10 arcmin of the target (Wide areas are cut into 1 deg x 1 deg
quanta, see :mod:`.tiling`); Very Wide images are not stacked but processed one by one.  Every stack
(and every image-by-image job) also gets an *astrometric list*: every registered exposure, any grade,
within 2.5 deg of its centre, solved together by SCAMP.

Every position search goes through RDBix's sky index (``exposures.healpix``, NESTED HEALPix): the
pixels touching the cone are listed with healpy and the database returns only the rows in them; the
exact great-circle distance then trims the cone's edge.  Nothing scans the exposure table in Python.
Jobs whose astrometric lists are identical share one astrometric group (one SCAMP solution).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from ..db import schema as S
from ..db.query import _cone_pixels, angular_distance
from .release import ReleaseSpec
from .tiling import quantum_of, tile_area

__all__ = ["PlannedJob", "Plan", "plan_release", "record_plan", "cone_rows", "astrometric_group",
           "astrometric_list"]

_COLUMNS = ("id", "filename", "filter", "ra", "dec", "survey_component", "runid", "qrunid", "release_date",
            "exptime")


@dataclass
class PlannedJob:
    """One stack (release mode) or one exposure (image-by-image mode) to make."""

    name: str
    mode: str                      # "release" or "image"
    component: str
    filter: str | None
    ra: float
    dec: float
    target: str
    field: str                     # the field (all filters of one centre): chi2 and dual-image catalogues
    priority: int
    astrometric: list[str] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    release_date: dt.datetime | None = None
    group: str = ""

    @property
    def kind(self) -> str:
        """``stack`` or ``image``."""
        return "stack" if self.mode == "release" else "image"


@dataclass
class Plan:
    """Every job of a release.

    Attributes
    ----------
    release : ReleaseSpec
    jobs : list of PlannedJob
    fields : dict of str to tuple
        Field name -> ``(component, ra, dec, [stack names])``: every filter of one centre.
    """
    release: ReleaseSpec
    jobs: list[PlannedJob] = field(default_factory=list)
    #: field name -> (component, ra, dec, [stack names]): every filter of one centre
    fields: dict[str, tuple] = field(default_factory=dict)

    def stacks(self) -> list[PlannedJob]:
        """The release-mode jobs.

        Returns
        -------
        list of PlannedJob
        """
        return [j for j in self.jobs if j.mode == "release"]

    def images(self) -> list[PlannedJob]:
        """The image-by-image jobs.

        Returns
        -------
        list of PlannedJob
        """
        return [j for j in self.jobs if j.mode == "image"]


_CONE_STATEMENTS: dict[tuple[str, ...], object] = {}


def _cone_statement(columns: tuple[str, ...]):
    """One compiled statement per column set: the pixel list is bound at execution (expanding IN)."""
    if columns not in _CONE_STATEMENTS:
        from sqlalchemy import bindparam
        e = S.exposures
        _CONE_STATEMENTS[columns] = select(*[getattr(e.c, c) for c in columns]).where(
            e.c.healpix.in_(bindparam("pixels", expanding=True)))
    return _CONE_STATEMENTS[columns]


def cone_rows(conn, ra: float, dec: float, radius: float, columns: tuple[str, ...] = _COLUMNS) -> list[dict]:
    """Exposures whose centre lies within ``radius`` degrees of (ra, dec), through the sky index; each a
    dict of ``columns`` (which must hold ra and dec) and ``distance``.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    ra, dec, radius : float
        Degrees.
    columns : tuple of str

    Returns
    -------
    list of dict
    """
    pixels = _cone_pixels(ra, dec, radius)
    if pixels is None:  # a cone too large to list its pixels: a declination band
        e = S.exposures
        rows = conn.execute(select(*[getattr(e.c, c) for c in columns])
                            .where(e.c.dec.between(dec - radius, dec + radius))).all()
    else:
        rows = []
        for i in range(0, len(pixels), 5000):
            rows += conn.execute(_cone_statement(columns), {"pixels": pixels[i:i + 5000]}).all()
    if not rows:
        return []
    ira, idec = columns.index("ra"), columns.index("dec")
    d = angular_distance(ra, dec, np.fromiter((r[ira] for r in rows), float, len(rows)),
                         np.fromiter((r[idec] for r in rows), float, len(rows)))
    keep = np.nonzero(d <= radius)[0]
    return [dict(zip(columns, rows[i]), distance=float(d[i])) for i in keep]


def astrometric_group(filenames: list[str]) -> str:
    """The name of the SCAMP solution of an astrometric list: identical lists share it.

    Parameters
    ----------
    filenames : list of str

    Returns
    -------
    str
    """
    return "astrom_" + hashlib.sha1("\n".join(sorted(filenames)).encode()).hexdigest()[:12]


def _latest(dates):
    dates = [d for d in dates if d is not None]
    return max(dates) if dates else None


class _Planner:
    def __init__(self, conn, spec: ReleaseSpec, selected: set[str]):
        self.conn, self.spec, self.selected = conn, spec, selected
        self._astrom: dict[tuple[float, float], list[str]] = {}
        self.plan = Plan(spec)

    def astrometric(self, ra: float, dec: float) -> list[str]:
        key = (round(ra, 9), round(dec, 9))
        if key not in self._astrom:
            rows = cone_rows(self.conn, ra, dec, self.spec.astrometry_radius, ("filename", "ra", "dec"))
            self._astrom[key] = sorted(r["filename"] for r in rows)
        return self._astrom[key]

    def add_stacks(self, component: str, target: str, ra: float, dec: float, rows: list[dict], priority: int):
        by_filter: dict[str, list[dict]] = {}
        for r in rows:
            by_filter.setdefault(r["filter"] or "", []).append(r)
        if not by_filter:
            return
        astrom = self.astrometric(ra, dec)
        group = astrometric_group(astrom)
        names = []
        for flt in sorted(by_filter):
            members = sorted(by_filter[flt], key=lambda r: r["filename"])
            name = self.spec.stack_name(component, flt, ra, dec)
            names.append(name)
            self.plan.jobs.append(PlannedJob(
                name=name, mode="release", component=component, filter=flt, ra=ra, dec=dec, target=target,
                field=self.spec.field_name(component, sorted(by_filter), ra, dec), priority=priority,
                astrometric=astrom, stack=[r["filename"] for r in members],
                release_date=_latest(r["release_date"] for r in members), group=group))
        # a field for every centre, even with one filter: "the chi2 image will be provided even for single
        # filter observations" (CFHTLS report, 3.2.2), and its dual-image catalogues are the release's
        if names:
            self.plan.fields[self.spec.field_name(component, sorted(by_filter), ra, dec)] = (component, ra, dec, names)

    def deep(self):
        spec = self.spec
        for fld in spec.deep_fields:
            rows = [r for r in cone_rows(self.conn, fld.ra, fld.dec, spec.deep_radius)
                    if r["filename"] in self.selected and self._is_deep(r)]
            self.add_stacks(spec.deep_component, fld.name, fld.ra, fld.dec, rows, spec.deep_priority)

    def _is_deep(self, row) -> bool:
        if self.spec.deep_runids:
            ids = [v for v in (row["runid"], row["qrunid"]) if v]
            return any(fnmatch.fnmatchcase(v, pat) for v in ids for pat in self.spec.deep_runids)
        return row["survey_component"] == self.spec.deep_component

    def wide(self):
        spec = self.spec
        comp = spec.wide_component
        for tgt in spec.wide_targets:
            rows = [r for r in cone_rows(self.conn, tgt.ra, tgt.dec, spec.wide_radius_arcmin / 60.0)
                    if r["filename"] in self.selected and r["survey_component"] == comp]
            self.add_stacks(comp, tgt.name, tgt.ra, tgt.dec, rows, spec.wide_priority)
        for area in spec.wide_areas:
            for q in tile_area(area, spec.quantum):
                width = ((q.ra_hi - q.ra_lo) % 360.0 or 360.0) * np.cos(np.radians(q.dec))
                radius = min(180.0, float(np.hypot(width, q.dec_hi - q.dec_lo)) / 2 * 1.01 + 1e-6)
                if q.ra_hi - q.ra_lo == 360.0:  # polar cap
                    radius = q.dec_hi - q.dec_lo + 1e-6
                rows = [r for r in cone_rows(self.conn, q.ra, q.dec, radius)
                        if r["filename"] in self.selected and r["survey_component"] == comp]
                if rows:
                    rr, cc = quantum_of(area, spec.quantum, [r["ra"] for r in rows], [r["dec"] for r in rows])
                    rows = [r for r, a, b in zip(rows, rr, cc) if a == q.row and b == q.col]
                self.add_stacks(comp, q.name, q.ra, q.dec, rows, spec.wide_priority)

    def images(self, selected_rows: list[dict]):
        spec = self.spec
        for r in selected_rows:
            if r["survey_component"] not in spec.image_components:
                continue
            stem = r["filename"].rsplit(".fits", 1)[0]
            astrom = self.astrometric(r["ra"], r["dec"])
            self.plan.jobs.append(PlannedJob(
                name=spec.image_name(stem), mode="image", component=r["survey_component"], filter=r["filter"],
                ra=r["ra"], dec=r["dec"], target=stem, field="", priority=spec.image_priority, astrometric=astrom,
                stack=[r["filename"]], release_date=r["release_date"], group=astrometric_group(astrom)))


def plan_release(db, spec: ReleaseSpec, selected: set[str]) -> Plan:
    """Plan every stack and image-by-image job of ``spec`` from the ``selected`` exposure file names.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    spec : ReleaseSpec
    selected : set of str

    Returns
    -------
    Plan

    Raises
    ------
    SpicaError
        If two stacks get the same name.
    """
    from ..db.engine import connect
    engine = connect(db)
    with engine.connect() as conn:
        planner = _Planner(conn, spec, selected)
        planner.deep()
        planner.wide()
        if spec.image_components and selected:
            e = S.exposures
            names = sorted(selected)
            rows = []
            for i in range(0, len(names), 500):
                rows += [dict(r._mapping) for r in conn.execute(
                    select(*[getattr(e.c, c) for c in _COLUMNS]).where(
                        e.c.filename.in_(names[i:i + 500]), e.c.survey_component.in_(spec.image_components)))]
            planner.images(sorted(rows, key=lambda r: r["filename"]))
    seen: dict[str, PlannedJob] = {}
    for job in planner.plan.jobs:
        if job.name in seen:
            from .grading import SpicaError
            raise SpicaError(f"two stacks of release {spec.name} get the name {job.name} (targets "
                             f"{seen[job.name].target} and {job.target}): change the naming pattern or the targets")
        seen[job.name] = job
    return planner.plan


def record_plan(db, plan: Plan) -> dict[str, int]:
    """Write the release, its stacks with both lists, and one pending job per stack, field and image to
    RDBix; re-planning the same release replaces the lists of its stacks.  Returns stack name -> id.

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    plan : Plan

    Returns
    -------
    dict of str to int
    """
    from sqlalchemy import delete, insert, update

    from ..db.engine import connect
    spec = plan.release
    engine = connect(db)
    e = S.exposures
    ids: dict[str, int] = {}
    groups_recorded: set[str] = set()
    with engine.begin() as conn:
        rel = conn.execute(select(S.releases.c.id).where(S.releases.c.name == spec.name,
                                                         S.releases.c.version == spec.version)).first()
        rel_id = rel[0] if rel else conn.execute(insert(S.releases).values(
            name=spec.name, version=spec.version, description=spec.description or None)).inserted_primary_key[0]
        for job in plan.jobs:
            values = dict(release_id=rel_id, ra=job.ra, dec=job.dec, filter=job.filter,
                          survey_component=job.component, release_date=job.release_date)
            found = conn.execute(select(S.stacks.c.id).where(S.stacks.c.name == job.name,
                                                             S.stacks.c.version == spec.version)).first()
            if found:
                sid = found[0]
                conn.execute(update(S.stacks).where(S.stacks.c.id == sid).values(**values))
                conn.execute(delete(S.stack_images).where(S.stack_images.c.stack_id == sid))
            else:
                sid = conn.execute(insert(S.stacks).values(name=job.name, version=spec.version, **values)
                                   ).inserted_primary_key[0]
            ids[job.name] = sid
            rows = [{"stack_id": sid, "list": "stack", "filename": f} for f in job.stack]
            # the astrometric list is written once per astrometric group (on its first stack): the stacks
            # of a group share it by definition, and it is 10-100 times longer than a stack list
            if job.group not in groups_recorded:
                rows += [{"stack_id": sid, "list": "astrometry", "filename": f} for f in job.astrometric]
                groups_recorded.add(job.group)
            for i in range(0, len(rows), 5000):
                conn.execute(insert(S.stack_images), rows[i:i + 5000])
            _upsert_job(conn, job.name, spec.version, job.mode, dict(
                kind=job.kind, stack_id=sid, survey_component=job.component, filter=job.filter,
                priority=job.priority, astrometric_group=job.group, n_astrometric=len(job.astrometric),
                n_stack=len(job.stack)))
        for fname, (component, ra, dec, names) in plan.fields.items():
            group = next(j.group for j in plan.jobs if j.name == names[0])
            _upsert_job(conn, fname, spec.version, "release", dict(
                kind="field", survey_component=component, priority=max(
                    j.priority for j in plan.jobs if j.name in names) - 1, astrometric_group=group,
                n_stack=len(names)))
        # the node holding most of a job's stack list (datatransfer put exposures on node-local disks)
        node_of: dict[str, list[str]] = {}
        for fname, node in conn.execute(select(e.c.filename, S.storage.c.node)
                                        .join(S.storage, S.storage.c.exposure_id == e.c.id)):
            node_of.setdefault(fname, []).append(node)
        for job in plan.jobs if node_of else []:
            nodes = [n for f in job.stack for n in node_of.get(f, [])]
            if nodes:
                best = max(sorted(set(nodes)), key=nodes.count)
                conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.name == job.name,
                                                        S.spica_jobs.c.version == spec.version,
                                                        S.spica_jobs.c.mode == job.mode).values(node=best))
    return ids


def _upsert_job(conn, name: str, version: str, mode: str, values: dict) -> None:
    from sqlalchemy import insert, update
    j = S.spica_jobs
    found = conn.execute(select(j.c.id).where(j.c.name == name, j.c.version == version, j.c.mode == mode)).first()
    if found:
        conn.execute(update(j).where(j.c.id == found[0]).values(**values))
    else:
        conn.execute(insert(j).values(name=name, version=version, mode=mode, status="pending", **values))


def astrometric_list(conn, group: str) -> list[str]:
    """The astrometric list of an astrometric group (recorded on the group's first stack).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    group : str

    Returns
    -------
    list of str
    """
    si, j = S.stack_images, S.spica_jobs
    return sorted(set(conn.execute(select(si.c.filename).join(j, j.c.stack_id == si.c.stack_id)
                                   .where(j.c.astrometric_group == group, si.c.list == "astrometry")).scalars()))
