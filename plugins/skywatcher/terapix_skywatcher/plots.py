"""Check-plots of the sky coverage: CCD footprints per filter, and depth maps.

Right ascension increases to the left (east left, as on the sky).  Coordinates are unwrapped around
the mean right ascension of the survey so that a field across RA = 0 is drawn in one piece.
"""
from __future__ import annotations

import numpy as np

from .coverage import CoverageMap

__all__ = ["plot_footprints", "plot_depth", "sky_frame", "rasterise_depth"]


def rasterise_depth(footprints, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """Exposure count and summed EXPTIME at each (ra, dec): a point is covered by an exposure when it lies
    in one of its CCD footprints (tested on the gnomonic plane about the point set's centre, where the
    great-circle edges of a TAN CCD are straight); an exposure counts once per point."""
    from matplotlib.path import Path as MplPath

    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    ra_c, dec_c = _mean_ra(ra.ravel()), float(np.mean(dec))

    def tangent(r, d):
        r, d, a0, d0 = np.deg2rad(r), np.deg2rad(d), np.deg2rad(ra_c), np.deg2rad(dec_c)
        cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - a0)
        return (np.cos(d) * np.sin(r - a0) / cosc,
                (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - a0)) / cosc)

    px, py = tangent(ra.ravel(), dec.ravel())
    points = np.column_stack([px, py])
    count = np.zeros(ra.size, np.int32)
    exptime = np.zeros(ra.size)
    by_exposure: dict[str, list] = {}
    for fp in footprints:
        by_exposure.setdefault(fp.exposure, []).append(fp)
    for fps in by_exposure.values():
        hit = np.zeros(ra.size, bool)
        for fp in fps:
            x, y = tangent(*fp.outline())
            if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                continue
            box = (px >= x.min()) & (px <= x.max()) & (py >= y.min()) & (py <= y.max())
            if box.any():
                hit[box] |= MplPath(np.column_stack([x, y])).contains_points(points[box])
        count += hit
        exptime[hit] += fps[0].exptime
    return count.reshape(ra.shape), exptime.reshape(ra.shape)


def _mean_ra(ra: np.ndarray) -> float:
    angle = np.deg2rad(ra)
    return float(np.rad2deg(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) % 360.0)


def sky_frame(maps: dict[str, CoverageMap]) -> tuple[float, tuple[float, float, float, float]]:
    """Reference RA and (ra_min, ra_max, dec_min, dec_max) of all footprints, RA unwrapped."""
    ra = np.concatenate([fp.ra for cov in maps.values() for fp in cov.footprints])
    dec = np.concatenate([fp.dec for cov in maps.values() for fp in cov.footprints])
    ref = _mean_ra(ra)
    ra_u = ref + (ra - ref + 180.0) % 360.0 - 180.0
    pad_ra = 0.05 * max(np.ptp(ra_u), 0.01)
    pad_dec = 0.05 * max(np.ptp(dec), 0.01)
    return ref, (ra_u.min() - pad_ra, ra_u.max() + pad_ra, max(dec.min() - pad_dec, -90.0),
                 min(dec.max() + pad_dec, 90.0))


def _unwrap(ra: np.ndarray, ref: float) -> np.ndarray:
    return ref + (ra - ref + 180.0) % 360.0 - 180.0


def _figure(ncols: int, nrows: int, frame, width_px: int, dpi: int = 100):
    from matplotlib.figure import Figure

    ra0, ra1, dec0, dec1 = frame
    aspect = (dec1 - dec0) / max((ra1 - ra0) * np.cos(np.deg2rad(0.5 * (dec0 + dec1))), 1e-6)
    panel_w = width_px / dpi / ncols
    height = min(max(panel_w * aspect, 2.0), 3 * panel_w) * nrows + 0.6
    fig = Figure(figsize=(width_px / dpi, height), dpi=dpi, layout="constrained")
    return fig


def _axes_setup(ax, frame, title: str) -> None:
    ra0, ra1, dec0, dec1 = frame
    ax.set_xlim(ra1, ra0)  # east to the left
    ax.set_ylim(dec0, dec1)
    ax.set_aspect(1.0 / np.cos(np.deg2rad(0.5 * (dec0 + dec1))))
    ax.set_xlabel("RA (deg)")
    ax.set_ylabel("Dec (deg)")
    ax.set_title(title, fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(lambda value, _pos: f"{value % 360.0:.6g}")


def plot_footprints(path, maps: dict[str, CoverageMap], width_px: int = 1200, fmt: str = "png"):
    """One panel per filter with the outline of every CCD; writes ``path`` (a new file), returns the figure."""
    from matplotlib.patches import Polygon

    ref, frame = sky_frame(maps)
    ncols = min(len(maps), 3)
    nrows = (len(maps) + ncols - 1) // ncols
    fig = _figure(ncols, nrows, frame, width_px)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (band, cov) in zip(axes.ravel(), maps.items()):
        colours = {}
        for fp in cov.footprints:
            colour = colours.setdefault(fp.exposure, f"C{len(colours) % 10}")
            ora, odec = fp.outline()  # the CCD's edges sampled through its WCS
            ax.add_patch(Polygon(np.column_stack([_unwrap(ora, ref), odec]), closed=True,
                                 fill=True, facecolor=colour, alpha=0.15, edgecolor=colour, lw=0.6))
        # two short lines: three panels side by side leave ~35 characters per title
        _axes_setup(ax, frame, f"{band}\n{cov.nexposures} exp., {cov.nccds} CCDs, {cov.area():.3f} deg$^2$")
    for ax in axes.ravel()[len(maps):]:
        ax.set_visible(False)
    fig.savefig(path, format=fmt)
    return fig


def plot_depth(path, cov: CoverageMap, width_px: int = 1200,
               fmt: str = "png") -> None:
    """Raster of the exposure count and summed exposure time of one filter; writes ``path``."""
    ref, frame = sky_frame({cov.filter: cov})
    ra0, ra1, dec0, dec1 = frame
    # the depth is rasterised from the footprints themselves at the resolution of the plot (not looked up
    # in the HEALPix map, whose pixels would show as blocks on a field of a degree)
    cap = max(50, width_px // 2)
    cosd = np.cos(np.deg2rad(0.5 * (dec0 + dec1)))
    span = max((ra1 - ra0) * cosd, dec1 - dec0)
    nx = int(np.clip(cap * (ra1 - ra0) * cosd / span, 50, cap))
    ny = int(np.clip(cap * (dec1 - dec0) / span, 50, cap))
    ra_grid, dec_grid = np.meshgrid(np.linspace(ra0, ra1, nx), np.linspace(dec0, dec1, ny))
    count, exptime = rasterise_depth(cov.footprints, ra_grid % 360.0, dec_grid)
    # side by side for fields taller than wide, one above the other for wide fields
    wide = (ra1 - ra0) * np.cos(np.deg2rad(0.5 * (dec0 + dec1))) > (dec1 - dec0)
    ncols, nrows = (1, 2) if wide else (2, 1)
    fig = _figure(ncols, nrows, frame, width_px)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, values, label in ((axes[0], count, "exposures"), (axes[1], exptime, "summed EXPTIME (s)")):
        shown = np.ma.masked_equal(values, 0)
        image = ax.imshow(shown, origin="lower", extent=(ra0, ra1, dec0, dec1), interpolation="nearest",
                          cmap="viridis", aspect="auto")
        _axes_setup(ax, frame, f"{cov.filter}: {label}")
        fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    fig.savefig(path, format=fmt)
