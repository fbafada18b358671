"""What a pipeline worker of the sextractor tool needs before its first unit, imported once by the
process the local executor forks its workers from (:attr:`SExtractorTool.worker_preload`): the
extraction and catalogue modules with the libraries they use (numpy, astropy.io.fits, sep, numba) and
the numba kernels loaded from numba's cache.  About a second of CPU that each worker would otherwise spend
itself.  Not astropy.table: the catalogues are written from the columns (only ASCII_VOTABLE and the
Python API's tables load it, when used).

Importing this module only loads code; nothing here may fail a run (a kernel that cannot load now is
loaded, or its error reported, by the unit that uses it)."""
from __future__ import annotations

import astropy.io.fits  # noqa: F401 - images, LDAC_IMHEAD, the catalogue
import sep  # noqa: F401

from . import catalog, classifier, extraction, paramdefs, run  # noqa: F401
from .measure import warm_up

__all__: list[str] = []

try:
    warm_up()
except Exception:  # noqa: BLE001 - see the module docstring: a unit reports it, not the preload
    pass
