"""SExtractor-compatible source extraction on sep.

Python API
----------
>>> from terapix_sextractor import extract                                   # doctest: +SKIP
>>> tables = extract("ccd.fits", config="megacam.sex", params=["X_IMAGE", "FLUX_AUTO", "VIGNET(35,35)"],
...                  DETECT_THRESH=3, PHOT_APERTURES=[3, 4], PHOT_APERUNIT="ARCSEC")  # doctest: +SKIP

``extract`` returns one ``astropy.table.Table`` per image extension, columns named, typed and with units as
SExtractor's, and ``table.meta["IMHEAD"]`` holding the image header plus SExtractor's own keywords
(SEXBKGND, SEXBKDEV, SEXTHLD, SEXGAIN, ...), i.e. exactly what FITS_LDAC writes in LDAC_IMHEAD.
:func:`extract_image` does the same on arrays already in memory.

What follows SExtractor and what differs
-----------------------------------------
* Background: :mod:`terapix_fw.background` (sep's implementation of SExtractor's mesh estimator).
* Detection: sep's Lutz segmentation, deblending and cleaning with the ``.conv`` filter (plain convolution,
  as SExtractor) and a threshold of DETECT_THRESH times the background sigma, or per-pixel sigma when a
  weight map is given.  Deblending of faint pixels is stochastic in SExtractor; small differences at the
  faint end are expected.
* Photometry (numba kernels in :mod:`measure`, following ``photom.c`` and ``growth.c``): neighbours'
  pixels, bad pixels and, as SExtractor blanks every detected pixel, those of detections too small to
  be objects (:func:`~terapix_sextractor.measure.blanked_pixels`) are replaced by the pixel mirrored
  through the centre (MASK_TYPE CORRECT);
  FLUX_APER sub-samples edge pixels 5x5; FLUX_AUTO sums whole pixels in the ellipse of KRON_RADIUS =
  max(2.5 r1, 3.5) (PHOT_AUTOPARAMS) isophotal radii, r1 from ``sep.kron_radius`` within 6 radii;
  FLUX_PETRO where the annulus/inner surface-brightness ratio falls below 0.2; FLUX_RADIUS from a 64-bin
  growth curve out to 6 A normalised by FLUX_AUTO.  Errors are sqrt(sum var + F/GAIN); magnitudes
  MAG_ZEROPOINT - 2.5 log10 F (99 for F <= 0), magnitude errors 1.086 dF/F.
* Windowed quantities, FWHM_IMAGE, ISO0..7 and CLASS_STAR follow ``winpos.c`` and ``analyse.c``.
* BACKPHOTO_TYPE LOCAL: the local background is the median of the object-free pixels of a circular
  annulus of thickness BACKPHOTO_THICK outside the Kron ellipse (SExtractor uses a rectangular annulus
  around the isophote and a clipped mode).
* WEIGHT_GAIN is not modelled (the gain is constant over the image).
* Cores: the extensions of a MEF go to worker processes; a single image with NTHREADS > 1 is read and
  detected in a forked process (sep holds the GIL) while this one loads the numba kernels, WCS and
  tables, then measured by threads here (:func:`_overlapped_job`; the catalogue is the serial one).
* Memory: an extension is held in memory whole when it fits (at most about 40 bytes per pixel); one that
  does not (a 19354x19354 stack on a small node) is processed by horizontal strips with overlapping
  margins (:func:`_run_strips`); one that cannot even be cut into strips is refused before any work.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terapix_fw.errors import ConfigError, ToolError

from .paramfile import CatalogParam

__all__ = ["extract", "extract_image", "resolve_config", "resolve_params", "ImageSpec", "ExtractionResult",
           "BYTES_PER_PIXEL"]

#: peak memory per pixel of one extension (image, background, rms, variance, segmentation, masks)
BYTES_PER_PIXEL = 40

_SEP_FLAG_MERGED = 1  # sep OBJ_MERGED
_SEP_FLAG_TRUNC = 2
_SEP_FLAG_DOVERFLOW = 4


# --------------------------------------------------------------------------------------------------------
# configuration

def resolve_config(config=None, **overrides):
    """A validated :class:`terapix_fw.params.Config` from a ``.sex`` path, a mapping, a Config, or None,
    with keyword overrides applied on top (command-line precedence)."""
    from terapix_fw.config import read_config_file
    from terapix_fw.params import Config

    from .tool import SExtractorTool

    params = SExtractorTool.parameter_set()
    layers = []
    if isinstance(config, Config) and not overrides:
        return config
    if isinstance(config, Config):
        layers.append([(k, v, "<api>") for k, v in config.items()])
    elif isinstance(config, (str, Path)):
        layers.append(read_config_file(config))
    elif isinstance(config, dict):
        layers.append([(k, v, "<api>") for k, v in config.items()])
    elif config is not None:
        raise TypeError(f"config must be a .sex path, a mapping or a Config, not {type(config).__name__}")
    if overrides:
        layers.append([(k, v, "<api>") for k, v in overrides.items()])
    return params.resolve(*layers)


def check_supported(cfg) -> None:
    """Refuse, before any work, the settings this implementation does not provide (rather than
    silently ignoring them)."""
    unsupported = {
        "DETECT_TYPE": ("PHOTO", "photographic-plate (PHOTO) detection"),
        "DGEO_TYPE": ("PIXEL", "differential geometry maps"),
        "CATALOG_TYPE": ("ASCII_SKYCAT", "the SkyCat catalogue format"),
    }
    for key, (value, what) in unsupported.items():
        if cfg[key] == value:
            where = cfg.sources.get(key) if hasattr(cfg, "sources") else None
            raise ConfigError(f"{key} {value}: {what} is not supported by terapix-fw sextractor", where, key)


def resolve_params(params, config) -> list[CatalogParam]:
    """The catalogue columns: a list of names (``"MAG_APER(2)"`` allowed), a ``.param`` path, or None
    (the file PARAMETERS_NAME if it exists, else :data:`paramfile.DEFAULT_PARAMS`)."""
    from .paramfile import DEFAULT_PARAMS, parse_param_text, read_param_file

    if params is None:
        name = config["PARAMETERS_NAME"]
        if Path(name).exists():
            return read_param_file(name)
        if name != "default.param":
            raise ConfigError(f"cannot open catalogue parameter file {name}", "PARAMETERS_NAME", "PARAMETERS_NAME")
        return parse_param_text("\n".join(DEFAULT_PARAMS), "<default parameters>")
    if isinstance(params, (str, Path)) and not isinstance(params, str) or (
            isinstance(params, str) and "\n" not in params and Path(params).exists()):
        return read_param_file(params)
    if isinstance(params, str):
        return parse_param_text(params, "<params>")
    if params and isinstance(params[0], CatalogParam):
        return list(params)
    return parse_param_text("\n".join(params), "<params>")


# --------------------------------------------------------------------------------------------------------
# inputs

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


@dataclass
class ExtractionResult:
    table: Any
    header: Any  # LDAC_IMHEAD header: image header + SExtractor keywords
    checks: dict = field(default_factory=dict)  # CHECKIMAGE_TYPE -> array


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


# --------------------------------------------------------------------------------------------------------
# main entry points

def extract(image_path, config=None, params=None, detection_path=None, weight_path=None, flag_path=None,
            det_weight_path=None, extensions=None, nthreads=None, **overrides):
    """Extract sources from a FITS image (all image extensions of a MEF) like SExtractor.

    Parameters
    ----------
    image_path : measurement image.
    config : ``.sex`` file, mapping of keywords, or :class:`~terapix_fw.params.Config`.
    params : catalogue columns (list of names, ``.param`` file); see :func:`resolve_params`.
    detection_path : detection image for dual-image mode (SExtractor's ``DET,MEAS`` form).
    weight_path, det_weight_path, flag_path : override WEIGHT_IMAGE / FLAG_IMAGE (else taken from the
        configuration when WEIGHT_TYPE is not NONE and when IMAFLAGS_ISO is requested).
    extensions : restrict to these 0-based HDU indices.
    nthreads : parallel workers over extensions (default NTHREADS; 0 = all cores).
    overrides : any SExtractor keyword, e.g. ``DETECT_THRESH=3``.

    Returns
    -------
    list of astropy Tables, one per extension, with ``meta["IMHEAD"]`` (the LDAC_IMHEAD header),
    ``meta["EXTENSION"]`` (the 1-based image extension number, FITSEXT) and ``meta["TIMINGS"]`` (CPU
    seconds per phase).
    """
    return [r.table for r in extract_results(image_path, config, params, detection_path, weight_path,
                                             flag_path, det_weight_path, extensions, nthreads, **overrides)]


def extract_results(image_path, config=None, params=None, detection_path=None, weight_path=None,
                    flag_path=None, det_weight_path=None, extensions=None, nthreads=None,
                    **overrides) -> list[ExtractionResult]:
    """As :func:`extract`, returning :class:`ExtractionResult` (table, LDAC header, check images)."""
    cfg = resolve_config(config, **overrides)
    check_supported(cfg)
    plist = resolve_params(params, cfg)
    image_path = str(image_path)
    wtypes = list(cfg["WEIGHT_TYPE"])
    wnames = list(cfg["WEIGHT_IMAGE"])
    dual = detection_path is not None and str(detection_path) != image_path
    # SExtractor: WEIGHT_TYPE/WEIGHT_IMAGE take <detection>[,<measurement>]
    wtype_d = wtypes[0]
    wtype_m = wtypes[1] if len(wtypes) > 1 else wtypes[0]
    if not dual and len(wtypes) > 1:
        wtype_d = wtype_m = wtypes[0]
    if wtype_m != "NONE" and wtype_m != "BACKGROUND" and weight_path is None:
        weight_path = wnames[-1] if dual else wnames[0]
    if dual and wtype_d not in ("NONE", "BACKGROUND") and det_weight_path is None:
        det_weight_path = wnames[0]
    if not dual:
        det_weight_path = None
    want = {p.name for p in plist}
    if flag_path is None and ("IMAFLAGS_ISO" in want or "NIMAFLAGS_ISO" in want):
        flag_path = list(cfg["FLAG_IMAGE"])
    if isinstance(flag_path, (str, Path)):
        flag_path = [flag_path]
    flag_path = [str(p) for p in (flag_path or []) if str(p)]

    with _open(image_path, "image") as img:
        indices = [h.index for h in img.images]
        shapes = {h.index: h.shape for h in img.images}
    if extensions is not None:
        bad = [e for e in extensions if e not in shapes]
        if bad:
            raise ToolError(f"{image_path}: HDU(s) {bad} are not image extensions; image HDUs are {indices}")
        indices = list(extensions)
    plans = {i: _strip_plan(shapes[i], cfg, image_path) for i in indices}
    nimg = len(shapes)
    jobs = [dict(image=image_path, hdu=i, ext=k + 1, next=len(indices), nimg=nimg, strips=plans[i],
                 shape=tuple(shapes[i]), det=str(detection_path) if dual else None,
                 weight=str(weight_path) if weight_path else None,
                 det_weight=str(det_weight_path) if det_weight_path else None, flags=flag_path,
                 wtype_m=wtype_m, wtype_d=wtype_d)
            for k, i in enumerate(indices)]
    workers = nthreads if nthreads is not None else cfg["NTHREADS"]
    if not workers:
        workers = os.cpu_count() or 1
    requested = max(1, int(workers))
    workers = max(1, min(requested, len(jobs)))
    avail = _available_memory()
    if any(plans.values()):
        workers = 1  # strips already use the memory there is
    elif avail is not None and workers > 1:  # keep the parallel extensions within the free memory
        need = max(int(shapes[i][0]) * int(shapes[i][1]) for i in indices) * BYTES_PER_PIXEL
        workers = max(1, min(workers, int(avail // max(need, 1))))
    if len(jobs) == 1:  # one image: its objects are measured by several threads instead
        jobs[0]["inner_threads"] = requested
    if workers == 1:
        return [_run_job(job, cfg, plist) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    if ctx is not None:
        _warm_up()  # load the numba functions once; forked workers inherit them
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(_run_job, jobs, [cfg] * len(jobs), [plist] * len(jobs)))


def _warm_up():
    """Load every numba kernel (from numba's cache) before forking workers or while another process
    detects."""
    from .measure import warm_up

    warm_up()


def _read_plane(path, hdu_index, nimage_hdus, what, ref_shape, rows=None):
    """The plane of ``path`` matching image HDU ``hdu_index`` (same HDU in a MEF, else the first image);
    only ``rows`` = (first, end) when given (strip processing)."""
    with _open(path, what) as img:
        idx = [h.index for h in img.images]
        i = hdu_index if (len(idx) == nimage_hdus and hdu_index in idx) else idx[0]
        shape = tuple(img.info(i).shape)
        if shape != tuple(ref_shape):
            raise ToolError(f"{what} {path} (HDU {i}) is {shape[1]}x{shape[0]} but the image is "
                            f"{ref_shape[1]}x{ref_shape[0]}")
        # flag maps keep their integer type; weights and images come as float32 (NaN where BLANK/inf)
        data = img.read_native(i, rows) if "FLAG" in what else img.read(i, rows)
    return data


def _run_job(job, cfg, plist) -> ExtractionResult:
    try:
        if job.get("strips"):
            return _run_strips(job, cfg, plist)
        if _can_overlap(job, cfg):
            return _overlapped_job(job, cfg, plist)
        return _run_rows(job, cfg, plist)
    finally:
        _release_heap()


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere."""
    try:
        import ctypes
        import ctypes.util

        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _release_heap():
    """Give the memory freed by an extension back to the system.  glibc keeps up to twice its (dynamic,
    up to 32 MB) mmap threshold of freed heap memory for reuse: sep's buffers and the per-object arrays
    of one CCD would otherwise raise the next extension's peak by 30-40 MB."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _run_rows(job, cfg, plist, rows=None) -> ExtractionResult:
    """Extract one extension, or only its image rows ``rows`` = (first, end) (strip processing: the WCS
    reference pixel is moved so that world coordinates stay right; pixel coordinates are the strip's)."""
    return extract_image(_read_spec(job, cfg, rows), cfg, plist, wtype_m=job["wtype_m"], wtype_d=job["wtype_d"],
                         nthreads=job.get("inner_threads", 1))


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


def _read_and_detect(job, cfg, want):
    """Read and detect (the child's half of :func:`_overlapped_job`): the image spec without its pixel
    planes (the detection result carries what the measurements need) and the portable detection."""
    _TIMINGS.clear()
    spec = _read_spec(job, cfg)
    det = _detect(spec, cfg, job["wtype_m"], job["wtype_d"])
    _mark("isophotal (detecting process)")
    det.pre = _precompute(det, cfg, want)
    spec.data = spec.det_data = spec.weight = spec.det_weight = None
    return spec, det.portable()


#: largest extension (pixels) whose detection runs in a forked process (its arrays go through /dev/shm)
OVERLAP_MAX_PIXELS = 64_000_000


def _can_overlap(job, cfg) -> bool:
    """One extension measured by several threads can also have its detection overlap the loading of
    the measurement code (:func:`_overlapped_job`); not for check images (they need the background
    maps) nor very large images (their arrays would be copied through shared memory)."""
    from terapix_fw.forked import can_fork

    return (job.get("inner_threads", 1) > 1 and not job.get("strips") and can_fork()
            and all(t == "NONE" for t in cfg["CHECKIMAGE_TYPE"])
            and job["shape"][0] * job["shape"][1] <= OVERLAP_MAX_PIXELS)


def _overlapped_job(job, cfg, plist) -> ExtractionResult:
    """One extension on several cores.  sep holds the GIL, so detection runs in a forked process
    (:class:`~terapix_fw.forked.ForkedCall`) while this one loads the numba kernels, the WCS,
    astropy tables and the classifier; the measurements then run in threads here.  The catalogue is
    the one :func:`extract_image` gives."""
    from terapix_fw.forked import ForkedCall

    ny, nx = job["shape"]
    _TIMINGS.clear()
    want = {p.name for p in plist}
    child = ForkedCall(_read_and_detect, job, cfg, want, nbytes=ny * nx * 16)
    try:
        _warm_up()
        wcs = False
        if _wants_world(want) or cfg["PIXEL_SCALE"] == 0:
            with _open(job["image"], "image", lazy=True) as img:
                header = _job_header(img.header(job["hdu"]), job, cfg)
            # the pixel scale must be known before measuring; world coordinates only at the end: then
            # astropy.wcs loads in a thread while the child detects and the measurement kernels (which
            # release the GIL) run, instead of before them
            where = f"image {job['image']} extension {job['ext']}"
            wcs = _wcs(header, where) if cfg["PIXEL_SCALE"] == 0 else _in_thread(_wcs, header, where)
        import astropy.table  # noqa: F401 - loaded while the child detects

        from . import classifier, paramdefs  # noqa: F401
        spec, det = child.result()
    finally:
        child.close()
    return _measure_detected(det.restored(), spec, cfg, plist, job["inner_threads"], wcs=wcs)


_Y_COLUMNS = ("Y_IMAGE", "YWIN_IMAGE", "YPEAK_IMAGE", "YMIN_IMAGE", "YMAX_IMAGE")


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


def _run_strips(job, cfg, plist) -> ExtractionResult:
    """Extract an extension too large for memory by horizontal strips (see :func:`_strip_plan`).

    Sources larger than the margin are cut at the strip edge (and flagged truncated); background meshes
    are estimated per strip, on rows aligned with the full image's meshes."""
    from astropy.table import vstack

    core, margin = job["strips"]
    ny = job["shape"][0]
    want_y = any(p.name == "Y_IMAGE" for p in plist)
    plist_y = plist if want_y else list(plist) + [CatalogParam("Y_IMAGE")]
    tables, headers = [], []
    for y0 in range(0, ny, core):
        y1 = min(y0 + core, ny)
        r0, r1 = max(0, y0 - margin), min(ny, y1 + margin)
        res = _run_rows(job, cfg, plist_y, rows=(r0, r1))
        t = res.table
        yc = np.asarray(t["Y_IMAGE"], dtype=np.float64) - 1 + r0  # 0-based, full image
        t = t[(yc >= y0 - 0.5) & (yc < y1 - 0.5) | ((y1 == ny) & (yc >= y0 - 0.5))]
        for name in _Y_COLUMNS:
            if name in t.colnames:
                t[name] = t[name] + r0
        tables.append(t)
        headers.append(res.header)
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    if "NUMBER" in table.colnames:
        table["NUMBER"] = np.arange(1, len(table) + 1, dtype=np.int32)
    if not want_y:
        table.remove_column("Y_IMAGE")
    # the LDAC header: the extension's own header with SExtractor's keywords (sums and medians over strips)
    with _open(job["image"], "image", lazy=True) as img:
        imhead = img.header(job["hdu"])
    imhead.pop("XTENSION", None)
    for card in headers[0].cards:
        if card.keyword.startswith("SEX") or card.keyword.startswith("FITS"):
            imhead[card.keyword] = (card.value, card.comment)
    for key in ("SEXBKGND", "SEXBKDEV", "SEXTHLD", "SEXATHLD"):
        imhead[key] = float(np.median([h[key] for h in headers]))
    imhead["SEXNDET"] = int(sum(h["SEXNDET"] for h in headers))
    imhead["SEXNFIN"] = len(table)
    imhead["SEXSTRIP"] = (core, "terapix-fw: rows per strip (image too large for memory)")
    table.meta = {"IMHEAD": imhead, "EXTENSION": job["ext"]}
    return ExtractionResult(table, imhead, {})


# --------------------------------------------------------------------------------------------------------
# one extension

def _variance_from_weight(weight, wtype, thresh, inplace=False):
    """(variance map or None, bad-pixel mask) for a weight map of WEIGHT_TYPE ``wtype``.

    With ``inplace`` a float32 ``weight`` becomes the variance map (no second image-sized array); the
    values are those of the out-of-place formulas, bit for bit (the same float32 operations)."""
    w = np.asarray(weight, dtype=np.float32)
    if not (inplace and w is weight and w.flags.writeable):
        w = w.copy()
    if wtype == "MAP_WEIGHT":
        t = 0.0 if thresh is None else thresh
        bad = ~(w > t)
        np.divide(np.float32(1.0), w, out=w, where=~bad)
    elif wtype == "MAP_VAR":
        bad = ~np.isfinite(w) | (w >= (1e30 if thresh is None else thresh)) | (w <= 0)
    elif wtype == "MAP_RMS":
        bad = ~np.isfinite(w) | (w >= (1e15 if thresh is None else thresh)) | (w <= 0)
        np.square(w, out=w, where=~bad)
    else:
        raise ConfigError(f"bad WEIGHT_TYPE {wtype}", "WEIGHT_TYPE", "WEIGHT_TYPE")
    w[bad] = np.float32(1e30)
    return w, bad


def _runs_back(flat, along, length):
    """For bad pixels given by sorted flat indices ``flat`` (row-major along the axis walked) and their
    coordinate ``along`` that axis: the coordinate of the last good pixel before each one (-1 if none),
    i.e. the pixel before the start of its run of consecutive bad pixels."""
    start = np.ones(len(flat), bool)
    start[1:] = (flat[1:] != flat[:-1] + 1)
    start |= along == 0  # a run never continues across lines
    first = np.maximum.accumulate(np.where(start, np.arange(len(flat)), 0))
    return along[first] - 1


def _interpolate_bad(data, var, bad, maxxlag, maxylag, inplace=False, data_too=True):
    """SExtractor's zero-weight interpolation (INTERP_TYPE, ``interpolate.c``): a bad pixel takes the value
    (and variance) of the last good pixel before it on its line if within INTERP_MAXXLAG, else of the last
    good pixel below it in its column if within INTERP_MAXYLAG.  Returns (data, var, filled mask).

    Works on the list of bad pixels only (a few percent of a CCD: bad columns, saturated or cosmic-ray
    pixels set to zero weight), never on image-sized index arrays; ``inplace`` fills ``data`` and ``var``
    themselves (their good pixels, the only sources, are not changed); ``data_too`` False leaves the
    data as it is (INTERP_TYPE VAR_ONLY)."""
    ny, nx = bad.shape
    out = data if inplace or not data_too else data.copy()
    vout = var if inplace else var.copy()
    flat = np.flatnonzero(bad)
    yy, xx = np.divmod(flat, nx)
    lastx = _runs_back(flat, xx, nx)
    okx = (lastx >= 0) & (xx - lastx <= maxxlag)
    # the same along columns: bad pixels in column-major order
    order = np.lexsort((yy, xx))
    lasty = np.empty_like(yy)
    lasty[order] = _runs_back(xx[order] * ny + yy[order], yy[order], ny)
    oky = ~okx & (lasty >= 0) & (yy - lasty <= maxylag)
    sy, sx = yy[okx], lastx[okx]
    ty, tx = yy[oky], xx[oky]
    ly = lasty[oky]
    if data_too:
        vals_x, vals_y = data[sy, sx], data[ly, tx]
        out[yy[okx], xx[okx]] = vals_x
        out[ty, tx] = vals_y
    vx, vy = var[sy, sx], var[ly, tx]
    vout[yy[okx], xx[okx]] = vx
    vout[ty, tx] = vy
    filled = np.zeros(bad.shape, bool)
    filled.ravel()[flat[okx | oky]] = True
    return out, vout, filled


def _every_nth(values, select, step, block=256):
    """``values[select][::step]`` without the image-sized copy of ``values[select]``: by blocks of rows,
    keeping the phase of the global sequence."""
    parts, seen = [], 0
    for y0 in range(0, values.shape[0], block):
        v = values[y0:y0 + block][select[y0:y0 + block]]
        first = (-seen) % step
        parts.append(v[first::step])
        seen += len(v)
    return np.concatenate(parts) if parts else values[:0].ravel()


def _thresholds(cfg, key, sigma, zp, pixscale):
    """Absolute threshold (ADU) or relative (sigmas) for DETECT_THRESH/ANALYSIS_THRESH; ``pixscale()``
    gives the pixel scale, needed (and evaluated) only for thresholds in mag/arcsec^2."""
    values = cfg[key]
    ttype = cfg["THRESH_TYPE"]
    kind = ttype[0] if key == "DETECT_THRESH" or len(ttype) == 1 else ttype[1]
    if len(values) == 2:  # <mu>,<ZP> in mag/arcsec^2 -> absolute ADU per pixel
        mu, zpt = values
        return 10 ** (-0.4 * (mu - zpt)) * pixscale() ** 2, False
    return float(values[0]), kind == "RELATIVE"


def _pixel_scale(cfg, wcs, header):
    if cfg["PIXEL_SCALE"] > 0:
        return float(cfg["PIXEL_SCALE"])
    if wcs is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales
        return float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs)))) * 3600.0
    return 1.0


def _in_thread(fn, *args):
    """``fn(*args)`` started in a thread; the returned Future is resolved where the value is used."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="sextractor-wcs")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _wcs(header, where="image"):
    """The celestial WCS, None without one; a header whose WCS is broken (latitude outside [-90, 90],
    singular CD matrix, unknown projection) is an error naming the keyword: world coordinates computed
    from it would be a plausible-looking wrong catalogue."""
    from terapix_fw.wcsutil import wcs_problem

    problem = wcs_problem(header)
    if problem:
        raise ToolError(f"{where}: broken WCS: {problem}; world coordinates (and PIXEL_SCALE 0) need a valid "
                        "one: fix the header (or a .head file), or ask only for pixel columns with PIXEL_SCALE > 0")
    try:
        from astropy.wcs import WCS, FITSFixedWarning
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(header, naxis=2)
        return w if w.has_celestial else None
    except Exception:  # noqa: BLE001 - a broken WCS only disables world coordinates, as in SExtractor
        return None


def extract_image(spec: ImageSpec, cfg, plist: list[CatalogParam], wtype_m: str = "NONE",
                  wtype_d: str = "NONE", nthreads: int = 1) -> ExtractionResult:
    """Detect and measure sources in one extension (arrays in memory).  See :func:`extract`.

    ``nthreads`` threads share the per-object measurements (useful for one large image; a MEF is
    parallelised over extensions instead)."""
    _TIMINGS.clear()
    det = _detect(spec, cfg, wtype_m, wtype_d)
    if spec.owned:  # the detection holds what is still needed; the raw planes can go as soon as it lets them
        spec.data = spec.det_data = spec.weight = spec.det_weight = None
    return _measure_detected(det, spec, cfg, plist, nthreads)


@dataclass
class _Detected:
    """What detection leaves for the measurements: background-subtracted images, variance and bad-pixel
    maps, backgrounds, the detected objects with their segmentation map, thresholds and photometric
    constants.  Picklable (it crosses a process boundary in :func:`_overlapped_job`) once the
    backgrounds keep only their scalars (:meth:`portable`)."""

    t0: float
    header: Any
    data: Any
    sub_m: Any
    sub_d: Any
    var_m: Any
    bad_m: Any
    zero_m: Any
    bkg_m: Any
    bkg_d: Any
    kernel: Any
    objs: Any
    seg: Any
    ndetect: int
    gain: float
    satur: float
    zp: float
    thresholds: tuple  # athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu
    sigfac_m: float
    sigfac_d: float
    var_d: Any = None  # detection variance map, when the detection image is another one
    timings: dict = field(default_factory=dict)  # CPU seconds per phase spent in another process
    pre: dict = field(default_factory=dict)  # measurements already made (:func:`_precompute`)

    def portable(self) -> "_Detected":
        """A copy to send to another process: backgrounds reduced to their scalars (sep's background object
        cannot be pickled; only check images need the maps, and those runs are not split across
        processes), arrays the measurements no longer need left out."""
        from dataclasses import replace

        from terapix_fw.background import BackgroundMap

        def scalars(b):
            return BackgroundMap(global_back=b.global_back, global_rms=b.global_rms, back_size=b.back_size,
                                 filter_size=b.filter_size, shape=b.shape)
        same = self.bkg_d is self.bkg_m
        bkg_m = scalars(self.bkg_m)
        _mark("measurements")
        # the raw image is only needed for the background at the objects (in ``pre`` by then)
        return replace(self, data=None if "background" in self.pre else self.data,
                       bkg_m=bkg_m, bkg_d=bkg_m if same else scalars(self.bkg_d),
                       sub_d=None if self.sub_d is self.sub_m else self.sub_d, timings=_timings())

    def restored(self) -> "_Detected":
        """Undo the sharing shortcuts of :meth:`portable` (the detection image is the measurement one)."""
        if self.sub_d is None:
            self.sub_d = self.sub_m
        return self


def _detect(spec: ImageSpec, cfg, wtype_m, wtype_d) -> _Detected:
    """Weights, background, thresholds and detection of one extension (the first half of
    :func:`extract_image`)."""
    import sep
    from astropy.io import fits

    from terapix_fw.background import as_sep_array, estimate_background

    t0 = time.time()
    _mark("read")
    header = spec.header if spec.header is not None else fits.Header()
    data = as_sep_array(spec.data)
    if data.ndim != 2:
        raise ToolError(f"{spec.name}: extension {spec.ext} is not a 2-D image (shape {data.shape})")
    dual = spec.det_data is not None
    ddata = as_sep_array(spec.det_data) if dual else data
    ny, nx = data.shape
    # header values override the configuration (SExtractor's *_KEY); one that is not a number, or a
    # negative gain / non-positive saturation level, is an error naming it (GAIN 0 means infinite gain,
    # as SExtractor's GAIN 0)
    from terapix_fw.fitsimage import header_number

    where = f"image {spec.name} extension {spec.ext}"
    gain = header_number(header, cfg["GAIN_KEY"], where, cfg["GAIN"], positive=True, allow_zero=True)
    satur = header_number(header, cfg["SATUR_KEY"], where, cfg["SATUR_LEVEL"], positive=True)
    zp = header_number(header, cfg["MAG_ZEROPOINT_KEY"], where, cfg["MAG_ZEROPOINT"])
    wthresh = list(cfg["WEIGHT_THRESH"])

    _mark("weights")
    # ---- weights -> variance maps and bad-pixel masks
    def weights(wtype, w, which):
        if wtype in ("NONE", "BACKGROUND") or w is None:
            if wtype not in ("NONE", "BACKGROUND"):
                raise ToolError(f"WEIGHT_TYPE {wtype} needs a WEIGHT_IMAGE for the {which} image")
            return None, None
        t = wthresh[0 if which == "detection" or len(wthresh) == 1 else 1] if wthresh else None
        return _variance_from_weight(w, wtype, t, inplace=spec.owned)

    var_m, bad_m = weights(wtype_m, spec.weight, "measurement")
    if dual:
        var_d, bad_d = weights(wtype_d, spec.det_weight, "detection")
    else:
        var_d, bad_d = var_m, bad_m
    # zero-weight pixels: remember them for FLAGS_WEIGHT, then interpolate them as SExtractor does
    zero_m = None if bad_m is None else np.flatnonzero(bad_m)  # few: kept as a list of pixels
    itypes = list(cfg["INTERP_TYPE"])
    xlags, ylags = list(cfg["INTERP_MAXXLAG"]), list(cfg["INTERP_MAXYLAG"])

    def interp(img, var, bad, k):
        itype = itypes[min(k, len(itypes) - 1)]
        if bad is None or itype == "NONE" or not bad.any():
            return img, var, bad
        # the variance map is always this extraction's own (made from the weight map)
        img_i, var_i, filled = _interpolate_bad(img, var, bad, xlags[min(k, len(xlags) - 1)],
                                                ylags[min(k, len(ylags) - 1)], inplace=spec.owned,
                                                data_too=itype != "VAR_ONLY")
        if itype == "VAR_ONLY":
            return img, var_i, bad
        return img_i, var_i, bad & ~filled

    if dual:
        ddata, var_d, bad_d = interp(ddata, var_d, bad_d, 0)
        data, var_m, bad_m = interp(data, var_m, bad_m, 1)
    else:
        data, var_m, bad_m = interp(data, var_m, bad_m, 0)
        ddata, var_d, bad_d = data, var_m, bad_m
    nonfinite = ~np.isfinite(data)
    if nonfinite.any():
        bad_m = nonfinite if bad_m is None else (bad_m | nonfinite)
        if not (spec.owned and data.flags.writeable):
            data = data.copy()
        data[nonfinite] = 0
        if not dual:
            bad_d = bad_m
            ddata = data
    del nonfinite  # an image-sized mask not to keep through the detection

    _mark("background")
    # ---- background
    btypes, bvalues = list(cfg["BACK_TYPE"]), list(cfg["BACK_VALUE"])
    bk_kw = dict(back_size=cfg["BACK_SIZE"], filter_size=cfg["BACK_FILTERSIZE"],
                 filter_thresh=cfg["BACK_FILTTHRESH"])
    def background(img, mask, btype, bvalue):
        try:
            return estimate_background(img, mask=mask, back_type=btype, back_value=bvalue, **bk_kw)
        except ValueError as exc:
            if mask is None or not np.all(mask):
                raise ToolError(f"{spec.name}[{spec.ext}]: {exc}") from None
            # every pixel masked (an all-NaN CCD, a dead amplifier): nothing to detect, an empty catalogue
            # for this extension as SExtractor gives, not a failed exposure
            logging.getLogger("terapix").warning("%s[%s]: every pixel is masked (NaN, inf or zero weight): "
                                                 "no source can be detected", spec.name, spec.ext)
            return estimate_background(np.zeros_like(img), back_type="MANUAL", back_value=0.0, **bk_kw)

    bkg_m = background(data, bad_m, btypes[-1] if dual else btypes[0], bvalues[-1] if dual else bvalues[0])
    bkg_d = background(ddata, bad_d, btypes[0], bvalues[0]) if dual else bkg_m

    def rescale(var, bad, bkg, which):
        if var is None:
            return None, 0.0
        good = ~bad
        if not good.any():
            raise ToolError(f"{spec.name}[{spec.ext}]: every pixel of the {which} weight map is bad")
        sigfac = 1.0
        rescale_flags = list(cfg["RESCALE_WEIGHTS"])
        if rescale_flags[0 if which == "detection" or len(rescale_flags) == 1 else 1]:
            med = float(np.median(_every_nth(var, good, max(1, int(good.sum()) // 1000000))))
            if med > 0:
                sigfac = bkg.global_rms / math.sqrt(med)
                np.multiply(var, np.float32(sigfac * sigfac), out=var, where=good)
        return var, sigfac

    var_m, sigfac_m = rescale(var_m, bad_m, bkg_m, "measurement")
    if dual:
        var_d, sigfac_d = rescale(var_d, bad_d, bkg_d, "detection")
    else:
        var_d, sigfac_d = var_m, sigfac_m
    if wtype_m == "BACKGROUND":
        var_m = (bkg_m.rms * bkg_m.rms).astype(np.float32)
    if wtype_d == "BACKGROUND":
        var_d = (bkg_d.rms * bkg_d.rms).astype(np.float32) if dual else var_m

    sub_m = bkg_m.subtract_from(data)
    sub_d = bkg_d.subtract_from(ddata) if dual else sub_m
    if bad_m is not None:
        sub_m[bad_m] = 0
    if dual and bad_d is not None:
        sub_d[bad_d] = 0

    _mark("thresholds")
    # ---- thresholds
    def pixscale():
        return _pixel_scale(cfg, _wcs(header, f"image {spec.name} extension {spec.ext}")
                            if cfg["PIXEL_SCALE"] == 0 else None, header)

    dthresh, d_rel = _thresholds(cfg, "DETECT_THRESH", bkg_d.global_rms, zp, pixscale)
    athresh, a_rel = _thresholds(cfg, "ANALYSIS_THRESH", bkg_m.global_rms, zp, pixscale)
    dthresh_adu = dthresh * bkg_d.global_rms if d_rel else dthresh
    athresh_adu = athresh * bkg_m.global_rms if a_rel else athresh

    _mark("detection")
    # ---- detection
    kernel = None
    if cfg["FILTER"]:
        from .filters import read_filter
        kernel = read_filter(cfg["FILTER_NAME"])
    sep.set_sub_object_limit(int(max(1024, cfg["MEMORY_OBJSTACK"])))
    ext_kw = dict(minarea=cfg["DETECT_MINAREA"], filter_kernel=kernel, filter_type="conv",
                  deblend_nthresh=cfg["DEBLEND_NTHRESH"], deblend_cont=cfg["DEBLEND_MINCONT"],
                  clean=cfg["CLEAN"], clean_param=cfg["CLEAN_PARAM"], segmentation_map=True)
    # sep initialises its whole pixel stack at every call (1e6 pixels: ~40 MB written, 0.05 s on a
    # 2048x4612 CCD): start at MEMORY_PIXSTACK (SExtractor's 300000 by default) and enlarge it only when
    # an image needs more, instead of failing as SExtractor does
    pixstack = int(cfg["MEMORY_PIXSTACK"])
    while True:
        sep.set_extract_pixstack(min(pixstack, nx * ny + 1000))
        try:
            if d_rel and var_d is not None:
                objs, seg = sep.extract(sub_d, dthresh, var=var_d, mask=bad_d, **ext_kw)
            else:
                objs, seg = sep.extract(sub_d, dthresh_adu, mask=bad_d, **ext_kw)
            break
        except Exception as exc:  # sep raises a bare Exception on buffer overflows
            if "pixel buffer full" in str(exc) and pixstack < nx * ny:
                pixstack *= 8
                continue
            raise ToolError(f"{spec.name}[{spec.ext}]: detection failed: {exc} (raise MEMORY_PIXSTACK / "
                            "MEMORY_OBJSTACK)") from None
    ndetect = len(objs)
    if cfg["DETECT_MAXAREA"] > 0 and len(objs):
        keep = objs["npix"] <= cfg["DETECT_MAXAREA"]
        if not keep.all():
            old_ids = np.nonzero(keep)[0] + 1
            lut = np.zeros(len(objs) + 1, dtype=np.int32)
            lut[old_ids] = np.arange(1, len(old_ids) + 1)
            seg = lut[seg]
            objs = objs[keep]
    if dual and len(objs):
        # SExtractor's dual mode: positions, shapes and footprints come from the detection image; the
        # isophotal flux and peak are measured in the measurement image within the detection footprints
        mobjs = sep.extract(sub_m, athresh_adu if not a_rel or var_m is None else athresh,
                            var=var_m if (a_rel and var_m is not None) else None,
                            mask=bad_m, segmentation_map=seg, filter_kernel=None, clean=False,
                            deblend_cont=1.0, minarea=1)
        if isinstance(mobjs, tuple):
            mobjs = mobjs[0]
        if len(mobjs) == len(objs):
            for name in ("flux", "peak"):
                objs[name] = mobjs[name]
    seg = seg.astype(np.int32, copy=False)
    _mark("detected")
    return _Detected(t0, header, data, sub_m, sub_d, var_m, bad_m, zero_m, bkg_m, bkg_d, kernel, objs, seg,
                     ndetect, gain, satur, zp, (athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu),
                     sigfac_m, sigfac_d, var_d if dual else None)



def _wants_world(want) -> bool:
    return any(n.endswith("_WORLD") or "J2000" in n or n.endswith("_SKY") for n in want)


def _measure_detected(det: _Detected, spec: ImageSpec, cfg, plist, nthreads: int = 1, wcs=False):
    """Measurements, LDAC_IMHEAD header and check images of detected sources (the second half of
    :func:`extract_image`); ``wcs`` is the image's celestial WCS when already known."""
    from astropy.io import fits

    want = {p.name for p in plist}
    types = [t for t in cfg["CHECKIMAGE_TYPE"] if t != "NONE"]
    if not det.pre:
        _mark("isophotal (precomputed)")
        det.pre = _precompute(det, cfg, want, keep_image=bool(types))
    t0, header, data, sub_m, sub_d = det.t0, det.header, det.data, det.sub_m, det.sub_d
    var_m, bad_m, zero_m, bkg_m, bkg_d, kernel = det.var_m, det.bad_m, det.zero_m, det.bkg_m, det.bkg_d, det.kernel
    objs, seg, ndetect, gain, satur, zp = det.objs, det.seg, det.ndetect, det.gain, det.satur, det.zp
    athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu = det.thresholds
    sigfac_m, sigfac_d = det.sigfac_m, det.sigfac_d
    if wcs is False:
        wcs = _wcs(header, f"image {spec.name} extension {spec.ext}") \
            if _wants_world(want) or cfg["PIXEL_SCALE"] == 0 else None
    pixscale = _pixel_scale(cfg, wcs, header)
    n = len(objs)
    table = _measure(objs, seg, sub_m, var_m, bad_m, bkg_m, spec, cfg, plist, want, gain, satur, zp, pixscale,
                     wcs, athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu, sigfac_m, sub_d, bkg_d, kernel,
                     zero_m, data, nthreads, pre=det.pre, var_d=det.var_d if det.var_d is not None else var_m)
    res = table

    _mark("LDAC_IMHEAD")
    # ---- LDAC_IMHEAD header: image header + SExtractor keywords (sexhead.h)
    imhead = header.copy()
    if spec.next > 1 or "XTENSION" in imhead:
        imhead.pop("XTENSION", None)
    now = time.gmtime()
    aper = _apertures(cfg, pixscale)
    sexkeys = [
        ("FITSFILE", spec.name, "File name of the analysed image"),
        ("FITSEXT", spec.ext, "FITS Extension number"),
        ("FITSNEXT", spec.next, "Number of FITS image extensions in file"),
        ("SEXVERS", "terapix-fw sextractor", "Extraction software"),
        ("SEXDATE", time.strftime("%d/%m/%Y", now), "Extraction date"),
        ("SEXTIME", time.strftime("%H:%M:%S", now), "Extraction time"),
        ("SEXELAPS", round(time.time() - t0, 2), "Elapsed time during extraction (s)"),
        ("SEXBKGND", bkg_m.global_back, "Median background level (ADU)"),
        ("SEXBKDEV", bkg_m.global_rms, "Median background RMS (ADU)"),
        ("SEXTHLD", dthresh_adu, "Extraction threshold (ADU)"),
        ("SEXATHLD", athresh_adu, "Analysis threshold (ADU)"),
        ("SEXNDET", ndetect, "Number of raw detections"),
        ("SEXNFIN", n, "Final number of extracted sources"),
        ("SEXNPARA", len(plist), "Number of parameters per source"),
        ("SEXPXSCL", pixscale, "Pixel scale used for measurements (arcsec)"),
        ("SEXSFWHM", cfg["SEEING_FWHM"], "Source FWHM used for measurements (arcsec)"),
        ("SEXNNWF", os.path.basename(cfg["STARNNW_NAME"]), "S/G classification NNW filename"),
        ("SEXGAIN", gain, "Gain used (e-/ADU)"),
        ("SEXFLTR", bool(cfg["FILTER"]), "Detection filtering activated (flag)"),
        ("SEXFILTN", os.path.basename(cfg["FILTER_NAME"]), "Filter filename"),
        ("SEXMINAR", cfg["DETECT_MINAREA"], "Minimum area used for detection (pixels)"),
        ("SEXDBLDN", cfg["DEBLEND_NTHRESH"], "Number of deblending thresholds"),
        ("SEXDBLDC", cfg["DEBLEND_MINCONT"], "Minimum contrast used for deblending"),
        ("SEXCLN", bool(cfg["CLEAN"]), "Cleaning activated (flag)"),
        ("SEXCLNPA", cfg["CLEAN_PARAM"], "Cleaning parameter"),
        ("SEXCLNST", cfg["MEMORY_OBJSTACK"], "Cleaning stack-size"),
    ]
    for i in range(4):
        sexkeys.append((f"SEXAPED{i + 1}", float(aper[i]) if i < len(aper) else 0.0,
                        f"Fixed photometric aperture #{i + 1} (pixels)"))
    sexkeys += [
        ("SEXAUTP1", cfg["PHOT_AUTOPARAMS"][0], "Parameter #1 used for automatic magnitudes"),
        ("SEXAUTP2", cfg["PHOT_AUTOPARAMS"][1], "Parameter #2 used for automatic magnitudes"),
        ("SEXPETP1", cfg["PHOT_PETROPARAMS"][0], "Parameter #1 used for Petrosian magnitudes"),
        ("SEXPETP2", cfg["PHOT_PETROPARAMS"][1], "Parameter #2 used for Petrosian magnitudes"),
        ("SEXSATLV", satur, "Saturation level used for flagging (ADU)"),
        ("SEXMGZPT", zp, "Zero-point used for magnitudes"),
        ("SEXMGGAM", cfg["MAG_GAMMA"], "Gamma used for photographic photometry"),
        ("SEXBKGSX", bkg_m.back_size[0], "Mesh width used for background mapping (pixels)"),
        ("SEXBKGSY", bkg_m.back_size[1], "Mesh height used for background mapping (pixels)"),
        ("SEXBKGFX", bkg_m.filter_size[0], "Mask width used for background map filtering"),
        ("SEXBKGFY", bkg_m.filter_size[1], "Mask height used for background map filtering"),
        ("SEXPBKGS", cfg["BACKPHOTO_THICK"], "Thickness used for local background (pixels)"),
        ("SEXPIXSK", cfg["MEMORY_PIXSTACK"], "Pixel stack-size (pixels)"),
        ("SEXFBUFS", cfg["MEMORY_BUFSIZE"], "Image-buffer height (scanlines)"),
        ("SEXMWSCL", sigfac_m, "Measurement-weight re-scaling factor"),
        ("SEXDWSCL", sigfac_d, "Detection-weight re-scaling factor"),
    ]
    # formatted as card images and parsed once: setting ~50 keywords one by one through astropy costs
    # a third of a second per extension (configuration look-ups on every card)
    for key, *_ in sexkeys:
        imhead.remove(key, ignore_missing=True, remove_all=True)
    text = imhead.tostring(sep="", endcard=False, padding=False)
    text += "".join(_card_image(key, value, comment) for key, value, comment in sexkeys)
    imhead = fits.Header.fromstring(text)
    _mark("end")
    table.meta["IMHEAD"] = imhead
    table.meta["EXTENSION"] = spec.ext
    table.meta["TIMINGS"] = {**det.timings, **_timings()}

    checks = {}
    if types:
        checks = _check_images(types, data, sub_m, seg, bkg_m, table, cfg, res.meta.get("_apertures"))
    table.meta.pop("_apertures", None)
    return ExtractionResult(table, imhead, checks)


def _card_image(key, value, comment):
    """One 80-character FITS card (fixed format), the comment shortened to fit."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20d}"
    elif isinstance(value, float):
        v = repr(value).upper()
        if "E" not in v and "." not in v and "INF" not in v and "NAN" not in v:
            v += ".0"
        text = f"{v:>20}"
    else:
        v = "'" + str(value).replace("'", "''").ljust(8) + "'"
        text = f"{v:<20}"
    card = f"{key:<8}= {text}"
    room = 80 - len(card) - 3
    if room > 0 and comment:
        card += " / " + comment[:room]
    return card[:80].ljust(80)


def _apertures(cfg, pixscale):
    aper = np.asarray(cfg["PHOT_APERTURES"], dtype=np.float64)
    if cfg["PHOT_APERUNIT"] == "ARCSEC":
        aper = aper / pixscale
    return aper


def _mag(flux, zp):
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zp - 2.5 * np.log10(np.where(flux > 0, flux, 1)), 99.0)


def _magerr(flux, err):
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 1.086 * err / np.where(flux > 0, flux, 1), 99.0)  # SExtractor's 1.086


def _object_ellipses(objs):
    """0-based centres and isophotal ellipses (a, b, theta in radians) of sep's objects, degenerate
    moments (single-pixel or singular objects) guarded so that sep accepts the ellipses."""
    x = objs["x"].astype(np.float64)
    y = objs["y"].astype(np.float64)
    a = np.maximum(np.nan_to_num(objs["a"].astype(np.float64), nan=0.5), 1e-3)
    b = np.minimum(np.maximum(np.nan_to_num(objs["b"].astype(np.float64), nan=0.5), 1e-3), a)
    th = np.clip(np.nan_to_num(objs["theta"].astype(np.float64)), -np.pi / 2, np.pi / 2)
    return x, y, a, b, th


def _object_background(objs, sub, var, bad, bkg, image, athresh, a_rel, athresh_adu):
    """The background map at each object's centre pixel (global photometric background) and its
    analysis threshold (ADU)."""
    ny, nx = sub.shape
    ix = np.clip((objs["x"] + 0.5).astype(int), 0, nx - 1)
    iy = np.clip((objs["y"] + 0.5).astype(int), 0, ny - 1)
    # the background map at the objects, without materialising it: image - (image - background)
    backval = image[iy, ix].astype(np.float64) - sub[iy, ix]
    if bad is not None:
        backval = np.where(bad[iy, ix], bkg.global_back, backval)
    if var is not None and a_rel:
        thr = athresh * np.sqrt(var[iy, ix].astype(np.float64))
    else:
        thr = np.full(len(objs), athresh_adu)
    return backval, thr


def _isophotal_stats(seg, sub, var, objs, thr, satur_above_back, want, pixels=None):
    """:func:`~terapix_sextractor.measure.segment_stats` of the objects (areas, ISO0..7, FWHM, variance
    sums) with the catalogue's needs."""
    from .isophotal import segment_stats

    n = len(objs)
    if not n:
        return {"area": np.zeros(0, np.int32), "iso": np.zeros((0, 8)), "fwhm": np.zeros(0), "varsum": np.zeros(0)}
    x, y, a, b, _ = _object_ellipses(objs)
    return segment_stats(seg, sub, n, thr, objs["peak"].astype(np.float64), x, y, a, b, satur_above_back,
                         flagmap=None, want_fwhm=bool(want & {"FWHM_IMAGE", "FWHM_WORLD"}),
                         want_iso=bool(want & {"CLASS_STAR", "ISO0", "ISO1", "ISO2", "ISO3", "ISO4", "ISO5",
                                               "ISO6", "ISO7"}), varmap=var, pixels=pixels)


def _precompute(det: _Detected, cfg, want, keep_image=True) -> dict:
    """The numpy-only measurements that need nothing but the detection: the background at the objects,
    isophotal position errors, and isophotal statistics when the photometric background is global.  The
    detecting process of :func:`_overlapped_job` computes them while the other loads the numba kernels;
    a serial run computes them first, so that the raw image (``keep_image`` False) and the labelled-pixel
    lists are freed before the measurements allocate their own maps."""
    from .isophotal import segment_pixels

    pre = {}
    n = len(det.objs)
    backval, thr = pre["background"] = _object_background(det.objs, det.sub_m, det.var_m, det.bad_m, det.bkg_m,
                                                          det.data, *det.thresholds[:3])
    if not keep_image:  # the raw image was needed for the background at the objects only
        det.data = None
    if not n:
        return pre
    pixels = segment_pixels(det.seg)
    if any(w.startswith("ERR") for w in want):
        pre["pos_errors"] = _pos_errors(det.seg, det.sub_d, det.objs, det.bkg_d.global_rms, det.gain, n, det.kernel,
                                        pixels)
    if cfg["BACKPHOTO_TYPE"] != "LOCAL":
        pre["stats"] = _isophotal_stats(det.seg, det.sub_m, det.var_m, det.objs, thr, det.satur - backval, want,
                                        pixels)
    return pre


def _measurement_mask(bad, blank, shape):
    """Bad pixels or blanked ones (:func:`~terapix_sextractor.measure.blanked_pixels`), as one boolean map
    (all false when neither)."""
    if bad is None and blank is None:
        return np.zeros(shape, bool)
    if bad is None or blank is None:
        return bad if blank is None else blank
    return bad | blank


def _kron_r1(sub_d, seg, objs, bad, correct):
    """sep's first-moment radius (in isophotal-ellipse units, within 6 of them) of each object on the
    detection image (photom.c reads dfield for the Kron radius), neighbours masked when ``correct``."""
    import sep

    n = len(objs)
    x, y, a, b, th = _object_ellipses(objs)
    seg_kw = dict(segmap=seg, seg_id=np.arange(1, n + 1, dtype=np.int32)) if correct and n else {}
    return sep.kron_radius(sub_d, x, y, a, b, th, 6.0, mask=bad, **seg_kw)[0]


def _measure(objs, seg, sub, var, bad, bkg, spec, cfg, plist, want, gain, satur, zp, pixscale, wcs,
             athresh, a_rel, athresh_adu, dthresh, d_rel, dthresh_adu, sigfac, sub_d, bkg_d, kernel, zero_w=None,
             spec_image=None, nthreads=1, pre=None, var_d=None):
    """The catalogue columns of the detected objects.  ``pre`` holds what :func:`_precompute` already
    computed (in the detecting process)."""
    import sep
    from astropy.table import Table

    from .isophotal import ellipse_from_moments, segment_stats
    from .measure import warm_up, winpos
    from .paramdefs import BY_NAME

    n = len(objs)
    ny, nx = sub.shape
    rms = bkg.global_rms
    pre = pre or {}
    if n:
        warm_up()  # all kernels at once (and without numba's BLAS probe): see measure.warm_up
    # what the aperture kernels leave out or correct by symmetry besides other objects: bad pixels and
    # the pixels SExtractor blanks as detections too small to be objects

    from functools import partial
    par = partial(_objwise, _n=n, _threads=max(1, int(nthreads)))
    correct = cfg["MASK_TYPE"] != "NONE"
    ids = np.arange(1, n + 1, dtype=np.int32)
    # what the aperture kernels leave out or correct by symmetry besides other objects: bad pixels and
    # the pixels SExtractor blanks as detections too small to be objects
    blank = None
    if n and correct:
        from .measure import blanked_pixels
        blank = blanked_pixels(sub_d, seg, kernel, dthresh if d_rel and var_d is not None else dthresh_adu,
                               var_d if d_rel else None, threads=max(1, int(nthreads)))
    badk = _measurement_mask(bad, blank, sub.shape)
    x, y, a, b, th = _object_ellipses(objs)
    cols: dict[str, Any] = {}
    flags = np.zeros(n, dtype=np.int16)
    flags |= np.where(objs["flag"] & _SEP_FLAG_MERGED, 2, 0).astype(np.int16)
    flags |= np.where(objs["flag"] & _SEP_FLAG_DOVERFLOW, 64, 0).astype(np.int16)
    touches = (objs["xmin"] == 0) | (objs["ymin"] == 0) | (objs["xmax"] == nx - 1) | (objs["ymax"] == ny - 1)
    flags |= np.where(touches, 8, 0).astype(np.int16)

    backval, thr = pre["background"] if "background" in pre else \
        _object_background(objs, sub, var, bad, bkg, spec_image, athresh, a_rel, athresh_adu)
    dthr = objs["thresh"].astype(np.float64) if d_rel else np.full(n, dthresh_adu)
    peak = objs["peak"].astype(np.float64)
    flags |= np.where(peak + backval >= satur, 4, 0).astype(np.int16)

    # local photometric background
    local = cfg["BACKPHOTO_TYPE"] == "LOCAL"

    _mark("AUTO")
    # ---- AUTO (Kron)
    kron_fact, kron_min = cfg["PHOT_AUTOPARAMS"]
    need_auto = want & {"FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "MAGERR_AUTO", "KRON_RADIUS", "FLUX_RADIUS",
                        "FLUX_BEST", "FLUXERR_BEST", "MAG_BEST", "MAGERR_BEST",
                        "XWIN_IMAGE", "YWIN_IMAGE", "FLAGS", "SNR_WIN", "FLUX_WIN", "FLUXERR_WIN", "MAG_WIN",
                        "MAGERR_WIN", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE", "X2WIN_IMAGE",
                        "Y2WIN_IMAGE", "XYWIN_IMAGE", "AWIN_IMAGE", "BWIN_IMAGE", "THETAWIN_IMAGE",
                        "FLAGS_WIN", "NITER_WIN", "ALPHAWIN_J2000", "DELTAWIN_J2000", "XWIN_WORLD",
                        "YWIN_WORLD", "BACKGROUND"} or any("WIN" in w for w in want)
    local_bkg = np.zeros(n)
    flux_auto = fluxerr_auto = None
    if n and (need_auto or local):
        # the Kron radius is measured on the detection image (photom.c reads dfield), the flux on the
        # measurement image
        r1 = _kron_r1(sub_d, seg, objs, badk, correct)
        kron = np.maximum(kron_fact * np.nan_to_num(r1, nan=0.0, posinf=0.0), kron_min)
        kron = np.where(kron > 0, kron, 1.0)
        if local:
            from .measure import local_background
            local_bkg = par(local_background, sub, bad if bad is not None else np.zeros(sub.shape, bool), seg,
                            x, y, kron * a + 1, cfg["BACKPHOTO_THICK"])
        # integrate as photom.c: whole pixels, neighbours and bad pixels CORRECTed by symmetry
        from .measure import ellipse_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        cxx_, cyy_, cxy_ = (np.asarray(objs[k], np.float64) for k in ("cxx", "cyy", "cxy"))
        flux_auto, fluxerr_auto, crowded, trunc, area_auto = par(
            ellipse_flux, sub, x, y, cxx_, cyy_, cxy_, kron, vsum, badarr, seg=seg if correct else None,
            ids=ids, gain=gain, correct=correct)
        min_aper = cfg["PHOT_AUTOAPERS"][1]
        circ = (kron * np.sqrt(a * b) <= min_aper / 2.0) if min_aper > 0 else np.zeros(n, bool)
        if circ.any():  # PHOT_AUTOAPERS: the user's minimum circular aperture (KRON_RADIUS then 0)
            one = np.ones(int(circ.sum()))
            fc, ec, cc, tc, ac = ellipse_flux(sub, x[circ], y[circ], one, one, 0 * one, one * min_aper / 2.0,
                                              vsum, badarr, seg=seg if correct else None, ids=ids[circ],
                                              gain=gain, correct=correct)
            flux_auto[circ], fluxerr_auto[circ], crowded[circ], trunc[circ], area_auto[circ] = fc, ec, cc, tc, ac
        flux_auto = flux_auto - local_bkg * area_auto
        flags |= np.where(trunc, 16, 0).astype(np.int16)
        # the first (Kron radius) step searches 6 isophotal radii: it flags a box leaving the image too
        with np.errstate(divide="ignore", invalid="ignore"):
            dxl = cxx_ - cxy_ * cxy_ / (4.0 * cyy_)
            dyl = cyy_ - cxy_ * cxy_ / (4.0 * cxx_)
            dxl = np.where(dxl > 0, 6.0 / np.sqrt(np.where(dxl > 0, dxl, 1)), 0.0)
            dyl = np.where(dyl > 0, 6.0 / np.sqrt(np.where(dyl > 0, dyl, 1)), 0.0)
        out6 = ((np.rint(x - dxl) < 0) | (np.rint(x + dxl) + 1 > nx) | (np.rint(y - dyl) < 0)
                | (np.rint(y + dyl) + 1 > ny))
        flags |= np.where(out6, 16, 0).astype(np.int16)
        # FLAGS bit 1: more than 10% of neighbours' or bad pixels in the AUTO aperture, or in the 6-radius
        # ellipse searched for the Kron radius (photom.c flags both)
        _, _, crowded6, _, _ = par(ellipse_flux, sub_d, x, y, cxx_, cyy_, cxy_, np.full(n, 6.0), vsum, badarr,
                                   seg=seg if correct else None, ids=ids, gain=0.0, correct=False)
        flags |= np.where(crowded | crowded6, 1, 0).astype(np.int16)
        # as photom.c: a circular fallback aperture or a non-positive flux gives KRON_RADIUS 0
        cols["KRON_RADIUS"] = np.where(circ | (flux_auto <= 0), 0.0, kron)
    else:
        kron = np.zeros(n)

    if local:
        backval = backval + local_bkg

    _mark("isophotal")
    # ---- isophotal
    flux_iso = objs["flux"].astype(np.float64) - local_bkg * objs["npix"]
    stats = pre["stats"] if "stats" in pre else _isophotal_stats(seg, sub, var, objs, thr, satur - backval, want)
    if var is not None:
        varsum = stats["varsum"]
    else:
        varsum = objs["npix"] * rms * rms
    fluxerr_iso = np.sqrt(varsum + (np.maximum(flux_iso, 0) / gain if gain > 0 else 0))

    # flag maps
    if want & {"IMAFLAGS_ISO", "NIMAFLAGS_ISO"}:
        if not spec.flags:
            raise ToolError("IMAFLAGS_ISO is requested but no FLAG_IMAGE could be read")
        footprint = seg
        if bad is not None and n:
            where_bad, grown = _grown_labels_at(seg, (seg == 0) & bad)
            footprint = seg.copy()
            footprint.ravel()[where_bad] = grown
        ftypes = list(cfg["FLAG_TYPE"])
        imaf, nimaf = [], []
        for k, fmap in enumerate(spec.flags):
            st = segment_stats(seg, sub, n, thr, peak, x, y, a, b, satur - backval, flagmap=fmap,
                               flag_type=ftypes[min(k, len(ftypes) - 1)], want_fwhm=False, want_iso=False,
                               footprint=footprint)
            imaf.append(st["imaflags"])
            nimaf.append(st["nimaflags"])
        cols["IMAFLAGS_ISO"] = imaf[0] if len(imaf) == 1 else np.stack(imaf, axis=1)
        cols["NIMAFLAGS_ISO"] = nimaf[0] if len(nimaf) == 1 else np.stack(nimaf, axis=1)

    # FLAGS_WEIGHT: bit 2 if a zero-weight pixel (interpolated or not) is in or next to the footprint
    fw = np.zeros(n, dtype=np.int16)
    if zero_w is not None and n and len(zero_w):
        _, grown = _grown_labels_at(seg, flat=zero_w)
        touched = np.bincount(grown[grown > 0], minlength=n + 1)[1:]
        fw |= np.where(touched > 0, 2, 0).astype(np.int16)
        cols["NLOWWEIGHT_ISO"] = touched.astype(np.int32)
    else:
        cols["NLOWWEIGHT_ISO"] = np.zeros(n, np.int32)
    cols["FLAGS_WEIGHT"] = fw

    _mark("apertures")
    # ---- apertures
    aper = _apertures(cfg, pixscale)
    if want & {"FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"} and n:
        fa = np.zeros((n, len(aper)))
        fe = np.zeros((n, len(aper)))
        from .measure import circle_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        for k, d in enumerate(aper):
            f, e, area, trunc = par(circle_flux, sub, x, y, d / 2.0, vsum, badarr, seg=seg if correct else None,
                                    ids=ids, gain=gain, correct=correct)
            fa[:, k] = f - local_bkg * area
            fe[:, k] = e
            flags |= np.where(trunc, 16, 0).astype(np.int16)
        cols["FLUX_APER"], cols["FLUXERR_APER"] = fa, fe
    _mark("FLUX_RADIUS")
    # ---- FLUX_RADIUS
    fracs = list(cfg["PHOT_FLUXFRAC"])
    hl = None
    if n and (want & {"FLUX_RADIUS"} or any("WIN" in w for w in want)):
        from .measure import flux_radius, half_light_radius
        # one growth curve gives every PHOT_FLUXFRAC radius and the half-light radius of the window
        fr, gtrunc = par(flux_radius, sub, x, y, a, flux_auto, fracs + [0.5],
                         badk, seg=seg if correct else None,
                         ids=ids, min_aper=cfg["PHOT_AUTOAPERS"][0], correct=correct)
        cols["FLUX_RADIUS"] = fr[:, :len(fracs)]
        flags |= np.where(gtrunc, 16, 0).astype(np.int16)
        hl = half_light_radius(fr[:, -1], a, cfg["PHOT_AUTOAPERS"][0])
    _mark("Petrosian")
    # ---- Petrosian
    if want & {"FLUX_PETRO", "FLUXERR_PETRO", "MAG_PETRO", "MAGERR_PETRO", "PETRO_RADIUS"} and n:
        from .measure import petrosian_factor
        pfac, pmin = cfg["PHOT_PETROPARAMS"]
        kp = par(petrosian_factor, sub_d, badk,
                 seg if correct else np.zeros(sub.shape, np.int32), x, y, np.asarray(objs["cxx"], np.float64),
                 np.asarray(objs["cyy"], np.float64), np.asarray(objs["cxy"], np.float64), ids=ids)
        prad = np.where(kp > 0, np.maximum(pfac * kp, pmin), pmin)
        from .measure import ellipse_flux
        vsum = rms * rms if var is None else var
        badarr = badk
        f, e, pcrowd, ptrunc, parea = par(
            ellipse_flux, sub, x, y, np.asarray(objs["cxx"], np.float64), np.asarray(objs["cyy"], np.float64),
            np.asarray(objs["cxy"], np.float64), prad, vsum, badarr, seg=seg if correct else None, ids=ids,
            gain=gain, correct=correct)
        cols["FLUX_PETRO"] = f - local_bkg * parea
        cols["FLUXERR_PETRO"] = e
        fl = np.where(ptrunc, sep.APER_TRUNC, 0)
        flags |= np.where(pcrowd, 1, 0).astype(np.int16)
        cols["PETRO_RADIUS"] = np.where(f <= 0, 0.0, prad)
        flags |= np.where(fl & sep.APER_TRUNC, 16, 0).astype(np.int16)
    _mark("windowed")
    # ---- windowed
    win = None
    if n and any("WIN" in w for w in want):
        sig = 2.0 * hl / 2.35  # winpos.c: from the half-light radius (half-FWHM) to a Gaussian sigma
        vwin = rms * rms if var is None else var
        badwin = badk
        # neighbours are corrected as in SExtractor (MASK_TYPE CORRECT): mask other objects' pixels
        win = par(winpos, sub, x, y, sig, vwin, badwin, gain, correct, seg=seg if correct else None,
                  ids=ids if correct else None)
        flags |= np.where(win["apflag"], 16, 0).astype(np.int16)

    _mark("assemble")
    # ---- assemble columns
    x2, y2, xy = objs["x2"].astype(np.float64), objs["y2"].astype(np.float64), objs["xy"].astype(np.float64)
    ex2, ey2, exy = (objs["errx2"].astype(np.float64), objs["erry2"].astype(np.float64),
                     objs["errxy"].astype(np.float64))
    if n and any(w.startswith("ERR") for w in want):
        # SExtractor's position errors use the constant detection background noise and the filtered
        # pixel values (analyse.c), whatever the weight map: recompute them rather than take sep's
        ex2, ey2, exy = pre["pos_errors"] if "pos_errors" in pre else \
            _pos_errors(seg, sub_d, objs, bkg_d.global_rms, gain, n, kernel)
    erra, errb, errtheta = ellipse_from_moments(ex2, ey2, exy)
    cols.update({
        "NUMBER": ids, "EXT_NUMBER": np.full(n, spec.ext, np.int16),
        "X_IMAGE": x + 1, "Y_IMAGE": y + 1, "X2_IMAGE": x2, "Y2_IMAGE": y2, "XY_IMAGE": xy,
        "CXX_IMAGE": objs["cxx"], "CYY_IMAGE": objs["cyy"], "CXY_IMAGE": objs["cxy"],
        "A_IMAGE": a, "B_IMAGE": b, "THETA_IMAGE": np.degrees(th),
        "ERRX2_IMAGE": ex2, "ERRY2_IMAGE": ey2, "ERRXY_IMAGE": exy,
        "ERRA_IMAGE": erra, "ERRB_IMAGE": errb, "ERRTHETA_IMAGE": errtheta,
        "XMIN_IMAGE": objs["xmin"] + 1, "XMAX_IMAGE": objs["xmax"] + 1, "YMIN_IMAGE": objs["ymin"] + 1,
        "YMAX_IMAGE": objs["ymax"] + 1, "XPEAK_IMAGE": objs["xpeak"] + 1, "YPEAK_IMAGE": objs["ypeak"] + 1,
        "FLUX_ISO": flux_iso, "FLUXERR_ISO": fluxerr_iso,
        "ISOAREA_IMAGE": stats["area"], "ISOAREAF_IMAGE": objs["npix"].astype(np.int32),
        "THRESHOLD": dthr, "FLUX_MAX": peak, "BACKGROUND": backval,
        "ELONGATION": a / b, "ELLIPTICITY": 1 - b / a,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["MU_THRESHOLD"] = zp - 2.5 * np.log10(np.maximum(dthr, 1e-30) / (pixscale * pixscale))
        cols["MU_MAX"] = np.where(peak > 0, zp - 2.5 * np.log10(np.maximum(peak, 1e-30) / pixscale ** 2), 99.0)
    if flux_auto is not None:
        cols["FLUX_AUTO"], cols["FLUXERR_AUTO"] = flux_auto, fluxerr_auto
    if "iso" in stats:
        for k in range(8):
            cols[f"ISO{k}"] = stats["iso"][:, k]
    if "fwhm" in stats:
        cols["FWHM_IMAGE"] = stats["fwhm"]
    if win is not None:
        wa, wb, wt = ellipse_from_moments(win["x2"], win["y2"], win["xy"])
        ea, eb, et = ellipse_from_moments(win["errx2"], win["erry2"], win["errxy"])
        # flagged windowed values fall back to the isophotal ones, the position too (SExtractor 2.25
        # gives XWIN_IMAGE = X_IMAGE for every object with FLAGS_WIN set)
        fallback = win["flag"] != 0
        cols.update({
            "XWIN_IMAGE": np.where(fallback, x, win["xwin"]) + 1, "YWIN_IMAGE": np.where(fallback, y, win["ywin"]) + 1,
            "FLUX_WIN": win["flux"], "FLUXERR_WIN": win["fluxerr"], "SNR_WIN": win["snr"],
            "X2WIN_IMAGE": np.where(fallback, x2, win["x2"]), "Y2WIN_IMAGE": np.where(fallback, y2, win["y2"]),
            "XYWIN_IMAGE": np.where(fallback, xy, win["xy"]),
            "AWIN_IMAGE": np.where(fallback, a, wa), "BWIN_IMAGE": np.where(fallback, b, wb),
            "THETAWIN_IMAGE": np.where(fallback, np.degrees(th), wt),
            "ERRX2WIN_IMAGE": np.where(fallback, ex2, win["errx2"]),
            "ERRY2WIN_IMAGE": np.where(fallback, ey2, win["erry2"]),
            "ERRXYWIN_IMAGE": np.where(fallback, exy, win["errxy"]),
            "ERRAWIN_IMAGE": np.where(fallback, erra, ea), "ERRBWIN_IMAGE": np.where(fallback, errb, eb),
            "ERRTHETAWIN_IMAGE": np.where(fallback, errtheta, et),
            "FLAGS_WIN": win["flag"], "NITER_WIN": win["niter"],
        })
    if "CLASS_STAR" in want:
        from .classifier import class_star_inputs, load_network
        net = load_network(cfg["STARNNW_NAME"])
        thr_global = athresh_adu if not a_rel else athresh * rms
        inputs = class_star_inputs(stats["iso"], peak, thr_global, cfg["SEEING_FWHM"], pixscale)
        cols["CLASS_STAR"] = net(inputs)[:, 0] if n else np.zeros(0)
    if "VIGNET" in want:
        shape = next(p.shape for p in plist if p.name == "VIGNET")
        cols["VIGNET"] = _vignets(sub, bad, x, y, shape)
    # derived shape parameters (SExtractor's definitions)
    def inverse(m2x, m2y, mxy):
        with np.errstate(divide="ignore", invalid="ignore"):
            det = m2x * m2y - mxy * mxy
            return m2y / det, m2x / det, -2 * mxy / det

    cols["X_IMAGE_DBL"], cols["Y_IMAGE_DBL"] = cols["X_IMAGE"], cols["Y_IMAGE"]
    cols["POLAR_IMAGE"] = (a * a - b * b) / (a * a + b * b)
    cols["ERRCXX_IMAGE"], cols["ERRCYY_IMAGE"], cols["ERRCXY_IMAGE"] = inverse(ex2, ey2, exy)
    if "X2WIN_IMAGE" in cols:
        cols["CXXWIN_IMAGE"], cols["CYYWIN_IMAGE"], cols["CXYWIN_IMAGE"] = inverse(
            cols["X2WIN_IMAGE"], cols["Y2WIN_IMAGE"], cols["XYWIN_IMAGE"])
        cols["ERRCXXWIN_IMAGE"], cols["ERRCYYWIN_IMAGE"], cols["ERRCXYWIN_IMAGE"] = inverse(
            cols["ERRX2WIN_IMAGE"], cols["ERRY2WIN_IMAGE"], cols["ERRXYWIN_IMAGE"])
        aw, bw = cols["AWIN_IMAGE"], cols["BWIN_IMAGE"]
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["POLARWIN_IMAGE"] = (aw * aw - bw * bw) / (aw * aw + bw * bw)
    # corrected isophotal and "best" fluxes (photom.c computeisocorflux, computemags)
    if n and want & {"FLUX_ISOCOR", "FLUXERR_ISOCOR", "MAG_ISOCOR", "MAGERR_ISOCOR", "FLUX_BEST",
                     "FLUXERR_BEST", "MAG_BEST", "MAGERR_BEST"}:
        npixf = objs["npix"].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ati = np.clip(np.where(flux_iso > 0, npixf * dthr / flux_iso, 0.0), 0.0, 1.0)
            iso_cor = flux_iso / (1.0 - 0.196099 * ati - 0.751208 * ati * ati)
            sigtv = np.where(flux_iso > 0, fluxerr_iso ** 2 / flux_iso ** 2, 0.0)
            dati = np.where(npixf > 0, ati * np.sqrt(sigtv + 1.0 / np.maximum(npixf, 1)), 0.0)
            dati = 0.196099 * dati + 0.751208 * 2 * ati * dati
            err_cor = np.where(flux_iso > 0, np.sqrt(sigtv + dati * dati) * flux_iso, fluxerr_iso)
        cols["FLUX_ISOCOR"], cols["FLUXERR_ISOCOR"] = iso_cor, err_cor
        if flux_auto is not None:
            crowded_now = (flags & 1) != 0
            cols["FLUX_BEST"] = np.where(crowded_now, iso_cor, flux_auto)
            cols["FLUXERR_BEST"] = np.where(crowded_now, err_cor, fluxerr_auto)
    # magnitudes
    for kind in ("AUTO", "ISO", "APER", "PETRO", "WIN", "ISOCOR", "BEST"):
        if f"FLUX_{kind}" in cols:
            cols[f"MAG_{kind}"] = _mag(cols[f"FLUX_{kind}"], zp)
            cols[f"MAGERR_{kind}"] = _magerr(cols[f"FLUX_{kind}"], cols[f"FLUXERR_{kind}"])
    cols["FLAGS"] = flags
    cols["FWHM_WORLD"] = cols.get("FWHM_IMAGE", np.zeros(n)) * pixscale / 3600.0
    cols["ISOAREA_WORLD"] = cols["ISOAREA_IMAGE"] * (pixscale / 3600.0) ** 2
    cols["ISOAREAF_WORLD"] = cols["ISOAREAF_IMAGE"] * (pixscale / 3600.0) ** 2
    if hasattr(wcs, "result"):  # built in a thread meanwhile (_overlapped_job)
        wcs = wcs.result()
    if wcs is not None or any(w.endswith("_WORLD") or "J2000" in w or w.endswith("_SKY") for w in want):
        _world_columns(cols, wcs, want, n)

    _mark("table")
    # ---- table in the requested order, with SExtractor's types, units and formats
    table = Table()
    for p in plist:
        name = p.name
        code, unit, disp, desc = BY_NAME[name][1:]
        if name not in cols:
            if n:
                raise ToolError(f"catalogue parameter {name} could not be computed (internal error)")
            cols[name] = np.zeros((0,) + (p.shape if name == "VIGNET" else ((p.size,) if p.shape else ())))
        values = np.asarray(cols[name])
        dtype = {"E": np.float32, "D": np.float64, "J": np.int32, "I": np.int16, "B": np.uint8}[code]
        if name == "VIGNET":
            arr = values.astype(dtype)
        elif values.ndim == 2:
            size = p.size if p.shape else 1
            arr = np.zeros((n, size), dtype=dtype)
            if name.startswith("MAG"):
                arr[:] = 99.0
            m = min(size, values.shape[1])
            arr[:, :m] = values[:, :m]
            if size == 1:
                arr = arr[:, 0]
        else:
            if p.shape and p.size > 1:
                arr = np.zeros((n, p.size), dtype=dtype)
                arr[:, 0] = values
            else:
                arr = values.astype(dtype)
        table[name] = arr
        table[name].description = desc
        if unit:
            table[name].unit = _unit(unit)
        table[name].meta = {"TDISP": disp}
    table.meta["_apertures"] = (x, y, a, b, th, kron, aper)
    return table


def _grown_labels_at(seg, mask=None, flat=None):
    """(flat indices of the ``mask`` pixels, or ``flat``, and the largest label of ``seg`` in the 3x3
    box around each): the segmentation map grown by one pixel (scipy's ``maximum_filter(seg, 3)``, whose
    "reflect" edges repeat the edge pixel), evaluated only where needed instead of over the whole image."""
    ny, nx = seg.shape
    if flat is None:
        flat = np.flatnonzero(mask)
    yy, xx = np.divmod(flat, nx)
    grown = np.zeros(len(flat), seg.dtype)
    for dy in (-1, 0, 1):
        y = np.clip(yy + dy, 0, ny - 1)
        for dx in (-1, 0, 1):
            np.maximum(grown, seg[y, np.clip(xx + dx, 0, nx - 1)], out=grown)
    return flat, grown


def _filtered_at(sub_d, ys, xs, kernel):
    """The detection image convolved by ``kernel`` (centred, zero outside the image), evaluated only at
    pixels (ys, xs): one gather per kernel element, edge pixels apart (numpy only, so that the detecting
    process of :func:`_overlapped_job` needs no numba)."""
    if kernel is None:
        return sub_d[ys, xs].astype(np.float64)
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    ny, nx = sub_d.shape
    flat = sub_d.ravel()
    out = np.zeros(len(ys))
    inner = (ys >= kh // 2) & (ys < ny - (kh - 1 - kh // 2)) & (xs >= kw // 2) & (xs < nx - (kw - 1 - kw // 2))
    base = ys[inner] * nx + xs[inner]
    edge = np.flatnonzero(~inner)
    acc = np.zeros(len(base))
    for j in range(kh):
        for i in range(kw):
            k = kernel[j, i]
            if k == 0:
                continue
            acc += k * flat[base + ((j - kh // 2) * nx + i - kw // 2)]
            yy, xx = ys[edge] + j - kh // 2, xs[edge] + i - kw // 2
            ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
            out[edge[ok]] += k * sub_d[yy[ok], xx[ok]]
    out[inner] = acc
    return out


def _objwise(fn, *args, _n, _threads, **kw):
    """``fn(*args, **kw)`` over the objects split into ``_threads`` chunks run in threads (sep and our
    numba kernels release the GIL).  1-D arrays of length ``_n`` are the per-object arguments."""
    if _threads <= 1 or _n < 256:
        return fn(*args, **kw)
    from concurrent.futures import ThreadPoolExecutor

    k = int(min(_threads, _n // 128))
    bounds = np.linspace(0, _n, k + 1).astype(int)

    def call(lo, hi):
        def cut(v):
            return v[lo:hi] if isinstance(v, np.ndarray) and v.ndim == 1 and v.shape[0] == _n else v
        return fn(*[cut(a) for a in args], **{key: cut(v) for key, v in kw.items()})

    with ThreadPoolExecutor(k) as pool:
        parts = list(pool.map(call, bounds[:-1], bounds[1:]))
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in first}
    return np.concatenate(parts)


@functools.lru_cache(maxsize=None)
def _unit(text):
    """The astropy unit of a SExtractor unit string, parsed once per process (parsing is slow)."""
    import astropy.units as u

    return u.Unit(text, parse_strict="silent")


def _pos_errors(seg, sub_d, objs, rms, gain, n, kernel=None, pixels=None):
    """SExtractor's isophotal position-error moments (``analyse.c``): per pixel the detection background
    variance plus the filtered value over the gain, weighted by the squared offsets, over the flux^2."""
    from .isophotal import segment_pixels

    flat, ids, ys, xs = segment_pixels(seg) if pixels is None else pixels
    pix = sub_d.ravel()[flat].astype(np.float64)
    cdpix = _filtered_at(sub_d, ys, xs, kernel)
    err = rms * rms + (np.where(cdpix > 0, cdpix, 0) / gain if gain > 0 else np.zeros(len(pix)))
    dx = xs - objs["x"][ids]
    dy = ys - objs["y"][ids]
    flux = np.bincount(ids, pix, n)
    f2 = np.where(flux != 0, flux * flux, 1.0)
    ex2 = np.bincount(ids, err * dx * dx, n) / f2
    ey2 = np.bincount(ids, err * dy * dy, n) / f2
    exy = np.bincount(ids, err * dx * dy, n) / f2
    esum = np.bincount(ids, err, n) * 0.08333 / f2
    singu = (objs["flag"] & 8) != 0
    fix = singu & ((ex2 * ey2 - exy * exy) < esum * esum)
    ex2 = np.where(fix, ex2 + esum, ex2)
    ey2 = np.where(fix, ey2 + esum, ey2)
    return ex2, ey2, exy


def _vignets(sub, bad, x, y, shape):
    """VIGNET(w,h): pixels around the nearest pixel to the centroid, -1e30 off the image (copyimage);
    one gather for all objects."""
    w, h = shape
    ny, nx = sub.shape
    img = sub if bad is None else np.where(bad, np.float32(-1e30), sub)
    xs = (x + 0.49999).astype(int)[:, None] - w // 2 + np.arange(w)[None, :]  # (n, w)
    ys = (y + 0.49999).astype(int)[:, None] - h // 2 + np.arange(h)[None, :]  # (n, h)
    inside = ((ys >= 0) & (ys < ny))[:, :, None] & ((xs >= 0) & (xs < nx))[:, None, :]
    out = img[np.clip(ys, 0, ny - 1)[:, :, None], np.clip(xs, 0, nx - 1)[:, None, :]]
    return np.where(inside, out, np.float32(-1e30)).astype(np.float32)


def _world_columns(cols, wcs, want, n):
    """World coordinates and shapes (SExtractor ``astrom.c``): positions through the WCS, second moments
    through the local Jacobian (with cos(delta) on the longitude axis), angles in degrees."""
    if wcs is None:
        # no celestial WCS: as SExtractor, world = pixel - 1 (a unit linear WCS), sky coordinates 0
        for name, src in (("X_WORLD", "X_IMAGE"), ("Y_WORLD", "Y_IMAGE"), ("XWIN_WORLD", "XWIN_IMAGE"),
                          ("YWIN_WORLD", "YWIN_IMAGE"), ("XPEAK_WORLD", "XPEAK_IMAGE"),
                          ("YPEAK_WORLD", "YPEAK_IMAGE")):
            if src in cols:
                cols[name] = np.asarray(cols[src], dtype=np.float64) - 1.0
        for name in ("ALPHA_J2000", "DELTA_J2000", "ALPHA_SKY", "DELTA_SKY", "ALPHAWIN_J2000", "DELTAWIN_J2000",
                     "ALPHAWIN_SKY", "DELTAWIN_SKY", "ALPHAPEAK_J2000", "DELTAPEAK_J2000"):
            cols[name] = np.zeros(n)
        jac = np.tile(np.eye(2), (n, 1, 1))
    else:
        def world(xs, ys):
            if len(xs) == 0:
                return np.zeros(0), np.zeros(0)
            w = wcs.all_pix2world(np.column_stack([xs, ys]), 1)
            return w[:, 0], w[:, 1]
        ra, dec = world(cols["X_IMAGE"], cols["Y_IMAGE"])
        cols["X_WORLD"] = cols["ALPHA_J2000"] = cols["ALPHA_SKY"] = ra
        cols["Y_WORLD"] = cols["DELTA_J2000"] = cols["DELTA_SKY"] = dec
        if "XWIN_IMAGE" in cols:
            rw, dw = world(cols["XWIN_IMAGE"], cols["YWIN_IMAGE"])
            cols["XWIN_WORLD"] = cols["ALPHAWIN_J2000"] = cols["ALPHAWIN_SKY"] = rw
            cols["YWIN_WORLD"] = cols["DELTAWIN_J2000"] = cols["DELTAWIN_SKY"] = dw
        rp, dp = world(cols["XPEAK_IMAGE"].astype(float), cols["YPEAK_IMAGE"].astype(float))
        cols["XPEAK_WORLD"] = cols["ALPHAPEAK_J2000"] = rp
        cols["YPEAK_WORLD"] = cols["DELTAPEAK_J2000"] = dp
        # Jacobian by finite differences (deg/pixel), longitude scaled by cos(dec)
        jac = np.zeros((n, 2, 2))
        if n:
            cosd = np.cos(np.radians(dec))
            rx, dx_ = world(cols["X_IMAGE"] + 0.5, cols["Y_IMAGE"])
            rx0, dx0 = world(cols["X_IMAGE"] - 0.5, cols["Y_IMAGE"])
            ry, dy_ = world(cols["X_IMAGE"], cols["Y_IMAGE"] + 0.5)
            ry0, dy0 = world(cols["X_IMAGE"], cols["Y_IMAGE"] - 0.5)
            dra_x = ((rx - rx0 + 180) % 360 - 180)
            dra_y = ((ry - ry0 + 180) % 360 - 180)
            jac[:, 0, 0] = dra_x * cosd
            jac[:, 0, 1] = dra_y * cosd
            jac[:, 1, 0] = dx_ - dx0
            jac[:, 1, 1] = dy_ - dy0

    from .isophotal import ellipse_from_moments

    def transform(x2, y2, xy):
        c11, c12, c21, c22 = jac[:, 0, 0], jac[:, 0, 1], jac[:, 1, 0], jac[:, 1, 1]
        wx2 = c11 * c11 * x2 + c12 * c12 * y2 + 2 * c11 * c12 * xy
        wy2 = c21 * c21 * x2 + c22 * c22 * y2 + 2 * c21 * c22 * xy
        wxy = c11 * c21 * x2 + c12 * c22 * y2 + (c11 * c22 + c12 * c21) * xy
        return wx2, wy2, wxy

    def wrap(t):
        return (np.asarray(t) + 90.0) % 180.0 - 90.0

    wx2, wy2, wxy = transform(cols["X2_IMAGE"], cols["Y2_IMAGE"], cols["XY_IMAGE"])
    cols["X2_WORLD"], cols["Y2_WORLD"], cols["XY_WORLD"] = wx2, wy2, wxy
    det = wx2 * wy2 - wxy * wxy
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["CXX_WORLD"], cols["CYY_WORLD"], cols["CXY_WORLD"] = wy2 / det, wx2 / det, -2 * wxy / det
    # a and b in world units come from the image a, b scaled (SExtractor scales the moments).
    # THETA_WORLD is measured from the world x axis (the Jacobian carries the east-left flip);
    # THETA_J2000 is the position angle east of north

    def world_ellipse(prefix, suffix, x2, y2, xy):
        a, b, theta = ellipse_from_moments(x2, y2, xy)
        cols[f"{prefix}A{suffix}_WORLD"], cols[f"{prefix}B{suffix}_WORLD"] = a, b
        cols[f"{prefix}THETA{suffix}_WORLD"] = wrap(theta)
        cols[f"{prefix}THETA{suffix}_J2000"] = cols[f"{prefix}THETA{suffix}_SKY"] = wrap(90.0 - wrap(theta))

    world_ellipse("", "", wx2, wy2, wxy)
    world_ellipse("ERR", "", *transform(cols["ERRX2_IMAGE"], cols["ERRY2_IMAGE"], cols["ERRXY_IMAGE"]))
    if "XWIN_IMAGE" in cols:
        world_ellipse("", "WIN", *transform(cols["X2WIN_IMAGE"], cols["Y2WIN_IMAGE"], cols["XYWIN_IMAGE"]))
        world_ellipse("ERR", "WIN", *transform(cols["ERRX2WIN_IMAGE"], cols["ERRY2WIN_IMAGE"],
                                               cols["ERRXYWIN_IMAGE"]))
    if wcs is None:  # position angles east of north need a celestial frame
        for name in ("THETA_J2000", "THETA_SKY", "ERRTHETA_J2000", "ERRTHETA_SKY", "THETAWIN_J2000",
                     "THETAWIN_SKY", "ERRTHETAWIN_J2000", "ERRTHETAWIN_SKY"):
            if name in cols:
                cols[name] = np.zeros(n)


# --------------------------------------------------------------------------------------------------------
# check images

def _check_images(types, data, sub, seg, bkg, table, cfg, apert):
    out = {}
    for t in types:
        if t == "IDENTICAL":
            out[t] = data
        elif t == "BACKGROUND":
            out[t] = bkg.back
        elif t == "BACKGROUND_RMS":
            out[t] = bkg.rms
        elif t == "MINIBACKGROUND":
            out[t] = bkg.mini()[0]
        elif t == "MINIBACK_RMS":
            out[t] = bkg.mini()[1]
        elif t == "-BACKGROUND":
            out[t] = sub
        elif t == "FILTERED":
            kernel = None
            if cfg["FILTER"]:
                from .filters import read_filter
                kernel = read_filter(cfg["FILTER_NAME"])
            if kernel is None:
                out[t] = sub
            else:
                from scipy.ndimage import convolve
                out[t] = convolve(sub, kernel[::-1, ::-1], mode="constant").astype(np.float32)
        elif t == "OBJECTS":
            out[t] = np.where(seg > 0, sub, 0).astype(np.float32)
        elif t == "-OBJECTS":
            out[t] = np.where(seg > 0, 0, sub).astype(np.float32)
        elif t == "SEGMENTATION":
            out[t] = seg.astype(np.int32)
        elif t == "APERTURES":
            out[t] = _draw_apertures(sub, apert)
    return out


def _draw_apertures(sub, apert):
    """The image with the aperture and Kron ellipse outlines drawn at the brightest level."""
    img = sub.copy()
    if apert is None:
        return img
    x, y, a, b, th, kron, aper = apert
    level = np.float32(np.nanmax(img) if img.size else 0)
    ny, nx = img.shape
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    for i in range(len(x)):
        shapes = [(d / 2.0, d / 2.0, 0.0) for d in aper] + [(a[i] * kron[i], b[i] * kron[i], th[i])]
        for ra, rb, ang in shapes:
            px = x[i] + ra * np.cos(t) * np.cos(ang) - rb * np.sin(t) * np.sin(ang)
            py = y[i] + ra * np.cos(t) * np.sin(ang) + rb * np.sin(t) * np.cos(ang)
            px, py = np.rint(px).astype(int), np.rint(py).astype(int)
            ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            img[py[ok], px[ok]] = level
    return img
