"""What a warm process loads before a weightwatcher run (:attr:`WeightWatcherTool.worker_preload`):
the pipeline's fork server for its workers and ``terapix tool-server`` for drop-in runs import this
once, so that a run forked from them starts with numpy, numba, astropy.io.fits, scipy.ndimage, the map
and defect modules and their numba kernels (from numba's cache) already loaded.

Importing this module only loads code; nothing here may fail a run."""
from __future__ import annotations

import astropy.io.fits  # noqa: F401 - the weight and flag maps
import scipy.ndimage  # noqa: F401 - median filter and labels of the defect detection

import terapix_fw.fitsimage  # noqa: F401
from terapix_fw.tool import load_cached_kernels

from . import defects, maps, report  # noqa: F401

__all__: list[str] = []

load_cached_kernels(defects)
