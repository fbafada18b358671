import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from terapix_weightwatcher.maps import WatchConfig, read_ds9_polygons, watch_exposure, watch_extension


def test_flag_bits_match_injected_defects(defect_ccd):
    img, truth, header = defect_ccd
    res = watch_extension(img, header, WatchConfig.defaults())
    flag, weight = res.flag, res.weight
    cr = (flag & 8) != 0
    # cosmic rays are detected from the pixels, not taken from truth
    assert (cr & truth["cr"]).sum() >= 0.95 * truth["cr"].sum()
    clean = ~(truth["cr"] | truth["sat"] | truth["col"] | truth["trail"])
    assert (cr & clean).sum() < 1e-3 * clean.sum()
    assert res.stats["ncr"] >= 40
    # saturated pixels and the bleed trail carry bit 4
    assert np.all(flag[truth["sat"]] & 4)
    # the hot column: bit 32 on most of it, nowhere far from it
    col = (flag & 32) != 0
    assert col[truth["col"]].mean() > 0.9
    assert col[:, :70].sum() + col[:, 85:].sum() < 0.001 * img.size
    # the satellite trail: one found, bit 16 on its core
    assert res.stats["ntrail"] == 1
    assert ((flag & 16) != 0)[truth["trail"]].mean() > 0.95
    assert abs(np.rad2deg(res.trails[0]["theta"]) - 120.0) < 2.0
    # flagged pixels have zero weight, the others keep weight 1 (no input weight map)
    assert np.all(weight[flag != 0] == 0)
    assert np.all(weight[flag == 0] == 1)


def test_clean_ccd_has_no_trail_or_column(defect_ccd):
    rng = np.random.default_rng(3)
    img = (1000 + rng.normal(0, 25, (600, 400))).astype(np.float32)
    res = watch_extension(img, fits.Header({"GAIN": 1.6}), WatchConfig.defaults())
    assert res.stats["ntrail"] == 0
    assert res.stats["nbadcol_pix"] == 0
    assert (res.flag != 0).mean() < 1e-3


def test_weight_flag_inputs_polygons_and_dead_ccd(tmp_path, defect_ccd):
    img, _, header = defect_ccd
    ny, nx = img.shape
    rng = np.random.default_rng(2)
    flat = rng.uniform(0.9, 1.1, img.shape).astype(np.float32)
    flat[10:20, 10:20] = 0.1  # below WEIGHT_MIN
    flat[30, 30] = 2.0  # above WEIGHT_MAX
    badpix = np.zeros(img.shape, np.uint8)
    badpix[50:52, :] = 1  # FLAG_MASKS bit -> FLAG_OUTFLAGS 2, and zero weight
    badpix[60, 5] = 4  # a bit only in FLAG_WMASKS: zero weight, no output flag
    dead = np.full(img.shape, 17.0, np.float32)
    prim = fits.PrimaryHDU(header=fits.Header({"OBJECT": "test", "FILTER": "r"}))
    h2 = header.copy()
    h2["EXTNAME"] = "ccd01"
    fits.HDUList([prim, fits.ImageHDU(img, header), fits.ImageHDU(dead, h2)]).writeto(tmp_path / "im.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flat), fits.ImageHDU(flat)]).writeto(tmp_path / "flat.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(badpix), fits.ImageHDU(badpix)]).writeto(tmp_path / "bp.fits")
    (tmp_path / "mask.reg").write_text("# Region file format: DS9\nglobal color=green\nimage\n"
                                       "polygon(101,101,151,101,151,131,101,131)\n")
    w, f, per_ext = watch_exposure(tmp_path / "im.fits", [tmp_path / "flat.fits"], [tmp_path / "bp.fits"],
                                   [tmp_path / "mask.reg"], WatchConfig.defaults(cr_detect=False, trail_detect=False))
    assert len(w) == len(f) == 3
    wd, fd = w[1].data, f[1].data
    assert wd.dtype == np.float32 and fd.dtype == np.uint8
    assert np.all(fd[10:20, 10:20] & 1) and fd[30, 30] & 1 and np.all(wd[10:20, 10:20] == 0)
    assert np.all(fd[50:52, :] & 2) and np.all(wd[50:52, :] == 0)
    assert wd[60, 5] == 0 and fd[60, 5] == 0
    # polygon vertices are 1-based DS9 image coordinates: pixel centres 100..150 x 100..130 (0-based) inside
    assert np.all(fd[101:130, 101:150] & 128) and np.all(wd[101:130, 101:150] == 0)
    assert not (fd[95, 95] & 128)
    ok = (fd == 0)
    ok[60, 5] = False  # a WMASKS-only bit: zero weight without an output flag
    np.testing.assert_array_equal(wd[ok], flat[ok])
    # the constant CCD is dead: every pixel flagged 64, zero weight
    assert np.all(f[2].data & 64) and np.all(w[2].data == 0) and per_ext[1]["dead"]
    # headers keep the image keywords and add the map's
    assert w[1].header["EXTNAME"] == "ccd00" and w[1].header["GAIN"] == 1.6
    assert f[1].header["WWTYPE"] == "FLAG" and w[1].header["WWTYPE"] == "WEIGHT"
    assert w[0].header["FILTER"] == "r"


def test_bad_polygon_file_names_line(tmp_path):
    from terapix_fw.errors import ToolError

    (tmp_path / "bad.reg").write_text("image\npolygon(1,2,3,4)\n")
    with pytest.raises(ToolError, match=r"bad.reg, line 2"):
        read_ds9_polygons(tmp_path / "bad.reg")
    (tmp_path / "circ.reg").write_text("image\ncircle(10,10,5)\n")
    with pytest.raises(ToolError, match="circle"):
        read_ds9_polygons(tmp_path / "circ.reg")


def test_tool_writes_maps_and_xml(tmp_path, defect_ccd):
    from terapix_fw.execute import UnitSpec, execute_unit

    img, _, header = defect_ccd
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, header)]).writeto(tmp_path / "exp.fits")
    spec = UnitSpec(step="ww", unit="1", tool="weightwatcher",
                    config_layers=[[("OUTWEIGHT_NAME", "%s.weight.fits", None),
                                    ("OUTFLAG_NAME", "%s.flag.fits", None), ("XML_NAME", "%s.ww.xml", None),
                                    ("GETAREA", "Y", None)]],
                    inputs=[str(tmp_path / "exp.fits")], outdir=str(tmp_path), log_path=str(tmp_path / "ww.log"))
    result = execute_unit(spec)
    assert result.status == "done", result.error
    kinds = sorted(p.kind for p in result.products)
    assert kinds == ["flag", "weight", "xml"]
    with fits.open(tmp_path / "exp.flag.fits") as f:
        assert f[1].header["WWNCR"] > 0
    assert "NCosmics" in (tmp_path / "exp.ww.xml").read_text()
    (kind, data), = result.records
    assert kind == "weightmap" and data["extensions"][0]["ncr"] > 0
    assert data["eff_area_deg2"] == 0.0  # no WCS in this header: no area


@pytest.mark.skipif(shutil.which("weightwatcher") is None, reason="weightwatcher not installed")
def test_same_maps_as_real_weightwatcher(tmp_path):
    """WeightWatcher semantics (thresholds, WMASKS, MASKS->OUTFLAGS) bit for bit against the C program."""
    rng = np.random.default_rng(5)
    flat = rng.uniform(0.0, 1.6, (64, 80)).astype(np.float32)
    bp = rng.integers(0, 4, (64, 80)).astype(np.uint8) * (rng.random((64, 80)) < 0.1)
    fits.PrimaryHDU(flat).writeto(tmp_path / "flat.fits")
    fits.PrimaryHDU(bp.astype(np.int16)).writeto(tmp_path / "bp.fits")
    subprocess.run(["weightwatcher", "-WEIGHT_NAMES", "flat.fits", "-FLAG_NAMES", "bp.fits",
                    "-FLAG_WMASKS", "0x03", "-FLAG_MASKS", "0x02", "-FLAG_OUTFLAGS", "4",
                    "-OUTWEIGHT_NAME", "ref_w.fits", "-OUTFLAG_NAME", "ref_f.fits", "-WRITE_XML", "N",
                    "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path, check=True, capture_output=True)
    sci = (1000 + rng.normal(0, 10, (64, 80))).astype(np.float32)
    fits.PrimaryHDU(sci).writeto(tmp_path / "sci.fits")
    cfg = WatchConfig.defaults(flag_wmasks=0x03, flag_masks=0x02, flag_outflags=4, cr_detect=False, trail_detect=False,
                      badcol_detect=False, satur_level=1e30)
    w, f, _ = watch_exposure(tmp_path / "sci.fits", [tmp_path / "flat.fits"], [tmp_path / "bp.fits"], (), cfg)
    ref_w = fits.getdata(tmp_path / "ref_w.fits")
    ref_f = fits.getdata(tmp_path / "ref_f.fits")
    np.testing.assert_array_equal(f[0].data, ref_f)
    np.testing.assert_allclose(w[0].data, ref_w)


def test_partial_bad_columns_are_followed_to_their_ends():
    """Dead and hot columns starting inside a 256-row segment: flagged from their first bad pixel, and no
    further (the simulator's bad columns start at random rows)."""
    from terapix_weightwatcher.defects import bad_columns

    rng = np.random.default_rng(1)
    img = rng.normal(1000, 25, (1200, 300)).astype(np.float32)
    truth = np.zeros(img.shape, bool)
    img[700:, 50] = rng.normal(0, 3, 500)  # dead (read noise only) from row 700
    truth[700:, 50] = True
    img[300:, 120] += 200  # hot from row 300
    truth[300:, 120] = True
    img[:900, 200] += 120
    truth[:900, 200] = True
    img[400:, 0] = rng.normal(0, 3, 800)  # on the CCD edge
    truth[400:, 0] = True
    mask = bad_columns(img, 1000.0, 25.0)
    assert mask[truth].mean() > 0.99
    assert (mask & ~truth).sum() <= 6


def test_threads_give_the_same_maps(tmp_path, defect_ccd):
    from terapix_weightwatcher.maps import iter_watch

    img, _, header = defect_ccd
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.roll(img, 37 * k, axis=1), header) for k in range(3)]
    fits.HDUList(hdus).writeto(tmp_path / "m.fits")
    one = [(i, r.flag.copy(), r.weight.copy()) for i, _, _, r in iter_watch(tmp_path / "m.fits", nthreads=1)]
    two = [(i, r.flag, r.weight) for i, _, _, r in iter_watch(tmp_path / "m.fits", nthreads=2)]
    assert [o[0] for o in one] == [t[0] for t in two] == [1, 2, 3]
    for (_, f1, w1), (_, f2, w2) in zip(one, two):
        np.testing.assert_array_equal(f1, f2)
        np.testing.assert_array_equal(w1, w2)


def test_map_defaults_are_the_tools_declared_defaults():
    """WatchConfig restates no default: every field comes from the weightwatcher tool's declarations."""
    import dataclasses

    from terapix_weightwatcher.tool import WeightWatcherTool
    declared = WeightWatcherTool.parameter_set().resolve()
    cfg = WatchConfig.defaults()
    for f in dataclasses.fields(WatchConfig):
        assert f.default is dataclasses.MISSING
        assert getattr(cfg, f.name) == declared[f.name.upper()]
