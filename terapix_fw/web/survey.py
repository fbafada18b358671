"""The survey's image-by-image summary, stack pages and operators' status, read from RDBix.

Shared by the static report (``terapix web build``) and the console (``terapix web serve``): both show
the same table, the console only adds what needs a login (proprietary rows, actions).

* :func:`exposure_table`: one row per exposure (stacks excluded) with the seeds' columns: thumbnail,
  name, object, run id, filter, exposure time, seeing, observation and arrival dates, RA, Dec, Y/N for
  input quality assessment / processed / output quality assessment / delivered, node, grade.
  Proprietary rows (release date still to come) are left out unless ``viewer`` may see them.
* :func:`plots_by_exposure` / :func:`plots_by_stack`: the QualityFITS PNGs of each exposure or stack,
  found through the units that made them (their inputs name the exposure).
* :func:`stack_details`: one stack's release page (inputs, SCAMP statistics and plots, QualityFITS-out).
* :func:`status`: counts and percentages for operators (by run id, filter, node, grade, component),
  pending stacks, stacks in progress with their current step, remaining stacks, the longest remaining.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Iterable

from sqlalchemy import func, select

__all__ = ["Viewer", "PUBLIC", "COLUMNS", "METRIC_LABELS", "metric_label", "exposure_table", "is_proprietary",
           "plots_by_exposure", "plots_by_stack", "stack_rows", "stack_details", "status", "table_csv"]

#: Human names and units of the quality metrics QualityFITS and the other tools record (ccd 0 = whole
#: exposure).  A metric not listed is shown with its name as recorded.
METRIC_LABELS: dict[str, tuple[str, str]] = {
    # QualityFITS (per CCD; the exposure's is the median over live CCDs, counts are summed)
    "fwhm_arcsec": ("PSF FWHM", "arcsec"), "fwhm_px": ("PSF FWHM", "pixels"), "psf_beta": ("PSF Moffat β", ""),
    "psf_ellipticity": ("PSF ellipticity (A - B)/(A + B)", ""), "psf_theta": ("PSF position angle", "deg"),
    "psf_nstars": ("PSF stars", ""), "psf_chi2": ("PSF χ²", ""), "ellipticity": ("PSF ellipticity 1 - B/A", ""),
    "rh_star": ("stellar half-light radius", "pixels"), "back_adu": ("background", "ADU"),
    "back_mag": ("sky brightness", "mag/arcsec²"), "back_rms_adu": ("background RMS", "ADU"),
    "back_rms_mag": ("background RMS", "mag/arcsec²"), "maglim_5sig": ("5σ limiting magnitude", "mag"),
    "ndet": ("detections", ""), "nstars": ("stars", ""), "ngal": ("galaxies", ""),
    "nsat_obj": ("saturated objects", ""), "ntrail": ("satellite trails", ""), "n_trails": ("satellite trails (exposure)", ""),
    "ncr": ("cosmic rays", ""), "n_cosmics": ("cosmic rays (exposure)", ""), "n_ccd": ("CCDs", ""),
    "n_ccd_dead": ("dead CCDs", ""), "n_ccd_misplaced": ("misplaced CCDs", ""), "n_ccd_nowcs": ("CCDs without WCS", ""),
    "astrom_offset_arcsec": ("largest astrometric offset", "arcsec"), "area_deg2": ("useful area", "deg²"),
    "zeropoint": ("zero point", "mag"), "multiple_image_fraction": ("multiple-image fraction", ""),
    "multiple_image_dx": ("multiple-image shift x", "pixels"), "multiple_image_dy": ("multiple-image shift y", "pixels"),
    "comp_m50": ("50 % completeness", "mag"), "comp_m90": ("90 % completeness", "mag"),
    "sat_fraction": ("saturated pixel fraction", ""), "flagged_fraction": ("flagged pixel fraction", ""),
    "dead": ("dead CCD", "flag"), "misplaced": ("misplaced CCD", "flag"), "nowcs": ("no WCS", "flag"),
    # other tools and older records
    "FWHM_MEDIAN": ("median FWHM", "arcsec"), "ELONGATION": ("elongation", ""), "elongation": ("elongation", ""),
    "seeing": ("seeing", "arcsec"), "sigma_adu": ("background RMS", "ADU"), "nsources": ("sources", ""),
    "maglim": ("limiting magnitude", "mag"), "skyprobe": ("SkyProbe", "mag"),
}


def metric_label(name: str) -> str:
    """``"PSF FWHM (arcsec)"`` for ``fwhm_arcsec``; an unknown name is returned as it is.

    Parameters
    ----------
    name : str
        Metric name.

    Returns
    -------
    str
    """
    label, unit = METRIC_LABELS.get(name, (name.replace("_", " "), ""))
    return f"{label} ({unit})" if unit else label


@dataclass(frozen=True)
class Viewer:
    """Who is looking: ``role`` is public, pi, control or operator; ``name`` the PI's owner name."""
    name: str = ""
    role: str = "public"

    @property
    def privileged(self) -> bool:
        """Whether the viewer is an operator (sees every proprietary datum)."""
        return self.role == "operator"

    def may_see(self, owner: str | None, release_date, now: _dt.datetime | None = None) -> bool:
        """Proprietary data (release date still to come) is for its owner and the operators only.

        Parameters
        ----------
        owner : str or None
            Owner of the data.
        release_date : datetime, str or None
        now : datetime, optional
            The present (UTC), for tests.

        Returns
        -------
        bool
        """
        if not is_proprietary(release_date, now):
            return True
        return self.privileged or (self.role == "pi" and bool(owner) and owner == self.name)


PUBLIC = Viewer()


def _utc(value) -> _dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value


def is_proprietary(release_date, now: _dt.datetime | None = None) -> bool:
    """True while ``release_date`` (UTC) is still to come.

    Parameters
    ----------
    release_date : datetime, str or None
    now : datetime, optional
        The present (UTC), for tests.

    Returns
    -------
    bool
    """
    release = _utc(release_date)
    return release is not None and release > (now or _dt.datetime.now(_dt.timezone.utc))


def hidden_stems(db, viewer: "Viewer", now: _dt.datetime | None = None) -> list[str]:
    """File stems of the proprietary exposures ``viewer`` may not see: their stored copies, plots and
    catalogues (``<stem>.fits``, ``<stem>_fwhm_histo.png``, ``<stem>.ldac``...) are not shown to them.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    viewer : Viewer
        Who looks (public, a PI, an operator).
    now : datetime, optional
        The present (UTC), for tests.

    Returns
    -------
    list of str
    """
    from ..graph import file_stem

    S = _S()
    now = now or _dt.datetime.now(_dt.timezone.utc)
    with _engine(db).connect() as conn:
        rows = conn.execute(select(S.exposures.c.filename, S.exposures.c.owner, S.exposures.c.release_date)
                            .where(S.exposures.c.release_date > now.replace(tzinfo=None))).all()
    return [file_stem(f) for f, owner, release in rows if not viewer.may_see(owner, release, now)]


def is_hidden_file(name: str, stems: list[str]) -> bool:
    """True if the file name ``name`` belongs to one of the hidden ``stems``.

    Parameters
    ----------
    name : str
    stems : list of str

    Returns
    -------
    bool
    """
    return any(name == stem or name.startswith((stem + "_", stem + ".")) for stem in stems)


def _engine(db):
    from ..db import connect
    return connect(db)


def _S():
    from ..db import schema
    return schema


def _basename(path: str | None) -> str:
    return PurePath(path).name if path else ""


#: The image table's columns: key, heading, unit, type (text, num, date, flag, link, thumb).
COLUMNS: list[dict[str, str]] = [
    {"key": "thumb", "label": "Thumbnail", "short": "", "unit": "", "type": "thumb"},
    {"key": "filename", "label": "Image", "unit": "", "type": "link"},
    {"key": "object", "label": "Object", "unit": "", "type": "text"},
    {"key": "runid", "label": "Run id", "unit": "", "type": "text"},
    {"key": "filter", "label": "Filter", "unit": "", "type": "text"},
    {"key": "exptime", "label": "Exp. time", "short": "Exp.", "unit": "s", "type": "num"},
    {"key": "seeing", "label": "Seeing", "unit": "arcsec", "short": "Seeing", "short_unit": "″", "type": "num"},
    {"key": "airmass", "label": "Airmass", "short": "Airm.", "unit": "", "type": "num"},
    {"key": "skyprobe", "label": "SkyProbe", "short": "Sky", "unit": "mag", "type": "num"},
    {"key": "date_obs", "label": "Observed", "unit": "UTC", "type": "date"},
    {"key": "arrival", "label": "Arrived", "unit": "UTC", "type": "day"},
    {"key": "ra", "label": "RA", "unit": "deg", "short_unit": "°", "type": "num"},
    {"key": "dec", "label": "Dec", "unit": "deg", "short_unit": "°", "type": "num"},
    {"key": "qa_in", "label": "Input QA", "short": "QA in", "unit": "", "type": "flag"},
    {"key": "processed", "label": "Processed", "short": "Proc.", "unit": "", "type": "flag"},
    {"key": "qa_out", "label": "Output QA", "short": "QA out", "unit": "", "type": "flag"},
    {"key": "delivered", "label": "Delivered", "short": "Deliv.", "unit": "", "type": "flag"},
    {"key": "node", "label": "Node", "unit": "", "type": "text"},
    {"key": "grade", "label": "Grade", "unit": "", "type": "text"},
    {"key": "component", "label": "Survey", "unit": "", "type": "text"},
]


def _round(value, digits: int):
    """Values of the table as far as they mean something (RA, Dec to 1e-7 deg = 0.36 mas): the JSON of
    10,000 rows stays small."""
    return None if value is None else round(float(value), digits)


def _iso(value) -> str | None:
    value = _utc(value)
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _stack_names(conn) -> set[str]:
    """File names of the stacks: QualityFITS-out records a stack's quality under its file name, which
    made a stack look like an exposure; those rows are not exposures."""
    S = _S()
    return {_basename(p) for (p,) in conn.execute(select(S.stacks.c.path).where(S.stacks.c.path.is_not(None)))}


def _chunks(items: list, n: int = 500) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def plots_by_input(conn, kinds: tuple[str, ...] = ("plot",)) -> dict[str, list[str]]:
    """File name of a unit's input -> the PNG products of that unit, for the product ``kinds``.

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    kinds : tuple of str

    Returns
    -------
    dict of str to list of str
    """
    S = _S()
    q = (select(S.products.c.path, S.units.c.inputs)
         .join(S.units, S.units.c.id == S.products.c.unit_pk)
         .where(S.products.c.kind.in_(kinds)).order_by(S.products.c.path))
    out: dict[str, list[str]] = defaultdict(list)
    for path, inputs in conn.execute(q):
        if not str(path).lower().endswith(".png"):
            continue
        try:
            names = json.loads(inputs) if inputs else []
        except ValueError:
            names = []
        for name in names if isinstance(names, list) else []:
            base = _basename(str(name).split("[")[0])
            if base and path not in out[base]:
                out[base].append(path)
    return out


def plots_by_exposure(db) -> dict[str, list[str]]:
    """Exposure file name -> its QualityFITS-in plots (PNG paths), thumbnails first.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).

    Returns
    -------
    dict of str to list of str
    """
    with _engine(db).connect() as conn:
        plots = plots_by_input(conn, ("plot", "thumbnail", "picture"))
    return {name: sorted(paths, key=_plot_order) for name, paths in plots.items()}


plots_by_stack = plots_by_exposure  # a stack's QualityFITS-out unit takes the stack's file as its input


def _plot_order(path: str) -> tuple[int, str]:
    name = _basename(path)
    return (0 if name.endswith(("_m_med.png", "_thumb.png", "_m.png")) else 1, name)


def thumbnail(paths: list[str]) -> str | None:
    """The binned image thumbnail among an exposure's plots (QualityFITS ``%s_m_med.png``), if any.

    Parameters
    ----------
    paths : list of str
        The exposure's plots.

    Returns
    -------
    str or None
    """
    for suffix in ("_thumb.png", "_m_med.png", "_m.png"):
        for p in paths:
            if _basename(p).endswith(suffix):
                return p
    return None


def exposure_table(db, viewer: Viewer = PUBLIC, now: _dt.datetime | None = None,
                   with_plots: bool = True) -> dict[str, Any]:
    """The image-by-image summary: ``{"columns", "rows" (dicts), "hidden" (proprietary rows left out),
    "plots" (file name -> PNG paths)}``, oldest first.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    viewer : Viewer
        Who looks (public, a PI, an operator).
    now : datetime, optional
        The present (UTC), for tests.
    with_plots : bool
        Also gather the plots.

    Returns
    -------
    dict
    """
    from ..db.query import find_images

    S = _S()
    now = now or _dt.datetime.now(_dt.timezone.utc)
    every = find_images(db)
    with _engine(db).connect() as conn:
        stacks = _stack_names(conn)
        qa_ids = {i for (i,) in conn.execute(select(S.quality_metrics.c.exposure_id).distinct())}
        nodes: dict[int, set[str]] = defaultdict(set)
        for exp_id, node in conn.execute(select(S.storage.c.exposure_id, S.storage.c.node)):
            nodes[exp_id].add(node)
        # processed: in the stack list of a stack that was made; output QA: that stack was assessed
        made = {r.id: _basename(r.path) for r in conn.execute(select(S.stacks.c.id, S.stacks.c.path))
                if r.path}
        assessed = _assessed_stacks(conn, made)
        processed: set[str] = set()
        qa_out: set[str] = set()
        for stack_id, name in conn.execute(select(S.stack_images.c.stack_id, S.stack_images.c.filename)
                                           .where(S.stack_images.c.list == "stack")):
            if stack_id in made:
                processed.add(name)
                if stack_id in assessed:
                    qa_out.add(name)
        delivered = {_basename(p) for (p,) in conn.execute(
            select(S.transfers.c.path).where(S.transfers.c.direction == "out", S.transfers.c.status == "done"))}
        plots = plots_by_input(conn, ("plot", "thumbnail", "picture")) if with_plots else {}
    rows, hidden = [], 0
    for e in every:
        if e["filename"] in stacks:
            continue
        if not viewer.may_see(e["owner"], e["release_date"], now):
            hidden += 1
            continue
        name = e["filename"]
        rows.append({
            "id": e["id"], "filename": name, "object": e["object"], "runid": e["qrunid"] or e["runid"],
            "filter": e["filter"], "exptime": _round(e["exptime"], 3), "seeing": _round(e["seeing"], 4),
            "airmass": _round(e["airmass"], 4), "skyprobe": _round(e.get("skyprobe"), 4),
            "date_obs": _iso(e["date_obs"]), "arrival": _iso(e["arrival_date"]),
            "ra": _round(e["ra"], 7), "dec": _round(e["dec"], 7),
            "qa_in": "Y" if (e["id"] in qa_ids or e["suggested_grade"]) else "N",
            "processed": "Y" if name in processed else "N", "qa_out": "Y" if name in qa_out else "N",
            "delivered": "Y" if name in delivered else "N", "node": ",".join(sorted(nodes.get(e["id"], ()))),
            "grade": e["grade"], "grade_source": e["grade_source"], "component": e["survey_component"],
            "owner": e["owner"], "release_date": _iso(e["release_date"]),
            "proprietary": is_proprietary(e["release_date"], now),
            "thumb": thumbnail(sorted(plots.get(name, []), key=_plot_order)),
        })
    return {"columns": COLUMNS, "rows": rows, "hidden": hidden,
            "plots": {r["filename"]: sorted(plots.get(r["filename"], []), key=_plot_order) for r in rows}}


def _assessed_stacks(conn, made: dict[int, str]) -> set[int]:
    """Ids of the stacks with a QualityFITS-out assessment: metrics in ``stack_metrics`` or, in
    databases written before stacks had their own metrics, quality metrics under the stack's file name."""
    S = _S()
    out: set[int] = set()
    if hasattr(S, "stack_metrics"):
        out |= {i for (i,) in conn.execute(select(S.stack_metrics.c.stack_id).distinct())}
    by_name = {name: i for i, name in made.items()}
    out |= {by_name[n] for (n,) in conn.execute(
        select(S.exposures.c.filename).where(S.exposures.c.filename.in_(list(by_name) or [""]))
        .where(S.exposures.c.id.in_(select(S.quality_metrics.c.exposure_id))))}
    return out


def table_csv(rows: list[dict[str, Any]]) -> str:
    """The table as CSV (the columns of :data:`COLUMNS` less the thumbnail, headings with units).

    Parameters
    ----------
    rows : list of dict
        From :func:`exposure_table`.

    Returns
    -------
    str
    """
    import csv
    import io

    cols = [c for c in COLUMNS if c["type"] != "thumb"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c["label"] + (f" ({c['unit']})" if c["unit"] else "") for c in cols])
    for r in rows:
        writer.writerow(["" if r.get(c["key"]) is None else r[c["key"]] for c in cols])
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# stacks

def stack_rows(db, viewer: Viewer = PUBLIC, now: _dt.datetime | None = None) -> list[dict[str, Any]]:
    """Every stack the viewer may see, with its release name and the sizes of its two lists.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    viewer : Viewer
        Who looks (public, a PI, an operator).
    now : datetime, optional
        The present (UTC), for tests.

    Returns
    -------
    list of dict
    """
    S = _S()
    with _engine(db).connect() as conn:
        rels = {r.id: r for r in conn.execute(select(S.releases))}
        counts = {(r.stack_id, r.list): r.n for r in conn.execute(
            select(S.stack_images.c.stack_id, S.stack_images.c.list, func.count().label("n"))
            .group_by(S.stack_images.c.stack_id, S.stack_images.c.list))}
        rows = [dict(r._mapping) for r in conn.execute(select(S.stacks).order_by(S.stacks.c.name, S.stacks.c.version))]
    out = []
    for st in rows:
        if not viewer.may_see(None, st["release_date"], now):
            continue
        rel = rels.get(st["release_id"])
        st["release"] = f"{rel.name} {rel.version}".strip() if rel else None
        st["nimages"] = counts.get((st["id"], "stack"), 0)
        st["nastrometry"] = counts.get((st["id"], "astrometry"), 0)
        out.append(st)
    return out


def _short(text: str) -> str:
    """A VOTable cell with its floats to 5 significant digits (SCAMP writes them to 16)."""
    def one(token: str) -> str:
        if token.lstrip("-+").isdigit():
            return token
        try:
            return f"{float(token):.5g}"
        except ValueError:
            return token
    return " ".join(one(t) for t in text.split())


def scamp_statistics(path: str) -> dict[str, Any] | None:
    """The FGroups table of a SCAMP XML summary (astrometric and photometric statistics per field
    group) as ``{"fields": [...], "rows": [[...]]}``; None if the file cannot be read.

    Parameters
    ----------
    path : str
        SCAMP's XML (VOTable) summary.

    Returns
    -------
    dict or None
    """
    from pathlib import Path

    from ..errors import TerapixError
    from ..xmlutil import parse_xml

    try:
        tree = parse_xml(Path(path), label=str(path))
    except (OSError, TerapixError):
        return None
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    for table in root.iter("{*}TABLE", "TABLE"):
        if table.get("name") != "FGroups":
            continue
        fields = [(f.get("name"), f.get("unit") or "") for f in table.iter("{*}FIELD", "FIELD")]
        rows = [[_short(td.text or "") for td in tr.iter("{*}TD", "TD")] for tr in table.iter("{*}TR", "TR")]
        return {"fields": fields, "rows": rows}
    return None


def scamp_xml_by_run(db) -> dict[str, str]:
    """Run id -> the XML summary SCAMP wrote in that run (the latest), for the stacks' astrometry.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).

    Returns
    -------
    dict of str to str
    """
    S = _S()
    with _engine(db).connect() as conn:
        rows = conn.execute(select(S.steps.c.run_id, S.products.c.path)
                            .join(S.units, S.units.c.id == S.products.c.unit_pk)
                            .join(S.steps, S.steps.c.id == S.units.c.step_pk)
                            .where(S.steps.c.tool == "scamp", S.products.c.kind == "xml")
                            .order_by(S.products.c.id)).all()
    return {run_id: path for run_id, path in rows}


#: The astrometric and photometric figures of a SCAMP field group shown on the releases page.
ASTROMETRY_SUMMARY = ("AstromSigma_Internal", "AstromSigma_Reference", "AstromChi2_Reference", "PhotomSigma_Internal")


def astrometry_summary(path: str | None) -> dict[str, str]:
    """:data:`ASTROMETRY_SUMMARY` of the first field group of a SCAMP XML summary ({} if none).

    Parameters
    ----------
    path : str or None

    Returns
    -------
    dict of str to str
    """
    stats = scamp_statistics(path) if path else None
    if not stats or not stats["rows"]:
        return {}
    names = [name for name, _ in stats["fields"]]
    return {k: stats["rows"][0][names.index(k)] for k in ASTROMETRY_SUMMARY if k in names}


_INPUT_KEYS = ("id", "filename", "qrunid", "runid", "filter", "exptime", "seeing", "airmass", "photometric",
               "grade", "grade_source", "date_obs")


def stack_details(db, stack_id: int, plots: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One stack's release page: the stack, its input exposures (seeing, airmass, photometric flag,
    grade, exposure time, run id), the exposures used for astrometry, SCAMP's statistics and check
    plots from the stack's run, its QualityFITS-out metrics and plots, and the products of its run.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    stack_id : int
    plots : dict of str to list of str, optional
        Plots by input file name (read from RDBix if not given).

    Returns
    -------
    dict

    Raises
    ------
    KeyError
        If RDBix has no such stack.
    """
    from ..db.query import find_images

    S = _S()
    with _engine(db).connect() as conn:
        st = conn.execute(select(S.stacks).where(S.stacks.c.id == stack_id)).first()
        if st is None:
            raise KeyError(f"no stack {stack_id} in RDBix")
        st = dict(st._mapping)
        lists: dict[str, list[str]] = defaultdict(list)
        for lst, name in conn.execute(select(S.stack_images.c.list, S.stack_images.c.filename)
                                      .where(S.stack_images.c.stack_id == stack_id).order_by(S.stack_images.c.filename)):
            lists[lst].append(name)
        rel = conn.execute(select(S.releases).where(S.releases.c.id == st["release_id"])).first() \
            if st["release_id"] else None
        products: list[dict] = []
        if st["run_id"]:
            products = [dict(r._mapping) for r in conn.execute(
                select(S.products.c.path, S.products.c.kind, S.products.c.size, S.products.c.meta, S.steps.c.tool)
                .join(S.units, S.units.c.id == S.products.c.unit_pk).join(S.steps, S.steps.c.id == S.units.c.step_pk)
                .where(S.steps.c.run_id == st["run_id"]).order_by(S.products.c.kind, S.products.c.path))]
        name = _basename(st["path"])
        qa = {}
        if hasattr(S, "stack_metrics"):
            qa = {r.name: r.value for r in conn.execute(
                select(S.stack_metrics.c.name, S.stack_metrics.c.value).where(S.stack_metrics.c.stack_id == stack_id))}
        if name and not qa:
            exp = conn.execute(select(S.exposures.c.id).where(S.exposures.c.filename == name)).first()
            if exp is not None:
                qa = {r.name: r.value for r in conn.execute(
                    select(S.quality_metrics.c.name, S.quality_metrics.c.value)
                    .where(S.quality_metrics.c.exposure_id == exp.id, S.quality_metrics.c.ccd == 0))}
    wanted = set(lists.get("stack", [])) | set(lists.get("astrometry", []))
    inputs = {e["filename"]: e for e in find_images(db) if e["filename"] in wanted}
    scamp_xml = [p["path"] for p in products if p["tool"] == "scamp" and p["kind"] == "xml"]
    astrometry = scamp_statistics(scamp_xml[0]) if scamp_xml else None
    checkplots = [p["path"] for p in products if p["kind"] == "checkplot" and p["path"].lower().endswith(".png")]
    qf_plots = (plots or {}).get(name, [])
    return {"stack": st, "release": dict(rel._mapping) if rel else None,
            "inputs": [inputs.get(n) or dict.fromkeys(_INPUT_KEYS, None) | {"filename": n}
                       for n in lists.get("stack", [])],  # a stack of stacks (chi2) lists stacks
            "astrometry_list": lists.get("astrometry", []), "scamp": astrometry, "scamp_xml": scamp_xml,
            "checkplots": checkplots, "qa": qa, "qa_plots": qf_plots,
            "pictures": [p["path"] for p in products if p["kind"] in ("thumbnail", "picture")],
            "products": products}


# ----------------------------------------------------------------------------------------------------
# operators' status

def _share(counts: dict[str, int], total: int) -> list[dict[str, Any]]:
    return [{"name": k, "n": v, "pct": (100.0 * v / total) if total else 0.0}
            for k, v in sorted(counts.items(), key=lambda kv: (kv[0] == "-", kv[0]))]


def status(db, now: _dt.datetime | None = None) -> dict[str, Any]:
    """What the SPICA operation pages showed: images available (survey vs PI), input QA, processed,
    output QA, delivered, each with its percentage; counts by run id, filter, node, grade and survey
    component; the stacks pending, in progress (current step of the run that makes them) and
    remaining by component, node and filter; the longest remaining.

    Parameters
    ----------
    db : Engine, str or None
        RDBix: an Engine, a database URL, or None (``$TERAPIX_DB_URL``).
    now : datetime, optional
        The present (UTC), for tests.

    Returns
    -------
    dict
    """
    table = exposure_table(db, Viewer(role="operator"), now, with_plots=False)
    rows = table["rows"]
    total = len(rows)

    def count(key, default="-"):
        out: dict[str, int] = defaultdict(int)
        for r in rows:
            out[r.get(key) or default] += 1
        return out

    pi = sum(1 for r in rows if r.get("component") == "PI")  # survey data has an owner too (CFHTLS)
    flags = [("Input quality assessment", "qa_in"), ("Processed", "processed"),
             ("Output quality assessment", "qa_out"), ("Delivered", "delivered")]
    summary = [{"name": "Images available", "n": total, "pct": 100.0 if total else 0.0},
               {"name": "Survey images", "n": total - pi, "pct": 100.0 * (total - pi) / total if total else 0.0},
               {"name": "PI images", "n": pi, "pct": 100.0 * pi / total if total else 0.0}]
    for label, key in flags:
        n = sum(1 for r in rows if r[key] == "Y")
        summary.append({"name": label, "n": n, "pct": 100.0 * n / total if total else 0.0})
    nodes: dict[str, int] = defaultdict(int)
    for r in rows:
        for node in (r["node"].split(",") if r["node"] else ["-"]):
            nodes[node] += 1
    stacks = _stack_status(db)
    return {"total": total, "summary": summary,
            "by": [("Run id", _share(count("runid"), total)), ("Filter", _share(count("filter"), total)),
                   ("Node", _share(dict(nodes), total)), ("Grade", _share(count("grade", "not graded"), total)),
                   ("Survey component", _share(count("component"), total))],
            **stacks}


def _stack_status(db) -> dict[str, Any]:
    """Pending (no product yet, no run going), in progress (its run is running: the step it is at) and
    remaining (pending + in progress) stacks, by component, node and filter; the longest remaining by
    number of exposures to stack."""
    S = _S()
    jobs = _spica_jobs(db)
    if jobs:
        return jobs
    with _engine(db).connect() as conn:
        runs = {r.run_id: dict(r._mapping) for r in conn.execute(select(S.runs.c.run_id, S.runs.c.status, S.runs.c.host))}
        current: dict[str, str] = {}
        for r in conn.execute(select(S.steps.c.run_id, S.steps.c.step, S.steps.c.status, S.steps.c.start)
                              .order_by(S.steps.c.start, S.steps.c.id)):
            if r.status == "running" or r.run_id not in current:
                current[r.run_id] = r.step
    stacks = stack_rows(db, Viewer(role="operator"))
    pending, progress = [], []
    for st in stacks:
        run = runs.get(st["run_id"]) if st["run_id"] else None
        st["node"] = (run or {}).get("host") or "-"
        if run is not None and run["status"] == "running":
            st["step"] = current.get(st["run_id"], "-")
            progress.append(st)
        elif not st["path"] or (run is not None and run["status"] != "done"):
            pending.append(st)
    remaining = pending + progress
    by = []
    for label, key in (("Survey component", "survey_component"), ("Node", "node"), ("Filter", "filter")):
        counts: dict[str, int] = defaultdict(int)
        for st in remaining:
            counts[st.get(key) or "-"] += 1
        by.append((label, sorted(counts.items())))
    longest = sorted(remaining, key=lambda s: (-s["nimages"], s["name"]))[:10]
    return {"pending": pending, "in_progress": progress, "remaining": by, "longest": longest,
            "nstacks": len(stacks)}


def _spica_jobs(db) -> dict[str, Any] | None:
    """The same from SPICA's job list (``spica_jobs``: one job per stack with its status, node, current
    step and list sizes) when release planning filled it; None when it is empty."""
    S = _S()
    if not hasattr(S, "spica_jobs"):
        return None
    j = S.spica_jobs
    with _engine(db).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(j).where(j.c.superseded_by.is_(None)).order_by(j.c.priority.desc(), j.c.name))]
    if not rows:
        return None
    for r in rows:
        r.update(nimages=r["n_stack"] or 0, nastrometry=r["n_astrometric"] or 0, node=r["node"] or "-",
                 step=r["current_step"] or "-", ra=None, dec=None)
    pending = [r for r in rows if r["status"] == "pending"]
    progress = [r for r in rows if r["status"] == "running"]
    remaining = pending + progress
    by = []
    for label, key in (("Survey component", "survey_component"), ("Node", "node"), ("Filter", "filter")):
        counts: dict[str, int] = defaultdict(int)
        for r in remaining:
            counts[r.get(key) or "-"] += 1
        by.append((label, sorted(counts.items())))
    # RA, Dec of a job: its stack's centre when the stack row exists
    ids = [r["stack_id"] for r in rows if r["stack_id"]]
    if ids:
        with _engine(db).connect() as conn:
            centres = {r.id: (r.ra, r.dec) for r in conn.execute(
                select(S.stacks.c.id, S.stacks.c.ra, S.stacks.c.dec).where(S.stacks.c.id.in_(ids)))}
        for r in rows:
            r["ra"], r["dec"] = centres.get(r["stack_id"], (None, None))
    longest = sorted(remaining, key=lambda s: (-s["nimages"], s["name"]))[:10]
    return {"pending": pending, "in_progress": progress, "remaining": by, "longest": longest, "nstacks": len(rows)}
