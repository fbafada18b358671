"""terapix-fw plugin stiff: FITS images to PNG/TIFF pictures as STIFF makes them.

Public API (used by qualityfits, the web pages and Spica; other plugins import only these names):

* :func:`render` — 1 (grey) or 3 (red, green, blue) FITS images to a :class:`Picture` (pixels + levels);
* :func:`thumbnail` — the same at most ``size`` pixels wide, binned while reading by strips;
* :func:`write_picture` — a :class:`Picture`'s pixels to PNG or TIFF;
* :func:`picture_file` — render and write a PNG/TIFF in one call (atomically), e.g.
  ``picture_file(["i.fits", "r.fits", "g.fits"], "irg.png", size=2000, colour_sat=1.5)``;
* :func:`bin_image`, :func:`chunk_stats`, :func:`levels_from_stats`, :func:`to_pixels` — the same steps
  on in-memory arrays (thumbnails of CCDs already in memory).
"""
__all__ = ["Levels", "Picture", "Settings", "bin_image", "binning_for", "chunk_stats", "levels_from_stats",
           "picture_file", "render", "thumbnail", "to_pixels", "write_picture"]


def __getattr__(name):
    # lazy re-exports: ``terapix plugins`` imports terapix_stiff.plugin, which must not pull numpy/astropy in
    if name == "write_picture":
        from .writers import write_picture

        return write_picture
    if name in __all__:
        from . import rendering

        return getattr(rendering, name)
    raise AttributeError(f"module 'terapix_stiff' has no attribute {name!r}")
