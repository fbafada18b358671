"""Check images (CHECKIMAGE_TYPE): the arrays SExtractor writes for each check-image type.

Part of :mod:`terapix_sextractor.extraction`."""
from __future__ import annotations

import numpy as np


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
