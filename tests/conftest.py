"""Shared fixtures of the core tests: small FITS files and the test tools of tests/support."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"
# spawned workers (process pool, Dask) receive the parent's sys.path and PYTHONPATH
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(SUPPORT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("MPLBACKEND", "Agg")


def _registered(module_name: str):
    """Register the tools of tests/support/<module_name>.py for one test, then unregister them."""
    import importlib

    from terapix_fw import plugins

    module = importlib.import_module(module_name)
    pm = plugins.get_plugin_manager()
    pm.register(module, name=module_name)
    plugins._tools.cache_clear()
    try:
        yield module
    finally:
        pm.unregister(module)
        plugins._tools.cache_clear()


@pytest.fixture
def demo_tools():
    """Register the scale/stack test tools for one test."""
    yield from _registered("demo_tools")


@pytest.fixture
def meeting_tools():
    """Register the ``meet`` test tool (two units that must run at the same moment) for one test."""
    yield from _registered("meeting_tools")


@pytest.fixture
def fits_files(tmp_path):
    """Three small 2-extension MEF files with FILTER keywords g, r, r."""
    import numpy as np
    from astropy.io import fits

    raw = tmp_path / "raw"
    raw.mkdir()
    paths = []
    for i, filt in enumerate(["g", "r", "r"]):
        hdus = [fits.PrimaryHDU(header=fits.Header([("FILTER", filt), ("OBJECT", f"F{i % 2}")]))]
        for ccd in range(2):
            hdus.append(fits.ImageHDU(np.full((8, 8), float(10 * i + ccd), dtype=np.float32), name=f"ccd{ccd:02d}"))
        path = raw / f"exp{i}.fits"
        fits.HDUList(hdus).writeto(path)
        paths.append(path)
    return paths


@pytest.fixture
def small_image(tmp_path):
    """A 64x96 MEF with two stars and a TAN WCS (the case of a raw MegaCam cut-out): ``cutout.fits``."""
    import numpy as np
    from astropy.io import fits

    y, x = np.mgrid[:96, :64]
    data = 100.0 + np.random.default_rng(3).normal(0.0, 1.0, (96, 64))
    for x0, y0 in ((20.3, 30.7), (45.1, 70.2)):
        data += 500.0 * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 4.5)
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 32.5, "CRPIX2": 48.5,
                          "CRVAL1": 150.0, "CRVAL2": 2.0, "CD1_1": -5.17e-5, "CD1_2": 0.0, "CD2_1": 0.0,
                          "CD2_2": 5.17e-5, "GAIN": 1.5})
    path = tmp_path / "cutout.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data.astype(np.float32), header)]).writeto(path)
    return path
