"""The QualityFITS plot set of an exposure or a stack, from the per-CCD results (names: see plots.py)."""
from __future__ import annotations

import numpy as np

__all__ = ["exposure_plots", "focal_extent"]


def _pointing(ccds):
    corners = [c.corners for c in ccds if c.corners is not None]
    if not corners:
        return None
    allc = np.concatenate(corners)
    return float(np.median(allc[:, 0])), float(np.median(allc[:, 1]))


def focal_extent(ccd, centre):
    """(xi0, xi1, eta0, eta1) in arcmin of a CCD on the tangent plane about ``centre``; x runs east."""
    from .focal import tangent

    xi, eta = tangent(ccd.corners[:, 0], ccd.corners[:, 1], *centre)
    xi, eta = xi / 60.0, eta / 60.0
    # image x decreasing in xi (east to the left) means the thumbnail must be flipped: handled by extent order
    x0, x1 = (xi[0] + xi[3]) / 2, (xi[1] + xi[2]) / 2
    y0, y1 = (eta[0] + eta[1]) / 2, (eta[2] + eta[3]) / 2
    return x0, x1, y0, y1


def exposure_plots(ctx, stem, ccds, expo, area, extra_samples=None):
    from . import metrics as M
    from . import plots as P

    def out(suffix):
        path = ctx.output_path(f"{stem}_{suffix}.png")
        return path

    produced = []

    def done(path):
        ctx.add_product(path, "plot")
        produced.append(path)

    live = [c for c in ccds if not c.metrics.get("dead")]
    # background and FWHM histograms
    p = out("bkg_histo")
    P.histogram_plot(p, [c.metrics.get("back_adu", np.nan) for c in live], "background (ADU)",
                     f"{stem}: background per CCD")
    done(p)
    star_fwhm, ccd_fwhm = [], []
    for c in live:
        if c.table is not None and len(c.table) and c.star is not None:
            pix = np.sqrt(np.abs(np.linalg.det(_cd(c.header)))) * 3600 if _cd(c.header) is not None else 1.0
            sel = c.star & ((np.asarray(c.table["FLAGS"]).astype(int) & 4) == 0)
            star_fwhm.extend(np.asarray(c.table["FWHM_IMAGE"])[sel] * pix)
        ccd_fwhm.append(c.metrics.get("fwhm_arcsec", np.nan))
    p = out("fwhm_histo")
    P.histogram_plot(p, star_fwhm, "FWHM (arcsec): stars (bars), PSF model per CCD (lines)",
                     f"{stem}: seeing", per_ccd=ccd_fwhm, bins=30)
    done(p)
    # number counts and rh-mag diagrams
    mags, rhs, stars, gals = [], [], [], []
    for c in live:
        if c.table is None or not len(c.table):
            continue
        mags.append(np.asarray(c.table["MAG_AUTO"], float))
        rhs.append(np.asarray(c.table["FLUX_RADIUS"], float).reshape(len(c.table), -1)[:, 0])
        stars.append(c.star)
        gals.append(c.gal)
    if mags:
        mag, rh, star, gal = (np.concatenate(a) for a in (mags, rhs, stars, gals))
    else:
        mag = rh = np.zeros(0)
        star = gal = np.zeros(0, bool)
    rh_star = expo.get("rh_star")
    for suffix, sel, label in (("star_histo", star, "stars"), ("gal_histo", gal, "galaxies")):
        centres, dens, counts = M.number_counts(mag[sel], area)
        p = out(suffix)
        P.counts_plot(p, centres, dens, counts, f"{stem}: {label} number counts ({area:.3f} deg$^2$)")
        done(p)
    for suffix, kw in (("rhmag", {"star": star, "gal": gal}), ("rhmag_star", {"star": star}),
                       ("rhmag_gal", {"gal": gal})):
        p = out(suffix)
        P.rhmag_plot(p, mag, rh, f"{stem}: half-light radius vs magnitude", rh_star=rh_star, **kw)
        done(p)
    centre = _pointing(ccds)
    if centre is None:
        return produced
    placed = [c for c in ccds if c.corners is not None]
    ext = {id(c): focal_extent(c, centre) for c in placed}
    for suffix, attr, title, cmap, label, size in (
            ("bkg_m", "bthumb", "background", "magma", "ADU", 8.0),
            ("wmm", "wthumb", "weight map", "gray", "weight", 8.0),
            ("wmm_med", "wthumb", "weight map", "gray", "weight", 4.0),
            ("m", "thumb", "image", "gray_r", "ADU", 8.0),
            ("m_med", "thumb", "image", "gray_r", "ADU", 4.0)):
        tiles = [(getattr(c, attr), ext[id(c)]) for c in placed if getattr(c, attr) is not None]
        p = out(suffix)
        vr = (0.0, 1.3) if attr == "wthumb" else None
        P.mosaic_plot(p, tiles, f"{stem}: {title}", cmap=cmap, label=label, width=size, vrange=vr)
        done(p)
    samples = extra_samples
    if samples is None:
        samples = []
        for c in placed:
            if c.psf_image is not None:
                x0, x1, y0, y1 = ext[id(c)]
                samples.append((c.psf_image, (x0 + x1) / 2, (y0 + y1) / 2, c.metrics.get("fwhm_arcsec", np.nan)))
    p = out("psf_m")
    P.psf_map_plot(p, samples, f"{stem}: PSF model")
    done(p)
    # stellar ellipticity whiskers: PSF stars' 1 - B/A along THETA, on the tangent plane
    xs, ys, es, ths = [], [], [], []
    from .focal import _wcs, tangent

    for c in placed:
        if c.table is None or not len(c.table) or c.star is None:
            continue
        t = c.table
        sel = c.star & ((np.asarray(t["FLAGS"]).astype(int) & 0xFE) == 0) & (np.asarray(t["SNR_WIN"]) > 30)
        if not sel.any():
            continue
        w = _wcs(c.header)
        x, y = np.asarray(t["X_IMAGE"])[sel], np.asarray(t["Y_IMAGE"])[sel]
        ra, dec = w.all_pix2world(x, y, 1)
        xi, eta = tangent(ra, dec, *centre)
        th = np.radians(np.asarray(t["THETA_IMAGE"])[sel])
        ra2, dec2 = w.all_pix2world(x + np.cos(th), y + np.sin(th), 1)
        xi2, eta2 = tangent(ra2, dec2, *centre)
        xs.extend(xi / 60)
        ys.extend(eta / 60)
        es.extend(np.asarray(t["ELLIPTICITY"])[sel])
        ths.extend(np.degrees(np.arctan2(eta2 - eta, xi2 - xi)))
    p = out("ell")
    P.ellipticity_plot(p, xs, ys, es, ths, f"{stem}: stellar ellipticity")
    done(p)
    return produced


def _cd(header):
    from .focal import _wcs

    w = _wcs(header)
    return None if w is None else w.celestial.pixel_scale_matrix
