"""terapix-fw plugin sextractor: SExtractor-compatible source extraction on sep.

Python API (heavy modules are imported on first use)::

    from terapix_sextractor import extract
    tables = extract("image.fits", config="default.sex", params=["X_IMAGE", "FLUX_AUTO"], DETECT_THRESH=3)

``extract`` returns one astropy Table per image extension; ``extract_results`` also returns the
LDAC_IMHEAD header and check images (``iter_results`` yields them one extension at a time); ``extract_image`` works on arrays in memory (an ``ImageSpec``),
with the configuration and catalogue parameters from ``resolve_config`` and ``resolve_params``.  See
:mod:`terapix_sextractor.extraction`.
"""
__all__ = ["extract", "extract_image", "extract_results", "iter_results", "ImageSpec", "resolve_config",
           "resolve_params"]


def __getattr__(name):
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("terapix_sextractor.extraction"), name)
    raise AttributeError(name)
