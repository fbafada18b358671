"""What a warm process loads before a psfex run (:attr:`PSFExTool.worker_preload`): the pipeline's
fork server for its workers and ``terapix tool-server`` for drop-in runs import this once, so that a
run forked from them starts with numpy, numba, astropy.io.fits and astropy.table, scipy.optimize (the Moffat fit), the
LDAC reader, the PSF model and its numba kernels (from numba's cache) already loaded.

Importing this module only loads code; nothing here may fail a run."""
from __future__ import annotations

import astropy.io.fits  # noqa: F401 - the LDAC catalogue and the .psf file
import astropy.table  # noqa: F401 - terapix_fw.ldac.read_ldac returns the objects as a Table
import scipy.optimize  # noqa: F401 - fit_moffat

import terapix_fw.ldac  # noqa: F401
from terapix_fw.tool import load_cached_kernels

from . import psfmodel, report  # noqa: F401

__all__: list[str] = []

load_cached_kernels(psfmodel)
