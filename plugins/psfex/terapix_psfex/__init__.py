"""terapix-fw plugin psfex: pixel-basis PSF models varying with position, written in PSFEx's .psf format.

The public interface other tools use (qualityfits builds its PSF models with it) is re-exported here,
imported only when first used so that loading the plugin (``terapix plugins``) stays cheap.
"""
import importlib

#: public name -> module of this package that defines it
_PUBLIC = {
    "PsfModel": "psfmodel", "SelectionConfig": "psfmodel", "BIG_NEG": "psfmodel", "fit_psf": "psfmodel",
    "fit_moffat": "psfmodel", "fwhm_range": "psfmodel", "sample_candidates": "psfmodel",
    "select_stars": "psfmodel", "write_psf": "psfmodel", "read_psf": "psfmodel", "PsfexTool": "tool",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
