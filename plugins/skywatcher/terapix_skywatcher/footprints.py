"""CCD footprints on the sky from exposure headers.

Inputs are multi-extension FITS exposures (one WCS per CCD: only headers are read, never pixels) or
FITS_LDAC catalogues (the image header of each CCD is kept in ``LDAC_IMHEAD``).  As SWarp does, a
``.head`` file beside an input (SCAMP's astrometric solution) overrides the WCS of each extension.

Pixel convention: FITS, 1-based; the footprint of a CCD is the outer edge of its pixels, from
(0.5, 0.5) to (NAXIS1 + 0.5, NAXIS2 + 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["Footprint", "read_footprints", "footprint_of_header", "EDGE_SAMPLES"]

#: points per CCD edge sampled through the WCS for drawing: a distortion that bends the edges is followed
EDGE_SAMPLES = 16

# keywords of the primary header that every extension inherits (MegaCam keeps FILTER, EXPTIME there)
_INHERIT = ("FILTER", "EXPTIME", "OBJECT", "DATE-OBS", "MJD-OBS", "RUNID")


@dataclass
class Footprint:
    """One CCD on the sky: corners (RA, Dec in degrees, in pixel order), filter and exposure time."""

    exposure: str  # path of the exposure (or catalogue) file
    extension: int  # 1-based image extension, as in SExtractor/SWarp messages
    filter: str
    exptime: float
    ra: np.ndarray  # (4,) corners
    dec: np.ndarray  # (4,)
    #: the outline sampled along the pixel edges through the full WCS (4 * EDGE_SAMPLES points, from the
    #: first corner, in pixel order); the corners alone when not available
    edge_ra: np.ndarray | None = None
    edge_dec: np.ndarray | None = None
    #: selection and colouring: run id, survey component, processing status, grade, page of the exposure
    run: str = ""
    component: str = ""
    status: str = ""
    grade: str = ""
    url: str = ""
    meta: dict = field(default_factory=dict)

    def outline(self) -> tuple[np.ndarray, np.ndarray]:
        """The sampled outline (RA, Dec) for drawing."""
        if self.edge_ra is None:
            return self.ra, self.dec
        return self.edge_ra, self.edge_dec


def _is_image(header) -> bool:
    return header.get("NAXIS", 0) == 2 and header.get("NAXIS1", 0) > 0 and header.get("NAXIS2", 0) > 0 \
        and header.get("XTENSION", "IMAGE") in ("IMAGE", "")


def footprint_of_header(header, *, exposure: str, extension: int, filter_key: str, exptime_key: str,
                        where: str) -> Footprint:
    """The footprint of the CCD described by ``header`` (which must hold a celestial WCS)."""
    from terapix_fw.wcsutil import celestial_wcs

    nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
    wcs = celestial_wcs(header, where)
    x = np.array([0.5, nx + 0.5, nx + 0.5, 0.5])
    y = np.array([0.5, 0.5, ny + 0.5, ny + 0.5])
    ra, dec = wcs.all_pix2world(x, y, 1)  # origin 1: FITS pixel convention
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ToolError(f"{where}: the WCS does not map the CCD corners to the sky")
    t = np.arange(EDGE_SAMPLES) / EDGE_SAMPLES
    ex = np.concatenate([x[i] + t * (x[(i + 1) % 4] - x[i]) for i in range(4)])
    ey = np.concatenate([y[i] + t * (y[(i + 1) % 4] - y[i]) for i in range(4)])
    edge_ra, edge_dec = wcs.all_pix2world(ex, ey, 1)
    band = str(header.get(filter_key, "")).strip() or "unknown"
    try:
        exptime = float(header.get(exptime_key, 0.0))
    except (TypeError, ValueError):
        raise ToolError(f"{where}: {exptime_key} = {header.get(exptime_key)!r} is not a number") from None
    return Footprint(exposure, extension, band, exptime, np.asarray(ra, float) % 360.0, np.asarray(dec, float),
                     edge_ra=np.asarray(edge_ra, float) % 360.0, edge_dec=np.asarray(edge_dec, float),
                     run=str(header.get("RUNID", "")).strip(), component=str(header.get("SURVEYC", "")).strip(),
                     grade=str(header.get("QFGRADE", "")).strip())


def _headers_of(path: Path) -> list[tuple[int, object]]:
    """(1-based extension number, full header) of every CCD of an image or LDAC catalogue."""
    from astropy.io import fits

    from terapix_fw.ldac import header_from_imhead

    try:
        hdul = fits.open(path, memmap=True, lazy_load_hdus=True)
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: cannot read as FITS: {exc}") from None
    with hdul:
        primary = hdul[0].header
        hdus = list(hdul)
        out: list[tuple[int, object]] = []
        if any(h.header.get("EXTNAME") == "LDAC_IMHEAD" for h in hdus[1:]):
            n = 0
            for hdu in hdus[1:]:
                if hdu.header.get("EXTNAME") == "LDAC_IMHEAD":
                    n += 1
                    out.append((n, header_from_imhead(hdu)))
            return out
        if _is_image(primary):
            return [(1, primary.copy())]
        n = 0
        for hdu in hdus[1:]:
            if hdu.header.get("XTENSION") not in ("IMAGE", "BINTABLE"):
                continue
            header = hdu.header.copy()
            if header.get("ZIMAGE"):  # tile-compressed image (.fits.fz): the image keywords are ZNAXISn
                for key in ("NAXIS", "NAXIS1", "NAXIS2"):
                    header[key] = header.get("Z" + key, header.get(key))
                header["XTENSION"] = "IMAGE"
            if not _is_image(header):
                continue
            n += 1
            for key in _INHERIT:
                if key not in header and key in primary:
                    header[key] = primary[key]
            out.append((n, header))
        return out


def read_footprints(path: str | Path, *, filter_key: str, exptime_key: str,
                    head_suffix: str = ".head") -> list[Footprint]:
    """Footprints of every CCD of the exposure or catalogue at ``path``."""
    from terapix_fw.headfile import apply_head, read_head_file

    path = Path(path)
    headers = _headers_of(path)
    if not headers:
        raise ToolError(f"{path}: no image extension (NAXIS = 2) and no LDAC_IMHEAD table found")
    heads = []
    if head_suffix:
        stem = path.name
        for ext in (".fz", ".gz", ".fits", ".fit", ".ldac", ".cat"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
        head_path = path.with_name(stem + head_suffix)
        if head_path.exists():
            heads = read_head_file(head_path)
            if len(heads) != len(headers):
                raise ToolError(f"{head_path}: {len(heads)} header block(s) for {len(headers)} CCD(s) "
                                f"in {path}; expected one per extension")
    exposure = str(path)  # unique: two nights may hold files of the same name
    out = []
    for i, (extension, header) in enumerate(headers):
        if heads:
            apply_head(header, heads[i])
        out.append(footprint_of_header(header, exposure=exposure, extension=extension,
                                       filter_key=filter_key, exptime_key=exptime_key,
                                       where=f"{path}[{extension}]"))
    return out
