"""What a warm process loads before a swarp run (:attr:`SwarpTool.worker_preload`): the pipeline's
fork server for its workers and ``terapix tool-server`` for drop-in runs import this once, so that a
run forked from them starts with numpy, numba, astropy.io.fits, astropy.wcs and scipy.special, the resampling and
co-addition modules and their numba kernels (from numba's cache) already loaded.

Importing this module only loads code; nothing here may fail a run."""
from __future__ import annotations

import astropy.io.fits  # noqa: F401 - inputs, weights and the co-added image
import astropy.wcs  # noqa: F401 - headers other than TAN/TPV, the output grid
import scipy.special  # noqa: F401 - the chi-squared combinations' bias (gammaln)

from terapix_fw.tool import load_cached_kernels

from . import coadd, combine, grid, inputs, kernels, mapping, resample, swarp  # noqa: F401

__all__: list[str] = []

load_cached_kernels(kernels, combine)
