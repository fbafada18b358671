"""QualityFITS-in (exposures) and QualityFITS-out (stacks): the chain behind the qualityfits tool.

Per CCD, one CCD in memory at a time: weight and flag maps (terapix_weightwatcher), a shallow catalogue
(terapix_sextractor, weighted by the new map), PSF stars selected on the half-light-radius locus and a
PSF model (terapix_psfex), metrics and thumbnails.  Then for the exposure: focal-plane sanity of the WCS
headers, multiple-image detection, exposure metrics, the suggested grade, the XML summary and the plots.
"""
from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


__all__ = ["QFConfig", "CcdResult", "assess_exposure", "image_stem", "zeropoint_of", "CATALOG_PARAMS"]

#: shallow-catalogue columns: what SCAMP, PSFEx selection and the QualityFITS metrics need
CATALOG_PARAMS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE",
                  "ERRTHETAWIN_IMAGE", "ALPHA_J2000", "DELTA_J2000", "MAG_AUTO", "MAGERR_AUTO", "FLUX_AUTO",
                  "FLUXERR_AUTO", "FLUX_APER(1)", "FLUXERR_APER(1)", "FLUX_MAX", "FLUX_RADIUS", "SNR_WIN",
                  "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELONGATION", "ELLIPTICITY", "FWHM_IMAGE", "FLAGS",
                  "IMAFLAGS_ISO"]
VIGNET_SIZE = 35


@dataclass
class QFConfig:
    """Everything the chain needs, from the tool's configuration (see QualityFitsTool for the keywords)."""

    watch: object = None  # terapix_weightwatcher.maps.WatchConfig
    weight_names: list = field(default_factory=list)
    flag_names: list = field(default_factory=list)
    poly_names: list = field(default_factory=list)
    detect_thresh: float = 5.0
    detect_minarea: int = 5
    mag_zeropoint: float = 0.0
    zp_key: str = "MAGZP"
    psf_degree: int = 2
    psf_size: tuple = (25, 25)
    selection: object = None  # terapix_psfex.psfmodel.SelectionConfig
    focalplane_ref: str = ""
    max_ccd_offset: float = 10.0
    grading_rules: str = ""
    write_plots: bool = True
    thumb_size: int = 128


@dataclass
class CcdResult:
    """What the exposure-level steps need of one CCD (small: no full-resolution pixels)."""

    hdu: int
    extname: str
    header: object
    metrics: dict
    table: object = None
    imhead: object = None
    model: object = None
    psf_image: object = None
    star: object = None
    gal: object = None
    thumb: object = None
    wthumb: object = None
    bthumb: object = None
    corners: object = None  # (ra, dec) of the 4 corners
    meta_offsets: object = None  # (companion offsets, index of the bright source, number of bright sources)
    cand: object = None  # PSF candidates (positions, FWHM, vignettes) until finish_ccd


def image_stem(path) -> str:
    name = Path(path).name
    for suffix in (".fits.fz", ".fits", ".fit"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def zeropoint_of(header, primary, cfg: QFConfig):
    """MAG_ZEROPOINT if set, else header ZP_KEY (extension, then primary), else MAGZEROP (the zero point
    SCAMP and SWarp write on calibrated images and stacks), else PHOT_C + 2.5 log EXPTIME."""
    if cfg.mag_zeropoint:
        return float(cfg.mag_zeropoint)
    for key in (cfg.zp_key, "MAGZEROP"):
        for h in (header, primary):
            if h is not None and key and key in h:
                return float(h[key])
    for h in (header, primary):
        if h is not None and "PHOT_C" in h and float(h.get("EXPTIME", 0)) > 0:
            return float(h["PHOT_C"]) + 2.5 * math.log10(float(h["EXPTIME"]))
    return None


def _pixscale(header) -> float:
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header)
            if w.has_celestial:
                return float(np.sqrt(abs(np.linalg.det(w.celestial.pixel_scale_matrix))) * 3600.0)
        except Exception:  # noqa: BLE001
            pass
    return float(header.get("PIXSCALE", 0.0)) or 1.0


def _bin(img, size):
    ny, nx = img.shape
    b = max(1, int(math.ceil(max(nx, ny) / size)))
    by, bx = ny // b, nx // b
    if by == 0 or bx == 0:
        return np.asarray(img, np.float32)
    return img[:by * b, :bx * b].reshape(by, b, bx, b).mean(axis=(1, 3)).astype(np.float32)


def _vignettes(sub, flag, x, y, size=VIGNET_SIZE):
    """SExtractor-style VIGNETs: centred on pixel round(X_IMAGE - 1); masked and outside pixels -BIG."""
    from terapix_psfex.psfmodel import BIG_NEG

    ny, nx = sub.shape
    h = size // 2
    out = np.full((len(x), size, size), 2 * BIG_NEG, np.float32)
    for k, (xx, yy) in enumerate(zip(x, y)):
        ix, iy = int(math.floor(xx - 1 + 0.5)), int(math.floor(yy - 1 + 0.5))
        x0, x1, y0, y1 = ix - h, ix + h + 1, iy - h, iy + h + 1
        cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, nx), max(y0, 0), min(y1, ny)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        cut = sub[cy0:cy1, cx0:cx1].astype(np.float32)
        cut = np.where(flag[cy0:cy1, cx0:cx1] != 0, 2 * BIG_NEG, cut)
        out[k, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = cut
    return out


def sextractor_api():
    """The sextractor plugin's in-memory extraction module (``extraction``; ``extract`` before 2026-11-21)."""
    import importlib

    try:
        return importlib.import_module("terapix_sextractor.extraction")
    except ModuleNotFoundError:
        return importlib.import_module("terapix_sextractor.extract")


def extraction_config(cfg: QFConfig, zp):
    sx = sextractor_api()
    resolve_config, resolve_params = sx.resolve_config, sx.resolve_params
    secfg = resolve_config(None, DETECT_THRESH=cfg.detect_thresh, ANALYSIS_THRESH=cfg.detect_thresh,
                           DETECT_MINAREA=cfg.detect_minarea, WEIGHT_TYPE="MAP_WEIGHT",
                           MAG_ZEROPOINT=zp if zp is not None else 0.0, PIXEL_SCALE=0, NTHREADS=1,
                           # zero-weight pixels (cosmic rays, bad columns, trails) stay out of the
                           # measurements; interpolating over them would cost more than the extraction
                           INTERP_TYPE="NONE")
    return secfg, resolve_params(CATALOG_PARAMS, secfg)


def process_ccd(n, nccd, hdu, header, data, res, cfg: QFConfig, zp, name="", lock=None) -> CcdResult:
    """Catalogue, PSF candidates and metrics of one CCD whose weight/flag maps are ``res`` (``lock``
    serialises the extraction when CCDs are processed in threads)."""
    from terapix_psfex.psfmodel import PsfModel, sample_candidates

    sx = sextractor_api()
    ImageSpec, extract_image = sx.ImageSpec, sx.extract_image

    from . import metrics as M
    from .focal import _wcs

    extname = str(header.get("EXTNAME", f"EXT{hdu}"))
    st = res.stats
    m: dict = {"dead": int(bool(st.get("dead"))), "ncr": st.get("ncr", 0), "ntrail": st.get("ntrail", 0),
               "flagged_fraction": st.get("flagged_fraction", 1.0),
               "sat_fraction": st.get("nsat_pix", 0) / data.size}
    pixscale = _pixscale(header)
    out = CcdResult(hdu, extname, header, m)
    w = _wcs(header)
    ny, nx = data.shape
    if w is not None:
        out.corners = np.array(w.all_pix2world([0.5, nx + 0.5, nx + 0.5, 0.5], [0.5, 0.5, ny + 0.5, ny + 0.5], 1)).T
    if st.get("dead"):
        out.model = PsfModel(mask=np.zeros((1,) + tuple(cfg.psf_size[::-1]), np.float32), step=1.0, degree=0)
        out.thumb = _bin(np.nan_to_num(data), cfg.thumb_size)
        out.wthumb = _bin(res.weight, cfg.thumb_size)
        out.bthumb = np.zeros((2, 2), np.float32)
        return out
    bkg = res.background
    m["back_adu"] = bkg.global_back
    m["back_rms_adu"] = bkg.global_rms
    m["back_mag"] = M.surface_brightness(bkg.global_back, zp, pixscale)
    m["back_rms_mag"] = M.surface_brightness(bkg.global_rms, zp, pixscale)
    secfg, plist = extraction_config(cfg, zp)
    spec = ImageSpec(data, header, n, nccd, weight=res.weight, flags=[res.flag], name=name)
    if lock is not None:
        with lock:
            er = extract_image(spec, secfg, plist, wtype_m="MAP_WEIGHT")
    else:
        er = extract_image(spec, secfg, plist, wtype_m="MAP_WEIGHT")
    table = er.table
    out.table, out.imhead = table, er.header
    m["ndet"] = len(table)
    flags = np.asarray(table["FLAGS"]).astype(int) if len(table) else np.zeros(0, int)
    satobj = (flags & 4) != 0
    if len(table) and "IMAFLAGS_ISO" in table.colnames:
        satobj |= (np.asarray(table["IMAFLAGS_ISO"]).astype(int) & cfg.watch.satur_outflags) != 0
    m["nsat_obj"] = int(satobj.sum())
    # PSF candidates (PSFEx rules but the FWHM-mode window, which is set over the whole exposure as PSFEx
    # does over a catalogue file): their vignettes are kept, the model is fitted by finish_ccd
    ok, fwhm = sample_candidates(table, cfg.selection) if len(table) else (np.zeros(0, bool), np.zeros(0))
    x, y = np.asarray(table["X_IMAGE"])[ok], np.asarray(table["Y_IMAGE"])[ok]
    gain = float(header.get(cfg.watch.gain_key, 0.0) or 0.0) if cfg.watch.gain <= 0 else cfg.watch.gain
    out.cand = {"index": np.nonzero(ok)[0], "fwhm": fwhm[ok], "x": x, "y": y, "gain": gain, "zp": zp,
                "elong": np.asarray(table["ELONGATION"], float)[ok],
                "vignets": _vignettes(data - bkg.back, res.flag, x, y), "rms": bkg.global_rms,
                "pixscale": pixscale, "satobj": satobj}
    # double images: bright unsaturated sources and their fainter neighbours at a common offset
    snr = np.asarray(table["SNR_WIN"], float) if len(table) else np.zeros(0)
    bright = (snr > 30) & ~satobj
    offs, bidx = M.companion_offsets(np.asarray(table["X_IMAGE"])[bright] if len(table) else [],
                                     np.asarray(table["Y_IMAGE"])[bright] if len(table) else [],
                                     np.asarray(table["FLUX_AUTO"])[bright] if len(table) else [])
    out.meta_offsets = (offs, bidx, int(bright.sum()))
    m["multiple_image_fraction"] = M.multiple_image_fraction(offs, bidx, int(bright.sum()))[0]
    out.thumb = _bin(np.where(res.flag & cfg.watch.dead_outflags, 0, data), cfg.thumb_size)
    out.wthumb = _bin(res.weight, cfg.thumb_size)
    out.bthumb = bkg.mini()[0]
    return out


def candidate_window(ccds, cfg: QFConfig):
    """PSFEx's FWHM (mode, min, max) over the candidates of all CCDs (``compute_fwhmrange``)."""
    from terapix_psfex.psfmodel import fwhm_range

    allf = np.concatenate([c.cand["fwhm"] for c in ccds if c.cand is not None] or [np.zeros(0)])
    return fwhm_range(allf, cfg.selection.variability, cfg.selection.fwhmrange)


def finish_ccd(ccd: CcdResult, window, cfg: QFConfig) -> None:
    """PSF model of a CCD from its candidates inside the FWHM window, then what depends on it: seeing,
    ellipticity, star/galaxy classification on the half-light-radius locus, limiting magnitude."""
    from terapix_psfex.psfmodel import PsfModel, fit_moffat, fit_psf

    from . import metrics as M

    if ccd.cand is None:
        return
    c, m, table = ccd.cand, ccd.metrics, ccd.table
    nx, ny = ccd.header.get("NAXIS1", 0), ccd.header.get("NAXIS2", 0)
    mode, lo, hi = window
    sel = (c["fwhm"] >= lo) & (c["fwhm"] <= hi)
    # beyond PSFEx's cuts: drop candidates whose elongation or size stands out from this CCD's others
    # (faint elongated galaxies pass ELONGATION < 1.857 and bias a model built from a dozen stars)
    if sel.sum() >= 5:
        for key, floor in (("elong", 0.05), ("fwhm", 0.02 * mode)):
            v = c[key][sel]
            med = np.median(v)
            mad = 1.4826 * np.median(np.abs(v - med))
            keep = np.abs(c[key] - med) <= max(3 * mad, floor)
            if (sel & keep).sum() >= 3:
                sel &= keep
    model = None
    if sel.sum() >= 3:
        try:
            model = fit_psf(c["vignets"][sel], c["x"][sel], c["y"][sel], backnoise=c["rms"], gain=c["gain"],
                            degree=cfg.psf_degree, size=cfg.psf_size, sample_fwhm=mode)
        except ValueError:
            model = None
    if model is not None:
        model.loaded = len(table)
        d = fit_moffat(model.at(0.5 * (nx + 1), 0.5 * (ny + 1)), model.step)
        m["fwhm_px"] = d["fwhm"]
        m["fwhm_arcsec"] = d["fwhm"] * c["pixscale"]
        m["ellipticity"] = 1.0 - d["fwhm_min"] / d["fwhm_max"]
        m["psf_ellipticity"] = d["ellipticity"]
        m["psf_theta"] = d["theta"]
        m["psf_beta"] = d["beta"]
        m["psf_nstars"] = model.accepted
        ccd.psf_image = model.at(0.5 * (nx + 1), 0.5 * (ny + 1))
        used = c["index"][sel][model.meta["accepted_mask"]]
        rh_star = float(np.median(np.asarray(table["FLUX_RADIUS"], float).reshape(len(table), -1)[used, 0]))
        m["maglim_5sig"] = M.maglim(c["rms"], d["fwhm"], c["zp"])
    else:
        model = PsfModel(mask=np.zeros((1,) + tuple(cfg.psf_size[::-1]), np.float32), step=1.0, degree=0,
                         loaded=len(table))
        m["psf_nstars"] = 0
        rh_star = float("nan")
    ccd.model = model
    if len(table) and np.isfinite(rh_star):
        star, gal = M.classify(table, rh_star, saturated=c["satobj"])
    else:
        star = gal = np.zeros(len(table), bool)
    ccd.star, ccd.gal = star, gal
    m["nstars"], m["ngal"] = int(star.sum()), int(gal.sum())
    m["rh_star"] = rh_star
    ccd.cand = None  # the vignettes are no longer needed


def assess_exposure(ctx, image, cfg: QFConfig, version: str = "0") -> dict:
    """QualityFITS-in of one exposure: every product through ``ctx`` (atomic), records via ``ctx.record``.

    Returns a summary dict (exposure metrics, per-CCD metrics, grade, reasons, product paths).
    """
    from astropy.io import fits
    from terapix_psfex.psfmodel import write_psf
    from terapix_weightwatcher.maps import MapWriter, watch_stream

    from terapix_fw.ldac import LdacExtension, write_ldac

    from . import metrics as M
    from .focal import check_layout, expected_layout
    from .grading import read_rules, suggest_grade

    t_start = time.perf_counter()
    stem = image_stem(image)
    with fits.open(image) as hdul:
        primary = hdul[0].header.copy()
    wpath = ctx.output_path(f"{stem}.weight.fits")
    fpath = ctx.output_path(f"{stem}.flag.fits")
    ccds: list[CcdResult] = []
    with fits.open(image) as hdul:
        from terapix_weightwatcher.maps import image_hdu_indices

        nccd = len(image_hdu_indices(hdul, image))
    lock = threading.Lock()  # sep keeps global settings: one extraction at a time, maps in parallel

    def catalogue(n, hdu, header, data, res):
        return process_ccd(n, nccd, hdu, header, data, res, cfg, zeropoint_of(header, primary, cfg),
                           Path(image).name, lock)

    zp = None
    with MapWriter(wpath, fpath, primary, cfg.watch, version) as writer:
        for hdu, header, data, res, ccd in watch_stream(image, cfg.weight_names, cfg.flag_names, cfg.poly_names,
                                                        cfg.watch, ctx.log, max(1, ctx.nthreads), catalogue):
            writer.add(hdu, header, res)
            zp = zeropoint_of(header, primary, cfg)
            ccds.append(ccd)
            del data, res
    ctx.add_product(wpath, "weight")
    ctx.add_product(fpath, "flag")
    t_maps = time.perf_counter()
    window = candidate_window(ccds, cfg)
    for ccd in ccds:
        finish_ccd(ccd, window, cfg)
        ctx.log.info("%s: %d detections, %d PSF stars, FWHM %.2f\", e %.3f", ccd.extname,
                     ccd.metrics.get("ndet", 0), ccd.metrics.get("psf_nstars", 0),
                     ccd.metrics.get("fwhm_arcsec", float("nan")), ccd.metrics.get("ellipticity", float("nan")))
    # the shallow catalogue (FITS_LDAC, for SCAMP) and the PSF models (.psf, PSFEx format)
    # a dead CCD gets an empty table with the same columns, as SExtractor writes it (SCAMP expects them)
    template = next((c.table for c in ccds if c.table is not None), None)
    exts = [LdacExtension(c.imhead if c.imhead is not None else c.header,
                          plain_table(c.table if c.table is not None else
                                      (template[:0] if template is not None else None))) for c in ccds]
    with ctx.product(f"{stem}.ldac", "catalog") as tmp:
        write_ldac(tmp, exts)
    t_psf = time.perf_counter()
    with ctx.product(f"{stem}.psf", "psf") as tmp:
        write_psf(tmp, [c.model for c in ccds])
    # astrometric header sanity
    headers = [c.header for c in ccds]
    layout = check_layout(headers, expected_layout(headers, primary, cfg.focalplane_ref), cfg.max_ccd_offset)
    for k, c in enumerate(ccds):
        c.metrics["astrom_offset_arcsec"] = float(layout["offset_arcsec"][k])
        c.metrics["misplaced"] = int(layout["misplaced"][k])
        c.metrics["nowcs"] = int(layout["nowcs"][k])
    expo = M.exposure_metrics([c.metrics for c in ccds])
    # multiple images: the jump is common to all CCDs, so pool their offsets
    offs = [c.meta_offsets for c in ccds if c.meta_offsets is not None]
    if offs:
        allo = np.concatenate([o[0] for o in offs]) if any(len(o[0]) for o in offs) else np.zeros((0, 2))
        base, idx = 0, []
        for o in offs:
            idx.append(o[1] + base)
            base += o[2]
        allidx = np.concatenate(idx) if idx else np.zeros(0, int)
        frac, jump = M.multiple_image_fraction(allo, allidx, base)
        expo["multiple_image_fraction"] = frac
        expo["multiple_image_dx"], expo["multiple_image_dy"] = jump
    area = _area_deg2(ccds)
    expo["area_deg2"] = area
    expo["zeropoint"] = zp if zp is not None else float("nan")
    rules = read_rules(cfg.grading_rules or None)
    grade, reasons = suggest_grade(expo, rules)
    summary = {"exposure": Path(image).name, "metrics": expo, "ccds": [(c.extname, c.metrics) for c in ccds],
               "grade": grade, "reasons": reasons, "mode": "IN", "counts": star_galaxy_counts(ccds, area)}
    if cfg.write_plots:
        from .figures import exposure_plots

        t_plots = time.perf_counter()
        exposure_plots(ctx, stem, ccds, expo, area)
        ctx.log.info("timing: maps and catalogues %.1f s, PSF models %.1f s, plots %.1f s", t_maps - t_start,
                     t_psf - t_maps, time.perf_counter() - t_plots)
    from .report import write_summary_xml

    with ctx.product(f"{stem}.xml", "xml") as tmp:
        write_summary_xml(tmp, summary, version)
    _record(ctx, summary, ccds)
    ctx.log.info("%s: suggested grade %s%s", Path(image).name, grade,
                 "".join(f"\n  {r}" for r in reasons))
    return summary


def star_galaxy_counts(ccds, area):
    """Star and galaxy number counts per 0.5 mag (per deg^2 and raw) over all CCDs, for the XML summary."""
    from . import metrics as M

    mags = {"star": [], "gal": []}
    for c in ccds:
        if c.table is None or not len(c.table) or c.star is None:
            continue
        m = np.asarray(c.table["MAG_AUTO"], float)
        mags["star"].append(m[c.star])
        mags["gal"].append(m[c.gal])
    s = np.concatenate(mags["star"]) if mags["star"] else np.zeros(0)
    g = np.concatenate(mags["gal"]) if mags["gal"] else np.zeros(0)
    both = np.concatenate([s, g])
    both = both[np.isfinite(both) & (both < 90)]
    if not both.size:
        return []
    bins = np.arange(math.floor(both.min() * 2) / 2, math.ceil(both.max() * 2) / 2 + 0.51, 0.5)
    centres, ds, ns = M.number_counts(s, area, bins)
    _, dg, ng = M.number_counts(g, area, bins)
    return [{"mag": c, "stars_per_deg2": a, "nstars": int(b), "galaxies_per_deg2": d, "ngal": int(e)}
            for c, a, b, d, e in zip(centres, ds, ns, dg, ng)]


def _empty_table():
    from astropy.table import Table

    return Table({"NUMBER": np.zeros(0, np.int32)})


def plain_table(table):
    """The catalogue without the in-memory metadata (IMHEAD goes to LDAC_IMHEAD, not to the table header)."""
    if table is None:
        return _empty_table()
    t = table.copy(copy_data=False)
    t.meta.clear()
    return t


def _area_deg2(ccds) -> float:
    total = 0.0
    for c in ccds:
        if c.metrics.get("dead") or c.wthumb is None:
            continue
        nx, ny = c.header.get("NAXIS1", 0), c.header.get("NAXIS2", 0)
        frac = float((c.wthumb > 0).mean()) if c.wthumb.size else 0.0
        total += nx * ny * frac * (_pixscale(c.header) / 3600.0) ** 2
    return total


def _record(ctx, summary, ccds):
    rows = []
    for name, value in summary["metrics"].items():
        if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            rows.append({"ccd": 0, "name": name, "value": float(value)})
    for k, c in enumerate(ccds, 1):
        for name, value in c.metrics.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
                rows.append({"ccd": k, "name": name, "value": float(value)})
    if summary["mode"] == "OUT":
        # a stack is a product, never an exposure: its metrics go to the stack of swarp's record (same name)
        ctx.record("quality", stack=summary["exposure"].split(".fits")[0], suggested_grade=summary["grade"],
                   metrics=rows)
    else:
        ctx.record("quality", exposure=summary["exposure"], suggested_grade=summary["grade"], metrics=rows)
    ctx.record("qualityfits", exposure=summary["exposure"], mode=summary["mode"], grade=summary["grade"],
               reasons=summary["reasons"])
