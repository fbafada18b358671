"""Regression against the real SWarp (where installed): the simulator's true WCS (``truth/<name>.wcs.truth``,
in .head format) put beside an exposure as ``<name>.head`` is what SWarp needs to put every star at its
true sky position; the exposure alone (first-guess header) leaves them off by the configured pointing
error - the simulator never leaves the truth where SWarp would read it."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from terapix_fw.sim import simulate_exposure, small_focal_plane

SWARP = shutil.which("SWarp") or shutil.which("swarp")


def _offsets(tmp_path, res, name):
    import sep
    cmd = [SWARP, res.path.name, "-IMAGEOUT_NAME", f"{name}.fits", "-WEIGHTOUT_NAME", f"{name}.weight.fits",
           "-SUBTRACT_BACK", "N", "-VERBOSE_TYPE", "QUIET", "-WRITE_XML", "N", "-NTHREADS", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with fits.open(tmp_path / f"{name}.fits") as hdul:
        data = hdul[0].data.astype(float)
        wcs = WCS(hdul[0].header)
    t = res.truth[res.truth["IS_STAR"] & (res.truth["MAG"] > 17) & (res.truth["MAG"] < 21)]
    x, y = wcs.all_world2pix(t["RA"], t["DEC"], 0)
    sub = data - sep.Background(data).back()
    inside = (x > 10) & (y > 10) & (x < data.shape[1] - 10) & (y < data.shape[0] - 10)
    xw, yw, flag = sep.winpos(sub, x[inside], y[inside], np.full(inside.sum(), 1.8))
    ok = flag == 0
    return np.hypot(xw[ok] - x[inside][ok], yw[ok] - y[inside][ok])


@pytest.mark.skipif(SWARP is None, reason="SWarp not installed")
def test_swarp_with_true_head_puts_stars_at_truth(tmp_path):
    res = simulate_exposure(tmp_path, seed=9, focal_plane=small_focal_plane(4, 256, 256), star_density=20,
                            cosmic_rays=False, defects=False, wcs_offset_arcsec=3.0)
    assert res.true_wcs_path.parent.name == "truth" and not res.path.with_suffix(".head").exists()
    bad = _offsets(tmp_path, res, "guess")
    shutil.copyfile(res.true_wcs_path, res.path.with_suffix(".head"))  # SWarp's default HEADER_SUFFIX
    good = _offsets(tmp_path, res, "true")
    assert len(good) >= 5 and np.median(good) < 0.05  # pixels of the 0.186" output grid
    # first guess: 3" pointing error = 16 px (winpos recentres within a few px, so just "far")
    assert np.median(bad) > 1.0
