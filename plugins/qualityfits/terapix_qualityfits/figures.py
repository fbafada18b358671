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
            if "IMAFLAGS_ISO" in c.table.colnames:  # saturated cores have zero weight: no FLAGS bit 4
                sel &= (np.asarray(c.table["IMAFLAGS_ISO"]).astype(int) & 4) == 0
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
        vr = (0.0, 1.3) if attr == "wthumb" else _stiff_range(tiles) if attr == "thumb" else None
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
    # stellar ellipticity whiskers: the PSF model (fitted to the stars) on a 3x3 grid per CCD, 1 - B/A
    # from Gaussian-weighted second moments, along the major axis projected on the tangent plane; single
    # stars are too noisy at the few-percent level of a PSF's ellipticity
    xs, ys, es, ths = [], [], [], []
    from .focal import _wcs, tangent

    for c in placed:
        if c.model is None or c.model.accepted == 0:
            continue
        w = _wcs(c.header)
        nx, ny = c.header.get("NAXIS1", 0), c.header.get("NAXIS2", 0)
        for fy in (1 / 6, 1 / 2, 5 / 6):
            for fx in (1 / 6, 1 / 2, 5 / 6):
                x, y = 0.5 + fx * nx, 0.5 + fy * ny
                e, th = psf_moments(c.model.at(x, y), c.model.step, c.metrics.get("fwhm_px", 3.0))
                ra, dec = w.all_pix2world([x, x + np.cos(th)], [y, y + np.sin(th)], 1)
                xi, eta = tangent(ra, dec, *centre)
                xs.append(xi[0] / 60)
                ys.append(eta[0] / 60)
                es.append(e)
                ths.append(np.degrees(np.arctan2(eta[1] - eta[0], xi[1] - xi[0])))
    p = out("ell")
    P.ellipticity_plot(p, xs, ys, es, ths, f"{stem}: stellar ellipticity")
    done(p)
    return produced


def _stiff_range(tiles):
    """Display range of the image thumbnails: STIFF's default levels (sky at grey 0.001, max at its
    0.999 level) over all CCDs, through terapix_stiff's public API."""
    from terapix_stiff import Settings, chunk_stats, levels_from_stats

    values = np.concatenate([np.ravel(t[0]) for t in tiles if np.size(t[0])] or [np.zeros(1, np.float32)])
    lev = levels_from_stats(chunk_stats(values.astype(np.float32)[None, :], None, 0.999), Settings())
    return (lev.min, lev.max) if lev.max > lev.min else None


def psf_moments(psf, step, fwhm_px):
    """(1 - B/A, major-axis angle in radians from +x) of a PSF image from Gaussian-weighted moments."""
    img = np.asarray(psf, float)
    ny, nx = img.shape
    gy, gx = np.mgrid[0:ny, 0:nx]
    gx = (gx - nx // 2) * step
    gy = (gy - ny // 2) * step
    sig = max(fwhm_px, 1.0) / 2.355
    wts = np.clip(img, 0, None) * np.exp(-0.5 * (gx ** 2 + gy ** 2) / sig ** 2)
    tot = wts.sum()
    if tot <= 0:
        return float("nan"), 0.0
    mx, my = (wts * gx).sum() / tot, (wts * gy).sum() / tot
    qxx = (wts * (gx - mx) ** 2).sum() / tot
    qyy = (wts * (gy - my) ** 2).sum() / tot
    qxy = (wts * (gx - mx) * (gy - my)).sum() / tot
    lam = np.linalg.eigvalsh([[qxx, qxy], [qxy, qyy]])
    e = 1 - np.sqrt(max(lam[0], 0) / lam[1]) if lam[1] > 0 else float("nan")
    return float(e), 0.5 * float(np.arctan2(2 * qxy, qxx - qyy))


def _cd(header):
    from .focal import _wcs

    w = _wcs(header)
    return None if w is None else w.celestial.pixel_scale_matrix
