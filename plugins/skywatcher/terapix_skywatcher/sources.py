"""Footprints from a VOTable of WCS keywords, or from the headers recorded in RDBix.

* **VOTable** (astropy.io.votable): one row per CCD, columns named after the FITS keywords of its header
  (``NAXIS1 NAXIS2 CTYPE1 CTYPE2 CRVAL1 CRVAL2 CRPIX1 CRPIX2`` and ``CD1_1 ... CD2_2`` or ``CDELTi``/``PCi_j``,
  ``PVi_j`` for TPV), plus optional ``FILTER EXPTIME``, ``EXPOSURE`` (or ``FILENAME``) ``EXTENSION``,
  ``RUNID``, ``COMPONENT``, ``STATUS``, ``GRADE``, ``URL``.
* **RDBix**: the header keywords of every CCD that snooppix/ingestion stored (``header_keywords``, extension
  >= 1, with the primary header's FILTER/EXPTIME), the exposure's CFHT run id and survey component, its
  latest grade (or the suggested one) and a processing status: ``graded`` (a grade was given),
  ``assessed`` (quality metrics recorded) or ``ingested``; each footprint links to its exposure page.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

from .footprints import Footprint, footprint_of_header

__all__ = ["footprints_from_votable", "footprints_from_rdbix"]

_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
_META = {"EXPOSURE", "FILENAME", "EXTENSION", "COMPONENT", "STATUS", "GRADE", "URL"}


def _header_from(values: dict) -> "object":
    from astropy.io import fits

    h = fits.Header()
    for key, value in values.items():
        if value is None or key in _META or not _KEYWORD.match(key):
            continue
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            continue
        h[key] = value
    h["NAXIS"] = 2
    return h


def footprints_from_votable(path: str | Path, *, filter_key: str = "FILTER", exptime_key: str = "EXPTIME"
                            ) -> list[Footprint]:
    """One footprint per row of a VOTable whose columns are FITS WCS keywords."""
    import warnings

    from astropy.table import Table

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = Table.read(path, format="votable")
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: cannot read as a VOTable: {exc}") from None
    cols = {c.upper(): c for c in table.colnames}
    missing = [k for k in ("NAXIS1", "NAXIS2", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2") if k not in cols]
    if missing:
        raise ToolError(f"{path}: VOTable of WCS keywords without column(s) {', '.join(missing)}")
    out = []
    for i, row in enumerate(table):
        values = {key: row[name] for key, name in cols.items()}
        values = {k: (None if np.ma.is_masked(v) else v) for k, v in values.items()}
        header = _header_from(values)
        exposure = str(values.get("EXPOSURE") or values.get("FILENAME") or f"{path.name}#{i + 1}")
        ext = int(values.get("EXTENSION") or 1)
        fp = footprint_of_header(header, exposure=exposure, extension=ext, filter_key=filter_key,
                                 exptime_key=exptime_key, where=f"{path} row {i + 1}")
        fp.component = str(values.get("COMPONENT") or fp.component)
        fp.status = str(values.get("STATUS") or "")
        fp.grade = str(values.get("GRADE") or fp.grade)
        fp.url = str(values.get("URL") or "")
        out.append(fp)
    return out


def footprints_from_rdbix(url: str, *, filter_key: str = "FILTER", exptime_key: str = "EXPTIME",
                          url_template: str = "exposure/{slug}.html") -> list[Footprint]:
    """Footprints of every CCD whose header keywords RDBix holds (see the module docstring)."""
    from sqlalchemy import func, select

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect
    from terapix_fw.web.site import slug

    engine = connect(url)
    e, hk, g, q = S.exposures, S.header_keywords, S.grades, S.quality_metrics
    with engine.connect() as conn:
        exposures = {r.id: r for r in conn.execute(select(e.c.id, e.c.filename, e.c.filter, e.c.exptime, e.c.runid,
                                                          e.c.survey_component, e.c.suggested_grade))}
        keywords: dict[tuple[int, int], dict] = {}
        for r in conn.execute(select(hk.c.exposure_id, hk.c.extension, hk.c.keyword, hk.c.value)):
            keywords.setdefault((r.exposure_id, r.extension), {})[r.keyword] = r.value
        latest = {}
        for r in conn.execute(select(g.c.exposure_id, g.c.grade, g.c.time).order_by(g.c.time)):
            latest[r.exposure_id] = r.grade
        assessed = {r.exposure_id for r in conn.execute(select(q.c.exposure_id).group_by(q.c.exposure_id)
                                                        .having(func.count() > 0))}
    out = []
    for (exp_id, ext), values in sorted(keywords.items()):
        if ext < 1 or exp_id not in exposures:
            continue
        row = exposures[exp_id]
        parsed = {k: _parse(v) for k, v in values.items()}
        primary = keywords.get((exp_id, 0), {})
        for key in (filter_key, exptime_key):
            if key not in parsed and key in primary:
                parsed[key] = _parse(primary[key])
        parsed.setdefault(filter_key, row.filter or "")
        parsed.setdefault(exptime_key, row.exptime or 0.0)
        if "NAXIS1" not in parsed or "CTYPE1" not in parsed:
            continue  # an extension without an image WCS (a table)
        fp = footprint_of_header(_header_from(parsed), exposure=row.filename, extension=int(ext),
                                 filter_key=filter_key, exptime_key=exptime_key,
                                 where=f"RDBix exposure {row.filename}[{ext}]")
        fp.run = row.runid or fp.run
        fp.component = row.survey_component or ""
        fp.grade = latest.get(exp_id) or row.suggested_grade or ""
        fp.status = "graded" if exp_id in latest else "assessed" if exp_id in assessed else "ingested"
        fp.url = url_template.format(slug=slug(exp_id, row.filename))
        out.append(fp)
    return out


def _parse(text):
    """A header value as stored in RDBix (text) back to a number where it is one."""
    if text is None:
        return None
    s = str(text).strip()
    if s in ("T", "F"):
        return s == "T"
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s.strip("'").strip()
