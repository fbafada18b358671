"""QualityFITS-out: the quality of a stack, with its PSF sampled every PSF_SAMPLE_ARCMIN and its completeness.

Completeness (the seeds' "Running completeness"): point sources made from the measured PSF model are
injected with photon noise, on a jittered grid (so they do not blend with each other), into a sub-image of
COMP_SIZE pixels; detection is re-run with the same configuration, and a fake counts as recovered when a
new detection (none within the matching radius in the original sub-image) lies within max(1.5 px,
0.75 FWHM) of it.  The 50% and 90% limits are interpolated on the curve from the bright end.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["assess_stack", "completeness", "crossing", "psf_samples"]


def crossing(mags, comp, level):
    """Magnitude where the completeness curve falls below ``level`` for good (linear interpolation
    between the faintest bin still at or above ``level`` and the next one), so that one noisy bright bin
    dipping under the level does not set the limit."""
    mags, comp = np.asarray(mags, float), np.asarray(comp, float)
    above = np.flatnonzero(comp >= level)
    if not above.size or above[-1] == len(mags) - 1:
        return float("nan")
    k = int(above[-1])
    f = (comp[k] - level) / (comp[k] - comp[k + 1])
    return float(mags[k] + f * (mags[k + 1] - mags[k]))


def completeness(data, weight, header, model, zp, gain, secfg, plist, mag_range, nfake=600, magstep=0.25,
                 size=1024, seed=1, log=None):
    """Inject ``nfake`` point sources with magnitudes uniform in ``mag_range`` and measure the recovered
    fraction per ``magstep`` bin.  Returns dict(mag, completeness, ntrial, m50, m90)."""
    from scipy.spatial import cKDTree
    from .assess import sextractor_api

    sx = sextractor_api()
    ImageSpec, extract_image, resolve_params = sx.ImageSpec, sx.extract_image, sx.resolve_params

    plist = resolve_params(["X_IMAGE", "Y_IMAGE"], secfg)  # positions are all the matching needs
    rng = np.random.default_rng(seed)
    ny, nx = data.shape
    h = min(size, nx, ny) // 2
    cy, cx = ny // 2, nx // 2
    sub = np.array(data[cy - h:cy + h, cx - h:cx + h], np.float32)
    wsub = np.array(weight[cy - h:cy + h, cx - h:cx + h], np.float32) if weight is not None else None
    sh, sw = sub.shape
    fwhm = max(model.fwhm, 1.0)
    stamp_size = int(2 * math.ceil(3 * fwhm) + 1)
    spacing = max(4 * stamp_size // 2, int(6 * fwhm), 12)
    radius = max(1.5, 0.75 * fwhm)

    def detect(img):
        spec = ImageSpec(img, header, 1, 1, weight=wsub, name="completeness")
        t = extract_image(spec, secfg, plist, wtype_m="MAP_WEIGHT" if wsub is not None else "NONE").table
        return np.column_stack([np.asarray(t["X_IMAGE"], float) - 1, np.asarray(t["Y_IMAGE"], float) - 1]) \
            if len(t) else np.zeros((0, 2))

    original = detect(sub)
    otree = cKDTree(original) if len(original) else None
    edges = np.arange(mag_range[0], mag_range[1] + magstep / 2, magstep)
    injected_m, recovered = [], []
    left = nfake
    while left > 0:
        gy, gx = np.mgrid[spacing // 2:sh - spacing // 2:spacing, spacing // 2:sw - spacing // 2:spacing]
        pos = np.column_stack([gx.ravel(), gy.ravel()]).astype(float)
        rng.shuffle(pos)
        pos = pos[:left] + rng.uniform(-spacing / 4, spacing / 4, (min(left, len(pos)), 2))
        if wsub is not None:
            keep = wsub[pos[:, 1].astype(int), pos[:, 0].astype(int)] > 0
            pos = pos[keep]
        if len(pos) == 0:
            raise ToolError("completeness: no position with non-zero weight in the central sub-image")
        mags = rng.uniform(edges[0], edges[-1], len(pos))
        img = sub.copy()
        hs = stamp_size // 2
        for (x, y), m in zip(pos, mags):
            ix, iy = int(round(x)), int(round(y))
            psf = model.image(cx - h + x + 1, cy - h + y + 1, stamp_size, x - ix, y - iy)
            flux = 10 ** (-0.4 * (m - zp)) * psf
            if gain > 0:
                flux = rng.poisson(np.clip(flux, 0, None) * gain) / gain
            y0, y1, x0, x1 = iy - hs, iy + hs + 1, ix - hs, ix + hs + 1
            cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, sh), max(x0, 0), min(x1, sw)
            img[cy0:cy1, cx0:cx1] += flux[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        found = detect(img)
        if otree is not None and len(found):
            d, _ = otree.query(found)
            found = found[d > radius]  # detections that were already there are not new
        ok = np.zeros(len(pos), bool)
        if len(found):
            d, _ = cKDTree(found).query(pos)
            ok = d <= radius
        injected_m.append(mags)
        recovered.append(ok)
        left -= len(pos)
    m = np.concatenate(injected_m)
    ok = np.concatenate(recovered)
    idx = np.clip(np.digitize(m, edges) - 1, 0, len(edges) - 2)
    ntrial = np.bincount(idx, minlength=len(edges) - 1)
    nrec = np.bincount(idx, weights=ok, minlength=len(edges) - 1)
    comp = np.where(ntrial > 0, nrec / np.maximum(ntrial, 1), np.nan)
    centres = 0.5 * (edges[1:] + edges[:-1])
    good = ntrial > 0
    return {"mag": centres[good], "completeness": comp[good], "ntrial": ntrial[good],
            "m50": crossing(centres[good], comp[good], 0.5), "m90": crossing(centres[good], comp[good], 0.9)}


def psf_samples(table, star_ok, sub, flag, header, cfg, step_arcmin, pixscale, log=None):
    """PSF FWHM/ellipticity on a grid every ``step_arcmin``: a model per cell from the cell's stars."""
    from terapix_psfex import fit_moffat, fit_psf

    from .assess import _vignettes

    ny, nx = sub.shape
    step = max(1, int(round(step_arcmin * 60.0 / pixscale)))
    nxc, nyc = max(1, int(math.ceil(nx / step))), max(1, int(math.ceil(ny / step)))
    x = np.asarray(table["X_IMAGE"], float)
    y = np.asarray(table["Y_IMAGE"], float)
    out = []
    for j in range(nyc):
        for i in range(nxc):
            x0, x1 = i * nx / nxc, (i + 1) * nx / nxc
            y0, y1 = j * ny / nyc, (j + 1) * ny / nyc
            sel = star_ok & (x > x0) & (x <= x1) & (y > y0) & (y <= y1)
            if sel.sum() < 3:
                continue
            vig = _vignettes(sub, flag, x[sel], y[sel])
            fw = 2 * float(np.median(np.asarray(table["FLUX_RADIUS"], float)[sel]))
            try:
                model = fit_psf(vig, x[sel], y[sel], backnoise=1.0, degree=0, size=cfg.psf_size, sample_fwhm=fw)
            except ValueError:
                continue
            xc, yc = 0.5 * (x0 + x1) + 0.5, 0.5 * (y0 + y1) + 0.5
            d = fit_moffat(model.at(xc, yc), model.step)
            out.append({"x": xc, "y": yc, "nstars": int(model.accepted), "fwhm_arcsec": d["fwhm"] * pixscale,
                        "ellipticity": 1 - d["fwhm_min"] / d["fwhm_max"], "theta": d["theta"],
                        "_psf": model.at(xc, yc)})
    return out


def assess_stack(ctx, image, cfg, config, version="0") -> dict:
    """QualityFITS-out of one stack (simple FITS or one-extension MEF)."""
    from terapix_psfex import write_psf
    from terapix_weightwatcher import WatchConfig, watch_extension

    from terapix_fw.ldac import LdacExtension, write_ldac

    from . import metrics as M
    from .assess import (CcdResult, _pixscale, candidate_window, extraction_config, finish_ccd, image_stem,
                         process_ccd, zeropoint_of)
    from .grading import read_rules, suggest_grade
    from .report import write_summary_xml

    stem = image_stem(image)
    wpath = Path(image).with_name(stem + config["WEIGHT_SUFFIX"])
    from terapix_fw.fitsimage import FitsImage

    with FitsImage(image, "stack") as img:
        idx = [h.index for h in img.images]
        primary = img.primary_header()
        if len(idx) != 1:
            raise ToolError(f"{image}: QualityFITS-out expects a stack with one image, found {len(idx)} extensions")
        header = img.header(idx[0])
        data = img.read(idx[0])
    weight = None
    if wpath.exists():
        with FitsImage(wpath, "weight map") as wh:
            weight = wh.read(wh.images[0].index)
        if weight.shape != data.shape:
            raise ToolError(f"{wpath}: weight map is {weight.shape[1]}x{weight.shape[0]}, the stack "
                            f"{data.shape[1]}x{data.shape[0]}")
    # stack weights are absolute (inverse variance): no WEIGHT_MIN/MAX window, no cosmic rays left
    wcfg = WatchConfig(**{**cfg.watch.__dict__, "weight_min": 1e-30, "weight_max": float("inf"),
                          "cr_detect": False, "trail_detect": False, "badcol_detect": False})
    res = watch_extension(data, header, wcfg, [weight] if weight is not None else [], where=str(image))
    zp = zeropoint_of(header, primary, cfg)
    qcfg = type(cfg)(**{**cfg.__dict__, "watch": wcfg})
    ccd: CcdResult = process_ccd(1, 1, idx[0], header, data, res, qcfg, zp, Path(image).name)
    finish_ccd(ccd, candidate_window([ccd], qcfg), qcfg)
    pixscale = _pixscale(header)
    expo = M.exposure_metrics([ccd.metrics])
    expo["zeropoint"] = zp if zp is not None else float("nan")
    summary = {"exposure": Path(image).name, "metrics": expo, "ccds": [(ccd.extname, ccd.metrics)], "mode": "OUT"}
    # PSF every PSF_SAMPLE_ARCMIN
    samples = []
    if ccd.table is not None and len(ccd.table):
        from terapix_psfex import select_stars

        ok, _ = select_stars(ccd.table, cfg.selection)
        samples = psf_samples(ccd.table, ok, data - res.background.back, res.flag, header, cfg,
                              config["PSF_SAMPLE_ARCMIN"], pixscale)
    summary["psf_samples"] = [{k: v for k, v in s.items() if not k.startswith("_")} for s in samples]
    comp = None
    if config["COMPLETENESS"] and ccd.model is not None and ccd.model.accepted > 0 and zp is not None:
        secfg, plist = extraction_config(cfg, zp)
        gain = float(header.get(wcfg.gain_key, 0.0) or 0.0)
        # centre the magnitude range on the expected detection limit: a point source whose peak pixel
        # reaches DETECT_THRESH sigma
        rms = expo.get("back_rms_adu", float("nan"))
        peak = float(ccd.model.image(0.5 * (data.shape[1] + 1), 0.5 * (data.shape[0] + 1), 15).max())
        if not (np.isfinite(rms) and rms > 0 and peak > 0):
            raise ToolError(f"{image}: cannot choose the completeness magnitude range without a noise estimate")
        mdet = zp - 2.5 * math.log10(cfg.detect_thresh * rms / peak)
        comp = completeness(data, weight if weight is not None else res.weight, header, ccd.model, zp, gain, secfg,
                            plist, (mdet - 2.5, mdet + 1.5), config["COMP_NFAKE"], config["COMP_MAGSTEP"],
                            config["COMP_SIZE"], config["COMP_SEED"])
        expo["comp_m50"], expo["comp_m90"] = comp["m50"], comp["m90"]
        summary["completeness"] = [{"mag": m, "completeness": c, "ntrial": int(n)}
                                   for m, c, n in zip(comp["mag"], comp["completeness"], comp["ntrial"])]
    rules = read_rules(cfg.grading_rules or None)
    grade, reasons = suggest_grade(expo, rules)
    summary.update(grade=grade, reasons=reasons)
    ext = LdacExtension(ccd.imhead if ccd.imhead is not None else header, _plain(ccd.table))
    with ctx.product(f"{stem}.ldac", "catalog") as tmp:
        write_ldac(tmp, [ext])
    with ctx.product(f"{stem}.psf", "psf") as tmp:
        write_psf(tmp, [ccd.model])
    if cfg.write_plots:
        from . import plots as P
        from .figures import _pointing, exposure_plots

        extra = None
        if samples and ccd.corners is not None:
            from .focal import _wcs, tangent

            centre = _pointing([ccd])
            w = _wcs(header)
            ra, dec = w.all_pix2world([s["x"] for s in samples], [s["y"] for s in samples], 1)
            xi, eta = tangent(ra, dec, *centre)
            extra = [(s["_psf"], a / 60, b / 60, s["fwhm_arcsec"]) for s, a, b in zip(samples, xi, eta)]
        exposure_plots(ctx, stem, [ccd], expo, _area([ccd]), extra_samples=extra)
        if comp is not None:
            path = ctx.output_path(f"{stem}_comptness.png")
            P.completeness_plot(path, comp["mag"], comp["completeness"], comp["ntrial"], comp["m50"], comp["m90"],
                                f"{stem}: completeness (point sources)")
            ctx.add_product(path, "plot")
    with ctx.product(f"{stem}.xml", "xml") as tmp:
        write_summary_xml(tmp, summary, version)
    from .assess import _record

    _record(ctx, summary, [ccd])
    ctx.log.info("%s: FWHM %.2f\", m50 %.2f, m90 %.2f, grade %s", Path(image).name, expo.get("fwhm_arcsec", np.nan),
                 expo.get("comp_m50", np.nan), expo.get("comp_m90", np.nan), grade)
    return summary


def _area(ccds):
    from .assess import _area_deg2

    return _area_deg2(ccds)


def _plain(table):
    from .assess import plain_table

    return plain_table(table)
