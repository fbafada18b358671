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
  detected in a forked process (sep holds the GIL) while this one loads the numba kernels and the WCS,
  then measured by threads here (:func:`_overlapped_job`; the catalogue is the serial one).
* Memory: an extension is held in memory whole when it fits (at most about 40 bytes per pixel); one that
  does not (a 19354x19354 stack on a small node) is processed by horizontal strips with overlapping
  margins (:func:`_run_strips`); one that cannot even be cut into strips is refused before any work.
  :func:`iter_results` hands each extension over as soon as it is done (in order, a bounded number ahead
  from worker processes), and the tool writes it out at once: nothing accumulates over the extensions.

Layout: this module holds the entry points and the scheduling of extensions (processes, threads,
strips); the work is in modules by concern, whose names are re-exported here:
:mod:`.configuration` (keywords and catalogue columns), :mod:`.reading` (inputs, results, memory
planning), :mod:`.detection`, :mod:`.measurement`, :mod:`.worldcoords` and :mod:`.checkimages`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from terapix_fw.errors import ToolError

from . import reading as _reading
from .checkimages import _check_images
from .configuration import check_supported, resolve_config, resolve_params
from .detection import _detect, _Detected, _every_nth, _interpolate_bad, _variance_from_weight
from .measurement import MeasureInputs, _apertures, _grown_labels_at, _measure, _precompute, _vignets
from .paramfile import CatalogParam
from .reading import (BYTES_PER_PIXEL, ExtractionResult, ImageSpec, _job_header, _mark, _open, _read_spec,
                      _release_heap, _strip_plan, _timings, _TIMINGS)
from .worldcoords import _in_thread, _pixel_scale, _wants_world, _wcs

__all__ = ["extract", "extract_results", "iter_results", "extract_image", "resolve_config", "resolve_params",
           "ImageSpec", "ExtractionResult", "BYTES_PER_PIXEL"]
#: names of the concern modules kept importable from here (tests and older callers use them)
_REEXPORTED = (_every_nth, _grown_labels_at, _interpolate_bad, _variance_from_weight, _vignets)


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
    return [r.table for r in iter_results(image_path, config, params, detection_path, weight_path,
                                          flag_path, det_weight_path, extensions, nthreads, **overrides)]


def extract_results(image_path, config=None, params=None, detection_path=None, weight_path=None,
                    flag_path=None, det_weight_path=None, extensions=None, nthreads=None,
                    **overrides) -> list[ExtractionResult]:
    """As :func:`extract`, returning :class:`ExtractionResult` (table, LDAC header, check images).

    Parameters
    ----------
    image_path, config, params, detection_path, weight_path, flag_path, det_weight_path, extensions, nthreads
        As for :func:`extract`.
    **overrides : Any
        SExtractor keywords.

    Returns
    -------
    list of ExtractionResult
    """
    return list(iter_results(image_path, config, params, detection_path, weight_path, flag_path,
                             det_weight_path, extensions, nthreads, **overrides))


def iter_results(image_path, config=None, params=None, detection_path=None, weight_path=None,
                 flag_path=None, det_weight_path=None, extensions=None, nthreads=None,
                 **overrides) -> Iterator[ExtractionResult]:
    """As :func:`extract_results`, yielding each extension's result in extension order as soon as it is
    done: a caller that writes each one and lets it go (the tool's catalogue and check images) holds a
    number of extensions bounded by the worker count, not the whole file.

    Parameters
    ----------
    image_path, config, params, detection_path, weight_path, flag_path, det_weight_path, extensions, nthreads
        As for :func:`extract`.
    **overrides : Any
        SExtractor keywords.

    Yields
    ------
    ExtractionResult
    """
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
    avail = _reading._available_memory()  # through the module: tests replace it there
    if any(plans.values()):
        workers = 1  # strips already use the memory there is
    elif avail is not None and workers > 1:  # keep the parallel extensions within the free memory
        need = max(int(shapes[i][0]) * int(shapes[i][1]) for i in indices) * _reading.BYTES_PER_PIXEL
        workers = max(1, min(workers, int(avail // max(need, 1))))
    if len(jobs) == 1:  # one image: its objects are measured by several threads instead
        jobs[0]["inner_threads"] = requested
    if workers == 1:
        for job in jobs:
            yield _run_job(job, cfg, plist)
        return
    yield from _pooled(jobs, cfg, plist, workers)


def _pooled(jobs, cfg, plist, workers):
    """The jobs' results in order from ``workers`` processes, at most two per worker submitted ahead of
    the one the caller waits for (the others' results would pile up here while the first is slow)."""
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    if ctx is not None:
        _warm_up()  # load the numba functions once; forked workers inherit them
    todo = iter(jobs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = deque()
        try:
            for job in todo:
                pending.append(pool.submit(_run_job, job, cfg, plist))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                result = pending.popleft().result()
                job = next(todo, None)
                if job is not None:
                    pending.append(pool.submit(_run_job, job, cfg, plist))
                yield result
                del result  # the caller has it; do not keep it while waiting for the next
        except BaseException:  # an error, Ctrl-C or a caller that stops: do not run what is queued
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _warm_up():
    """Load every numba kernel (from numba's cache) before forking workers or while another process
    detects."""
    from .measure import warm_up

    warm_up()


def _run_job(job, cfg, plist) -> ExtractionResult:
    try:
        if job.get("strips"):
            return _run_strips(job, cfg, plist)
        if _can_overlap(job, cfg):
            return _overlapped_job(job, cfg, plist)
        return _run_rows(job, cfg, plist)
    finally:
        _release_heap()


def _run_rows(job, cfg, plist, rows=None) -> ExtractionResult:
    """Extract one extension, or only its image rows ``rows`` = (first, end) (strip processing: the WCS
    reference pixel is moved so that world coordinates stay right; pixel coordinates are the strip's)."""
    return extract_image(_read_spec(job, cfg, rows), cfg, plist, wtype_m=job["wtype_m"], wtype_d=job["wtype_d"],
                         nthreads=job.get("inner_threads", 1))


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
    (:class:`~terapix_fw.forked.ForkedCall`) while this one loads the numba kernels, the WCS
    and the classifier; the measurements then run in threads here.  The catalogue is
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
        from . import classifier, paramdefs  # noqa: F401
        spec, det = child.result()
    finally:
        child.close()
    return _measure_detected(det.restored(), spec, cfg, plist, job["inner_threads"], wcs=wcs)


_Y_COLUMNS = ("Y_IMAGE", "YWIN_IMAGE", "YPEAK_IMAGE", "YMIN_IMAGE", "YMAX_IMAGE")


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


def extract_image(spec: ImageSpec, cfg, plist: list[CatalogParam], wtype_m: str = "NONE",
                  wtype_d: str = "NONE", nthreads: int = 1) -> ExtractionResult:
    """Detect and measure sources in one extension (arrays in memory).  See :func:`extract`.

    ``nthreads`` threads share the per-object measurements (useful for one large image; a MEF is
    parallelised over extensions instead).

    Parameters
    ----------
    spec : ImageSpec
        Pixels, weights, flags and header of the extension.
    cfg : Config
        From :func:`resolve_config`.
    plist : list of CatalogParam
        From :func:`resolve_params`.
    wtype_m, wtype_d : str
        WEIGHT_TYPE of the measurement and detection images.
    nthreads : int

    Returns
    -------
    ExtractionResult
    """
    _TIMINGS.clear()
    det = _detect(spec, cfg, wtype_m, wtype_d)
    if spec.owned:  # the detection holds what is still needed; the raw planes can go as soon as it lets them
        spec.data = spec.det_data = spec.weight = spec.det_weight = None
    return _measure_detected(det, spec, cfg, plist, nthreads)


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
    columns, apertures = _measure(MeasureInputs(
        objs=objs, seg=seg, sub=sub_m, var=var_m, bad=bad_m, bkg=bkg_m, spec=spec, cfg=cfg, plist=plist, want=want,
        gain=gain, satur=satur, zp=zp, pixscale=pixscale, wcs=wcs, athresh=athresh, a_rel=a_rel,
        athresh_adu=athresh_adu, dthresh=dthresh, d_rel=d_rel, dthresh_adu=dthresh_adu, sub_d=sub_d, bkg_d=bkg_d,
        kernel=kernel, zero_w=zero_m, spec_image=data, nthreads=nthreads, pre=det.pre,
        var_d=det.var_d if det.var_d is not None else var_m))

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
    meta = {"IMHEAD": imhead, "EXTENSION": spec.ext, "TIMINGS": {**det.timings, **_timings()}}

    checks = {}
    if types:
        checks = _check_images(types, data, sub_m, seg, bkg_m, columns, cfg, apertures)
    return ExtractionResult(header=imhead, checks=checks, columns=columns, meta=meta)


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
