"""What the report pages show, read from RDBix as plain dicts and lists.

The templates never touch the database: each page's context function calls these queries, so the same
data can be rendered, tested or exported as JSON.  Every function takes ``db`` (an Engine or URL, as
:func:`terapix_fw.db.connect` accepts); JSON text columns come back decoded; times are aware UTC
datetimes.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

__all__ = ["find_public", "overview", "runs", "recent_failures", "run_detail", "exposures", "filter_summary", "programme_time", "exposure_details",
           "products", "releases", "transfers", "records", "decode"]


def _engine(db):
    from ..db import connect
    return connect(db)


def _schema():
    from ..db import schema
    return schema


def decode(text: str | None, default: Any = None) -> Any:
    """A JSON column's value; text that is not JSON is returned as it is (never raises).

    Parameters
    ----------
    text : str or None
    default : Any
        Value for NULL or empty text.

    Returns
    -------
    Any
    """
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _rows(conn, query) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(query)]


def overview(db) -> dict[str, Any]:
    """Counts shown on the front page.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).

    Returns
    -------
    dict
    """
    S = _schema()
    with _engine(db).connect() as conn:
        def count(table, *where):
            q = select(func.count()).select_from(table)
            for w in where:
                q = q.where(w)
            return conn.execute(q).scalar() or 0
        return {
            "runs": count(S.runs),
            "runs_failed": count(S.runs, S.runs.c.status == "failed"),
            "runs_running": count(S.runs, S.runs.c.status == "running"),
            "units_failed": count(S.units, S.units.c.status == "failed"),
            "exposures": len(find_public(db)),  # as the exposures and statistics pages count them
            "products": count(S.products),
            "transfers": count(S.transfers),
            "catalogs": count(S.catalogs),
            "stacks": count(S.stacks),
        }


def _unit_counts(conn, step_pks: list[int] | None = None) -> dict[int, dict[str, int]]:
    S = _schema()
    q = select(S.units.c.step_pk, S.units.c.status, func.count()).group_by(S.units.c.step_pk, S.units.c.status)
    if step_pks is not None:
        q = q.where(S.units.c.step_pk.in_(step_pks))
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for step_pk, status, n in conn.execute(q):
        out[step_pk][status or "unknown"] = n
    return out


def runs(db, limit: int = 500) -> list[dict[str, Any]]:
    """The latest runs, newest first, each with its step count and unit counts by status.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    limit : int or None
        Most rows (None: all).

    Returns
    -------
    list of dict
    """
    S = _schema()
    with _engine(db).connect() as conn:
        rows = _rows(conn, select(S.runs).order_by(S.runs.c.start.desc(), S.runs.c.run_id).limit(limit))
        steps = conn.execute(select(S.steps.c.id, S.steps.c.run_id)
                             .where(S.steps.c.run_id.in_([r["run_id"] for r in rows] or [""]))).all()
        per_step = _unit_counts(conn, [s.id for s in steps])
    by_run: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    nsteps: dict[str, int] = defaultdict(int)
    for s in steps:
        nsteps[s.run_id] += 1
        for status, n in per_step.get(s.id, {}).items():
            by_run[s.run_id][status] += n
    for r in rows:
        r["parameters"] = decode(r["parameters"], {})
        r["summary"] = decode(r["summary"], {})
        r["nsteps"] = nsteps.get(r["run_id"], 0)
        r["units"] = dict(by_run.get(r["run_id"], {}))
    return rows


def recent_failures(db, limit: int = 20) -> list[dict[str, Any]]:
    """The latest failed units of every run: run, step, unit, host, error, log.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    limit : int or None
        Most rows (None: all).

    Returns
    -------
    list of dict
    """
    S = _schema()
    u, st, r = S.units, S.steps, S.runs
    with _engine(db).connect() as conn:
        rows = _rows(conn, select(u.c.unit, u.c.host, u.c.end, u.c.error, u.c.log_path, st.c.step, st.c.tool,
                                  r.c.run_id, r.c.name.label("run_name"))
                     .join(st, st.c.id == u.c.step_pk).join(r, r.c.run_id == st.c.run_id)
                     .where(u.c.status == "failed").order_by(u.c.end.desc(), u.c.id.desc()).limit(limit))
    return rows


def run_detail(db, run_id: str, unit_limit: int | None = 5000) -> dict[str, Any]:
    """One run: its steps (configuration, unit counts), its units (the first ``unit_limit``, in step
    order: host, times, status) and among them the failed ones with their error and log.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    run_id : str
    unit_limit : int or None

    Returns
    -------
    dict

    Raises
    ------
    KeyError
        If RDBix has no such run.
    """
    S = _schema()
    with _engine(db).connect() as conn:
        run = conn.execute(select(S.runs).where(S.runs.c.run_id == run_id)).first()
        if run is None:
            raise KeyError(f"no run {run_id!r} in RDBix")
        run = dict(run._mapping)
        steps = _rows(conn, select(S.steps).where(S.steps.c.run_id == run_id)
                      .order_by(S.steps.c.start, S.steps.c.id))
        counts = _unit_counts(conn, [s["id"] for s in steps])
        units = _rows(conn, select(S.units, S.steps.c.step.label("step_name"), S.steps.c.tool)
                      .join(S.steps, S.steps.c.id == S.units.c.step_pk)
                      .where(S.steps.c.run_id == run_id)
                      .order_by(S.steps.c.id, S.units.c.start, S.units.c.unit).limit(unit_limit))
    run["parameters"] = decode(run["parameters"], {})
    run["summary"] = decode(run["summary"], {})
    for s in steps:
        for name in ("depends", "config", "non_defaults", "summary"):
            s[name] = decode(s[name], {} if name != "depends" else [])
        s["units"] = counts.get(s["id"], {})
    for unit in units:
        unit["inputs"] = decode(unit["inputs"], [])
        unit["config"] = decode(unit["config"], {})
    failures = [u for u in units if u["status"] == "failed"]
    return {"run": run, "steps": steps, "failures": failures, "units": units,
            "units_total": sum(sum(s["units"].values()) for s in steps)}


def exposures(db, limit: int | None = 5000, ids: set[int] | None = None) -> dict[str, Any]:
    """The latest ``limit`` exposures (newest first, all if None) with their effective grade and their
    whole-exposure quality metrics (CCD 0), and a per-filter summary of every exposure.

    Returns ``{"rows", "metrics" (names), "summary", "total"}``; each row has ``metrics``
    {name: value} and ``ncopies`` (stored copies).

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    limit : int or None
        Most rows (None: all).
    ids : set of int, optional
        Only these exposure ids.
    """
    from ..db.query import find_images

    S = _schema()
    every = find_images(db)  # oldest first
    rows = every[::-1][:limit] if limit else every[::-1]
    if ids is not None:  # only these exposures (one page of the console)
        rows = [r for r in rows if r["id"] in ids]
    ids = [r["id"] for r in rows]
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    copies: dict[int, int] = {}
    names: set[str] = set()
    if ids:
        with _engine(db).connect() as conn:
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                q = (select(S.quality_metrics.c.exposure_id, S.quality_metrics.c.name, S.quality_metrics.c.value)
                     .where(S.quality_metrics.c.exposure_id.in_(chunk), S.quality_metrics.c.ccd == 0))
                for exp_id, name, value in conn.execute(q):
                    metrics[exp_id][name] = value
                    names.add(name)
                q = (select(S.storage.c.exposure_id, func.count()).where(S.storage.c.exposure_id.in_(chunk))
                     .group_by(S.storage.c.exposure_id))
                copies.update(dict(conn.execute(q).all()))
    for r in rows:
        r["metrics"] = metrics.get(r["id"], {})
        r["ncopies"] = copies.get(r["id"], 0)
    return {"rows": rows, "metrics": sorted(names), "summary": filter_summary(every), "total": len(every)}


def find_public(db) -> list[dict[str, Any]]:
    """The exposures the public report shows (oldest first): not the stacks (QualityFITS-out records a
    stack's quality under its file name), not proprietary data before its release date.  Every summary
    of the public pages (exposures, statistics) counts these, so that they agree.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).

    Returns
    -------
    list of dict
    """
    from ..db.query import find_images
    from .survey import PUBLIC, _engine, _stack_names

    with _engine(db).connect() as conn:
        stacks = _stack_names(conn)
    return [r for r in find_images(db)
            if r["filename"] not in stacks and PUBLIC.may_see(r["owner"], r["release_date"])]


def filter_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per filter: exposures, summed exposure time, effective grades and median seeing of ``rows``.

    Parameters
    ----------
    rows : list of dict
        Exposure rows.

    Returns
    -------
    list of dict
    """
    import statistics

    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r.get("filter") or "-"].append(r)
    out = []
    for band in sorted(groups):
        group = groups[band]
        seeing = [r["seeing"] for r in group if r.get("seeing") is not None]
        grades: dict[str, int] = defaultdict(int)
        for r in group:
            grades[r.get("grade") or "-"] += 1
        out.append({"filter": band, "n": len(group),
                    "exptime": sum(r["exptime"] or 0.0 for r in group if r.get("exptime") is not None),
                    "grades": dict(grades), "seeing": statistics.median(seeing) if seeing else None})
    return out


def programme_time(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summed exposure time (hours) per survey component (programme) and filter of ``rows``.

    Parameters
    ----------
    rows : list of dict
        Exposure rows.

    Returns
    -------
    dict
    """
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        if r.get("exptime"):
            table[r.get("survey_component") or "-"][r.get("filter") or "-"] += r["exptime"] / 3600.0
    filters = sorted({f for per in table.values() for f in per})
    return {"filters": filters,
            "rows": [{"component": c, "hours": dict(table[c]), "total": sum(table[c].values())}
                     for c in sorted(table)]}


def exposure_details(db, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per exposure id: header keywords (by extension), CCDs, per-CCD quality metrics, grade history and
    stored copies.  Read in a few queries per 500 exposures, not one per exposure.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    ids : list of int

    Returns
    -------
    dict of int to dict
    """
    S = _schema()
    out: dict[int, dict[str, Any]] = {i: {"keywords": defaultdict(list), "extensions": [], "ccd_metrics":
                                          defaultdict(dict), "grades": [], "storage": []} for i in ids}
    with _engine(db).connect() as conn:
        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            hk = S.header_keywords
            for r in conn.execute(select(hk).where(hk.c.exposure_id.in_(chunk)).order_by(hk.c.extension, hk.c.id)):
                out[r.exposure_id]["keywords"][r.extension].append(dict(r._mapping))
            ext = S.extensions
            for r in conn.execute(select(ext).where(ext.c.exposure_id.in_(chunk)).order_by(ext.c.ccd)):
                out[r.exposure_id]["extensions"].append(dict(r._mapping))
            qm = S.quality_metrics
            for r in conn.execute(select(qm).where(qm.c.exposure_id.in_(chunk), qm.c.ccd > 0)
                                  .order_by(qm.c.ccd, qm.c.name)):
                out[r.exposure_id]["ccd_metrics"][r.ccd][r.name] = r.value
            g = S.grades
            for r in conn.execute(select(g).where(g.c.exposure_id.in_(chunk)).order_by(g.c.id)):
                out[r.exposure_id]["grades"].append(dict(r._mapping))
            st = S.storage
            for r in conn.execute(select(st).where(st.c.exposure_id.in_(chunk)).order_by(st.c.node, st.c.id)):
                out[r.exposure_id]["storage"].append(dict(r._mapping))
    for detail in out.values():
        detail["keywords"] = dict(sorted(detail["keywords"].items()))
        detail["ccd_metrics"] = dict(sorted(detail["ccd_metrics"].items()))
        detail["metric_names"] = sorted({n for m in detail["ccd_metrics"].values() for n in m})
    return out


def products(db, limit: int | None = 5000) -> list[dict[str, Any]]:
    """The latest ``limit`` products, newest first, with the run/step/unit/tool that made them and their
    direct parents.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    limit : int or None
        Most rows (None: all).

    Returns
    -------
    list of dict
    """
    S = _schema()
    p, u, st = S.products, S.units, S.steps
    with _engine(db).connect() as conn:
        rows = _rows(conn, select(p, u.c.unit, st.c.run_id, st.c.step, st.c.tool, st.c.tool_version)
                     .select_from(p.outerjoin(u, u.c.id == p.c.unit_pk).outerjoin(st, st.c.id == u.c.step_pk))
                     .order_by(p.c.id.desc()).limit(limit))
        ids = [r["id"] for r in rows]
        parents: dict[int, list[dict]] = defaultdict(list)
        parent = S.products.alias("parent")
        for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            q = (select(S.provenance.c.product_id, parent.c.id, parent.c.path, parent.c.kind)
                 .join(parent, parent.c.id == S.provenance.c.parent_id)
                 .where(S.provenance.c.product_id.in_(chunk)).order_by(parent.c.path))
            for product_id, pid, path, kind in conn.execute(q):
                parents[product_id].append({"id": pid, "path": path, "kind": kind})
    for r in rows:
        r["meta"] = decode(r["meta"], {})
        r["parents"] = parents.get(r["id"], [])
    return rows


def transfers(db, limit: int | None = 5000) -> dict[str, Any]:
    """The latest ``limit`` transfers, totals per node and direction, the nodes (free disk) and the
    stored exposure files per node: DataTransfer's history and distribution pages.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    limit : int or None
        Most rows (None: all).

    Returns
    -------
    dict
    """
    S = _schema()
    t = S.transfers
    with _engine(db).connect() as conn:
        rows = _rows(conn, select(t).order_by(t.c.start.desc(), t.c.id.desc()).limit(limit))
        totals = _rows(conn, select(t.c.node, t.c.direction, func.count().label("n"),
                                    func.sum(t.c.bytes).label("bytes"))
                       .group_by(t.c.node, t.c.direction).order_by(t.c.node, t.c.direction))
        failed = dict(conn.execute(select(t.c.node, func.count()).where(t.c.status == "failed")
                                   .group_by(t.c.node)).all())
        nodes = _rows(conn, select(S.nodes).order_by(S.nodes.c.name))
        st = S.storage
        stored = {r.node: (r.n, int(r.size or 0)) for r in conn.execute(
            select(st.c.node, func.count().label("n"), func.sum(st.c.size).label("size")).group_by(st.c.node))}
    for node in nodes:
        node["files"], node["stored_bytes"] = stored.get(node["name"], (0, 0))
    for row in totals:
        row["failed"] = failed.get(row["node"], 0)
        row["bytes"] = int(row["bytes"] or 0)
    return {"rows": rows, "totals": totals, "nodes": nodes}


def releases(db) -> dict[str, Any]:
    """Releases (newest first) with their stacks, and the stacks in no release; each stack with the
    number of exposures stacked and used for astrometry.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).

    Returns
    -------
    dict
    """
    S = _schema()
    with _engine(db).connect() as conn:
        rels = _rows(conn, select(S.releases).order_by(S.releases.c.release_date.desc(), S.releases.c.id.desc()))
        stacks = _rows(conn, select(S.stacks).order_by(S.stacks.c.name, S.stacks.c.version))
        counts: dict[tuple[int, str], int] = {
            (r.stack_id, r.list): r.n for r in conn.execute(
                select(S.stack_images.c.stack_id, S.stack_images.c.list, func.count().label("n"))
                .group_by(S.stack_images.c.stack_id, S.stack_images.c.list))}
    by_release: dict[int | None, list[dict]] = defaultdict(list)
    for st in stacks:
        st["nimages"] = counts.get((st["id"], "stack"), 0)
        st["nastrometry"] = counts.get((st["id"], "astrometry"), 0)
        by_release[st["release_id"]].append(st)
    for rel in rels:
        rel["stacks"] = by_release.get(rel["id"], [])
    return {"releases": rels, "unreleased": by_release.get(None, [])}


def records(db, kind: str, limit: int = 5000) -> list[dict[str, Any]]:
    """Records a tool sent verbatim (``ctx.record(kind, ...)``), newest first; ``data`` decoded.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    kind : str
        Record kind.
    limit : int or None
        Most rows (None: all).

    Returns
    -------
    list of dict
    """
    S = _schema()
    r = S.records
    with _engine(db).connect() as conn:
        rows = _rows(conn, select(r).where(r.c.kind == kind).order_by(r.c.time.desc(), r.c.id.desc())
                     .limit(limit))
    for row in rows:
        data = decode(row["data"], {})
        row["data"] = data if isinstance(data, dict) else {"value": data}
    return rows
