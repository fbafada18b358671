"""A small release end to end on simulated data: selection, planning, generation (files validate, names
unique), image-by-image and release modes, release dates in headers, stack photometry and astrometry
against the simulator's truth, grades (only A/B in the manifest), manifest checksums, superseding by a
later release, and reproduction with identical pixels in another work directory and database."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from terapix_fw.atomic import sha256_file
from terapix_fw.db import schema as S
from terapix_fw.db.engine import connect
from terapix_fw.db.ops import Document
from terapix_fw.db.store import write_document
from terapix_fw.instructions import load_instructions
from terapix_fw.ldac import read_ldac
from terapix_fw.spica.commands import plan_from_file
from terapix_fw.spica.generation import generate_jobs
from terapix_fw.spica.grading import SpicaError, grade_stack, stack_grades
from terapix_fw.spica.jobs import run_jobs
from terapix_fw.spica.manifest import read_manifest, write_manifest
from terapix_fw.spica.reproduce import reproduce
from terapix_fw.spica.status import status_summary

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc

RELEASE = """<?xml version="1.0"?>
<release name="{name}" criteria="criteria.xml">
  <grid pixel_scale="0.186" size="1400"/>
  <astrometry radius="2.5" refcat="raw/refcat.fits"/>
  <deep radius="0.2"><field name="D1" ra="36.5" dec="-4.5"/></deep>
  <wide radius="10"><target name="W1" ra="36.52" dec="-4.5"/></wide>
  <image-mode components="VW"/>
</release>
"""
CRITERIA = """<criteria name="tiny">
  <exptime above="60"/>
  <seeing below="1.0"/>
  <grades>A B</grades>
</criteria>
"""


def register(url: str, raw: Path, bad: set[str] = frozenset(), vw: set[str] = frozenset()) -> None:
    """Exposure records from the simulated headers (what `terapix ingest` records)."""
    doc = Document()
    for path in sorted(raw.glob("7*p.fits")):
        h = fits.getheader(path)
        name = path.name
        comp = "VW" if path.stem in vw else ("D" if h["OBJECT"].startswith("D") else "W")
        doc.add("exposure", filename=name, object=h["OBJECT"], filter=h["FILTER"], qrunid=h["QRUNID"],
                runid=h["RUNID"], ra=h["RA_DEG"], dec=h["DEC_DEG"], exptime=h["EXPTIME"], airmass=h["AIRMASS"],
                seeing=h["SEEING"], mjd_obs=h["MJD-OBS"], date_obs=h["DATE-OBS"], photometric=h["PHOTFLAG"],
                survey_component=comp, release_date=h["REL_DATE"],
                storage=[{"node": "node1", "path": str(path)}])
        doc.add("quality", exposure=name, suggested_grade="C" if path.stem in bad else "A")
    write_document(connect(url), doc)


#: the stack whose command file test_command_file_makes_what_the_instruction_file_made runs
COMMAND_STACK = "CFHTLS_D_r_022600-043000_T0001"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    made = make_release(tmp_path_factory.mktemp("spica"), tmp_path_factory.mktemp("cmdfile"))
    yield made
    if made["command_run"].poll() is None:  # its test did not wait for it (it failed before, or was deselected)
        made["command_run"].kill()
        made["command_run"].wait()


def start_command_file(cmd: Path, outdir: Path) -> subprocess.Popen:
    """Start the operator's way, ``sh NAME_cmd.txt WORKDIR`` (terapix tool ... one by one), in ``outdir``
    with a database of its own, in the background: it needs only what generation wrote (lists, configuration,
    raw files), so it runs while the jobs run, on the core their serial steps leave idle."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               TERAPIX_DB_URL=f"sqlite:///{outdir / 'cmd.sqlite'}", TERAPIX_HOME=str(outdir / "home"),
               MPLBACKEND="Agg")
    with open(outdir / "stdout.txt", "w") as out, open(outdir / "stderr.txt", "w") as err:
        return subprocess.Popen(["sh", str(cmd), str(outdir / "work")], env=env, stdout=out, stderr=err)


def make_release(base: Path, command_dir: Path) -> dict:
    """Simulate, register, select, plan, generate and run release T0001 in ``base``; the command file of
    :data:`COMMAND_STACK` runs meanwhile in ``command_dir`` (``command_run``, the process)."""
    from terapix_fw.cli import main
    # the tiny survey with more stars, so that SCAMP finds enough reference stars on its small CCDs
    survey = (ROOT / "instructions" / "survey_tiny.xml").read_text()
    survey = survey.replace('star_density="2"', 'star_density="12"').replace('<refcat maglim="21"', '<refcat maglim="23"')
    (base / "survey.xml").write_text(survey)
    assert main(["simulate", str(base / "survey.xml"), "--outdir", str(base / "raw")]) == 0
    url = f"sqlite:///{base / 'rdbix.sqlite'}"
    # 700003p is graded C (left out of the stacks, kept in the astrometric lists); 700007p is Very Wide
    register(url, base / "raw", bad={"700003p"}, vw={"700007p"})
    (base / "criteria.xml").write_text(CRITERIA)
    (base / "t0001.xml").write_text(RELEASE.format(name="T0001"))
    spec, selection, plan = plan_from_file(url, base / "t0001.xml")
    files = generate_jobs(url, spec, base / "work" / "spica" / "T0001", base / "work")
    command_run = start_command_file(next(f for f in files if f.name == COMMAND_STACK).command_file, command_dir)
    try:
        finished = run_jobs(url, "T0001", parallel=1, jobs=2)
    except BaseException:
        command_run.kill()
        command_run.wait()
        raise
    return dict(base=base, url=url, spec=spec, selection=selection, plan=plan, files=files, finished=finished,
                command_run=command_run, command_dir=command_dir)


def _jobs(url):
    with connect(url).connect() as conn:
        return {r.name: r for r in conn.execute(select(S.spica_jobs))}


def test_plan_and_generated_files(release):
    plan, files = release["plan"], release["files"]
    assert release["selection"].rejected["700003p.fits"][0] == "grades"
    names = sorted(j.name for j in plan.stacks())
    assert names == ["CFHTLS_D_g_022600-043000_T0001", "CFHTLS_D_r_022600-043000_T0001",
                     "CFHTLS_W_r_022604-043000_T0001"]
    assert [j.name for j in plan.images()] == ["700007p_T0001"]
    d_r = next(j for j in plan.jobs if j.name.startswith("CFHTLS_D_r"))
    assert d_r.stack == ["700001p.fits", "700002p.fits"] and "700003p.fits" in d_r.astrometric
    # one instruction file and one command file per job, written before anything ran, all valid
    assert len(files) == 3 + 1 + 2  # stacks, image-by-image, fields
    assert len({f.instruction_file for f in files}) == len(files) == len({f.command_file for f in files})
    produced = []
    for f in files:
        doc = load_instructions(f.instruction_file)
        assert f.command_file.read_text().startswith("#!/bin/sh")
        for step in doc.steps:
            produced += [v for k, v, _ in step.params if k in ("IMAGEOUT_NAME", "PICTURE_NAME") and "{" not in v]
    assert len(produced) == len(set(produced))  # every product has its own name
    cmd = next(f for f in files if f.name.startswith("CFHTLS_D_r")).command_file.read_text()
    assert "terapix tool scamp" in cmd and "terapix tool swarp" in cmd and "-IMAGEOUT_NAME CFHTLS_D_r_" in cmd
    for f in files:  # every command file is a shell script with the steps of its instruction file, in order
        assert subprocess.run(["sh", "-n", str(f.command_file)], capture_output=True).returncode == 0, f.name
        steps = re.findall(r"^# step (\S+): (\S+)", f.command_file.read_text(), re.M)
        assert steps == [(s.id, s.tool) for s in load_instructions(f.instruction_file).steps], f.name


def test_jobs_ran_by_priority_and_share_the_astrometric_solution(release):
    finished = release["finished"]
    assert [r["status"] for r in finished] == ["done"] * 6, [(r["name"], r["error"]) for r in finished]
    order = [r["name"] for r in finished]
    assert order.index("CFHTLS_D_gr_022600-043000_T0001_chi2") > order.index("CFHTLS_D_r_022600-043000_T0001")
    assert order[-1] == "700007p_T0001"  # image-by-image priority 1: last
    work = release["base"] / "work"
    jobs = _jobs(release["url"])
    group = jobs["CFHTLS_D_r_022600-043000_T0001"].astrometric_group
    assert len({j.astrometric_group for j in jobs.values() if j.kind == "stack"}) == 1
    # SCAMP of that group ran once: the other stacks found its unit up to date
    with connect(release["url"]).connect() as conn:
        scamp_units = conn.execute(select(S.units.c.status).join(S.steps, S.steps.c.id == S.units.c.step_pk)
                                   .where(S.steps.c.step == f"scamp_{group}")).scalars().all()
    assert sorted(scamp_units).count("done") == 1 and scamp_units.count("skipped") >= 2
    assert (work / "astrometry" / group).is_dir()
    summary = status_summary(release["url"], "T0001")
    assert summary["by_status"] == {"done": 6} and summary["pending"] == [] and summary["in_progress"] == []


def test_release_products_names_dates_and_truth(release):
    work = release["base"] / "work"
    rel = work / "release" / "T0001"
    name = "CFHTLS_D_r_022600-043000_T0001"
    image = rel / name / f"{name}.fits"
    assert image.exists() and (rel / name / f"{name}_weight.fits").exists()
    with fits.open(image) as hdul:
        # the latest release date of the inputs (both r exposures: 2004-01-01 in the simulator)
        assert hdul[0].header["REL_DATE"] == "2004-01-01" and hdul[1].header["REL_DATE"] == "2004-01-01"
        assert isinstance(hdul[1], fits.CompImageHDU) and hdul[1].compression_type == "RICE_1"
    field = "CFHTLS_D_gr_022600-043000_T0001_chi2"
    assert (rel / field / f"{field}.fits").exists() and (rel / field / "CFHTLS_D_gr_022600-043000_T0001_rgb.png").exists()
    cat = read_ldac(rel / field / f"{name}_ldac.fits")[0].objects
    # windowed positions through the stack's WCS (1-based pixels); truth: every star of the r exposures
    from astropy.table import Table, unique, vstack
    from astropy.wcs import WCS
    from scipy.spatial import cKDTree
    with fits.open(image) as hdul:
        wcs = WCS(hdul[1].header)
    ra, dec = wcs.all_pix2world(cat["XWIN_IMAGE"], cat["YWIN_IMAGE"], 1)
    truth = unique(vstack([Table.read(release["base"] / "raw" / "truth" / f"{e}.truth.fits") for e in ("700001p", "700002p")],
                          metadata_conflicts="silent"),
                   keys="ID")
    stars = truth[truth["IS_STAR"] & ~truth["SATURATED"] & (truth["MAG"] < 21)]
    cosd = np.cos(np.radians(-4.5))
    dist, i = cKDTree(np.c_[ra * cosd, dec]).query(np.c_[stars["RA"] * cosd, stars["DEC"]],
                                                   distance_upper_bound=1 / 3600)
    ok = np.isfinite(dist)
    assert ok.sum() >= 8
    # astrometry: no systematic offset larger than 0.05" (each star also carries its centroid noise, ~0.1"
    # at r = 20-21 on these 2-exposure stacks)
    dra = np.median((ra[i[ok]] - stars["RA"][ok]) * cosd * 3600)
    ddec = np.median((dec[i[ok]] - stars["DEC"][ok]) * 3600)
    assert abs(dra) < 0.05 and abs(ddec) < 0.05, (dra, ddec)
    # photometry: zero point 30 (SCAMP's MAGZERO_OUT) within 0.02 mag, 4" aperture holding the whole PSF
    dmag = np.median(cat["MAG_APER"][i[ok], 1] - stars["MAG"][ok])
    assert abs(dmag) < 0.02, dmag


def test_grades_manifest_superseding_and_reproduction(release, tmp_path):
    url, spec = release["url"], release["spec"]
    d_r, d_g, w_r = ("CFHTLS_D_r_022600-043000_T0001", "CFHTLS_D_g_022600-043000_T0001",
                     "CFHTLS_W_r_022604-043000_T0001")
    with pytest.raises(SpicaError, match="problem report"):
        grade_stack(url, w_r, "C")
    grade_stack(url, d_r, "A", "control")
    grade_stack(url, d_g, "B", "control", "slightly elongated PSF in one corner")
    grade_stack(url, w_r, "C", "control", "bright halo left of centre")
    path = write_manifest(url, spec)
    root = read_manifest(path)
    names = [s.get("name") for s in root.findall("stack")]
    assert d_r in names and d_g in names and w_r not in names    # only A/B stacks
    assert "CFHTLS_D_gr_022600-043000_T0001_chi2" in names and "CFHTLS_W_r_022604-043000_T0001_chi2" not in names
    base = Path(root.get("base"))
    for f in root.iter("file"):                                   # sizes and checksums are the files'
        p = Path(f.get("path")) if Path(f.get("path")).is_absolute() else base / f.get("path")
        assert p.stat().st_size == int(f.get("size")) and sha256_file(p) == f.get("sha256")
    kinds = {f.get("kind") for f in root.find(f"stack[@name='{d_r}']").iter("file")}
    assert {"product", "instructions", "command", "config", "input", "refcat", "stack_list",
            "astrometric_list"} <= kinds
    # the rejected stack is fixed and re-run: its later grade puts it in the manifest
    assert [g["grade"] for g in stack_grades(url, w_r)] == ["C"]
    grade_stack(url, w_r, "B", "control", "halo masked")
    assert w_r in [s.get("name") for s in read_manifest(write_manifest(url, spec)).findall("stack")]

    # reproduction in another work directory and database: identical pixels
    results = reproduce(path, tmp_path / "again", f"sqlite:///{tmp_path / 'again.sqlite'}", stacks=[d_r])
    assert [(r.name, r.identical) for r in results] == [(d_r, True)]

    # T0002: the same stacks again; accepting T0002's D r supersedes T0001's, both releases stay recorded
    base = release["base"]
    (base / "t0002.xml").write_text(RELEASE.format(name="T0002"))
    spec2, _, _ = plan_from_file(url, base / "t0002.xml")
    generate_jobs(url, spec2, base / "work" / "spica" / "T0002", base / "work")
    # T0001's QualityFITS-in weight maps are reused, never a T0001 stack's weight map (also made from them)
    weights = (base / "work" / "spica" / "T0002" / "CFHTLS_D_r_022600-043000_T0002_weights.lst").read_text().split()
    assert [Path(w).name for w in weights] == [f"70000{i}p.weight.fits" for i in range(1, 8)]
    with connect(url).begin() as conn:  # T0002's stack is T0001's, done: mark it as made (no re-run here)
        from sqlalchemy import update
        conn.execute(update(S.spica_jobs).where(S.spica_jobs.c.version == "T0002").values(status="done"))
    result = grade_stack(url, "CFHTLS_D_r_022600-043000_T0002", "A", "control")
    assert result["superseded"] == [f"{d_r} (T0001)"]
    assert d_r not in [s.get("name") for s in read_manifest(write_manifest(url, spec)).findall("stack")]
    with connect(url).connect() as conn:
        versions = conn.execute(select(S.releases.c.version).order_by(S.releases.c.version)).scalars().all()
    assert versions == ["T0001", "T0002"]


# last in the module: its command file has been running since generation, while the tests above ran (none of
# them changes what it compares: the T0001 headers and release products of the stack)
def test_command_file_makes_what_the_instruction_file_made(release):
    """The operator's way: ``sh NAME_cmd.txt WORKDIR`` runs the stack's commands one by one (terapix tool
    ...); its products equal the instruction file's run (the release fixture's, which started it)."""
    name = COMMAND_STACK
    assert release["command_run"].wait() == 0, (release["command_dir"] / "stderr.txt").read_text()[-3000:]
    ours, theirs = release["command_dir"] / "work", release["base"] / "work"
    group = _jobs(release["url"])[name].astrometric_group
    heads = sorted(p.relative_to(theirs) for p in (theirs / "astrometry" / group).glob("*.head"))
    assert len(heads) == 7 and heads == sorted(p.relative_to(ours) for p in (ours / "astrometry" / group).glob("*.head"))
    for head in heads:  # the same astrometric solution
        assert (ours / head).read_text() == (theirs / head).read_text(), head
    products = sorted(p.name for p in (theirs / "release" / "T0001" / name).iterdir())
    assert products == sorted(p.name for p in (ours / "release" / "T0001" / name).iterdir())
    for image in (f"{name}.fits", f"{name}_weight.fits"):  # identical pixels, same release date
        with fits.open(ours / "release" / "T0001" / name / image) as a, \
                fits.open(theirs / "release" / "T0001" / name / image) as b:
            assert np.array_equal(a[1].data, b[1].data, equal_nan=True)
            assert a[1].header["REL_DATE"] == b[1].header["REL_DATE"] == "2004-01-01"
