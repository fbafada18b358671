"""Ingestion as a pipeline (instructions/ingest.xml: the ingest tool, then QualityFITS-in) on a small
demo-like survey with a corrupt file and a duplicate among the arrivals; the exposures it registers have
every selection field (no NULL filter, date, exposure time or seeing), and the cone, CCD-footprint,
filter and seeing queries return the sets computed by hand from the survey's layout.  Then the watch
mode, and ``terapix ingest`` on the command line."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect, dispose_all

REPO = Path(__file__).resolve().parents[1]

SITE = """<?xml version="1.0" encoding="UTF-8"?>
<site name="t">
  <storage root="storage" pattern="{filter}/{qrunid}" transfer="copy" uncompress="true"/>
  <quarantine dir="quarantine"/>
  <cameras unknown="refuse"><camera detector="small4" extensions="4"/></cameras>
  <rules>
    <rule component="D" owner="CFHTLS" release_key="REL_DATE"><match keyword="OBJECT" pattern="D[1-4]*"/></rule>
    <rule component="W" owner="CFHTLS" release_key="REL_DATE"><match keyword="OBJECT" pattern="W[1-4]*"/></rule>
  </rules>
</site>
"""

#: name, object, filter, RA, Dec, seeing: A and C 0.1 deg apart in D1, B 0.7 deg away in W1
SURVEY = [("700001p", "D1", "r.MP9601", 36.5, -4.5, 0.7), ("700002p", "W1", "i.MP9701", 37.0, -4.0, 1.3),
          ("700003p", "D1", "g.MP9401", 36.6, -4.5, 0.9)]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from terapix_fw.sim import simulate_exposure, small_focal_plane
    root = tmp_path_factory.mktemp("survey")
    sim, arrivals = root / "sim", root / "arrivals"
    arrivals.mkdir()
    fp = small_focal_plane(nccd=4, nx=384, ny=384)
    for k, (name, obj, filt, ra, dec, seeing) in enumerate(SURVEY):
        res = simulate_exposure(sim, seed=10 + k, focal_plane=fp, name=name, expnum=700001 + k, object=obj,
                                filter=filt, ra=ra, dec=dec, seeing=seeing, density=0.5, star_density=30.0,
                                cosmic_rays=False, satellite=False, nthreads=1, write_refcat=False,
                                write_calibration=False, qrunid="03AQ01" if k != 1 else "03BQ02")
        shutil.copyfile(res.path, arrivals / res.path.name)
    data = (arrivals / "700002p.fits").read_bytes()
    (arrivals / "700026p.fits").write_bytes(data[: len(data) // 2])  # a transfer cut short
    shutil.copyfile(arrivals / "700003p.fits", arrivals / "700003p_resent.fits")  # a duplicate
    (root / "site.xml").write_text(SITE)
    work = root / "work"
    from terapix_fw.db.recorder import reset_recorders
    from terapix_fw.runner import run_instructions
    reset_recorders()
    # one unit at a time: of two identical arrivals the first to claim its checksum is the original and
    # the other the duplicate, so the order must be fixed for the expected names (700003p.fits sorts
    # before 700003p_resent.fits); with two at once either may win, and that is the product's rule
    summary = run_instructions(REPO / "instructions" / "ingest.xml", work, jobs=1, progress=False,
                               overrides={"ARRIVALS": str(arrivals), "SITE": str(root / "site.xml")})
    reset_recorders()
    yield root, work, summary
    dispose_all()


def _all(url, table):
    with connect(url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]


def test_demo_like_run_registers_and_assesses_every_good_exposure(survey):
    root, work, summary = survey
    url = f"sqlite:///{work / 'rdbix.sqlite'}"
    assert summary["failed"] == 0 and summary.get("blocked", 0) == 0, summary
    rows = {r["filename"]: r for r in _all(url, S.exposures)}
    assert sorted(rows) == ["700001p.fits", "700002p.fits", "700003p.fits"]
    for name, row in rows.items():
        for column in ("filter", "date_obs", "exptime", "seeing", "object", "qrunid", "ra", "dec", "airmass",
                       "survey_component", "owner", "release_date", "checksum", "suggested_grade",
                       "background", "nstars", "ellipticity"):
            assert row[column] is not None, (name, column)
    # QualityFITS-in's seeing is the simulated one, within what a 4-CCD shallow catalogue measures
    for name, obj, filt, ra, dec, seeing in SURVEY:
        row = rows[f"{name}.fits"]
        assert (row["object"], row["filter"]) == (obj, filt)
        assert row["seeing"] == pytest.approx(seeing, rel=0.15)
        assert row["survey_component"] == obj[0] and row["nstars"] > 20
    # the corrupt file and the duplicate: quarantined, recorded, and their QualityFITS-in had nothing to do
    q = {r["filename"]: r for r in _all(url, S.quarantine)}
    assert sorted(q) == ["700003p_resent.fits", "700026p.fits"]
    assert "truncated" in q["700026p.fits"]["reason"]
    assert q["700003p_resent.fits"]["reason"].startswith("duplicate of 700003p.fits")
    assert (work / "quarantine" / "700026p.fits.reason").exists()
    from lxml import etree
    history = etree.parse(summary["history"]).getroot()
    qf = {u.get("id"): u.get("status") for s in history.findall("step") if s.get("id") == "qualityfits_in"
          for u in s.findall("unit")}
    assert qf == {"700001p": "done", "700002p": "done", "700003p": "done", "700026p": "skipped",
                  "700003p_resent": "skipped"}
    # stored by filter and run id
    assert (work / "storage" / "i.MP9701" / "03BQ02" / "700002p.fits").exists()
    # a second run: everything up to date, nothing registered twice
    from terapix_fw.runner import run_instructions
    again = run_instructions(REPO / "instructions" / "ingest.xml", work, jobs=2, progress=False,
                             overrides={"ARRIVALS": str(root / "arrivals"), "SITE": str(root / "site.xml")})
    assert again["failed"] == 0 and again["done"] == 0
    assert len(_all(url, S.exposures)) == 3 and len(_all(url, S.quarantine)) == 2


def test_queries_on_the_ingested_survey_return_the_hand_computed_sets(survey):
    from terapix_fw.db.query import find_ccds, find_images
    _, work, _ = survey
    url = f"sqlite:///{work / 'rdbix.sqlite'}"

    def names(rows):
        return sorted(r["filename"] for r in rows)

    # pointings: A (36.5, -4.5), C 0.1 deg east (0.0997 deg on the sky), B (37.0, -4.0) 0.71 deg away
    assert names(find_images(url, cone=(36.5, -4.5, 0.15))) == ["700001p.fits", "700003p.fits"]
    assert names(find_images(url, cone=(36.5, -4.5, 0.05))) == ["700001p.fits"]
    assert names(find_images(url, cone=(36.8, -4.2, 0.5))) == ["700001p.fits", "700002p.fits", "700003p.fits"]
    assert names(find_images(url, filter="r.MP9601")) == ["700001p.fits"]
    assert names(find_images(url, filter=["g.MP9401", "i.MP9701"])) == ["700002p.fits", "700003p.fits"]
    assert names(find_images(url, seeing_max=1.05)) == ["700001p.fits", "700003p.fits"]
    assert names(find_images(url, seeing_max=1.05, cone=(36.5, -4.5, 0.15), filter="g.MP9401")) == ["700003p.fits"]
    assert names(find_images(url, survey="W")) == ["700002p.fits"]
    # CCD footprints: a 2x2 mosaic of 384 px CCDs at 0.186"/px (71.4") with gaps; the centre of a CCD of
    # A is in exactly one CCD of A, and not in C (0.1 deg away, its mosaic spans 0.04 deg)
    (a_id,) = [r["id"] for r in _all(url, S.exposures) if r["filename"] == "700001p.fits"]
    (ext,) = [e for e in _all(url, S.extensions) if e["exposure_id"] == a_id and e["ccd"] == 2]
    hits = find_ccds(url, ext["ra"], ext["dec"])
    assert [(h["filename"], h["ccd"], h["distance"]) for h in hits] == [("700001p.fits", 2, 0.0)]
    # a cone of 0.12 deg reaches every CCD of A and C, none of B
    hits = find_ccds(url, 36.55, -4.5, 0.12)
    assert sorted({(h["filename"], h["ccd"]) for h in hits}) == [(f, c) for f in ("700001p.fits", "700003p.fits")
                                                                 for c in (1, 2, 3, 4)]
    # a point midway between A and C lies in no CCD (the two mosaics are 0.04 deg wide, 0.1 deg apart)
    assert find_ccds(url, 36.55, -4.5) == []
    assert names(find_ccds(url, 36.55, -4.5, 0.12, filter="g.MP9401")) == ["700003p.fits"] * 4


def test_watch_mode_takes_files_as_they_arrive(survey, tmp_path):
    """Files renamed into the watched directory (as snooppix delivers them) are ingested as they come; the
    watch waits on filesystem events and ends when idle."""
    from terapix_fw.db.recorder import reset_recorders
    from terapix_fw.ingest.session import IngestSession
    from terapix_fw.ingest.watch import watch_directory
    root, _, _ = survey
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copyfile(root / "sim" / "700001p.fits", incoming / "700001p.fits")  # there before the watch
    site = tmp_path / "site.xml"
    site.write_text(SITE.replace('transfer="copy"', 'transfer="move"'))
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    ready, done = threading.Event(), threading.Event()
    outcomes = []
    arrived: dict[str, threading.Event] = {n: threading.Event() for n in ("700001p.fits", "700002p.fits",
                                                                       "700003p.fits")}

    def watcher():
        reset_recorders()
        with IngestSession(site, tmp_path / "work", url, quality=False) as session:
            for path in watch_directory(incoming, idle_timeout=20, max_files=3, ready=ready.set):
                out = session.ingest(path)
                outcomes.append(out)
                arrived[path.name].set()
        done.set()

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    assert ready.wait(30)
    assert arrived["700001p.fits"].wait(60)
    for name in ("700002p.fits", "700003p.fits"):
        # delivered like snooppix: written under a hidden partial name, then renamed into place
        part = incoming / f".{name}.part"
        shutil.copyfile(root / "sim" / name, part)
        part.rename(incoming / name)
        assert arrived[name].wait(60), f"{name} not taken"
    assert done.wait(60)  # max_files reached
    thread.join(10)
    assert [o.status for o in outcomes] == ["registered"] * 3
    assert sorted(o.source.name for o in outcomes) == ["700001p.fits", "700002p.fits", "700003p.fits"]
    assert not list(incoming.glob("*.fits"))  # moved into storage
    assert sorted(r["filename"] for r in _all(url, S.exposures)) == ["700001p.fits", "700002p.fits",
                                                                    "700003p.fits"]
    reset_recorders()


def test_watch_ends_when_idle(tmp_path):
    import time

    from terapix_fw.ingest.watch import watch_directory
    start = time.monotonic()
    assert list(watch_directory(tmp_path, idle_timeout=0.5)) == []
    assert time.monotonic() - start < 10
    with pytest.raises(NotADirectoryError):
        list(watch_directory(tmp_path / "missing", idle_timeout=0.1))


def test_terapix_ingest_command(survey, tmp_path, capsys):
    """The command line: one line per file, a summary, QualityFITS-in on registered files, --json."""
    import json

    from terapix_fw.cli import main
    from terapix_fw.db.recorder import reset_recorders
    root, _, _ = survey
    (tmp_path / "site.xml").write_text(SITE)
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    reset_recorders()
    rc = main(["ingest", str(root / "arrivals" / "700001p.fits"), str(root / "arrivals" / "700026p.fits"),
               "--site", str(tmp_path / "site.xml"), "--db", url, "--workdir", str(tmp_path / "work"),
               "--storage", str(tmp_path / "store"), "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "registered  700001p.fits -> " in out and "QualityFITS-in done" in out
    assert "quarantined 700026p.fits: truncated" in out
    assert "[ingest] 1 quarantined, 1 registered" in out
    (row,) = _all(url, S.exposures)
    assert row["seeing"] == pytest.approx(0.7, rel=0.15) and row["suggested_grade"] is not None
    assert (tmp_path / "store" / "r.MP9601" / "03AQ01" / "700001p.fits").exists()
    assert (tmp_path / "work" / "qualityfits_in" / "700001p.weight.fits").exists()
    # again, as JSON, strict: the known file is a no-op, the corrupt one refused -> exit status 3
    rc = main(["ingest", str(root / "arrivals" / "700001p.fits"), str(root / "arrivals" / "700026p.fits"),
               "--site", str(tmp_path / "site.xml"), "--db", url, "--workdir", str(tmp_path / "work"),
               "--storage", str(tmp_path / "store"), "--json", "--strict", "--no-quality"])
    assert rc == 3
    report = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in report] == ["known", "quarantined"]
    # a path that does not exist is a command-line error: one line, nothing done
    assert main(["ingest", str(tmp_path / "nope.fits"), "--site", str(tmp_path / "site.xml"), "--db", url]) == 2
    assert "nope.fits: no such file or directory" in capsys.readouterr().err
    reset_recorders()
    dispose_all()
