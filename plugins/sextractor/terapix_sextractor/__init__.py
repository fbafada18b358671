"""terapix-fw plugin sextractor: SExtractor-compatible source extraction on sep.

Python API (heavy modules are imported on first use)::

    from terapix_sextractor import extract
    tables = extract("image.fits", config="default.sex", params=["X_IMAGE", "FLUX_AUTO"], DETECT_THRESH=3)

See :func:`terapix_sextractor.extract.extract`.
"""
__all__ = ["extract", "extract_image", "extract_results"]


def __getattr__(name):
    if name in __all__:
        from . import extract as _module

        return getattr(_module, name)
    raise AttributeError(name)
