"""Data ingestion: registration of every metadata field, quarantine, re-ingestion, changed content,
duplicates, compressed inputs, survey rules, queries on an ingested survey, the watch mode, and the
ingest tool in a pipeline.  Simulated exposures are small (4 CCDs of 256x256) so that this runs fast."""
from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import func, select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect, dispose_all
from terapix_testing.rdbix import _mariadb_session_database, db_url, mariadb_server  # noqa: F401
from terapix_fw.ingest.session import IngestSession
from terapix_fw.ingest.site import Site

SITE = """<?xml version="1.0" encoding="UTF-8"?>
<site name="test">
  <storage root="storage" pattern="{{filter}}/{{qrunid}}" transfer="{transfer}" uncompress="{uncompress}"/>
  <quarantine dir="quarantine"/>
  <cameras unknown="refuse"><camera detector="small*" extensions="4"/><camera detector="MegaCam" extensions="36"/></cameras>
  <rules>
    <rule component="D" owner="CFHTLS" proprietary_days="365"><match keyword="OBJECT" pattern="D[1-4]"/></rule>
    <rule component="W" owner="CFHTLS" release_key="REL_DATE"><match keyword="OBJECT" pattern="W*"/>
      <match keyword="QRUNID" pattern="03?Q0*"/></rule>
    <rule component="PI" owner="PI {{RUNID}}" release_key="REL_DATE"/>
  </rules>
</site>
"""


def write_site(directory: Path, transfer="move", uncompress="true") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "site.xml"
    path.write_text(SITE.format(transfer=transfer, uncompress=uncompress))
    return path


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """Simulated exposures: 700001p (D1, r, photometric) and 700002p (W1, i, not photometric)."""
    from terapix_fw.sim import simulate_exposure
    from terapix_fw.sim.focalplane import small_focal_plane
    out = tmp_path_factory.mktemp("sim")
    fp = small_focal_plane(nccd=4, nx=256, ny=256)
    common = dict(focal_plane=fp, density=0.3, star_density=3.0, nthreads=1, cosmic_rays=False, satellite=False,
                  write_refcat=False, write_calibration=False)
    simulate_exposure(out, seed=3, name="700001p", expnum=700001, **common)
    simulate_exposure(out, seed=4, name="700002p", expnum=700002, object="W1", ra=37.0, dec=-4.0, filter="i.MP9701",
                      photometric=False, qrunid="03BQ02", runid="03BL99", mjd=52900.3, airmass=1.35, exptime=200.0,
                      **common)
    return out


def arrive(sim_dir: Path, dest: Path, name: str = "700001p.fits", as_name: str | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / (as_name or name)
    shutil.copyfile(sim_dir / name, target)
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(url, table, **where):
    engine = connect(url)
    query = select(table)
    for k, v in where.items():
        query = query.where(table.c[k] == v)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(table.c.id))]


@pytest.fixture
def fresh_recorders():
    from terapix_fw.db.recorder import reset_recorders
    reset_recorders()
    yield
    reset_recorders()
    dispose_all()


# ----------------------------------------------------------------------------------------------------

def test_registration_of_every_field(sim_dir, tmp_path, db_url, fresh_recorders):
    """Every exposure field, every CCD footprint and every header keyword, compared with the headers."""
    site = write_site(tmp_path)
    src = arrive(sim_dir, tmp_path / "incoming")
    with fits.open(src, mode="update") as hdul:  # a sky-probe measurement, as CFHT headers may carry
        hdul[0].header["SKYPROBE"] = (0.07, "sky-probe extinction (mag)")
    original_sum = sha256(src)
    mtime = dt.datetime.fromtimestamp(src.stat().st_mtime, dt.timezone.utc)
    with fits.open(src) as hdul:
        primary = hdul[0].header.copy()
        images = [h.header.copy() for h in hdul[1:]]
    with IngestSession(site, tmp_path / "work", db_url, quality=False) as session:
        out = session.ingest(src)
    assert out.status == "registered", out.message
    stored = tmp_path / "storage" / "r.MP9601" / "03AQ01" / "700001p.fits"
    assert out.stored == stored and stored.exists() and not src.exists()  # moved
    assert sha256(stored) == original_sum
    (row,) = _rows(db_url, S.exposures)
    assert row["filename"] == "700001p.fits"
    assert row["object"] == primary["OBJECT"] == "D1"
    assert row["filter"] == primary["FILTER"] == "r.MP9601"
    assert row["qrunid"] == primary["QRUNID"] and row["runid"] == primary["RUNID"]
    assert row["ra"] == pytest.approx(primary["RA_DEG"]) and row["dec"] == pytest.approx(primary["DEC_DEG"])
    # RA_DEG/DEC_DEG agree with the sexagesimal RA (hours) / DEC the header also carries
    h, m, s = (float(v) for v in primary["RA"].split(":"))
    assert row["ra"] == pytest.approx(15 * (h + m / 60 + s / 3600), abs=1e-4)
    assert row["exptime"] == primary["EXPTIME"] and row["airmass"] == primary["AIRMASS"]
    assert row["mjd_obs"] == pytest.approx(primary["MJD-OBS"])
    assert row["date_obs"].strftime("%Y-%m-%dT%H:%M:%S") == primary["DATE-OBS"]
    assert row["photometric"] is True and primary["PHOTFLAG"] is True
    assert row["skyprobe"] == pytest.approx(0.07)
    assert row["survey_component"] == "D" and row["owner"] == "CFHTLS"
    assert row["release_date"] == row["date_obs"] + dt.timedelta(days=365)  # rule: proprietary_days
    assert abs((row["arrival_date"].replace(tzinfo=dt.timezone.utc) - mtime).total_seconds()) < 1e-3
    assert row["checksum"] == original_sum
    assert row["seeing"] is None and row["suggested_grade"] is None  # no QualityFITS-in in this test
    (store,) = _rows(db_url, S.storage)
    assert store["path"] == str(stored) and store["node"] == session.ingester.node
    assert store["checksum"] == original_sum and store["size"] == stored.stat().st_size
    assert store["compression"] == "none"
    # one row per CCD, with the WCS footprint of its header (pixel corners, FITS 1-based)
    from astropy.wcs import WCS
    exts = _rows(db_url, S.extensions)
    assert [e["ccd"] for e in exts] == [1, 2, 3, 4]
    for e, header in zip(exts, images):
        assert e["extname"] == header["EXTNAME"] and (e["naxis1"], e["naxis2"]) == (256, 256)
        w = WCS(header)
        ra, dec = w.all_pix2world([128.5, 0.5, 256.5, 256.5, 0.5], [128.5, 0.5, 0.5, 256.5, 256.5], 1)
        assert (e["ra"], e["dec"]) == pytest.approx((ra[0], dec[0]), abs=1e-9)
        for k in range(1, 5):
            assert (e[f"ra{k}"], e[f"dec{k}"]) == pytest.approx((ra[k], dec[k]), abs=1e-9)
        # a CCD of 256 px at 0.186"/px spans 47.6": the corners are that far apart
        side = np.hypot((e["ra2"] - e["ra1"]) * np.cos(np.radians(e["dec1"])), e["dec2"] - e["dec1"]) * 3600
        assert side == pytest.approx(256 * 0.186, rel=0.01)
    # every keyword of every header
    kws = _rows(db_url, S.header_keywords)
    by = {(k["extension"], k["keyword"]): k for k in kws}
    for ext, header in enumerate([primary] + images):
        for card in header.cards:
            if not card.keyword:
                continue
            got = by[(ext, card.keyword)]["value"].split("\n")[0]
            if isinstance(card.value, bool):
                assert got == ("T" if card.value else "F"), (ext, card.keyword)
            elif isinstance(card.value, (int, float)):  # as written in the file (e.g. 1.0E-05)
                assert float(got) == pytest.approx(card.value, rel=1e-12), (ext, card.keyword)
            else:
                assert got == str(card.value), (ext, card.keyword)
    assert len(kws) == len({(e, c.keyword) for e, h in enumerate([primary] + images) for c in h.cards if c.keyword})
    # the run is recorded: the stored image is a product whose parent is the arriving file
    from terapix_fw.db.query import provenance
    tree = provenance(db_url, str(stored))
    assert tree.kind == "image" and tree.step == "ingest" and [p.path for p in tree.parents] == [str(src.resolve())]


def _corrupt_files(sim_dir: Path, incoming: Path) -> dict[str, str]:
    """Four bad files and the words their reason must contain."""
    good = sim_dir / "700001p.fits"
    size = good.stat().st_size
    data = good.read_bytes()
    (incoming / "truncated.fits").write_bytes(data[: size - 1000])
    (incoming / "truncblock.fits").write_bytes(data[: size - 2 * 2880])  # cut at a block boundary
    # corrupt: random bytes over the second extension's header
    with fits.open(good) as hdul:
        hdr2 = hdul.fileinfo(2)["hdrLoc"]
    junk = bytearray(data)
    junk[hdr2:hdr2 + 400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    (incoming / "corrupt.fits").write_bytes(bytes(junk))
    # checksum mismatch: written with CHECKSUM/DATASUM, then one pixel byte changed
    with fits.open(good) as hdul:
        hdul.writeto(incoming / "badsum.fits", checksum=True)
    with fits.open(incoming / "badsum.fits") as hdul:
        at = hdul.fileinfo(3)["datLoc"] + 1001
    raw = bytearray((incoming / "badsum.fits").read_bytes())
    raw[at] ^= 0x40
    (incoming / "badsum.fits").write_bytes(bytes(raw))
    # three image extensions where the camera has four (NEXTEND consistent)
    with fits.open(good) as hdul:
        hdus = fits.HDUList([hdul[0].copy()] + [h.copy() for h in hdul[1:4]])
        hdus[0].header["NEXTEND"] = 3
        hdus.writeto(incoming / "threeccd.fits")
    return {"truncated.fits": "truncated", "truncblock.fits": "truncated", "corrupt.fits": "HDU 2: unreadable header",
            "badsum.fits": "DATASUM mismatch", "threeccd.fits": "3 image extension(s), expected 4"}


def test_quarantine_of_bad_files_never_stops_the_rest(sim_dir, tmp_path, fresh_recorders):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    site = write_site(tmp_path)
    incoming = tmp_path / "incoming"
    arrive(sim_dir, incoming, "700001p.fits")
    expected = _corrupt_files(sim_dir, incoming)
    arrive(sim_dir, incoming, "700002p.fits", as_name="zz700002p.fits")  # a good file after the bad ones
    # a good checksummed file passes the CHECKSUM/DATASUM check
    with fits.open(sim_dir / "700002p.fits") as hdul:
        for h in hdul[1:]:
            h.header["OBJECT"] = "W1"
        hdul[0].header["EXPNUM"] = 700003
        hdul.writeto(incoming / "sums_ok.fits", checksum=True)
    from terapix_fw.ingest.session import expand_paths
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        outcomes = {p.name: session.ingest(p) for p in expand_paths([incoming])}
    for name, words in expected.items():
        out = outcomes[name]
        assert out.status == "quarantined" and words in out.message, (name, out.message)
        q = tmp_path / "quarantine" / name
        assert q.exists() and not (incoming / name).exists()
        reason = (tmp_path / "quarantine" / f"{name}.reason").read_text()
        assert words in reason and f"sha256: {sha256(q)}" in reason
    assert outcomes["700001p.fits"].status == "registered"
    assert outcomes["zz700002p.fits"].status == "registered"
    assert outcomes["sums_ok.fits"].status == "registered", outcomes["sums_ok.fits"].message
    rows = _rows(url, S.quarantine)
    assert sorted(r["filename"] for r in rows) == sorted(expected)
    assert all(r["reason"] and r["path"] and r["checksum"] for r in rows)
    assert {r["filename"] for r in _rows(url, S.exposures)} == {"700001p.fits", "zz700002p.fits", "sums_ok.fits"}


def test_reingest_is_a_no_op_and_changes_are_refused(sim_dir, tmp_path, db_url, fresh_recorders):
    url = db_url
    site = write_site(tmp_path, transfer="copy")
    incoming = tmp_path / "incoming"
    src = arrive(sim_dir, incoming)
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        assert session.ingest(src).status == "registered"
    stored = tmp_path / "storage" / "r.MP9601" / "03AQ01" / "700001p.fits"
    assert src.exists() and stored.exists()  # copy mode

    def counts():
        engine = connect(url)
        with engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                    for t in (S.exposures, S.extensions, S.header_keywords, S.storage, S.quarantine)}

    before, stored_mtime = counts(), stored.stat().st_mtime_ns
    # the same file again, from the arrival directory and from the storage tree itself: nothing done
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        assert session.ingest(src).status == "known"
        assert session.ingest(stored).status == "known"
    assert counts() == before and stored.stat().st_mtime_ns == stored_mtime
    # a new, empty RDBix over the same storage tree: the stored file is registered again, left in place
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    with IngestSession(site, tmp_path / "work2", fresh, quality=False) as session:
        again = session.ingest(stored)
    assert again.status == "registered" and again.stored == stored and stored.stat().st_mtime_ns == stored_mtime
    assert [r["checksum"] for r in _rows(fresh, S.exposures)] == [sha256(stored)]
    # a changed file under the same name: refused, quarantined, the registered one untouched
    changed = tmp_path / "later" / "700001p.fits"
    changed.parent.mkdir()
    with fits.open(sim_dir / "700001p.fits") as hdul:
        hdul[0].header["OBJECT"] = "D2"
        hdul.writeto(changed)
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        out = session.ingest(changed)
    assert out.status == "changed" and "refused" in out.message and sha256(sim_dir / "700001p.fits") in out.message
    (row,) = _rows(url, S.exposures)
    assert row["object"] == "D1" and row["checksum"] == sha256(stored)
    (q,) = _rows(url, S.quarantine)
    assert q["filename"] == "700001p.fits" and "changed content" in q["reason"]
    # RDBix itself refuses an exposure record that would replace the registered checksum
    from terapix_fw.db.ops import Document, RecordError
    from terapix_fw.db.store import write_document
    with pytest.raises(RecordError, match="refusing a changed file"):
        write_document(connect(url), Document().add("exposure", filename="700001p.fits", checksum="0" * 64))


def test_duplicates_under_another_name(sim_dir, tmp_path, db_url, fresh_recorders):
    url = db_url
    site = write_site(tmp_path)
    incoming = tmp_path / "incoming"
    a = arrive(sim_dir, incoming)
    b = arrive(sim_dir, incoming, as_name="700001p_copy.fits")
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        first, second = session.ingest(a), session.ingest(b)
    assert first.status == "registered"
    assert second.status == "duplicate" and "duplicate of 700001p.fits" in second.message
    assert [r["filename"] for r in _rows(url, S.exposures)] == ["700001p.fits"]
    assert (tmp_path / "quarantine" / "700001p_copy.fits.reason").exists()
    # and across sessions: the database is read
    c = arrive(sim_dir, incoming, as_name="again.fits")
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        assert session.ingest(c).status == "duplicate"
        # a file gone before its turn (watch mode, another process) is neither registered nor quarantined
        assert session.ingest(incoming / "gone.fits").status == "missing"
    assert len(_rows(url, S.quarantine)) == 2


@pytest.mark.parametrize("uncompress", [True, False])
def test_compressed_inputs(sim_dir, tmp_path, uncompress, fresh_recorders):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    site = write_site(tmp_path, uncompress="true" if uncompress else "false")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    import gzip
    with fits.open(sim_dir / "700001p.fits") as hdul:
        comp = fits.HDUList([hdul[0].copy()] + [fits.CompImageHDU(h.data, h.header, compression_type="RICE_1",
                                                                   quantize_level=16) for h in hdul[1:]])
        comp.writeto(incoming / "700001p.fits.fz")
    with fits.open(incoming / "700001p.fits.fz") as hdul:
        fz_pixels = [h.data.copy() for h in hdul[1:]]
    (incoming / "700002p.fits.gz").write_bytes(gzip.compress((sim_dir / "700002p.fits").read_bytes()))
    with IngestSession(site, tmp_path / "work", url, quality=False) as session:
        fz, gz = session.ingest(incoming / "700001p.fits.fz"), session.ingest(incoming / "700002p.fits.gz")
    assert fz.status == gz.status == "registered", (fz.message, gz.message)
    stores = {Path(r["path"]).name: r for r in _rows(url, S.storage)}
    if uncompress:
        assert sorted(stores) == ["700001p.fits", "700002p.fits"]
        assert {r["compression"] for r in stores.values()} == {"none"}
        assert (Path(stores["700002p.fits"]["path"]).read_bytes() == (sim_dir / "700002p.fits").read_bytes())
        with fits.open(stores["700001p.fits"]["path"]) as hdul:
            assert len(hdul) == 5 and all(isinstance(h, fits.ImageHDU) for h in hdul[1:])
            for h, want in zip(hdul[1:], fz_pixels):
                np.testing.assert_array_equal(h.data, want)
                assert h.header["EXTNAME"] == f"ccd{hdul.index_of(h) - 1:02d}"
        for r in stores.values():
            assert r["checksum"] == sha256(Path(r["path"]))
    else:
        assert sorted(stores) == ["700001p.fits.fz", "700002p.fits.gz"]
        assert stores["700001p.fits.fz"]["compression"] == "fpack"
        assert stores["700002p.fits.gz"]["compression"] == "gzip"
    rows = {r["filename"]: r for r in _rows(url, S.exposures)}
    name = "700001p.fits" if uncompress else "700001p.fits.fz"
    assert rows[name]["filter"] == "r.MP9601" and rows[name]["exptime"] == 300.0
    # the extensions of the compressed file are the image headers, not the binary tables'
    exts = _rows(url, S.extensions, exposure_id=rows[name]["id"])
    assert [(e["naxis1"], e["naxis2"]) for e in exts] == [(256, 256)] * 4 and exts[0]["ra1"] is not None


def test_survey_component_rules(tmp_path):
    site = Site.from_xml(write_site(tmp_path))
    date = dt.datetime(2003, 9, 1, tzinfo=dt.timezone.utc)
    d = site.classify(fits.Header([("OBJECT", "D3"), ("RUNID", "03BL99")]), date)
    assert (d.component, d.owner, d.release_date, d.rule) == ("D", "CFHTLS", date + dt.timedelta(days=365), 1)
    w = site.classify(fits.Header([("OBJECT", "W1 1"), ("QRUNID", "03BQ02"), ("REL_DATE", "2004-09-01")]), date)
    assert (w.component, w.release_date, w.rule) == ("W", dt.datetime(2004, 9, 1, tzinfo=dt.timezone.utc), 2)
    # every <match> of a rule must hold: a W field outside the 03 queue runs falls through to PI
    pi = site.classify(fits.Header([("OBJECT", "W1"), ("QRUNID", "04AQ01"), ("RUNID", "04AF12")]), date)
    assert (pi.component, pi.owner, pi.release_date, pi.rule) == ("PI", "PI 04AF12", None, 3)
    assert site.classify(fits.Header([("OBJECT", "D5"), ("RUNID", "x")])).component == "PI"
    # the storage directory: header values made file-name safe, never outside the tree
    hdr = fits.Header([("FILTER", "r.MP9601"), ("QRUNID", "../../etc")])
    where = site.storage_dir(hdr)
    assert where.parent == (tmp_path / "storage" / "r.MP9601").resolve() and ".." not in where.parts
    # the file follows schemas/site.xsd: a bad component is one clear error naming file and line
    from terapix_fw.errors import ConfigError
    bad = tmp_path / "bad.xml"
    bad.write_text(SITE.format(transfer="move", uncompress="true").replace('component="W"', 'component="X"'))
    with pytest.raises(ConfigError, match=r"bad\.xml:\d+.*component.*X"):
        Site.from_xml(bad)
    bad.write_text(SITE.format(transfer="move", uncompress="true").replace("{filter}/{qrunid}", "{filter}/{year}"))
    with pytest.raises(ConfigError, match=r"unknown field \{year\}"):
        Site.from_xml(bad)
    with pytest.raises(ConfigError, match="camera 'WIRCam' is not one of the site's cameras"):
        site.expected_extensions("WIRCam")


def test_quality_record_of_a_stack_is_not_an_exposure(tmp_path):
    """QualityFITS-out reports a stack: its metrics go to stack_metrics, the exposures stay exposures."""
    from terapix_fw.db.ops import Document
    from terapix_fw.db.store import write_document
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    engine = connect(url)
    write_document(engine, Document().add("stack", name="D1_g", path="/w/swarp/D1_g.fits", filter="g"))
    write_document(engine, Document().add("quality", stack="D1_g", suggested_grade="A",
                                          metrics=[{"ccd": 0, "name": "fwhm_arcsec", "value": 0.8},
                                                   {"ccd": 1, "name": "fwhm_arcsec", "value": 0.8}]))
    assert _rows(url, S.exposures) == []
    (stack,) = _rows(url, S.stacks)
    assert stack["suggested_grade"] == "A"
    assert [(m["name"], m["value"]) for m in _rows(url, S.stack_metrics)] == [("fwhm_arcsec", 0.8)]
    from terapix_fw.db.ops import RecordError
    with pytest.raises(RecordError, match="exposure or stack"):
        write_document(engine, Document().add("quality", exposure="a.fits", stack="D1_g"))
    dispose_all()


def test_raw_camera_integers_pass_the_integrity_check(tmp_path):
    """Raw camera pixels (BITPIX 16 + BZERO 32768, as the demo survey and real archives store them) are
    readable pixels: astropy refuses to memory-map scaled integers, the check must not."""
    from astropy.io import fits

    from terapix_fw.ingest.checks import inspect_file
    from terapix_fw.sim import simulate_exposure, small_focal_plane
    res = simulate_exposure(tmp_path, seed=4, focal_plane=small_focal_plane(2, 128, 128), density=0.05,
                            star_density=1.0, write_refcat=False, write_calibration=False, bitpix=16)
    with fits.open(res.path) as hdul:
        assert hdul[1].header["BITPIX"] == 16 and hdul[1].header["BZERO"] == 32768
    info = inspect_file(res.path, expected_extensions=lambda camera: 2)
    assert len(info.images) == 2
