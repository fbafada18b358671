"""terapix-fw plugin stiff: FITS images to PNG/TIFF pictures as STIFF makes them.

Public API (used by qualityfits, the web pages and Spica; other plugins import only these names):

* :func:`render` — 1 (grey) or 3 (red, green, blue) FITS images to a :class:`Picture` (pixels + levels);
* :func:`thumbnail` — the same at most ``size`` pixels wide, binned while reading by strips;
* :func:`write_picture` — a :class:`Picture`'s pixels to PNG or TIFF;
* :func:`bin_image`, :func:`chunk_stats`, :func:`levels_from_stats`, :func:`to_pixels` — the same steps
  on in-memory arrays (thumbnails of CCDs already in memory).
"""
from .rendering import (Levels, Picture, Settings, bin_image, binning_for, chunk_stats, levels_from_stats, render,
                     thumbnail, to_pixels)
from .writers import write_picture

__all__ = ["Levels", "Picture", "Settings", "bin_image", "binning_for", "chunk_stats", "levels_from_stats",
           "render", "thumbnail", "to_pixels", "write_picture"]
