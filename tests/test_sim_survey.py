"""Survey descriptions (XML + schema), whole-survey simulation with overlaps, the ``terapix simulate``
command and the ``simulate`` tool in an instruction file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from terapix_fw.errors import ConfigError
from terapix_fw.sim import SurveySpec, simulate_survey

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instructions" / "survey_tiny.xml"

MINI = """<?xml version="1.0"?>
<survey name="mini" seed="{seed}">
  <camera layout="grid" nccd="2" nx="128" ny="128"/>
  <sky maglim="24" density="0.5"/>
  <run id="03AQ01" runid="03AL99" mjd="52640.25"/>
  <field name="D1" ra="36.5" dec="-4.5">
    <exposures filter="r" n="2" exptime="100" run="03AQ01" dither="line" dither_arcsec="5"/>
  </field>
</survey>
"""


def test_tiny_survey_parses_into_deep_and_wide_exposures():
    spec = SurveySpec.from_xml(TINY)
    assert spec.name == "tiny" and spec.focal_plane.nccd == 4
    names = [e.name for e in spec.exposures]
    assert len(names) == len(set(names)) == 7
    objects = [e.object for e in spec.exposures]
    assert objects.count("D1") == 5 and {"W1+0+0", "W1+1+0"} <= set(objects)
    assert {e.filter for e in spec.exposures} == {"r.MP9601", "g.MP9401"}
    assert {e.qrunid for e in spec.exposures} == {"03AQ01", "03AQ02"}
    g = [e for e in spec.exposures if e.filter.startswith("g")]
    assert g and not any(e.photometric for e in g)
    for e in spec.exposures:
        assert 1.0 <= e.airmass < 2.0  # observed near transit from Mauna Kea
        assert e.release_date > "2004-01-01" or e.release_date == "2004-01-01"
    # dithered Deep exposures: distinct pointings within the 10" pattern
    d1r = [e for e in spec.exposures if e.object == "D1" and e.filter.startswith("r")]
    offs = [np.hypot((e.ra - 36.5) * np.cos(np.radians(e.dec)), e.dec + 4.5) * 3600 for e in d1r]
    assert len({round(o, 3) for o in offs}) == 3 and max(offs) <= 10 * np.sqrt(2) + 1e-6


def test_grid_fields_overlap_by_the_configured_fraction():
    spec = SurveySpec.from_xml(TINY)
    w = [e for e in spec.exposures if e.object.startswith("W1")]
    width = spec.focal_plane.size_deg()[0]
    sep = abs(w[1].ra - w[0].ra) * np.cos(np.radians(w[0].dec))
    assert sep == pytest.approx(width * 0.8, rel=1e-6)


def test_survey_simulation_shares_the_sky(tmp_path):
    result = simulate_survey(TINY, tmp_path, only=["700001p", "700004p", "700006p", "700007p"])
    assert [r.path.name for r in result.exposures] == ["700001p.fits", "700004p.fits", "700006p.fits",
                                                      "700007p.fits"]
    by = {r.path.stem: r for r in result.exposures}
    # overlapping W1 fields and the D1 field see the same objects (same IDs, same sky positions)
    w0, w1 = by["700006p"].truth, by["700007p"].truth
    common = np.intersect1d(w0["ID"], w1["ID"])
    assert len(common) > 5
    a = w0[np.isin(w0["ID"], common)]
    b = w1[np.isin(w1["ID"], common)]
    a.sort("ID")
    b.sort("ID")
    np.testing.assert_allclose(a["RA"], b["RA"])
    np.testing.assert_allclose(a["MAG"], b["MAG"])  # same filter
    # zero points: photometric exposures exact, the non-photometric g block off by 0.05-0.3 mag
    zp = Table.read(result.zeropoints_path)
    for row in zp:
        diff = row["MAGZP"] - row["ZP_TRUE"]
        if row["PHOTFLAG"]:
            assert diff == pytest.approx(0.0, abs=1e-12)
        else:
            assert 0.05 <= diff <= 0.3
    assert fits.getheader(by["700004p"].path)["PHOTFLAG"] is False
    # the sky truth holds every source of every exposure, with the exposure's magnitude in its band
    sky = Table.read(result.sky_truth_path)
    for r in result.exposures:
        band = r.meta["filter"][0].upper()
        idx = np.argsort(sky["ID"])
        pos = idx[np.searchsorted(sky["ID"], r.truth["ID"], sorter=idx)]
        np.testing.assert_array_equal(sky["ID"][pos], r.truth["ID"])
        np.testing.assert_allclose(sky[f"MAG_{band}"][pos], r.truth["MAG"])
    # the survey reference catalogue covers every exposure
    ref = Table.read(result.reference_catalog, hdu="LDAC_OBJECTS")
    for r in result.exposures:
        bright = r.truth[r.truth["IS_STAR"] & (r.truth["MAG"] < 20.0)]
        assert np.isin(bright["ID"], ref["SOURCE_ID"]).all()


def test_unknown_exposure_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\['nope'\] not in survey 'tiny'.*survey_tiny.xml|survey_tiny.xml.*nope"):
        simulate_survey(TINY, tmp_path, only=["700001p", "nope"])
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_invalid_survey_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(MINI.format(seed=1).replace('exptime="100"', 'exptime="-5"'))
    with pytest.raises(ConfigError, match=r"bad\.xml:7:.*exptime"):
        SurveySpec.from_xml(bad)
    unknown_run = tmp_path / "run.xml"
    unknown_run.write_text(MINI.format(seed=1).replace('run="03AQ01"', 'run="NOPE"'))
    with pytest.raises(ConfigError, match="run.xml"):
        SurveySpec.from_xml(unknown_run)
    with pytest.raises(ConfigError, match="malformed XML"):
        broken = tmp_path / "broken.xml"
        broken.write_text("<survey name='x'>")
        SurveySpec.from_xml(broken)


def test_external_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    body = MINI.format(seed=1).split("\n", 1)[1]
    body = body.replace("<camera", "<description>&x;</description>\n  <camera")
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(f'<?xml version="1.0"?>\n<!DOCTYPE survey [<!ENTITY x SYSTEM "file://{secret}">]>\n' + body)
    from lxml import etree
    # what a default parser would do: read the file into the document
    assert b"TOPSECRET" in etree.tostring(etree.parse(str(xxe), etree.XMLParser(resolve_entities=True)))
    with pytest.raises(ConfigError, match="DOCTYPE") as err:  # refused before any entity is expanded
        SurveySpec.from_xml(xxe)
    assert "TOPSECRET" not in str(err.value)


def test_terapix_simulate_command(tmp_path, capsys):
    from terapix_fw.cli import main
    survey = tmp_path / "mini.xml"
    survey.write_text(MINI.format(seed=3))
    rc = main(["simulate", str(survey), "--outdir", str(tmp_path / "out"), "--seed", "9"])
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert "700001p.fits" in out and "700002p.fits" in out
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    for name in ("700001p.fits", "refcat.fits", "flat_03AQ01_r.MP9601.fits"):
        assert name in files
    # truth only under truth/, under names no tool reads (no .head beside the images)
    assert not [f for f in files if f.endswith((".head", ".ahead")) or "truth" in f and f != "truth"]
    truth = sorted(p.name for p in (tmp_path / "out" / "truth").iterdir())
    for name in ("700001p.truth.fits", "700001p.wcs.truth", "zeropoints.fits", "sky_truth.fits"):
        assert name in truth
    # --seed wins over the survey's seed attribute, and seeds reproduce
    again = simulate_survey(survey, tmp_path / "again", seed=9)
    assert again.exposures[0].path.read_bytes() == (tmp_path / "out" / "700001p.fits").read_bytes()


def test_simulate_tool_in_an_instruction_file(tmp_path):
    from terapix_fw.runner import run_instructions
    survey = tmp_path / "mini.xml"
    survey.write_text(MINI.format(seed=4))
    run = tmp_path / "sim.xml"
    run.write_text(f"""<?xml version="1.0"?>
<instructions name="simrun" version="1">
  <steps>
    <step id="simulate" tool="simulate" fanout="all">
      <config>
        <param name="SURVEY_FILE">{survey}</param>
        <param name="SEED">5</param>
        <param name="OUTPUT_DIR">raw</param>
        <param name="COMPRESS">Y</param>
      </config>
    </step>
  </steps>
</instructions>
""")
    summary = run_instructions(run, tmp_path / "work", jobs=1, progress=False)
    assert summary.get("failed", 0) == 0 and summary.get("done", 0) == 1
    raw = tmp_path / "work" / "simulate" / "raw"
    with fits.open(raw / "700001p.fits") as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
    assert (raw / "refcat.fits").exists() and (raw / "truth" / "700002p.truth.fits").exists()
