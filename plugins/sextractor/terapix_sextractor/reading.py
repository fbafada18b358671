"""Reading and memory planning: the extension to process (:class:`ImageSpec`) and the result
(:class:`ExtractionResult`); the pixel planes of one job (image, detection image, weights, flags) and its
header completed by the ``.head`` file; the memory available, the strip plan of an extension too large
for it (:func:`_strip_plan`) and the release of the heap between extensions; CPU time per phase.

Part of :mod:`terapix_sextractor.extraction`, which re-exports the public names."""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["ImageSpec", "ExtractionResult", "BYTES_PER_PIXEL"]


#: peak memory per pixel of one extension (image, background, rms, variance, segmentation, masks)
BYTES_PER_PIXEL = 40


@dataclass
class ImageSpec:
    """One extension to process: the measurement and (optionally) detection pixels with their headers."""

    data: Any
    header: Any
    ext: int = 0
    next: int = 1
    det_data: Any = None
    weight: Any = None  # measurement weight map (as given, interpreted by WEIGHT_TYPE)
    det_weight: Any = None
    flags: list = field(default_factory=list)  # flag maps
    name: str = ""
    #: the arrays were read for this extraction alone: they may be overwritten (interpolated pixels, the
    #: weight map turned into the variance map) instead of copied
    owned: bool = False


class ExtractionResult:
    """The result of one extension: its catalogue, LDAC_IMHEAD header and check images.

    The catalogue is kept as its columns (name -> array with the catalogue's type, in the parameter list's
    order); :attr:`table` is the same catalogue as an astropy Table (SExtractor's units, descriptions and
    TDISP formats; ``meta`` with IMHEAD, EXTENSION and TIMINGS), made when first asked for.  The tool's
    catalogue writers need only the columns, and importing astropy.table (every astropy I/O format with
    it) cost a drop-in run 0.1 s.

    Parameters
    ----------
    table : astropy.table.Table, optional
        The catalogue as a table (else ``columns`` and ``meta`` give it).
    header : astropy.io.fits.Header
        The LDAC_IMHEAD header: the image header and SExtractor's keywords.
    checks : dict, optional
        CHECKIMAGE_TYPE -> array.
    columns : dict, optional
        Column name -> array, in catalogue order.
    meta : dict, optional
        The table's ``meta``.
    """

    def __init__(self, table=None, header=None, checks=None, columns=None, meta=None):
        if table is None and columns is None:
            raise TypeError("ExtractionResult needs a table or columns")
        self._table = table
        self._columns = columns
        self._meta = meta if meta is not None else ({} if table is None else None)
        self.header = header
        self.checks = {} if checks is None else checks

    @property
    def columns(self) -> dict:
        """Column name -> numpy array, in catalogue order (the table's columns when made from a table)."""
        if self._columns is None:
            self._columns = {name: np.asarray(self._table[name]) for name in self._table.colnames}
        return self._columns

    @property
    def meta(self) -> dict:
        """The catalogue's ``meta``: IMHEAD, EXTENSION, TIMINGS (CPU seconds per phase)."""
        return self._meta if self._table is None else self._table.meta

    @property
    def nrows(self) -> int:
        """The number of sources."""
        if self._table is not None:
            return len(self._table)
        return len(next(iter(self._columns.values()))) if self._columns else 0

    @property
    def table(self):
        """The catalogue as an astropy Table, made on first use (see the class)."""
        if self._table is None:
            from .measurement import catalog_table

            self._table = catalog_table(self._columns, self._meta)
        return self._table


def _open(path: str, what: str, lazy: bool = False):
    """The file through the core's FITS reader (every BITPIX, scaling, compression; one-line errors)."""
    from terapix_fw.fitsimage import FitsImage

    return FitsImage(path, what)


_TIMINGS: list = []


def _mark(name):
    """Record the CPU time at the start of a phase (reported in table.meta["TIMINGS"])."""
    _TIMINGS.append((name, time.process_time()))


def _timings():
    return {a[0]: round(b[1] - a[1], 4) for a, b in zip(_TIMINGS[:-1], _TIMINGS[1:])}


def _available_memory():
    """Bytes of memory available to a new process (Linux MemAvailable counts reclaimable page cache,
    which "free" pages do not), or None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _same_shape(a, b, what, path):
    if a is not None and tuple(a.shape) != tuple(b.shape):
        raise ToolError(f"{what} {path} is {a.shape[1]}x{a.shape[0]} but the image is {b.shape[1]}x{b.shape[0]}")


def _read_plane(path, hdu_index, nimage_hdus, what, ref_shape, rows=None):
    """The plane of ``path`` matching image HDU ``hdu_index`` (same HDU in a MEF, else the first image),
    or the one its selector names, as SExtractor reads ``weight.fits[3]``; only ``rows`` = (first, end)
    when given (strip processing)."""
    from terapix_fw.fitsimage import split_selector

    path, selector = split_selector(path)
    with _open(path, what) as img:
        idx = [h.index for h in img.images]
        if selector is not None:
            i = img.select(selector).index
        else:
            i = hdu_index if (len(idx) == nimage_hdus and hdu_index in idx) else idx[0]
        shape = tuple(img.info(i).shape)
        if shape != tuple(ref_shape):
            raise ToolError(f"{what} {path} (HDU {i}) is {shape[1]}x{shape[0]} but the image is "
                            f"{ref_shape[1]}x{ref_shape[0]}")
        # flag maps keep their integer type; weights and images come as float32 (NaN where BLANK/inf)
        data = img.read_native(i, rows) if "FLAG" in what else img.read(i, rows)
    return data


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere.  Looked up in the symbols the process already has
    (``dlopen(NULL)``): ``ctypes.util.find_library`` would run ``/sbin/ldconfig -p`` in a subprocess, a
    fork of this whole process that cost a drop-in run 20-40 ms."""
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _release_heap():
    """Give the memory freed by an extension back to the system.  glibc keeps up to twice its (dynamic,
    up to 32 MB) mmap threshold of freed heap memory for reuse: sep's buffers and the per-object arrays
    of one CCD would otherwise raise the next extension's peak by 30-40 MB."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _job_header(header, job, cfg, rows=None):
    """The extension header completed by its ``.head`` file (HEADER_SUFFIX), with the reference pixel
    moved for a strip of ``rows``."""
    from terapix_fw.headfile import apply_head, read_head_file

    header = header.copy()
    head_path = Path(job["image"]).with_suffix(cfg["HEADER_SUFFIX"])
    if cfg["HEADER_SUFFIX"] and head_path.exists():
        heads = read_head_file(head_path)
        if heads:
            apply_head(header, heads[min(job["ext"] - 1, len(heads) - 1)])
    if rows is not None:
        if "CRPIX2" in header:
            header["CRPIX2"] = header["CRPIX2"] - rows[0]
        header["NAXIS2"] = rows[1] - rows[0]
    return header


def _read_spec(job, cfg, rows=None) -> ImageSpec:
    """The pixels (image, detection image, weights, flags) and header of one job's extension."""
    # lazy: a worker handling extension k of a 36-CCD MEF parses only the headers up to k
    nimg = job["nimg"]
    with _open(job["image"], "image", lazy=True) as img:
        full_shape = tuple(img.info(job["hdu"]).shape)
        data = img.read(job["hdu"], rows)
        header = _job_header(img.header(job["hdu"]), job, cfg, rows)
    det = None
    if job["det"]:
        det = _read_plane(job["det"], job["hdu"], nimg, "detection image", full_shape, rows).astype(np.float32)
    weight = _read_plane(job["weight"], job["hdu"], nimg, "weight image (WEIGHT_IMAGE)", full_shape, rows) \
        if job["weight"] else None
    det_weight = _read_plane(job["det_weight"], job["hdu"], nimg, "detection weight image (WEIGHT_IMAGE)",
                             full_shape, rows) if job["det_weight"] else None
    flags = [_read_plane(p, job["hdu"], nimg, "flag image (FLAG_IMAGE)", full_shape, rows) for p in job["flags"]]
    for f, p in zip(flags, job["flags"]):
        if not np.issubdtype(f.dtype, np.integer):
            raise ToolError(f"flag image (FLAG_IMAGE) {p} holds {f.dtype} pixels; flag maps must be integer")
    return ImageSpec(data, header, job["ext"], job["next"], det, weight, det_weight, flags,
                     name=os.path.basename(job["image"]), owned=True)


def _strip_plan(shape, cfg, path, avail=None):
    """None when the extension fits in memory, else (core height, margin) of horizontal strips: the core
    rows of each strip keep the sources whose centre falls in them; the margins (at least two background
    meshes and 256 rows) give them their full footprint and background context."""
    ny, nx = int(shape[0]), int(shape[1])
    need = ny * nx * BYTES_PER_PIXEL
    avail = _available_memory() if avail is None else avail
    if avail is None or need <= avail:
        return None
    mesh = int(max(cfg["BACK_SIZE"]))
    margin = -(-max(256, 2 * mesh) // mesh) * mesh
    rows = int(0.8 * avail // max(nx * BYTES_PER_PIXEL, 1))
    core = (rows - 2 * margin) // mesh * mesh
    if core < mesh:
        raise ToolError(f"{path}: a {nx}x{ny} extension needs about {need / 2**30:.3g} GiB "
                        f"({BYTES_PER_PIXEL} bytes per pixel) but only {avail / 2**30:.3g} GiB are free, not even "
                        f"enough for strips of {2 * margin + mesh} rows; run on a larger node")
    if any(t != "NONE" for t in cfg["CHECKIMAGE_TYPE"]):
        raise ToolError(f"{path}: a {nx}x{ny} extension needs about {need / 2**30:.3g} GiB, more than the "
                        f"{avail / 2**30:.3g} GiB free: it is processed by strips, which cannot make check "
                        "images; set CHECKIMAGE_TYPE NONE or run on a larger node")
    return core, margin
