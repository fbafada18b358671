"""Simulated exposures for the qualityfits tests (terapix_fw.sim, small CCDs, many stars for the PSF)."""
import numpy as np
import pytest


def _run_qualityfits(tmp_path, image, layers=(), name="qf"):
    from terapix_fw.execute import UnitSpec, execute_unit

    spec = UnitSpec(step=name, unit="1", tool="qualityfits", config_layers=[list(layers)], inputs=[str(image)],
                    outdir=str(tmp_path), log_path=str(tmp_path / f"{name}.log"))
    result = execute_unit(spec)
    assert result.status == "done", result.error + "\n" + (tmp_path / f"{name}.log").read_text()[-3000:]
    return result


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    """4 CCDs of 640x640, seeing 0.8", star-rich, with cosmic rays, defects and a satellite trail."""
    from terapix_fw.sim import simulate_exposure, small_focal_plane

    out = tmp_path_factory.mktemp("sim")
    fp = small_focal_plane(nccd=4, nx=640, ny=640)
    return simulate_exposure(out, seed=3, focal_plane=fp, density=1.0, star_density=30.0, seeing=0.8,
                             satellite=True, nthreads=1)


@pytest.fixture(scope="module")
def assessed(exposure, tmp_path_factory):
    out = tmp_path_factory.mktemp("qf")
    result = _run_qualityfits(out, exposure.path, [("FLAG_NAMES", str(exposure.bpm_path), None),
                                                  ("WEIGHT_NAMES", str(exposure.flat_path), None)])
    return out, result


def _shifted_copy(image, out, dx, dy, fraction):
    """A guiding jump: part of the exposure time with the field shifted by (dx, dy) pixels."""
    from astropy.io import fits

    from terapix_fw.background import estimate_background

    with fits.open(image) as hdul:
        for hdu in hdul[1:]:
            data = hdu.data.astype(np.float32)
            back = estimate_background(data).back
            src = data - back
            moved = np.roll(np.roll(src, dy, axis=0), dx, axis=1)
            hdu.data = (back + (1 - fraction) * src + fraction * moved).astype(np.float32)
        hdul.writeto(out)
    return out


@pytest.fixture
def run_qualityfits():
    return _run_qualityfits


@pytest.fixture
def shifted_copy():
    return _shifted_copy
