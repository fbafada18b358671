"""skywatcher on synthetic exposures whose footprints are known exactly.

A gnomonic (TAN) projection maps straight lines of the focal plane to great circles, so a CCD without
distortion covers exactly the spherical quadrilateral of its four corners.  Its area is computed here
independently, by integrating the TAN Jacobian over the CCD.  HEALPix counts the pixel centres inside
the footprint: the count is within half a pixel of the true edge along the whole perimeter
(systematically so for edges along HEALPix rings), which sets the tolerance of :func:`edge_tol`.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from terapix_fw.execute import UnitSpec, execute_unit

SCALE = 0.9 / 3600.0  # deg/pixel
NX, NY = 1000, 2000  # a 0.25 x 0.5 deg CCD
NSIDE = 16384  # 0.21 arcmin pixels: a 0.5 deg^2 mosaic is 39 000 pixels


def ccd_header(ra0, dec0, x0, y0, *, nx=NX, ny=NY, filt="r.MP9601", exptime=600.0):
    """Header of a CCD whose pixel (x0, y0) (1-based) sits at the tangent point (ra0, dec0)."""
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, nx, ny
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra0, dec0
    h["CRPIX1"], h["CRPIX2"] = x0, y0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -SCALE, 0.0, 0.0, SCALE
    h["FILTER"], h["EXPTIME"] = filt, exptime
    return h


def write_mef(path, headers, primary_keys=None):
    """An exposure as MegaCam delivers it: tile-compressed CCDs, header keywords in the primary HDU."""
    phdu = fits.PrimaryHDU()
    for key, value in (primary_keys or {}).items():
        phdu.header[key] = value
    hdus = [phdu]
    for h in headers:
        h = h.copy()
        for key in (primary_keys or {}):
            h.remove(key, ignore_missing=True)
        hdus.append(fits.CompImageHDU(np.zeros((h["NAXIS2"], h["NAXIS1"]), np.int16), header=h))
    fits.HDUList(hdus).writeto(path)
    return path


def mosaic(ra0, dec0, gap=50, **kw):
    """A 2 x 2 mosaic of CCDs around the tangent point, with gaps of ``gap`` pixels."""
    out = []
    for i in (0, 1):
        for j in (0, 1):
            x0 = NX + gap / 2 if i == 0 else -gap / 2
            y0 = NY + gap / 2 if j == 0 else -gap / 2
            out.append(ccd_header(ra0, dec0, x0, y0, **kw))
    return out


def quad_area(header) -> float:
    """Area (deg^2) of a TAN CCD: integral of the gnomonic Jacobian (1 + x^2 + y^2)^-3/2 over its pixels."""
    step = 5.0  # midpoint rule on 5-pixel cells: the Jacobian is smooth, the relative error is ~1e-10
    xs = (np.arange(0.5, header["NAXIS1"] + 0.5, step) + step / 2 - header["CRPIX1"]) * np.deg2rad(SCALE)
    ys = (np.arange(0.5, header["NAXIS2"] + 0.5, step) + step / 2 - header["CRPIX2"]) * np.deg2rad(SCALE)
    jac = (1.0 + xs[None, :] ** 2 + ys[:, None] ** 2) ** -1.5
    return float(jac.sum() * (step * np.deg2rad(SCALE)) ** 2 * (180 / np.pi) ** 2)


def edge_tol(perimeter_deg: float, nside: int = NSIDE) -> float:
    """Largest area error (deg^2) of pixel-centre counting: half a pixel along the whole perimeter."""
    import healpy as hp

    return 0.5 * perimeter_deg * hp.nside2resol(nside, arcmin=True) / 60.0


def run(tmp_path, inputs, **keywords):
    # plots cost more than the maps: only the tests that look at them draw them
    layer = [("NSIDE", str(NSIDE), "test"), ("CHECKPLOT_RES", "600", "test"), ("CHECKPLOT_TYPE", "NONE", "test")]
    layer += [(k, str(v), "test") for k, v in keywords.items()]
    spec = UnitSpec(step="sky", unit="1", tool="skywatcher", config_layers=[layer],
                    inputs=[str(p) for p in inputs], outdir=str(tmp_path / "out"),
                    log_path=str(tmp_path / "sky.log"), nthreads=1)
    return execute_unit(spec)


def records(result):
    return {d["filter"]: d for kind, d in result.records if kind == "coverage"}


def read_map(path):
    with fits.open(path) as hdul:
        return hdul[1].header, {name: hdul[1].data[name].copy() for name in ("PIXEL", "COUNT", "EXPTIME")}


def test_mosaic_area_matches_spherical_geometry(tmp_path):
    headers = mosaic(150.0, 2.2)
    exp = write_mef(tmp_path / "e1.fits.fz", headers, {"FILTER": "r.MP9601", "EXPTIME": 600.0})
    result = run(tmp_path, [exp])
    assert result.status == "done", result.error
    rec = records(result)["r.MP9601"]
    expected = sum(quad_area(h) for h in headers)
    assert rec["ccd_area_deg2"] == pytest.approx(expected, rel=1e-6)
    assert rec["area_deg2"] == pytest.approx(expected, abs=edge_tol(4 * 1.5))
    assert rec["nexposures"] == 1 and rec["nccds"] == 4 and rec["max_count"] == 1
    assert rec["area_deg2_2plus"] == 0.0 and rec["exptime_total"] == 600.0
    header, cols = read_map(tmp_path / "out" / "coverage_r.MP9601.fits")
    assert header["PIXTYPE"] == "HEALPIX" and header["NSIDE"] == NSIDE and header["INDXSCHM"] == "EXPLICIT"
    assert np.all(cols["COUNT"] == 1) and np.all(cols["EXPTIME"] == 600.0)
    pixel_area = 4 * np.pi * (180 / np.pi) ** 2 / (12 * NSIDE ** 2)
    assert len(cols["PIXEL"]) * pixel_area == pytest.approx(rec["area_deg2"])
    # the gaps between CCDs are not covered: the tangent point sits in the middle of the cross of gaps
    import healpy as hp
    centre = hp.ang2pix(NSIDE, 150.0, 2.2, lonlat=True)
    assert centre not in set(cols["PIXEL"].tolist())
    assert hp.ang2pix(NSIDE, 150.0 - 0.12, 2.2 + 0.25, lonlat=True) in set(cols["PIXEL"].tolist())


def test_overlaps_count_exposures_and_sum_times(tmp_path):
    import healpy as hp

    a = write_mef(tmp_path / "a.fits", [ccd_header(30.0, -10.0, NX / 2 + 0.5, NY / 2 + 0.5, exptime=600.0)])
    # b is shifted north by a quarter of the CCD height: the overlap is three quarters of a CCD
    b = write_mef(tmp_path / "b.fits", [ccd_header(30.0, -10.0 + 0.125, NX / 2 + 0.5, NY / 2 + 0.5, exptime=300.0)])
    # c has two CCDs overlapping each other: it still counts once per sky pixel
    c = write_mef(tmp_path / "c.fits", [ccd_header(31.0, -10.0, NX / 2 + 0.5, NY / 2 + 0.5, filt="g.MP9401"),
                                        ccd_header(31.0, -10.0, NX / 2 + 0.5, NY / 4, filt="g.MP9401")])
    result = run(tmp_path, [a, b, c], GOAL_FILTERS="r.MP9601", GOAL_EXPTIME="900",
                 CHECKPLOT_TYPE="FOOTPRINTS,COVERAGE")
    assert result.status == "done", result.error
    recs = records(result)
    single = quad_area(ccd_header(30.0, -10.0, NX / 2 + 0.5, NY / 2 + 0.5))
    r = recs["r.MP9601"]
    assert r["nexposures"] == 2 and r["max_count"] == 2 and r["max_exptime"] == 900.0
    assert r["area_deg2_2plus"] == pytest.approx(0.75 * single, abs=edge_tol(1.25))
    assert r["area_deg2"] == pytest.approx(1.25 * single, abs=edge_tol(1.75))
    assert r["ccd_area_deg2"] == pytest.approx(2 * single, rel=1e-4)
    # the depth goal (900 s) is reached where both exposures overlap; g has no goal
    assert r["exptime_goal"] == 900.0 and r["area_at_goal_deg2"] == r["area_deg2_2plus"]
    assert r["goal_fraction"] == pytest.approx(0.75 / 1.25, abs=0.01)
    assert r["exptime_total"] == 900.0
    g = recs["g.MP9401"]
    assert "exptime_goal" not in g
    assert g["nexposures"] == 1 and g["nccds"] == 2 and g["max_count"] == 1
    header, cols = read_map(tmp_path / "out" / "coverage_r.MP9601.fits")
    lookup = dict(zip(cols["PIXEL"].tolist(), zip(cols["COUNT"].tolist(), cols["EXPTIME"].tolist())))
    assert lookup[hp.ang2pix(NSIDE, 30.0, -10.0 + 0.06, lonlat=True)] == (2, 900.0)
    assert lookup[hp.ang2pix(NSIDE, 30.0, -10.0 - 0.2, lonlat=True)] == (1, 600.0)
    assert lookup[hp.ang2pix(NSIDE, 30.0, -10.0 + 0.33, lonlat=True)] == (1, 300.0)
    for name in ("coverage_r.MP9601.png", "coverage_g.MP9401.png", "footprints.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    kinds = sorted(p.kind for p in result.products)
    assert kinds == ["coverage_map"] * 2 + ["coverage_plot"] * 2 + ["footprint_plot"]


def test_catalogue_input_and_head_override(tmp_path):
    from astropy.table import Table

    from terapix_fw.headfile import write_head_file
    from terapix_fw.ldac import LdacExtension, write_ldac

    h = ccd_header(200.0, 45.0, NX / 2 + 0.5, NY / 2 + 0.5, filt="i.MP9701", exptime=100.0)
    objects = Table({"X_IMAGE": [1.0, 2.0], "Y_IMAGE": [1.0, 2.0]})
    cat = write_ldac(tmp_path / "e.ldac", [LdacExtension(h, objects)])
    result = run(tmp_path, [cat])
    assert result.status == "done", result.error
    assert records(result)["i.MP9701"]["area_deg2"] == pytest.approx(quad_area(h), abs=edge_tol(1.5))

    # a SCAMP-style .head beside the catalogue moves the CCD by 1 degree in declination
    head = fits.Header()
    head["CRVAL1"], head["CRVAL2"] = 200.0, 46.0
    write_head_file(tmp_path / "e.head", [head])
    moved = run(tmp_path, [cat])
    _, cols = read_map(tmp_path / "out" / "coverage_i.MP9701.fits")
    import healpy as hp
    assert hp.ang2pix(NSIDE, 200.0, 46.0, lonlat=True) in set(cols["PIXEL"].tolist())
    assert hp.ang2pix(NSIDE, 200.0, 45.0, lonlat=True) not in set(cols["PIXEL"].tolist())
    assert moved.status == "done"


def test_field_across_ra_zero(tmp_path):
    h = ccd_header(0.05, 0.0, NX / 2 + 0.5, NY / 2 + 0.5)
    exp = write_mef(tmp_path / "z.fits", [h])
    result = run(tmp_path, [exp], CHECKPLOT_TYPE="FOOTPRINTS")
    assert result.status == "done", result.error
    assert records(result)["r.MP9601"]["area_deg2"] == pytest.approx(quad_area(h), abs=edge_tol(1.5))
    assert (tmp_path / "out" / "footprints.png").stat().st_size > 1000
    assert sorted(p.kind for p in result.products) == ["coverage_map", "footprint_plot"]


def test_missing_wcs_names_file_and_extension(tmp_path):
    h = ccd_header(10.0, 10.0, 1, 1)
    del h["CTYPE1"], h["CTYPE2"]
    exp = write_mef(tmp_path / "nowcs.fits", [ccd_header(10.0, 10.0, 1, 1), h])
    result = run(tmp_path, [exp])
    assert result.status == "failed"
    assert "nowcs.fits[2]" in result.error and "CTYPE1" in result.error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nside_must_be_power_of_two_and_goals_match_filters(tmp_path):
    exp = write_mef(tmp_path / "e.fits", [ccd_header(10.0, 10.0, 1, 1)])
    result = run(tmp_path, [exp], NSIDE=1000)
    assert result.status == "failed" and "NSIDE = 1000" in result.error
    result = run(tmp_path, [exp], GOAL_FILTERS="r,g", GOAL_EXPTIME="900")
    assert result.status == "failed" and "GOAL_FILTERS has 2 filter(s) but GOAL_EXPTIME 1" in result.error


def test_config_prints_parameters():
    from terapix_fw.plugins import get_tool

    text = get_tool("skywatcher").cls().default_config_text()
    assert "NSIDE" in text and "HEADER_SUFFIX" in text and "CHECKPLOT_DEV" in text


def test_recorded_run_on_the_coverage_web_page(tmp_path, recorded_dropin):
    """A recorded drop-in run shows on the page skywatcher adds through the web_pages hook, with its plots
    copied into the site; a hostile filter name is escaped."""
    from terapix_fw.dropin import run_tool_command
    from terapix_fw.web import build_site

    hostile = "<b>r</b>"
    exp = write_mef(tmp_path / "e.fits", [ccd_header(10.0, 10.0, NX / 2 + 0.5, NY / 2 + 0.5, filt=hostile)])
    assert run_tool_command("skywatcher", [str(exp), "-NSIDE", "4096", "-CHECKPLOT_RES", "600"]) == 0
    # a drop-in run in a plain folder: web build publishes its plots only from a root it is given
    build_site(recorded_dropin, tmp_path / "site", extra_asset_roots=[tmp_path])
    assert (tmp_path / "coverage__b_r__b_.fits").is_file()  # file-name-safe filter name
    page = (tmp_path / "site" / "coverage.html").read_text()
    assert "<b>r</b>" not in page and "&lt;b&gt;r&lt;/b&gt;" in page
    area = float(re.search(r"<td>&lt;b&gt;r&lt;/b&gt;</td>\s*<td class=\"num\">([0-9.]+)</td>", page).group(1))
    assert area == pytest.approx(quad_area(ccd_header(10.0, 10.0, NX / 2 + 0.5, NY / 2 + 0.5)),
                                 abs=edge_tol(1.5, 4096))
    images = re.findall(r'<img src="(assets/[^"]+)"', page)
    assert len(images) == 2
    for rel in images:
        assert (tmp_path / "site" / rel).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(shutil.which("source-extractor") is None, reason="SExtractor is not installed")
def test_real_sextractor_ldac_gives_the_image_footprint(tmp_path):
    """A FITS_LDAC catalogue written by the real SExtractor keeps the image header in LDAC_IMHEAD: the
    coverage from the catalogue is the coverage from the image, pixel for pixel."""
    rng = np.random.default_rng(3)
    h = ccd_header(150.0, 2.0, 200.5, 300.5, nx=400, ny=600, filt="z.MP9801", exptime=120.0)
    data = rng.normal(100.0, 5.0, (600, 400)).astype(np.float32)
    yy, xx = np.mgrid[:600, :400]
    for x0, y0 in rng.uniform(20, 380, (15, 2)):
        data += 2000.0 * np.exp(-((xx - x0) ** 2 + (yy - y0 * 1.5) ** 2) / 8.0)
    image = tmp_path / "img.fits"
    fits.PrimaryHDU(data, header=h).writeto(image)
    (tmp_path / "cat.param").write_text("NUMBER\nX_IMAGE\nY_IMAGE\n")
    subprocess.run(["source-extractor", str(image), "-c", "/usr/share/source-extractor/default.sex",
                    "-CATALOG_TYPE", "FITS_LDAC", "-CATALOG_NAME", str(tmp_path / "img.ldac"),
                    "-PARAMETERS_NAME", str(tmp_path / "cat.param"), "-FILTER", "N", "-VERBOSE_TYPE", "QUIET"],
                   check=True, cwd=tmp_path)
    from_image = run(tmp_path / "a", [image])
    from_catalogue = run(tmp_path / "b", [tmp_path / "img.ldac"])
    assert from_image.status == from_catalogue.status == "done", (from_image.error, from_catalogue.error)
    _, img_cols = read_map(tmp_path / "a" / "out" / "coverage_z.MP9801.fits")
    _, cat_cols = read_map(tmp_path / "b" / "out" / "coverage_z.MP9801.fits")
    assert len(img_cols["PIXEL"]) > 100
    assert np.array_equal(img_cols["PIXEL"], cat_cols["PIXEL"])
    assert records(from_catalogue)["z.MP9801"]["exptime_total"] == 120.0


def test_maps_read_back_with_healpy(tmp_path):
    """The partial maps follow the HEALPix FITS convention: healpy reads them (at a small NSIDE here,
    since healpy expands a partial map to the full sphere)."""
    import healpy as hp

    exp = write_mef(tmp_path / "e.fits", [ccd_header(80.0, 30.0, NX / 2 + 0.5, NY / 2 + 0.5, exptime=450.0)])
    result = run(tmp_path, [exp], NSIDE=256, HEALPIX_ORDERING="NESTED")
    assert result.status == "done", result.error
    count, exptime = hp.read_map(tmp_path / "out" / "coverage_r.MP9601.fits", field=(0, 1), partial=True,
                                 nest=True, dtype=None)
    covered = np.flatnonzero(count > 0)
    assert hp.get_nside(count) == 256 and covered.size > 0
    assert np.all(count[covered] == 1) and np.all(exptime[covered] == 450.0)
    assert hp.ang2pix(256, 80.0, 30.0, nest=True, lonlat=True) in covered
    area = records(result)["r.MP9601"]["area_deg2"]
    assert covered.size * hp.nside2pixarea(256, degrees=True) == pytest.approx(area)


def test_simulated_exposure_with_its_true_wcs_head(tmp_path):
    """An exposure from the project's simulator (TPV WCS, a first guess 3 arcsec off) and the ``.head``
    holding its true WCS, as SCAMP would write it: with the .head the covered sky is centred on the true
    CCD positions, without it on the first guess.  No optical distortion here: on this tiny focal plane
    the simulator's distortion would curve the CCD edges, which a four-corner footprint ignores."""
    import healpy as hp
    from astropy.wcs import WCS

    from terapix_fw.headfile import apply_head, read_head_file
    from terapix_fw.sim import simulate_exposure, small_focal_plane

    res = simulate_exposure(tmp_path / "sim", seed=3, focal_plane=small_focal_plane(4, 256, 256), density=0.05,
                            star_density=0.2, write_refcat=False, write_calibration=False, cosmic_rays=False,
                            defects=False, wcs_offset_arcsec=3.0, distortion_arcsec=0.0)
    import shutil
    shutil.copyfile(res.true_wcs_path, res.path.with_suffix(".head"))  # the truth, where SCAMP's .head goes
    heads = read_head_file(res.path.with_suffix(".head"))
    with fits.open(res.path) as hdul:
        truth = []
        for hdu, head in zip(hdul[1:], heads):
            h = hdu.header.copy()
            apply_head(h, head)
            truth.append(WCS(h).all_pix2world([[128.5, 128.5]], 1)[0])
    true_centre = np.mean(truth, axis=0)

    def centre(result_dir):
        with fits.open(result_dir / "out" / "coverage_r.MP9601.fits") as hdul:
            ra, dec = hp.pix2ang(65536, hdul[1].data["PIXEL"], lonlat=True)
        return np.array([ra.mean(), dec.mean()])

    def offset_arcsec(c):
        return 3600 * np.hypot((c[0] - true_centre[0]) * np.cos(np.deg2rad(true_centre[1])), c[1] - true_centre[1])

    with_head = run(tmp_path / "a", [res.path], NSIDE=65536)
    without = run(tmp_path / "b", [res.path], NSIDE=65536, HEADER_SUFFIX='""')
    assert with_head.status == without.status == "done", (with_head.error, without.error)
    assert offset_arcsec(centre(tmp_path / "a")) < 0.5
    assert offset_arcsec(centre(tmp_path / "b")) > 1.5
    # four 256 x 256 CCDs of 0.186 arcsec pixels
    expected = 4 * (256 * 0.186 / 3600) ** 2
    assert records(with_head)["r.MP9601"]["ccd_area_deg2"] == pytest.approx(expected, rel=2e-3)
