"""Reading celestial WCS from FITS headers, with the errors survey astronomers expect."""
from __future__ import annotations

__all__ = ["celestial_wcs"]


def celestial_wcs(header, where: str, expected: str = "expected e.g. RA---TAN/DEC--TAN"):
    """An ``astropy.wcs.WCS`` for a 2-D image header holding a celestial WCS (TAN, TPV, SIP...).

    Raises :class:`~terapix_fw.errors.ToolError` naming ``where`` (file and extension) when the header has
    no usable celestial WCS; ``expected`` completes the message (what the calling tool accepts).
    """
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from .errors import ToolError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # SCAMP-style TAN+PV and old RADECSYS cards
        try:
            wcs = WCS(header, relax=True)
        except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for broken WCS
            raise ToolError(f"{where}: cannot read the WCS: {exc}") from None
    if not wcs.has_celestial or wcs.naxis != 2:
        raise ToolError(f"{where}: no celestial WCS (CTYPE1/CTYPE2 = {header.get('CTYPE1')!r}/"
                        f"{header.get('CTYPE2')!r}); {expected}")
    return wcs
