"""A small, fully known RDBix survey for the tests of the web report and console (and a reviewer's demo).

:func:`make_known_survey` writes, under ``base``: a work directory made by the runner's rules (with
``.terapix/``), tiny MEF exposures with a WCS (so that a submitted run can process them), QualityFITS-like
PNG plots recorded as products of the units that read each exposure, and an SQLite RDBix filled through
RDBix's own documents.  Every number the pages show can be computed by hand from :data:`EXPOSURES`.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

__all__ = ["EXPOSURES", "make_known_survey", "FUTURE", "PAST"]

FUTURE = "2099-01-01T00:00:00"   # release date of proprietary data still to come
PAST = "2001-01-01T00:00:00"

#: filename, object, filter, qrunid, exptime (s), date_obs, ra, dec, survey, node, owner, release, grade
EXPOSURES: list[dict[str, Any]] = [
    dict(filename="700001p.fits", object="D1", filter="r.MP9601", qrunid="05AQ01", exptime=600.0,
         date_obs="2005-03-01T10:00:00", ra=36.50, dec=-4.50, survey="D", node="n1", grade="A", seeing=0.71,
         airmass=1.21),
    dict(filename="700002p.fits", object="D1", filter="g.MP9401", qrunid="05AQ01", exptime=300.0,
         date_obs="2005-03-02T10:00:00", ra=36.52, dec=-4.48, survey="D", node="n1", grade="B", seeing=0.80,
         airmass=1.30),
    dict(filename="700003p.fits", object="D1", filter="r.MP9601", qrunid="05AQ02", exptime=600.0,
         date_obs="2005-04-10T09:00:00", ra=36.49, dec=-4.52, survey="D", node="n2", seeing=0.95, airmass=1.10),
    dict(filename="700004p.fits", object="W1", filter="i.MP9701", qrunid="05AQ02", exptime=120.0,
         date_obs="2005-04-11T09:30:00", ra=34.00, dec=-7.00, survey="W", node="n2", grade="C", seeing=1.20,
         airmass=1.45),
    dict(filename="700005p.fits", object="W1", filter="r.MP9601", qrunid="05BQ01", exptime=180.0,
         date_obs="2005-09-05T12:00:00", ra=34.20, dec=-6.80, survey="W", node="n1", seeing=0.65, airmass=1.05),
    dict(filename="700006p.fits", object="W1", filter="g.MP9401", qrunid="05BQ01", exptime=180.0,
         date_obs="2005-09-06T12:00:00", ra=210.0, dec=54.0, survey="W", node="n2", seeing=0.90, airmass=1.25),
    # proprietary PI data: Bob's and Carol's, until 2099
    dict(filename="800001p.fits", object="PIfield", filter="r.MP9601", qrunid="05BQ99", exptime=900.0,
         date_obs="2005-10-01T08:00:00", ra=150.0, dec=2.0, survey="PI", node="n1", owner="PI-Bob",
         release=FUTURE, seeing=0.70, airmass=1.15),
    dict(filename="800002p.fits", object="PIcarol", filter="i.MP9701", qrunid="05BQ98", exptime=900.0,
         date_obs="2005-10-02T08:00:00", ra=151.0, dec=2.5, survey="PI", node="n2", owner="PI-Carol",
         release=FUTURE, seeing=0.75, airmass=1.18),
    # PI data whose proprietary period is over: public
    dict(filename="800003p.fits", object="PIold", filter="z.MP9801", qrunid="04BQ97", exptime=400.0,
         date_obs="2004-10-02T08:00:00", ra=152.0, dec=3.0, survey="PI", node="n1", owner="PI-Bob",
         release=PAST, seeing=0.85, airmass=1.2),
]
QA = ("700001p.fits", "700002p.fits", "700003p.fits", "800001p.fits")  # input QA done (plots too)
DELIVERED = ("700001p.fits",)
STACK_IMAGES = ("700001p.fits", "700003p.fits")
STACK_ASTROMETRY = ("700001p.fits", "700002p.fits", "700003p.fits")


SCAMP_XML = """<?xml version="1.0" encoding="utf-8"?>
<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE name="SCAMP"><TABLE name="FGroups" ID="FGroups">
<FIELD name="Name" datatype="char" arraysize="*"/>
<FIELD name="NFields" datatype="int"/>
<FIELD name="AstromSigma_Internal" datatype="float" arraysize="2" unit="arcsec"/>
<FIELD name="AstromSigma_Reference" datatype="float" arraysize="2" unit="arcsec"/>
<FIELD name="AstromChi2_Reference" datatype="float"/>
<FIELD name="PhotomSigma_Internal" datatype="float" unit="mag"/>
<DATA><TABLEDATA><TR><TD>G1</TD><TD>3</TD><TD>0.021 0.019</TD><TD>0.153 0.148</TD><TD>1.12</TD><TD>0.012</TD></TR>
</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>
"""


def _png(path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2, 2.4), dpi=50)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [1, 3, 2])
    ax.set_xlabel("magnitude (mag)")
    ax.set_ylabel("counts")
    ax.set_title(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def _fits(path: Path, ra: float, dec: float, filt: str) -> None:
    import numpy as np
    from astropy.io import fits

    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"], h["CRPIX1"], h["CRPIX2"] = ra, dec, 32.5, 32.5
    h["CD1_1"], h["CD2_2"], h["CD1_2"], h["CD2_1"] = -0.002, 0.002, 0.0, 0.0
    h["FILTER"], h["EXPTIME"] = filt, 300.0
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64), np.int16), header=h)]).writeto(path)


def make_known_survey(base: str | Path, url: str | None = None) -> dict[str, Any]:
    """Write the known survey under ``base`` (files) and into RDBix ``url`` (default: an SQLite file in
    ``base``; give an empty database); return ``{"url", "workdir", "raw", "plots", "stack_path"}``.

    Parameters
    ----------
    base : str or Path
        Folder the files are written to.
    url : str, optional
        An empty RDBix database.

    Returns
    -------
    dict
    """
    from ..db import Document, connect, write_document
    from ..db.engine import dispose_all

    base = Path(base)
    work = base / "work"
    (work / ".terapix" / "state").mkdir(parents=True, exist_ok=True)
    raw = base / "raw"
    url = url or f"sqlite:///{base / 'rdbix.sqlite'}"
    engine = connect(url)
    t0 = 1_700_000_000.0
    doc = Document()
    doc.add("run_start", run_id="qf1", name="QualityFITS-in 05A", mode="pipeline", host="n1", user="ops",
            start=t0, workdir=str(work), parameters={"FIELD": "D1"})
    doc.add("step_start", run_id="qf1", step="qualityfits", tool="qualityfits", tool_version="1.0",
            fanout="file", start=t0)
    plots: dict[str, list[str]] = {}
    for k, e in enumerate(EXPOSURES):
        fits_path = raw / e["filename"]
        _fits(fits_path, e["ra"], e["dec"], e["filter"])
        date = _dt.datetime.fromisoformat(e["date_obs"])
        doc.add("exposure", filename=e["filename"], object=e["object"], filter=e["filter"], qrunid=e["qrunid"],
                exptime=e["exptime"], date_obs=e["date_obs"], ra=e["ra"], dec=e["dec"], seeing=e["seeing"],
                airmass=e["airmass"], survey_component=e["survey"], owner=e.get("owner"),
                release_date=e.get("release"), arrival_date=(date + _dt.timedelta(days=2)).isoformat(),
                storage=[{"node": e["node"], "path": str(fits_path), "size": fits_path.stat().st_size}])
        if e.get("grade"):
            doc.add("grade", exposure=e["filename"], grade=e["grade"], author="seed", comment="initial",
                    time=t0 + k)
        if e["filename"] in QA:
            stem = e["filename"].removesuffix(".fits")
            unit = f"u{k}"
            doc.add("unit", run_id="qf1", step="qualityfits", unit=unit, inputs=[str(fits_path)], status="done",
                    host=e["node"], start=t0 + k, end=t0 + k + 5, log_path=str(work / "logs" / f"{unit}.log"))
            (work / "logs").mkdir(exist_ok=True)
            (work / "logs" / f"{unit}.log").write_text(f"qualityfits {e['filename']}: done\n")
            paths = []
            for suffix in ("m_med", "fwhm_histo", "rhmag"):
                p = work / "qualityfits" / f"{stem}_{suffix}.png"
                _png(p, f"{stem} {suffix}")
                paths.append(str(p))
                doc.add("product", run_id="qf1", step="qualityfits", unit=unit, path=str(p), kind="plot",
                        checksum=f"{k:02d}{suffix:>8}".replace(" ", "0").ljust(64, "0")[:64], size=p.stat().st_size,
                        inputs=[str(fits_path)])
            plots[e["filename"]] = paths
            doc.add("quality", exposure=e["filename"], suggested_grade="B",
                    metrics=[{"ccd": 0, "name": "fwhm_arcsec", "value": e["seeing"]},
                             {"ccd": 0, "name": "nstars", "value": 120.0 + k},
                             {"ccd": 1, "name": "fwhm_arcsec", "value": e["seeing"] + 0.01}])
    doc.add("step_end", run_id="qf1", step="qualityfits", status="done", end=t0 + 60, summary={"done": len(QA)})
    doc.add("run_end", run_id="qf1", status="done", end=t0 + 60, summary={"done": len(QA)})
    # the release run: SCAMP's summary and a check plot, then the stack
    scamp_xml = work / "scamp" / "scamp.xml"
    scamp_xml.parent.mkdir(parents=True, exist_ok=True)
    scamp_xml.write_text(SCAMP_XML)
    checkplot = work / "scamp" / "fgroups_1.png"
    _png(checkplot, "SCAMP astrometric residuals")
    doc.add("run_start", run_id="sw1", name="T0007 D1 r", mode="pipeline", host="n1", user="ops", start=t0 + 100,
            workdir=str(work))
    doc.add("step_start", run_id="sw1", step="scamp", tool="scamp", tool_version="2.10", fanout="all", start=t0 + 100)
    doc.add("unit", run_id="sw1", step="scamp", unit="all", inputs=[str(raw / n) for n in STACK_ASTROMETRY],
            status="done", host="n1", start=t0 + 100, end=t0 + 160)
    doc.add("product", run_id="sw1", step="scamp", unit="all", path=str(scamp_xml), kind="xml",
            checksum="5c" * 32, size=scamp_xml.stat().st_size)
    doc.add("product", run_id="sw1", step="scamp", unit="all", path=str(checkplot), kind="checkplot",
            checksum="c7" * 32, size=checkplot.stat().st_size)
    doc.add("step_end", run_id="sw1", step="scamp", status="done", end=t0 + 160, summary={"done": 1})
    doc.add("run_end", run_id="sw1", status="done", end=t0 + 200, summary={"done": 1})
    # a stack that was made (and assessed), in a release; another still to make
    stack_path = work / "stacks" / "CFHTLS_D_r_022559-042939.fits"
    stack_path.parent.mkdir(parents=True, exist_ok=True)
    stack_path.write_bytes(b"")
    doc.add("stack", name="CFHTLS_D_r_022559-042939", version="T0007", filter="r.MP9601", survey_component="D",
            ra=36.4958, dec=-4.4942, path=str(stack_path), images=list(STACK_IMAGES), run_id="sw1",
            astrometry=list(STACK_ASTROMETRY), release="T0007", release_version="1")
    doc.add("stack", name="CFHTLS_W_g_021800-070000", version="T0007", filter="g.MP9401", survey_component="W",
            ra=34.5, dec=-7.0, images=["700006p.fits"], astrometry=["700006p.fits", "700004p.fits"])
    # a chi2 detection image made from stacks: its stack list names stacks, not exposures
    chi2_path = work / "stacks" / "CFHTLS_D_gri_chi2.fits"
    chi2_path.write_bytes(b"")
    doc.add("stack", name="CFHTLS_D_gri_chi2", version="T0007", survey_component="D", ra=36.4958, dec=-4.4942,
            path=str(chi2_path), images=[stack_path.name])
    doc.add("release", name="T0007", version="1", release_date="2006-01-01", survey_component="D",
            description="Deep and Wide, first release", stacks=["CFHTLS_D_r_022559-042939"])
    # QualityFITS-out of the stack (its metrics go to stack_metrics)
    doc.add("quality", stack="CFHTLS_D_r_022559-042939", stack_version="T0007",
            metrics=[{"ccd": 0, "name": "comp_m50", "value": 25.1}])
    for name in DELIVERED:
        doc.add("transfer", direction="out", node="cadc", path=f"/export/{name}", bytes=1000, status="done",
                start=t0, end=t0 + 3)
    write_document(engine, doc)
    dispose_all()
    return {"url": url, "workdir": work, "raw": raw, "plots": plots, "stack_path": stack_path}
