"""Spica planning: Deep and Wide stacks, astrometric lists (2.5 deg, any grade) and stack lists (10 arcmin,
selected only) for exposures just inside and outside the limits, across RA = 0 and near a pole; quanta
tiling; names; records in RDBix."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from sqlalchemy import select

from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document
from terapix_fw.db.query import angular_distance
from terapix_fw.db.store import write_document
from terapix_fw.instructions import load_instructions
from terapix_fw.spica.planning import plan_release, record_plan
from terapix_fw.spica.release import Area, load_release, position_string
from terapix_fw.spica.tiling import quantum_of, tile_area

UTC = dt.timezone.utc
ARCMIN = 1 / 60.0

RELEASE = """<?xml version="1.0"?>
<release name="T0001" criteria="criteria.xml">
  <deep radius="0.5">
    <runids>03BL0?</runids>
    <field name="D1" ra="36.4958" dec="-4.4942"/>
    <field name="DP" ra="45.0" dec="89.0"/>
  </deep>
  <wide>
    <target name="w_zero" ra="0.05" dec="0.0"/>
    <target name="w_far" ra="150.0" dec="2.0"/>
  </wide>
  <image-mode components="VW"/>
</release>
"""


def _offset(ra, dec, dist_deg, pa_deg):
    """The position at ``dist_deg`` from (ra, dec) towards position angle ``pa_deg`` (great circle)."""
    ra0, dec0, d, pa = map(math.radians, (ra, dec, dist_deg, pa_deg))
    dec1 = math.asin(math.sin(dec0) * math.cos(d) + math.cos(dec0) * math.sin(d) * math.cos(pa))
    ra1 = ra0 + math.atan2(math.sin(pa) * math.sin(d) * math.cos(dec0), math.cos(d) - math.sin(dec0) * math.sin(dec1))
    return math.degrees(ra1) % 360.0, math.degrees(dec1)


EXPOSURES = {}


def _add(name, ra, dec, comp="D", filt="r.MP9601", runid="03BL01", grade="A", rel="2005-06-01"):
    EXPOSURES[name] = dict(filename=name, ra=ra, dec=dec, survey_component=comp, filter=filt, runid=runid,
                           suggested_grade=grade, release_date=dt.datetime.fromisoformat(rel).replace(tzinfo=UTC),
                           exptime=600.0, seeing=0.8, airmass=1.1, date_obs=dt.datetime(2004, 1, 1, tzinfo=UTC))


D1 = (36.4958, -4.4942)
# Deep D1: inside 0.5 deg, a Deep run id; one Wide image on top of it; astrometry 2.5 deg just in/out
_add("d_in_r.fits", *_offset(*D1, 0.3, 40), rel="2005-06-01")
_add("d_in_g.fits", *_offset(*D1, 0.1, 200), filt="g.MP9401", rel="2006-01-15")
_add("d_in_r2.fits", *_offset(*D1, 0.2, 100), rel="2005-12-31")
_add("d_wrong_run.fits", *_offset(*D1, 0.1, 0), runid="03BQ02")              # not a Deep run id
_add("d_out.fits", *_offset(*D1, 0.51, 0))                                   # outside the field radius
_add("d_astrom_in.fits", *_offset(*D1, 2.49, 123), comp="W", grade="C")       # any grade, not selected
_add("d_astrom_out.fits", *_offset(*D1, 2.51, 123), comp="W")
# near the pole: Deep field at (45, 89); the astrometric cone crosses the pole
_add("p_in.fits", 45.0, 89.2)
_add("p_astrom_in.fits", 225.0, 88.6, comp="VW")    # 1.0 + 1.4 = 2.4 deg through the pole
_add("p_astrom_out.fits", 225.0, 88.4, comp="VW")   # 2.6 deg
# Wide target at (0.05, 0): across RA = 0
_add("w_in_wrap.fits", 359.95 - 0.0, 0.0, comp="W")                         # 6 arcmin across RA = 0
_add("w_in_edge.fits", *_offset(0.05, 0.0, 9.9 * ARCMIN, 300), comp="W")
_add("w_out_edge.fits", *_offset(0.05, 0.0, 10.1 * ARCMIN, 60), comp="W")
_add("w_in_vw.fits", 0.05, 0.02, comp="VW")                                 # Very Wide: never stacked
_add("w_far_in.fits", *_offset(150.0, 2.0, 9.99 * ARCMIN, 180), comp="W", filt="i.MP9701")
_add("w_far_out.fits", *_offset(150.0, 2.0, 10.01 * ARCMIN, 180), comp="W", filt="i.MP9701")


@pytest.fixture
def planned(tmp_path):
    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    doc = Document()
    for e in EXPOSURES.values():
        fields = {k: v for k, v in e.items() if k != "suggested_grade"}
        doc.add("exposure", **fields, storage=[{"node": "node2" if e["ra"] > 100 else "node1",
                                                "path": f"/data/{e['filename']}"}])
        doc.add("quality", exposure=e["filename"], suggested_grade=e["suggested_grade"])
    write_document(connect(url), doc)
    (tmp_path / "criteria.xml").write_text('<criteria name="T0001"><grades>A B</grades></criteria>')
    (tmp_path / "release.xml").write_text(RELEASE)
    spec = load_release(tmp_path / "release.xml")
    selected = {n for n, e in EXPOSURES.items() if e["suggested_grade"] in "AB"}
    return url, spec, plan_release(url, spec, selected)


def _job(plan, name):
    return next(j for j in plan.jobs if j.name == name)


def test_offsets_are_what_the_test_says():
    assert angular_distance(*D1, EXPOSURES["d_astrom_in.fits"]["ra"], EXPOSURES["d_astrom_in.fits"]["dec"]) == \
        pytest.approx(2.49, abs=1e-9)
    assert angular_distance(45, 89, 225, 88.6) == pytest.approx(2.4, abs=1e-9)


def test_deep_stacks_lists_and_release_dates(planned):
    _, spec, plan = planned
    r = _job(plan, "CFHTLS_D_r_022558-042939_T0001")
    g = _job(plan, "CFHTLS_D_g_022558-042939_T0001")
    assert r.stack == ["d_in_r.fits", "d_in_r2.fits"] and g.stack == ["d_in_g.fits"]
    # astrometric list: every exposure within 2.5 deg, any grade, any component
    assert "d_astrom_in.fits" in r.astrometric and "d_astrom_out.fits" not in r.astrometric
    assert {"d_wrong_run.fits", "d_out.fits", "d_in_g.fits"} <= set(r.astrometric)
    assert r.astrometric == g.astrometric and r.group == g.group   # one SCAMP solution for both filters
    assert r.release_date == dt.datetime(2005, 12, 31, tzinfo=UTC)  # the latest of its inputs
    assert g.release_date == dt.datetime(2006, 1, 15, tzinfo=UTC)
    assert plan.fields["CFHTLS_D_gr_022558-042939_T0001_chi2"] == ("D", 36.4958, -4.4942, [g.name, r.name])
    assert plan.fields["CFHTLS_D_r_030000+890000_T0001_chi2"][3] == ["CFHTLS_D_r_030000+890000_T0001"]


def test_near_the_pole(planned):
    _, _, plan = planned
    p = _job(plan, "CFHTLS_D_r_030000+890000_T0001")
    assert p.stack == ["p_in.fits"]
    assert "p_astrom_in.fits" in p.astrometric and "p_astrom_out.fits" not in p.astrometric


def test_wide_targets_10_arcmin_across_ra_zero(planned):
    _, _, plan = planned
    w = _job(plan, "CFHTLS_W_r_000012+000000_T0001")
    assert w.stack == ["w_in_edge.fits", "w_in_wrap.fits"]        # not the VW one, not 10.1'
    far = _job(plan, "CFHTLS_W_i_100000+020000_T0001")
    assert far.stack == ["w_far_in.fits"]
    # Very Wide images are processed one by one, each with its own astrometric list
    images = {j.name: j for j in plan.images()}
    assert set(images) == {"p_astrom_in_T0001", "p_astrom_out_T0001", "w_in_vw_T0001"}
    assert images["w_in_vw_T0001"].stack == ["w_in_vw.fits"] and "w_in_wrap.fits" in images["w_in_vw_T0001"].astrometric


def test_recorded_release_stacks_lists_and_jobs(planned):
    url, spec, plan = planned
    ids = record_plan(url, plan)
    ids_again = record_plan(url, plan)  # re-planning replaces, never duplicates
    assert ids == ids_again
    with connect(url).connect() as conn:
        rel = conn.execute(select(S.releases)).one()
        stacks = {r.name: r for r in conn.execute(select(S.stacks))}
        lists = conn.execute(select(S.stack_images.c.stack_id, S.stack_images.c.list, S.stack_images.c.filename)).all()
        jobs = {(r.name, r.mode): r for r in conn.execute(select(S.spica_jobs))}
    assert (rel.name, rel.version) == ("T0001", "T0001")
    r = stacks["CFHTLS_D_r_022558-042939_T0001"]
    assert r.release_id == rel.id and r.filter == "r.MP9601" and r.survey_component == "D"
    assert sorted(f for s, lst, f in lists if s == r.id and lst == "stack") == ["d_in_r.fits", "d_in_r2.fits"]
    # the astrometric list is recorded once for the group of the D stacks (g and r share it)
    astrom = [f for s, lst, f in lists if lst == "astrometry" and s in (r.id, stacks["CFHTLS_D_g_022558-042939_T0001"].id)]
    assert sorted(astrom) == _job(plan, r.name).astrometric
    from terapix_fw.spica.planning import astrometric_list
    with connect(url).connect() as conn:
        assert astrometric_list(conn, _job(plan, r.name).group) == _job(plan, r.name).astrometric
    job = jobs[(r.name, "release")]
    assert (job.status, job.kind, job.n_stack, job.node, job.priority) == ("pending", "stack", 2, "node1", 10)
    assert jobs[("CFHTLS_W_i_100000+020000_T0001", "release")].node == "node2"
    assert jobs[("CFHTLS_D_gr_022558-042939_T0001_chi2", "release")].kind == "field"
    assert jobs[("w_in_vw_T0001", "image")].priority == 1


@pytest.mark.parametrize("ra, dec, text", [(36.4958, -4.4942, "022558-042939"), (0.0, 0.0, "000000+000000"),
                                           (359.99999, -0.00001, "235959-000000"), (213.7791, 53.5749, "141506+533429")])
def test_position_strings(ra, dec, text):
    assert position_string(ra, dec) == text


def _sky_sep(ra1, dec1, ra2, dec2):
    return float(angular_distance(ra1, dec1, ra2, dec2))


@pytest.mark.parametrize("area", [Area("W1", 30.0, 34.0, -7.0, -4.0), Area("W0", 359.0, 2.0, -1.0, 1.0),
                                  Area("WP", 0.0, 359.999, 88.0, 90.0)])
def test_quanta_cover_the_area_once_and_do_not_overlap(area):
    quanta = tile_area(area, 1.0)
    rng = np.random.default_rng(7)
    width = (area.ra_max - area.ra_min) % 360.0
    ra = (area.ra_min + rng.uniform(0, width, 4000)) % 360.0
    dec = rng.uniform(area.dec_min, area.dec_max, 4000)
    rows, cols = quantum_of(area, 1.0, ra, dec)
    assert (rows >= 0).all() and (cols >= 0).all()            # every point of the area has a quantum
    index = {(q.row, q.col): q for q in quanta}
    for r, c, a, d in zip(rows, cols, ra, dec):              # ... and lies inside that quantum's cell
        q = index[(r, c)]
        assert q.dec_lo - 1e-9 <= d <= q.dec_hi + 1e-9
        if q.ra_hi - q.ra_lo != 360.0:
            assert (a - q.ra_lo) % 360.0 <= (q.ra_hi - q.ra_lo) % 360.0 + 1e-9
    # neighbours in a strip are at least one quantum apart on the sky at the strip's widest edge, so that
    # 1 deg square images centred on them do not overlap
    for q in quanta:
        right = index.get((q.row, q.col + 1))
        if right is not None:
            edge = q.dec_hi if abs(q.dec_hi) < abs(q.dec_lo) else q.dec_lo
            edge = 0.0 if q.dec_lo <= 0 <= q.dec_hi else edge
            assert _sky_sep(q.ra, edge, right.ra, edge) >= 1.0 - 1e-3


def test_quanta_of_w1_and_the_pole():
    w1 = tile_area(Area("W1", 30.0, 34.0, -7.0, -4.0), 1.0)
    assert len(w1) == 12 and {q.row for q in w1} == {0, 1, 2}
    assert w1[0].dec == -6.5 and w1[0].ra == pytest.approx(30.0 + 0.5 / math.cos(math.radians(6.0)))
    pole = tile_area(Area("WP", 0.0, 359.999, 88.0, 90.0), 1.0)
    cap = [q for q in pole if q.row == 1]
    assert len(cap) == 1 and cap[0].dec == 90.0
    assert len([q for q in pole if q.row == 0]) == math.ceil(359.999 * math.cos(math.radians(88.0)))


def test_generation_reuses_step_one_weight_maps(planned, tmp_path):
    """With QualityFITS-in's weight maps recorded (provenance: raw file -> weight map), the generated files
    take them as inputs instead of making them again; without them, a weights step makes them."""
    from terapix_fw.spica.generation import generate_jobs
    url, spec, plan = planned
    record_plan(url, plan)
    spec.refcat = str(tmp_path / "refcat.fits")
    without = {f.name: f for f in generate_jobs(url, spec, tmp_path / "gen1", tmp_path / "work")}
    doc = Document()
    doc.add("step_start", run_id="step1", step="qualityfits_in", tool="qualityfits")  # as a run records it
    for e in EXPOSURES.values():
        weight = tmp_path / "step1" / e["filename"].replace(".fits", ".weight.fits")
        weight.parent.mkdir(exist_ok=True)
        weight.write_bytes(b"w")
        doc.add("product", run_id="step1", step="qualityfits_in", unit=e["filename"], path=str(weight),
                kind="weight", checksum="0" * 64, size=1, inputs=[f"/data/{e['filename']}"])
    write_document(connect(url), doc)
    reused = {f.name: f for f in generate_jobs(url, spec, tmp_path / "gen2", tmp_path / "work")}
    name = "CFHTLS_D_r_022558-042939_T0001"
    first = load_instructions(without[name].instruction_file)
    second = load_instructions(reused[name].instruction_file)
    assert "weights" in [s.id for s in first.steps] and "weights" not in [s.id for s in second.steps]
    assert str(tmp_path / "step1" / "d_in_r.weight.fits") in second.inputsets["weights"].patterns
    swarp = next(s for s in second.steps if s.tool == "swarp")
    assert [(r.set, r.param) for r in swarp.inputs if r.param == "WEIGHT_IMAGE"] == [("weights", "WEIGHT_IMAGE")]
    assert (tmp_path / "gen2" / f"{name}_weights.lst").read_text().count("\n") == len(_job(plan, name).astrometric)
    # a weight map made from the exposures by another tool (a stack's, by SWarp) is not step one's
    (tmp_path / "x_weight.fits").write_bytes(b"w")
    doc = Document()
    doc.add("step_start", run_id="stacks", step="swarp_x", tool="swarp")
    doc.add("product", run_id="stacks", step="swarp_x", unit="all", path=str(tmp_path / "x_weight.fits"),
            kind="weight", checksum="1" * 64, size=1, inputs=[f"/data/{e['filename']}" for e in EXPOSURES.values()])
    write_document(connect(url), doc)
    again = {f.name: f for f in generate_jobs(url, spec, tmp_path / "gen3", tmp_path / "work")}
    assert load_instructions(again[name].instruction_file).inputsets["weights"].patterns == \
        second.inputsets["weights"].patterns
