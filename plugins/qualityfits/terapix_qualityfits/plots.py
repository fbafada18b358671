"""QualityFITS plots (PNG, matplotlib Agg), named as in the seeds (``%s`` is the image name):

%s_bkg_histo.png   background per CCD (histogram)          %s_bkg_m.png     background across the focal plane
%s_fwhm_histo.png  FWHM of the PSF stars and per CCD        %s_psf_m.png     PSF model across the focal plane
%s_star_histo.png  star number counts                       %s_gal_histo.png galaxy number counts
%s_rhmag.png       half-light radius vs magnitude (all)     %s_rhmag_star.png / %s_rhmag_gal.png (selected)
%s_ell.png         stellar ellipticity map (whiskers)       %s_wmm.png / %s_wmm_med.png weight-map thumbnails
%s_m.png / %s_m_med.png binned image thumbnails             %s_comptness.png completeness (QualityFITS-out)

Every function takes the final path and writes it atomically.  Focal-plane coordinates are arcmin on the
exposure's tangent plane (east to the left).
"""
from __future__ import annotations

import numpy as np

from terapix_fw.atomic import atomic_path

__all__ = ["histogram_plot", "counts_plot", "rhmag_plot", "mosaic_plot", "psf_map_plot", "ellipticity_plot",
           "completeness_plot"]


def _figure(width=6.4, height=4.8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    # fixed margins: bbox_inches="tight" would draw every figure twice
    fig.subplots_adjust(left=0.13, right=0.95, bottom=0.11, top=0.92)
    return plt, fig, ax


def _save(plt, fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def histogram_plot(path, values, xlabel, title, per_ccd=None, bins=20):
    plt, fig, ax = _figure()
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size:
        ax.hist(v, bins=bins, color="steelblue", alpha=0.8, label=f"N = {v.size}")
        med = np.median(v)
        ax.axvline(med, color="k", ls="--", label=f"median {med:.3g}")
    if per_ccd is not None:
        pc = np.asarray(per_ccd, float)
        pc = pc[np.isfinite(pc)]
        for val in pc:
            ax.axvline(val, color="orange", alpha=0.5, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    _save(plt, fig, path)


def counts_plot(path, centres, density, counts, title, ylabel="N / deg$^2$ / 0.5 mag"):
    plt, fig, ax = _figure()
    ok = counts > 0
    if ok.any():
        err = density[ok] / np.sqrt(counts[ok])
        ax.errorbar(centres[ok], np.log10(density[ok]), yerr=err / (density[ok] * np.log(10)), fmt="o",
                    color="darkred", ms=4)
    ax.set_xlabel("magnitude (MAG_AUTO)")
    ax.set_ylabel(f"log$_{{10}}$ {ylabel}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(plt, fig, path)


def rhmag_plot(path, mag, rh, title, star=None, gal=None, rh_star=None):
    plt, fig, ax = _figure()
    mag = np.asarray(mag, float)
    rh = np.asarray(rh, float)
    ok = np.isfinite(mag) & (mag < 90) & (rh > 0)
    ax.scatter(mag[ok], rh[ok], s=2, c="0.6", label="all", rasterized=True)
    if star is not None:
        s = ok & star
        ax.scatter(mag[s], rh[s], s=3, c="royalblue", label=f"stars ({s.sum()})")
    if gal is not None:
        g = ok & gal
        ax.scatter(mag[g], rh[g], s=3, c="darkorange", label=f"galaxies ({g.sum()})")
    if rh_star:
        ax.axhline(rh_star, color="k", lw=0.8, ls=":")
    if ok.any():
        ax.set_ylim(0, np.percentile(rh[ok], 99) * 1.2 + 0.5)
    ax.set_xlabel("magnitude (MAG_AUTO)")
    ax.set_ylabel("half-light radius FLUX_RADIUS (pixels)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    _save(plt, fig, path)


def mosaic_plot(path, tiles, title, cmap="gray", label="", width=8.0, vrange=None):
    """Per-CCD images placed at their focal-plane extents: ``tiles`` = [(image2d, (x0, x1, y0, y1))]."""
    plt, fig, ax = _figure(width, width * 0.75)
    values = np.concatenate([np.ravel(t[0])[np.isfinite(np.ravel(t[0]))] for t in tiles if np.size(t[0])] or
                            [np.zeros(1)])
    lo, hi = vrange if vrange else (np.percentile(values, 2), np.percentile(values, 98))
    im = None
    for img, (x0, x1, y0, y1) in tiles:
        im = ax.imshow(img, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=lo, vmax=hi,
                       interpolation="nearest")
    _frame(ax, tiles)
    if im is not None:
        fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    ax.set_title(title)
    _save(plt, fig, path)


def _frame(ax, tiles):
    xs = [v for _, e in tiles for v in e[:2]]
    ys = [v for _, e in tiles for v in e[2:]]
    if xs:
        pad = 0.03 * max(max(xs) - min(xs), max(ys) - min(ys), 1e-3)
        ax.set_xlim(max(xs) + pad, min(xs) - pad)  # east to the left
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlabel(r"$\xi$ (arcmin)")
    ax.set_ylabel(r"$\eta$ (arcmin)")
    ax.set_aspect("equal")


def psf_map_plot(path, samples, title, size_arcmin=None):
    """PSF images at their focal-plane positions: ``samples`` = [(psf2d, xc, yc, fwhm_arcsec)]."""
    plt, fig, ax = _figure(8.0, 6.0)
    if samples:
        xs = np.array([s[1] for s in samples])
        ys = np.array([s[2] for s in samples])
        if size_arcmin is None:
            d = [np.min(np.hypot(xs - x, ys - y)[np.hypot(xs - x, ys - y) > 0]) for x, y in zip(xs, ys)] \
                if len(samples) > 1 else [4.0]
            size_arcmin = 0.8 * float(np.median(d))
        h = size_arcmin / 2
        tiles = []
        for psf, x, y, fwhm in samples:
            img = np.asarray(psf, float)
            img = img / img.max() if img.max() > 0 else img
            tiles.append((img, (x - h, x + h, y - h, y + h)))
            ax.imshow(np.sqrt(np.clip(img, 0, None)), origin="lower", extent=(x + h, x - h, y - h, y + h),
                      cmap="viridis", vmin=0, vmax=1)
            if np.isfinite(fwhm):
                ax.text(x, y - h * 1.1, f'{fwhm:.2f}"', ha="center", va="top", fontsize=6)
        _frame(ax, tiles)
    ax.set_title(title)
    _save(plt, fig, path)


def ellipticity_plot(path, x, y, e, theta_deg, title, scale=None):
    """Whiskers of length proportional to ellipticity ``e`` along the major axis (angle from +xi)."""
    plt, fig, ax = _figure(8.0, 6.0)
    x, y, e, th = (np.asarray(a, float) for a in (x, y, e, theta_deg))
    ok = np.isfinite(x) & np.isfinite(e) & np.isfinite(th)
    if ok.any():
        span = max(np.ptp(x[ok]), np.ptp(y[ok]), 1e-3)
        scale = scale or 0.05 * span / max(np.percentile(e[ok], 90), 0.01)
        u = e[ok] * scale * np.cos(np.radians(th[ok]))
        v = e[ok] * scale * np.sin(np.radians(th[ok]))
        ax.quiver(x[ok], y[ok], u, v, angles="xy", scale_units="xy", scale=1, headwidth=0, headlength=0,
                  headaxislength=0, pivot="middle", width=0.002, color="navy")
        ax.quiver([np.max(x[ok])], [np.max(y[ok]) + 0.05 * span], [0.05 * scale], [0], angles="xy",
                  scale_units="xy", scale=1, headwidth=0, headlength=0, headaxislength=0, pivot="middle",
                  width=0.003, color="red")
        ax.text(np.max(x[ok]), np.max(y[ok]) + 0.07 * span, "e = 0.05", color="red", fontsize=7, ha="center")
        ax.set_xlim(np.max(x[ok]) + 0.05 * span, np.min(x[ok]) - 0.05 * span)
        ax.set_ylim(np.min(y[ok]) - 0.05 * span, np.max(y[ok]) + 0.1 * span)
        ax.set_aspect("equal")
    ax.set_xlabel(r"$\xi$ (arcmin)")
    ax.set_ylabel(r"$\eta$ (arcmin)")
    ax.set_title(title)
    _save(plt, fig, path)


def completeness_plot(path, mags, completeness, ntrials, m50, m90, title):
    plt, fig, ax = _figure()
    mags, completeness = np.asarray(mags, float), np.asarray(completeness, float)
    err = np.sqrt(np.clip(completeness * (1 - completeness), 0, None) / np.maximum(ntrials, 1))
    ax.errorbar(mags, completeness, yerr=err, fmt="o-", color="k", ms=4)
    for level, m, c in ((0.5, m50, "red"), (0.9, m90, "blue")):
        ax.axhline(level, color=c, ls=":", lw=0.8)
        if np.isfinite(m):
            ax.axvline(m, color=c, ls="--", lw=0.8, label=f"{int(level * 100)}%: {m:.2f}")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("injected point-source magnitude")
    ax.set_ylabel("fraction recovered")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    _save(plt, fig, path)
