"""The output grid (SWarp's ``init_field`` in ``field.c``).

CENTER_TYPE ALL centres the output on the middle of the union of the input coordinate ranges, MOST on the
densest part, MANUAL on CENTER; PIXELSCALE_TYPE MEDIAN/MIN/MAX takes that statistic of the input pixel
scales, FIT fits IMAGE_SIZE to the range, MANUAL takes PIXEL_SCALE (arcsec).  An automatic IMAGE_SIZE
covers the range with a 5% margin, the longitude size being multiplied by cos(latitude of the centre).
Pixel scales of both axes are made equal (the larger) when PIXEL_SCALE gives the same value for both, as in
SWarp.  A CFHTLS 1 deg^2 "quantum" is CENTER_TYPE MANUAL, CENTER <its centre>, PIXELSCALE_TYPE MANUAL,
PIXEL_SCALE 0.186, IMAGE_SIZE 19354.  A header file beside the output (IMAGEOUT_NAME with HEADER_SUFFIX,
or HEADEROUT_NAME) overrides the computed grid, as in SWarp.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from terapix_fw.errors import ConfigError, ToolError

from .mapping import _system, convert_lonlat

__all__ = ["output_grid", "parse_center", "input_scale"]

_CTYPES = {"EQUATORIAL": ("RA---", "DEC--"), "GALACTIC": ("GLON-", "GLAT-"), "ECLIPTIC": ("ELON-", "ELAT-"),
           "SUPERGALACTIC": ("SLON-", "SLAT-")}


def _image_header(naxis):
    """The start of an output header: a 2-D float32 image of naxis[0] x naxis[1] pixels."""
    from astropy.io import fits

    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = int(naxis[0])
    header["NAXIS2"] = int(naxis[1])
    return header


def _two(values, what):
    if not isinstance(values, list):
        return [values, values]
    if len(values) == 1:
        return [values[0], values[0]]
    if len(values) == 2:
        return list(values)
    raise ConfigError(f"{what} takes 1 or 2 values, got {values!r}", "configuration", what)


def parse_center(values) -> tuple[float, float]:
    """CENTER: ``hh:mm:ss.s, +dd:mm:ss.s`` (sexagesimal, RA in hours) or decimal degrees."""
    vals = _two(values, "CENTER")

    def sexa(text: str, hours: bool) -> float:
        text = str(text).strip()
        if ":" not in text:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"cannot read CENTER value {text!r}; expected degrees or sexagesimal",
                                  "configuration", "CENTER") from None
        sign = -1.0 if text.startswith("-") else 1.0
        try:
            parts = [abs(float(p)) for p in text.lstrip("+-").split(":")]
        except ValueError:
            raise ConfigError(f"cannot read CENTER value {text!r}; expected dd:mm:ss.s",
                              "configuration", "CENTER") from None
        deg = parts[0] + (parts[1] if len(parts) > 1 else 0) / 60 + (parts[2] if len(parts) > 2 else 0) / 3600
        return sign * deg * (15.0 if hours else 1.0)

    return sexa(vals[0], True), sexa(vals[1], False)


def input_scale(fld) -> float:
    """Pixel scale (deg) of an input at its centre: sqrt of the local pixel area, distortions included."""
    ny, nx = fld.shape
    xc, yc = (nx + 1) / 2.0, (ny + 1) / 2.0
    pts = np.array([[xc, yc], [xc + 1, yc], [xc, yc + 1]])
    world = fld.wcs.all_pix2world(pts, 1)
    lng, lat = fld.wcs.wcs.lng, fld.wcs.wcs.lat
    lon = np.radians(world[:, lng])
    la = np.radians(world[:, lat])
    # local tangent-plane offsets (deg) of the two neighbours
    dx = (np.degrees((lon[1:] - lon[0] + np.pi) % (2 * np.pi) - np.pi)) * math.cos(la[0])
    dy = np.degrees(la[1:] - la[0])
    return math.sqrt(abs(dx[0] * dy[1] - dx[1] * dy[0]))


def _edge_points(shape, step: int = 32):
    ny, nx = shape
    xs = np.unique(np.concatenate([np.arange(0.5, nx + 0.5, step), [nx + 0.5]]))
    ys = np.unique(np.concatenate([np.arange(0.5, ny + 0.5, step), [ny + 0.5]]))
    x = np.concatenate([xs, xs, np.full(len(ys), 0.5), np.full(len(ys), nx + 0.5)])
    y = np.concatenate([np.full(len(xs), 0.5), np.full(len(xs), ny + 0.5), ys, ys])
    return x, y


def _ranges(fields, system: str):
    """Per-input (lon_min, lon_max, lat_min, lat_max) in ``system``; longitudes unwrapped around the first
    input's centre so that fields straddling RA=0 stay contiguous."""
    out = []
    ref = None
    for fld in fields:
        x, y = _edge_points(fld.shape)
        world = fld.wcs.all_pix2world(np.column_stack([x, y]), 1)
        lon, lat = world[:, fld.wcs.wcs.lng], world[:, fld.wcs.wcs.lat]
        lon, lat = convert_lonlat(lon, lat, _system(fld.wcs), system)
        lon = np.asarray(lon)
        if ref is None:
            ref = float(np.median(lon))
        lon = ref + (lon - ref + 180.0) % 360.0 - 180.0
        out.append((lon.min(), lon.max(), np.min(lat), np.max(lat)))
    return np.array(out)


def output_grid(fields, config, out_path: Path):
    """Compute the output header (an ``astropy.io.fits.Header`` with NAXISn and WCS)."""
    from terapix_fw.headfile import apply_head, read_head_file

    celsys = config["CELESTIAL_TYPE"]
    if celsys == "PIXEL":
        raise ConfigError("CELESTIAL_TYPE PIXEL is not supported; use NATIVE or a celestial system",
                          "configuration", "CELESTIAL_TYPE")
    system = _system(fields[0].wcs) if celsys == "NATIVE" else celsys
    if system not in _CTYPES:
        raise ToolError(f"{fields[0].name}: unsupported celestial system {system}")
    proj = str(config["PROJECTION_TYPE"]).upper()
    if proj == "NONE" or len(proj) != 3:
        raise ConfigError(f"PROJECTION_TYPE {proj!r}: expected a 3-letter WCS projection code (TAN, SIN, ZEA, "
                          "STG, ARC, CAR, AIT...)", "configuration", "PROJECTION_TYPE")
    center_type = _two(config["CENTER_TYPE"], "CENTER_TYPE")
    scale_type = _two(config["PIXELSCALE_TYPE"], "PIXELSCALE_TYPE")
    pixscale_cfg = _two(config["PIXEL_SCALE"], "PIXEL_SCALE")
    size_cfg = _two(config["IMAGE_SIZE"], "IMAGE_SIZE")

    ranges = _ranges(fields, system)
    wmin = np.array([ranges[:, 0].min(), ranges[:, 2].min()])
    wmax = np.array([ranges[:, 1].max(), ranges[:, 3].max()])
    crval = np.zeros(2)
    for n in range(2):
        if center_type[n] == "ALL":
            crval[n] = (wmin[n] + wmax[n]) / 2.0
        elif center_type[n] == "MOST":
            # SWarp's "dumb" densest-part search, axis by axis
            lo, hi = ranges[:, 2 * n], ranges[:, 2 * n + 1]
            best_lo = best_hi = None
            cmin0 = cmax0 = 0
            for j in range(len(fields)):
                cmin = int(np.sum(lo[j] > lo) + np.sum(hi > lo[j]))
                cmax = int(np.sum(hi > hi[j]) + np.sum(hi[j] > lo))
                if cmin > cmin0:
                    best_lo, cmin0 = lo[j], cmin
                if cmax > cmax0:
                    best_hi, cmax0 = hi[j], cmax
            best_lo = wmin[n] if best_lo is None else best_lo
            best_hi = wmax[n] if best_hi is None else best_hi
            wmin[n], wmax[n] = best_lo, best_hi
            crval[n] = (best_lo + best_hi) / 2.0
    if "MANUAL" in center_type:
        c = parse_center(config["CENTER"])
        for n in range(2):
            if center_type[n] == "MANUAL":
                crval[n] = c[n]
    scales = np.array([input_scale(f) for f in fields])
    pixscale = np.zeros(2)
    for n in range(2):
        st = scale_type[n]
        if st == "MIN":
            pixscale[n] = scales.min()
        elif st == "MAX":
            pixscale[n] = scales.max()
        elif st == "MEDIAN":
            pixscale[n] = float(np.median(scales))
        elif st == "FIT":
            if center_type[n] == "MANUAL":
                raise ConfigError("cannot choose an output pixel scale (PIXELSCALE_TYPE FIT) when CENTER_TYPE "
                                  "is MANUAL", "configuration", "PIXELSCALE_TYPE")
            if not size_cfg[n]:
                raise ConfigError("PIXELSCALE_TYPE FIT needs IMAGE_SIZE", "configuration", "PIXELSCALE_TYPE")
            pixscale[n] = (wmax[n] - wmin[n]) / size_cfg[n]
        else:
            pixscale[n] = float(pixscale_cfg[n]) / 3600.0
        if pixscale[n] <= 0:
            raise ConfigError(f"null output pixel scale on axis {n + 1} (PIXELSCALE_TYPE {st}, PIXEL_SCALE "
                              f"{pixscale_cfg[n]})", "configuration", "PIXEL_SCALE")
    cdelt = np.array([-pixscale[0], pixscale[1]])
    naxis = np.zeros(2, dtype=int)
    crpix = np.zeros(2)
    for n in range(2):
        if size_cfg[n]:
            naxis[n] = int(size_cfg[n])
            crpix[n] = (naxis[n] + 1.0) / 2.0
        elif center_type[n] == "MANUAL":
            val = (crval[n] - wmin[n]) if cdelt[n] >= 0 else (wmax[n] - crval[n])
            if n == 0 and val < -180.0:
                val += 360.0
            crpix[n] = int(math.fmod(val, 180.0) / pixscale[n]) + 1.0
            naxis[n] = int(abs(wmax[n] - wmin[n]) * 1.05 / pixscale[n]) + 1
        else:
            naxis[n] = int(abs(wmax[n] - wmin[n]) * 1.05 / pixscale[n]) + 1
            crpix[n] = (naxis[n] + 1.0) / 2.0
    if not size_cfg[0]:
        if center_type[0] == "MANUAL":
            val = math.cos(math.radians(crval[1] + cdelt[1] * ((naxis[1] + 1.0) / 2.0 - crpix[1])))
            naxis[0] = int((naxis[0] - 1) * val) + 1
            crpix[0] = int(crpix[0] * val + 0.4999)
        else:
            naxis[0] = int((naxis[0] - 1) * math.cos(math.radians(crval[1]))) + 1
            crpix[0] = (naxis[0] + 1.0) / 2.0
    elif scale_type[0] == "FIT":
        cdelt[0] *= math.cos(math.radians(crval[1]))
    if pixscale_cfg[0] == pixscale_cfg[1]:
        ratio = abs(cdelt[0] / cdelt[1])
        if ratio < 1.0:
            cdelt[0] /= ratio
        else:
            cdelt[1] *= ratio
    crval[0] = math.fmod(crval[0] + 360.0, 360.0)

    header = _image_header(naxis)
    header["EQUINOX"] = (2000.0, "Mean equinox")
    header["RADESYS"] = ("ICRS", "Astrometric system")
    lon_prefix, lat_prefix = _CTYPES[system]
    header["CTYPE1"] = (lon_prefix + proj, "WCS projection type for this axis")
    header["CUNIT1"] = ("deg", "Axis unit")
    header["CRVAL1"] = (float(crval[0]), "World coordinate on this axis")
    header["CRPIX1"] = (float(crpix[0]), "Reference pixel on this axis")
    header["CD1_1"] = (float(cdelt[0]), "Linear projection matrix")
    header["CD1_2"] = (0.0, "Linear projection matrix")
    header["CTYPE2"] = (lat_prefix + proj, "WCS projection type for this axis")
    header["CUNIT2"] = ("deg", "Axis unit")
    header["CRVAL2"] = (float(crval[1]), "World coordinate on this axis")
    header["CRPIX2"] = (float(crpix[1]), "Reference pixel on this axis")
    header["CD2_1"] = (0.0, "Linear projection matrix")
    header["CD2_2"] = (float(cdelt[1]), "Linear projection matrix")
    head_name = config["HEADEROUT_NAME"]
    head_path = Path(head_name) if head_name else _suffixed(out_path, config["HEADER_SUFFIX"])
    if head_path.exists():
        blocks = read_head_file(head_path)
        if blocks:
            apply_head(header, blocks[0])
    if header["NAXIS1"] < 1 or header["NAXIS2"] < 1:
        raise ToolError(f"output image size {header['NAXIS1']}x{header['NAXIS2']} is empty")
    return header


def _suffixed(path: Path, suffix: str) -> Path:
    from .inputs import suffixed_name

    return suffixed_name(Path(path), suffix)


def pixel_scale_arcsec(header) -> float:
    """Pixel scale (arcsec, sqrt of the pixel area at the reference point) of a header's WCS."""
    import warnings

    from astropy.wcs import FITSFixedWarning, WCS
    from astropy.wcs.utils import proj_plane_pixel_area

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return math.sqrt(proj_plane_pixel_area(WCS(header).celestial)) * 3600.0


def grid_from_resampled(fields, config):
    """Output grid for RESAMPLE N: the inputs already share one pixel grid (same projection, reference
    point and scale, as the resampled images of a COMBINE N run do); the output is that grid extended to
    cover them all (SWarp's CENTER_TYPE ALL without resampling: CRPIX = max of the inputs' CRPIX), cut to
    IMAGE_SIZE around its middle, or centred on CENTER with CENTER_TYPE MANUAL."""
    ref = fields[0]
    rw = ref.wcs.wcs
    for fld in fields[1:]:
        w = fld.wcs.wcs
        same = (list(w.ctype) == list(rw.ctype) and np.allclose(w.crval, rw.crval, rtol=0, atol=1e-9)
                and np.allclose(fld.wcs.pixel_scale_matrix, ref.wcs.pixel_scale_matrix, rtol=1e-9, atol=0))
        if not same:
            raise ToolError(f"RESAMPLE N: {fld.name} is not on the pixel grid of {ref.name} (CTYPE, CRVAL and "
                            "CD must be equal); resample it (RESAMPLE Y)")
    center_type = _two(config["CENTER_TYPE"], "CENTER_TYPE")
    size_cfg = _two(config["IMAGE_SIZE"], "IMAGE_SIZE")
    crpix = np.zeros(2)
    naxis = np.zeros(2, dtype=int)
    for n in range(2):
        if center_type[n] == "MOST":
            raise ConfigError("CENTER_TYPE MOST is not supported with RESAMPLE N", "configuration", "CENTER_TYPE")
        cmax = max(f.wcs.wcs.crpix[n] for f in fields)
        cmin = min(f.wcs.wcs.crpix[n] - f.shape[1 - n] + 1 for f in fields)
        crpix[n] = cmax
        naxis[n] = max(1, int(cmax - cmin + 1.01))
        if size_cfg[n]:
            if center_type[n] != "MANUAL":
                crpix[n] -= (naxis[n] - int(size_cfg[n])) // 2
            naxis[n] = int(size_cfg[n])
    header = _image_header(naxis)
    header.update(ref.wcs.to_header(relax=True))
    header["CRPIX1"] = float(crpix[0])
    header["CRPIX2"] = float(crpix[1])
    if "MANUAL" in center_type:
        import warnings

        from astropy.wcs import FITSFixedWarning, WCS

        c = parse_center(config["CENTER"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            raw = WCS(header).all_world2pix([[c[0], c[1]]], 1)[0]
        for n in range(2):
            if center_type[n] == "MANUAL":
                header[f"CRPIX{n + 1}"] = float(crpix[n] + int(naxis[n] // 2 - raw[n] + 0.9999))
    return header
