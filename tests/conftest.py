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
