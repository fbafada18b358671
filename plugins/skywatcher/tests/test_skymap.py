"""Sky maps: footprint corners on every projection against analytic formulas, cuts at the edge meridian
and around the poles, selection, catalogue overlays, the E(B-V) background's orientation, outputs.

The analytic formulas are written here independently of the libraries the plugin uses (matplotlib's
Aitoff, wcslib's AIT/MOL/SFL/CAR/CEA/TAN): plane coordinates in degrees, x positive to the west (east on
the left), longitude relative to the map's centre.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from terapix_skywatcher.footprints import EDGE_SAMPLES, footprint_of_header
from terapix_skywatcher.projections import PROJECTIONS
from terapix_skywatcher.skymap import SkyMap, SkyMapOptions, ebv_sampler, select_footprints

R2D = 180.0 / np.pi


def analytic(name, lon_deg, lat_deg, lon0=0.0, lat0=0.0):
    """Independent projection formulas (Calabretta & Greisen 2002; Snyder 1987 for Aitoff)."""
    lam = np.deg2rad((np.asarray(lon_deg) - lon0 + 180.0) % 360.0 - 180.0)
    phi = np.deg2rad(lat_deg)
    if name == "AITOFF":
        alpha = np.arccos(np.cos(phi) * np.cos(lam / 2))
        sinc = np.where(alpha == 0, 1.0, np.sin(alpha) / np.where(alpha == 0, 1, alpha))
        x, y = 2 * np.cos(phi) * np.sin(lam / 2) / sinc, np.sin(phi) / sinc
    elif name == "HAMMER":
        z = np.sqrt(1 + np.cos(phi) * np.cos(lam / 2))
        x, y = 2 * np.sqrt(2) * np.cos(phi) * np.sin(lam / 2) / z, np.sqrt(2) * np.sin(phi) / z
    elif name == "MOLLWEIDE":
        theta = np.array(phi, float)
        for _ in range(50):  # Newton on 2 theta + sin 2 theta = pi sin phi
            f = 2 * theta + np.sin(2 * theta) - np.pi * np.sin(phi)
            theta = theta - f / np.where(np.abs(2 + 2 * np.cos(2 * theta)) < 1e-12, 1e-12, 2 + 2 * np.cos(2 * theta))
        x, y = 2 * np.sqrt(2) / np.pi * lam * np.cos(theta), np.sqrt(2) * np.sin(theta)
    elif name == "SINUSOIDAL":
        x, y = lam * np.cos(phi), phi
    elif name == "PLATE_CARREE":
        x, y = lam, phi
    elif name == "CYLINDRICAL_EQUAL_AREA":
        x, y = lam, np.sin(phi)
    elif name == "GNOMONIC":
        p0 = np.deg2rad(lat0)
        cosc = np.sin(p0) * np.sin(phi) + np.cos(p0) * np.cos(phi) * np.cos(lam)
        x = np.cos(phi) * np.sin(lam) / cosc
        y = (np.cos(p0) * np.sin(phi) - np.sin(p0) * np.cos(phi) * np.cos(lam)) / cosc
    return -x * R2D, y * R2D


def ccd(ra0, dec0, nx=1000, ny=2000, scale=0.9 / 3600, rot=0.0, **keys):
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, nx, ny
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra0, dec0
    h["CRPIX1"], h["CRPIX2"] = nx / 2 + 0.5, ny / 2 + 0.5
    c, s = np.cos(np.deg2rad(rot)), np.sin(np.deg2rad(rot))
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -scale * c, scale * s, scale * s, scale * c
    h["FILTER"], h["EXPTIME"] = keys.pop("filt", "r.MP9601"), 600.0
    for k, v in keys.items():
        h[k] = v
    return h


def fp_of(h, name="e.fits", ext=1):
    return footprint_of_header(h, exposure=name, extension=ext, filter_key="FILTER", exptime_key="EXPTIME",
                               where=name)


def corners(h):
    """Corners (RA, Dec) of the CCD from astropy's WCS, pixel edges in FITS convention."""
    nx, ny = h["NAXIS1"], h["NAXIS2"]
    return WCS(h).all_pix2world([0.5, nx + 0.5, nx + 0.5, 0.5], [0.5, 0.5, ny + 0.5, ny + 0.5], 1)


@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_corners_land_where_the_wcs_says(name):
    h = ccd(150.0, 20.0, rot=17.0)
    lon0, lat0 = 140.0, 18.0  # the map centred away from the CCD: a non-trivial position on the map
    sky = SkyMap([fp_of(h)], SkyMapOptions(projection=name, centre=(lon0, lat0), galactic=False, ecliptic=False))
    sky.draw()
    (fp, pieces), = sky.drawn
    assert len(pieces) == 1
    x, y = pieces[0]
    assert len(x) == 4 * EDGE_SAMPLES
    ra, dec = corners(h)
    ex, ey = analytic(name, ra, dec, lon0, lat0)
    # the outline starts at each corner every EDGE_SAMPLES points
    np.testing.assert_allclose(x[::EDGE_SAMPLES], ex, atol=1e-7)
    np.testing.assert_allclose(y[::EDGE_SAMPLES], ey, atol=1e-7)
    # and every sampled edge point is the CCD's WCS at a pixel edge
    w = WCS(h)
    px, py = w.all_world2pix(*fp.outline(), 1)
    on_edge = np.isclose(px, 0.5) | np.isclose(px, 1000.5) | np.isclose(py, 0.5) | np.isclose(py, 2000.5)
    assert on_edge.all()


@pytest.mark.parametrize("name", ["AITOFF", "HAMMER", "MOLLWEIDE", "SINUSOIDAL", "PLATE_CARREE",
                                  "CYLINDRICAL_EQUAL_AREA"])
def test_field_across_ra_zero_is_cut_at_the_edge(name):
    """A CCD across RA = 0 on a map centred on RA = 180: two pieces, one at each edge of the map, each
    holding the corners of its side at their analytic positions, and the cut on the edge meridian."""
    h = ccd(0.05, -5.0)
    sky = SkyMap([fp_of(h)], SkyMapOptions(projection=name, centre=(180.0, 0.0), galactic=False, ecliptic=False))
    sky.draw()
    (_, pieces), = sky.drawn
    assert len(pieces) == 2
    east, west = sorted(pieces, key=lambda p: p[0].mean())  # east (RA < 360 side) is on the left: x < 0
    assert east[0].max() < 0 < west[0].min()
    ra, dec = corners(h)
    ex, ey = analytic(name, ra, dec, 180.0)
    for cx, cy, r in zip(ex, ey, ra):
        piece = east if r > 180 else west
        d = np.hypot(piece[0] - cx, piece[1] - cy).min()
        assert d < 1e-7, (name, r, d)
    # the cut runs along the edge meridian (lon = +-180 from the centre): analytic positions there
    lat = np.linspace(-5.3, -4.7, 5)
    edge_e = analytic(name, np.full(5, 180.0 - 1e-6 + 180.0), lat, 180.0)  # just east of the edge
    assert np.all(east[0].min() <= edge_e[0].max() + 1e-3)
    # without the cut: centred on the field, one piece
    whole = SkyMap([fp_of(h)], SkyMapOptions(projection=name, galactic=False, ecliptic=False))
    whole.draw()
    assert len(whole.drawn[0][1]) == 1


@pytest.mark.parametrize("name", ["HAMMER", "MOLLWEIDE", "AITOFF", "PLATE_CARREE", "GNOMONIC"])
def test_fields_near_the_south_pole(name):
    """A CCD at Dec = -89 (one piece, corners as the WCS says) and one around the pole (closed along the
    pole: the polygon holds the points next to the pole)."""
    from matplotlib.path import Path as MplPath

    near = ccd(45.0, -89.0)
    around = ccd(10.0, -89.9, nx=2000, ny=2000)  # 0.5 deg square centred 0.1 deg from the pole
    opts = SkyMapOptions(projection=name, centre=(30.0, -89.0 if name == "GNOMONIC" else 0.0),
                         galactic=False, ecliptic=False)
    sky = SkyMap([fp_of(near, "near.fits"), fp_of(around, "around.fits")], opts)
    sky.draw()
    (_, near_pieces), (_, around_pieces) = sky.drawn
    assert len(near_pieces) == 1
    ra, dec = corners(near)
    ex, ey = analytic(name, ra, dec, 30.0, -89.0 if name == "GNOMONIC" else 0.0)
    x, y = near_pieces[0]
    # near the pole the outline is densified: the corners are among its vertices
    for cx, cy in zip(ex, ey):
        assert np.hypot(x - cx, y - cy).min() < 1e-6
    inside = 0
    for px, py in around_pieces:
        path = MplPath(np.column_stack([px, py]))
        probe = sky.proj.forward(np.array([100.0, 200.0, 300.0]), np.array([-89.95, -89.95, -89.95]))
        inside += path.contains_points(np.column_stack(probe)).sum()
    assert inside == 3
    far = sky.proj.forward(np.array([10.0]), np.array([-89.0]))  # outside the CCD (0.9 deg from its centre)
    assert not any(MplPath(np.column_stack(p)).contains_points(np.column_stack(far)).any() for p in around_pieces)


def test_selection_filters():
    fps = []
    for i, (run, comp, band, status, ra) in enumerate([("08AQ01", "WIDE", "r.MP9601", "graded", 35.0),
                                                       ("08AQ01", "DEEP", "g.MP9401", "ingested", 36.0),
                                                       ("09BQ02", "WIDE", "r.MP9601", "assessed", 359.8),
                                                       ("09BQ02", "WIDE", "i.MP9701", "graded", 150.0)]):
        fp = fp_of(ccd(ra, -5.0 + i, filt=band), f"e{i}.fits")
        fp.run, fp.component, fp.status = run, comp, status
        fp.grade = "AB"[i % 2]
        fps.append(fp)
    names = lambda sel: [f.exposure for f in sel]  # noqa: E731
    assert names(select_footprints(fps, runs={"08AQ01"})) == ["e0.fits", "e1.fits"]
    assert names(select_footprints(fps, components={"WIDE"}, filters={"r.MP9601"})) == ["e0.fits", "e2.fits"]
    assert names(select_footprints(fps, statuses={"graded"})) == ["e0.fits", "e3.fits"]
    assert names(select_footprints(fps, grades={"B"})) == ["e1.fits", "e3.fits"]
    assert names(select_footprints(fps, region=(30.0, 40.0, -10.0, 0.0))) == ["e0.fits", "e1.fits"]
    # a region across RA = 0 (RA min > RA max)
    assert names(select_footprints(fps, region=(350.0, 37.0, -10.0, 10.0))) == ["e0.fits", "e1.fits", "e2.fits"]
    assert names(select_footprints(fps, runs={"09BQ02"}, region=(350.0, 10.0, -10.0, 10.0))) == ["e2.fits"]


def test_catalogue_overlay_positions(tmp_path):
    from astropy.table import Table

    rng = np.random.default_rng(4)
    ra = rng.uniform(30, 40, 25)
    dec = rng.uniform(-10, 0, 25)
    Table({"RAJ2000": ra, "DEJ2000": dec, "Vmag": rng.uniform(10, 15, 25)}).write(tmp_path / "stds.xml",
                                                                                    format="votable")
    ldac = tmp_path / "cat.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"ALPHA_J2000": ra[:5], "DELTA_J2000": dec[:5]}))]
                 ).writeto(ldac)
    sky = SkyMap([fp_of(ccd(35.0, -5.0))], SkyMapOptions(projection="HAMMER", centre=(35.0, -5.0),
                                                         catalogues=[str(tmp_path / "stds.xml"), str(ldac)]))
    sky.draw()
    (x1, y1), (x2, y2) = sky.catalogue_xy
    ex, ey = analytic("HAMMER", ra, dec, 35.0)
    np.testing.assert_allclose(x1, ex, atol=1e-7)
    np.testing.assert_allclose(y1, ey, atol=1e-7)
    np.testing.assert_allclose(x2, ex[:5], atol=1e-7)
    # a table without positions is refused with the file and the columns expected
    Table({"x": [1.0]}).write(tmp_path / "bad.xml", format="votable")
    from terapix_fw.errors import ToolError
    with pytest.raises(ToolError, match="bad.xml: no RA/Dec columns"):
        SkyMap([], SkyMapOptions(catalogues=[str(tmp_path / "bad.xml")])).draw()


def _spot_icrs(l, b):
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(l=l * u.deg, b=b * u.deg, frame="galactic").icrs
    return c.ra.deg, c.dec.deg


def test_extinction_map_orientation(tmp_path):
    """A hot spot at (l, b) = (30, +20) in a galactic CAR image and in a galactic HEALPix map shows at its
    place on the map, not at its mirror images (l, -b) or (-l, b)."""
    import healpy as hp

    # Cartesian: 1-degree galactic CAR image, l from 180 down to -180 (east left), b from -90 to 90
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "GLON-CAR", "GLAT-CAR"
    h["CRVAL1"], h["CRVAL2"] = 0.0, 0.0
    h["CRPIX1"], h["CRPIX2"] = 181.0, 91.0
    h["CDELT1"], h["CDELT2"] = -1.0, 1.0
    img = np.zeros((181, 361))
    yy, xx = np.mgrid[:181, :361]
    img[(np.abs(xx - (180 - 30)) <= 3) & (np.abs(yy - (90 + 20)) <= 3)] = 1.0
    fits.PrimaryHDU(img, header=h).writeto(tmp_path / "ebv_car.fits")
    # HEALPix, galactic, RING
    nside = 64
    m = np.zeros(hp.nside2npix(nside))
    m[hp.query_disc(nside, hp.ang2vec(30.0, 20.0, lonlat=True), np.deg2rad(3.0))] = 1.0
    hp.write_map(tmp_path / "ebv_hpx.fits", m, coord="G", overwrite=True, dtype=np.float64)

    ra_s, dec_s = _spot_icrs(30.0, 20.0)
    mirrors = [_spot_icrs(30.0, -20.0), _spot_icrs(-30.0, 20.0)]
    for path in ("ebv_car.fits", "ebv_hpx.fits"):
        sample = ebv_sampler(tmp_path / path)
        assert sample(np.array([ra_s]), np.array([dec_s]))[0] == 1.0
        for ra_m, dec_m in mirrors:
            assert sample(np.array([ra_m]), np.array([dec_m]))[0] == 0.0
        sky = SkyMap([], SkyMapOptions(projection="MOLLWEIDE", centre=(float(ra_s), 0.0), ebv_map=str(tmp_path / path),
                                       galactic=False, ecliptic=False, width_px=600))
        sky.draw()
        lon_e, lat_e, values = sky.background

        def cell(ra, dec):
            rel = (ra - ra_s + 180.0) % 360.0 - 180.0
            return values[np.searchsorted(lat_e, dec) - 1, np.searchsorted(lon_e, rel) - 1]
        assert cell(ra_s, dec_s) == 1.0
        for ra_m, dec_m in mirrors:
            assert cell(ra_m, dec_m) == 0.0
        assert values.shape == (150, 300)  # resolution from the figure width, not the map's pixels


def test_zoomed_background_is_not_blocky(tmp_path):
    """Zoomed on a 1-degree field, the E(B-V) mesh has as many cells across the field as the figure has
    room for (300 across 1.5 radii here), whatever the map's resolution."""
    import healpy as hp

    m = np.arange(hp.nside2npix(32), dtype=float)
    hp.write_map(tmp_path / "ebv.fits", m, coord="C", overwrite=True, dtype=np.float64)
    sky = SkyMap([fp_of(ccd(35.0, -5.0))], SkyMapOptions(projection="GNOMONIC", radius=0.5,
                                                         ebv_map=str(tmp_path / "ebv.fits"), width_px=600))
    sky.draw()
    lon_e, lat_e, _ = sky.background
    assert len(lon_e) == 301 and lat_e[-1] - lat_e[0] == pytest.approx(1.5)


def test_png_pdf_and_image_map(tmp_path):
    from PIL import Image
    from matplotlib.path import Path as MplPath

    fps = [fp_of(ccd(35.0 + 0.3 * i, -5.0), f"exp{i}.fits") for i in range(3)]
    fps[0].url = "exposure/7-exp0.fits.html"
    sky = SkyMap(fps, SkyMapOptions(projection="GNOMONIC", width_px=800, title="W1"))
    sky.save(tmp_path / "map.png", "png")
    sky.save(tmp_path / "map.pdf", "pdf")
    with Image.open(tmp_path / "map.png") as im:
        assert im.size[0] == 800
        height = im.size[1]
    assert (tmp_path / "map.pdf").read_bytes()[:5] == b"%PDF-"
    text = sky.image_map("map.png")
    import re
    areas = re.findall(r'<area shape="poly" coords="([0-9,]+)" href="([^"]+)"', text)
    assert [a[1] for a in areas] == ["exposure/7-exp0.fits.html", "exposure/exp1.html", "exposure/exp2.html"]
    # the CCD centre, through the axes transform, falls inside its area on the PNG
    for (coords, _), fp in zip(areas, fps):
        xy = np.array(coords.split(","), float).reshape(-1, 2)
        assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= 800).all() and (xy[:, 1] >= 0).all() and (xy[:, 1] <= height).all()
        cx, cy = sky.proj.forward(np.array([35.0 + 0.3 * fps.index(fp)]), np.array([-5.0]))
        disp = sky._ax.transData.transform(np.column_stack([cx, cy]))[0]
        assert MplPath(xy).contains_point((disp[0], height - disp[1]))


def test_depth_raster_follows_the_footprint_edges_not_healpix_pixels():
    """The coverage plot's raster tests each point against the CCD outlines: 2 arcsec inside or outside
    an edge is resolved (an NSIDE 2048 HEALPix pixel is 103 arcsec)."""
    from terapix_skywatcher.plots import rasterise_depth

    a = fp_of(ccd(35.0, -5.0), "a.fits")
    b = fp_of(ccd(35.0, -4.75), "b.fits")  # shifted north by half a CCD height
    b.exptime = 300.0
    c = fp_of(ccd(35.0, -4.75), "b.fits", ext=2)  # a second CCD of b on the same sky: counts once
    top_a = -5.0 + 0.25  # north edge of a (half of 2000 x 0.9 arcsec)
    east_a = 35.0 + 0.125 / np.cos(np.deg2rad(-5.0))
    d = 2.0 / 3600
    ra = np.array([35.0, 35.0, 35.0, 35.0, east_a - d, east_a + d, 35.0])
    dec = np.array([-5.1, -4.8, top_a + 0.25 - d, top_a + 0.25 + d, -5.1, -5.1, -5.3])
    count, exptime = rasterise_depth([a, b, c], ra, dec)
    np.testing.assert_array_equal(count, [1, 2, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(exptime, [600.0, 900.0, 300.0, 0.0, 600.0, 0.0, 0.0])


# ------------------------------------------------------------------ the tool: inputs, selection, outputs

def run_tool(tmp_path, inputs, **keywords):
    from terapix_fw.execute import UnitSpec, execute_unit

    layer = [("NSIDE", "1024", "test"), ("CHECKPLOT_RES", "600", "test"), ("CHECKPLOT_TYPE", "SKYMAP", "test")]
    layer += [(k, str(v), "test") for k, v in keywords.items()]
    spec = UnitSpec(step="sky", unit="1", tool="skywatcher", config_layers=[layer],
                    inputs=[str(p) for p in inputs], outdir=str(tmp_path / "out"),
                    log_path=str(tmp_path / "sky.log"), nthreads=1)
    return execute_unit(spec)


def wcs_votable(path, rows):
    from astropy.table import Table

    keys = ["NAXIS1", "NAXIS2", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2",
            "CD2_1", "CD2_2", "FILTER", "EXPTIME"]
    cols = {k: [h[k] for h, _ in rows] for k in keys}
    cols["EXPOSURE"] = [name for _, name in rows]
    cols["STATUS"] = ["graded" if i % 2 else "ingested" for i in range(len(rows))]
    Table(cols).write(path, format="votable")
    return path


def test_tool_votable_input_selection_png_and_image_map(tmp_path):
    from PIL import Image

    rows = [(ccd(34.0 + 0.5 * i, -5.0, filt="r.MP9601" if i < 2 else "g.MP9401"), f"e{i}.fits") for i in range(3)]
    vot = wcs_votable(tmp_path / "wcs.xml", rows)
    res = run_tool(tmp_path, [vot], PROJECTION="MOLLWEIDE", SELECT_FILTERS="r.MP9601", BOX_NAMES="W1",
                   BOX_LIMITS="30.1,38.8,-11.2,-3.7", MAP_RADIUS=8)
    assert res.status == "done", res.error
    (kind, rec), = [r for r in res.records if r[0] == "skymap"]
    assert rec["nccds"] == 2 and rec["projection"] == "MOLLWEIDE"
    with Image.open(tmp_path / "out" / "skymap.png") as im:
        assert im.size[0] == 600
    text = (tmp_path / "out" / "skymap_map.html").read_text()
    assert text.count("<area ") == 2 and 'src="skymap.png"' in text
    assert "exposure/e0.html" in text and "exposure/e2.html" not in text
    assert sorted(p.kind for p in res.products) == ["coverage_map", "skymap_html", "skymap_plot"]


def test_tool_pdf_and_config_errors(tmp_path):
    vot = wcs_votable(tmp_path / "wcs.xml", [(ccd(10.0, 40.0), "a.fits")])
    res = run_tool(tmp_path, [vot], CHECKPLOT_DEV="PDF", PROJECTION="AITOFF")
    assert res.status == "done", res.error
    assert (tmp_path / "out" / "skymap.pdf").read_bytes()[:5] == b"%PDF-"
    assert not (tmp_path / "out" / "skymap_map.html").exists()
    bad = run_tool(tmp_path / "b", [vot], BOX_NAMES="W1,W2", BOX_LIMITS="30,38,-11,-3")
    assert bad.status == "failed" and "BOX_LIMITS has 4 value(s) for 2 BOX_NAMES" in bad.error
    none = run_tool(tmp_path / "c", [vot], SELECT_RUNS="nope")
    assert none.status == "failed" and "no footprint left" in none.error
    missing = run_tool(tmp_path / "d", [vot], EBV_MAP=str(tmp_path / "sfd.fits"))
    assert missing.status == "failed" and "sfd.fits: no such file" in missing.error


def test_tool_reads_rdbix_headers_grades_and_links(tmp_path):
    from terapix_fw.db.engine import connect
    from terapix_fw.db.ops import Document
    from terapix_fw.db.query import set_grade
    from terapix_fw.db.store import write_document

    url = f"sqlite:///{tmp_path / 'rdbix.sqlite'}"
    doc = Document()
    for i in range(3):
        h = ccd(150.0 + 0.4 * i, 2.0)
        keywords = [{"extension": 0, "keyword": "FILTER", "value": "i.MP9701"},
                    {"extension": 0, "keyword": "EXPTIME", "value": "540.0"}]
        keywords += [{"extension": 1, "keyword": k, "value": str(h[k])} for k in
                     ("NAXIS1", "NAXIS2", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2",
                      "CD1_1", "CD1_2", "CD2_1", "CD2_2")]
        doc.add("exposure", filename=f"{800000 + i}p.fits.fz", runid="09AQ01", survey_component="W",
                keywords=keywords)
    write_document(connect(url), doc)
    set_grade(url, "800001p.fits.fz", "B", "tester")
    res = run_tool(tmp_path, [], RDBIX_URL=url, COLOUR_BY="GRADE", PROJECTION="GNOMONIC")
    assert res.status == "done", res.error
    (_, rec), = [r for r in res.records if r[0] == "coverage"]
    assert rec["filter"] == "i.MP9701" and rec["nexposures"] == 3 and rec["exptime_total"] == 1620.0
    text = (tmp_path / "out" / "skymap_map.html").read_text()
    assert text.count("<area ") == 3 and "exposure/2-800001p.fits.fz.html" in text
    graded = run_tool(tmp_path / "g", [], RDBIX_URL=url, SELECT_STATUS="graded", SELECT_COMPONENTS="W",
                      SELECT_RUNS="09AQ01")
    assert graded.status == "done", graded.error
    (_, rec), = [r for r in graded.records if r[0] == "skymap"]
    assert rec["nexposures"] == 1


def test_footprint_panel_titles_fit_and_do_not_overlap(tmp_path):
    """Three filters side by side at 1200 pixels (the demo): every panel title lies inside the figure
    and no two titles overlap (they were cut as "...0.059 c" before)."""
    from terapix_skywatcher.coverage import coverage_maps
    from terapix_skywatcher.plots import plot_footprints

    fps = [fp_of(ccd(35.0 + 0.2 * j, -5.0, filt=f), f"{f}{j}.fits") for f in ("u.MP9301", "g.MP9401", "r.MP9601")
           for j in range(4)]
    fig = plot_footprints(tmp_path / "fp.png", coverage_maps(fps, 1024), width_px=1200)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(boxes) == 3
    figbox = fig.bbox
    for b in boxes:
        assert b.x0 >= figbox.x0 and b.x1 <= figbox.x1 and b.y1 <= figbox.y1
    for i in range(3):
        for j in range(i + 1, 3):
            assert not boxes[i].overlaps(boxes[j])
