"""Reading celestial WCS from FITS headers, with the errors survey astronomers expect.

:class:`TangentWCS` maps pixels to the sky for the gnomonic headers of wide-field imagers (``TAN`` and
SCAMP's ``TPV``) in numpy alone: ``astropy.wcs`` imports ``astropy.coordinates`` (and its frames), which
costs a drop-in run on one CCD about as much as measuring it.  Any other header goes to astropy.
"""
from __future__ import annotations

__all__ = ["celestial_wcs", "wcs_problem", "TangentWCS", "pixel_scale_arcsec"]

#: WCSLIB's projection codes (and SCAMP's TPV): a CTYPE naming another is refused, not guessed
PROJECTIONS = frozenset("AZP SZP TAN STG SIN ARC ZPN ZEA AIR CYP CEA CAR MER COP COE COD COO SFL PAR MOL AIT "
                        "BON PCO TSC CSC QSC HPX XPH TPV TPD SIP".split())
_LON = ("RA", "GLON", "ELON", "SLON", "HLON")
_LAT = ("DEC", "GLAT", "ELAT", "SLAT", "HLAT")


def wcs_problem(header) -> str | None:
    """Why the celestial WCS of a 2-D image header is unusable, naming the keyword, or None.

    None also when the header has no celestial CTYPE at all: an image without WCS is not a broken one.
    Checked: CTYPE1/2 name a longitude/latitude pair with a known projection; CRVAL of the latitude axis
    within [-90, 90]; CRVAL, CRPIX finite; the CD matrix (or PC x CDELT) finite and not singular.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    str or None
    """
    import math

    c1, c2 = str(header.get("CTYPE1", "") or ""), str(header.get("CTYPE2", "") or "")

    def projected(ctype):  # the 'XXXX-PPP' form of a celestial axis (RA---TAN, GLON-CAR, FOO--TAN...)
        return len(ctype) >= 8 and ctype[4] == "-"
    if not projected(c1) and not projected(c2):
        return None  # no celestial WCS at all (PIXEL, LINEAR, none): not a broken one
    axes = []
    for k, ctype in ((1, c1), (2, c2)):
        name = ctype[:4].rstrip("-").upper()
        proj = ctype[5:8].upper() if len(ctype) >= 8 else ""
        if not projected(ctype):
            return f"CTYPE{k} = {ctype!r} is not a celestial axis, CTYPE{3 - k} is"
        if name not in _LON + _LAT:
            return f"CTYPE{k} = {ctype!r} is not a celestial axis (expected e.g. RA---TAN, DEC--TAN)"
        if proj not in PROJECTIONS:
            return f"CTYPE{k} = {ctype!r}: unknown projection {proj!r}"
        axes.append(name)
    if not ((axes[0] in _LON and axes[1] in _LAT) or (axes[0] in _LAT and axes[1] in _LON)):
        return f"CTYPE1/CTYPE2 = {c1!r}/{c2!r} do not pair a longitude with a latitude"
    for key in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2"):
        v = header.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return f"{key} = {v!r} is not a finite number"
    lat = "CRVAL2" if axes[1] in _LAT else "CRVAL1"
    if abs(float(header.get(lat, 0.0))) > 90.0:
        return f"{lat} = {header.get(lat)} is outside [-90, 90] (latitude of the reference point)"
    if any(f"CD{i}_{j}" in header for i in (1, 2) for j in (1, 2)):
        m = [[header.get(f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)]
        keys = "CD1_1..CD2_2"
    else:
        pc = [[header.get(f"PC{i}_{j}", 1.0 if i == j else 0.0) for j in (1, 2)] for i in (1, 2)]
        cdelt = [header.get("CDELT1", 1.0), header.get("CDELT2", 1.0)]
        try:
            m = [[float(pc[i][j]) * float(cdelt[i]) for j in (0, 1)] for i in (0, 1)]
        except (TypeError, ValueError):
            return "PCi_j / CDELTi are not numbers"
        keys = "PCi_j x CDELTi"
    try:
        m = [[float(x) for x in row] for row in m]
    except (TypeError, ValueError):
        return f"{keys} are not numbers"
    if not all(math.isfinite(x) for row in m for x in row):
        return f"{keys} are not finite"
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    scale = max(abs(x) for row in m for x in row)
    if scale == 0.0 or abs(det) <= 1e-12 * scale * scale:
        return f"the {keys} matrix is singular (determinant {det:.3g}): pixels have no distinct sky positions"
    return None


def celestial_wcs(header, where: str, expected: str = "expected e.g. RA---TAN/DEC--TAN"):
    """An ``astropy.wcs.WCS`` for a 2-D image header holding a celestial WCS (TAN, TPV, SIP...).

    Parameters
    ----------
    header : astropy.io.fits.Header
    where : str
        File and extension, for messages.
    expected : str
        Completes the message (what the calling tool accepts).

    Returns
    -------
    astropy.wcs.WCS

    Raises
    ------
    ToolError
        Naming ``where`` when the header has no usable celestial WCS.
    """
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from .errors import ToolError

    problem = wcs_problem(header)
    if problem:
        raise ToolError(f"{where}: broken WCS: {problem}")
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


def world_to_pixel(wcs, world, origin: int = 1, tol: float = 1e-8, maxiter: int = 30):
    """``wcs.all_world2pix`` that does not give up on strongly distorted TPV solutions.

    astropy's inverse is a fixed-point iteration started from the CD-matrix solution; a per-CCD TPV
    polynomial fitted far from its tangent point (large, mutually cancelling PV terms) can make it diverge
    and return NaN even where the forward mapping is perfectly good.  Those points are solved again by
    Newton's method with a finite-difference Jacobian of the forward mapping, started from an affine
    inverse fitted to the forward mapping over the image (what SWarp's fitted inverse does).  Points that
    still do not converge stay NaN.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
    world : numpy.ndarray
        ``(N, 2)`` world coordinates (deg), in the WCS's own axis order.
    origin : int
        Pixel origin, 1 for FITS.
    tol : float
        Convergence tolerance (pixels).
    maxiter : int
        Most Newton iterations.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` pixel coordinates; NaN where no solution was found.
    """
    import numpy as np

    world = np.atleast_2d(np.asarray(world, dtype=float))
    pix = wcs.all_world2pix(world, origin, quiet=True)
    bad = ~np.all(np.isfinite(pix), axis=1) & np.all(np.isfinite(world), axis=1)
    if not bad.any():
        return pix
    lng, lat = wcs.wcs.lng, wcs.wcs.lat
    start = _affine_start(wcs, world[bad], origin)
    # far outside the image a per-CCD polynomial means nothing and may have no inverse at all: there
    # the affine estimate is returned (such points only need to be known as outside)
    near = _on_image(wcs, start, origin, 0.1)
    far = np.flatnonzero(bad)[~near]
    pix[far] = start[~near]
    bad[far] = False
    start = start[near]
    if not bad.any():
        return pix
    target = world[bad]
    p = start

    def residual(q):
        w = wcs.all_pix2world(q, origin)
        d = w - target
        d[:, lng] = ((d[:, lng] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(target[:, lat]))
        return d

    done = np.zeros(len(p), dtype=bool)
    for _ in range(maxiter):
        f = residual(p)
        jx = residual(p + [1.0, 0.0]) - f
        jy = residual(p + [0.0, 1.0]) - f
        det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = (-f[:, 0] * jy[:, 1] + jy[:, 0] * f[:, 1]) / det
            dy = (-jx[:, 0] * f[:, 1] + f[:, 0] * jx[:, 1]) / det
        step = np.column_stack([dx, dy])
        step[done] = 0.0
        p = p + step
        done |= np.hypot(dx, dy) < tol
        if done.all():
            break
    # not converged: NaN on the image, the affine estimate off it (there it only has to say "outside")
    inside = _on_image(wcs, start, origin, 0.0)
    p[~done] = np.where(inside[~done, None], np.nan, start[~done])
    pix[bad] = p
    return pix


def _on_image(wcs, pix, origin: int, margin_fraction: float):
    import numpy as np

    if not wcs.pixel_shape:
        return np.ones(len(pix), dtype=bool)
    nx, ny = wcs.pixel_shape
    mx, my = margin_fraction * nx + 0.5, margin_fraction * ny + 0.5
    return ((pix[:, 0] > origin - mx) & (pix[:, 0] < nx - 1 + origin + mx)
            & (pix[:, 1] > origin - my) & (pix[:, 1] < ny - 1 + origin + my))


def _affine_start(wcs, target, origin: int):
    """First guesses of the pixels of ``target``: an affine fit of pixel against sky position, made from
    the forward mapping on a grid over the image (or around CRPIX when the image size is unknown)."""
    import numpy as np

    lng, lat = wcs.wcs.lng, wcs.wcs.lat
    if wcs.pixel_shape:
        nx, ny = wcs.pixel_shape
        xs, ys = np.linspace(origin, nx - 1 + origin, 7), np.linspace(origin, ny - 1 + origin, 7)
    else:
        cx, cy = wcs.wcs.crpix
        xs, ys = cx + np.linspace(-500, 500, 7), cy + np.linspace(-500, 500, 7)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    sky = wcs.all_pix2world(grid, origin)
    lon0, lat0 = np.median(sky[:, lng]), np.median(sky[:, lat])

    def local(w):
        return np.column_stack([((w[:, lng] - lon0 + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat0)),
                                w[:, lat] - lat0, np.ones(len(w))])

    coeffs, *_ = np.linalg.lstsq(local(sky), grid, rcond=None)
    return local(target) @ coeffs


#: TPV terms PVi_0..PVi_39 as (power of x, power of y, power of r): the monomials of each degree up to 7,
#: odd degrees followed by r^degree (the TPV convention; for the second axis x and y swap roles)
_TPV_TERMS = [t for d in range(8) for t in [(d - k, k, 0) for k in range(d + 1)] + ([(0, 0, d)] if d % 2 else [])]
#: keywords of distortions or conventions :class:`TangentWCS` does not model (astropy then reads the header)
_OTHER_DISTORTIONS = ("A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER", "CPDIS1", "CPDIS2", "CQDIS1", "CQDIS2",
                      "D2IMDIS1", "D2IMDIS2", "DP1", "DP2", "DQ1", "DQ2", "CROTA1", "CROTA2", "LATPOLE")


class TangentWCS:
    """Pixel to sky (degrees) of a ``RA---TAN``/``DEC--TAN`` or ``RA---TPV``/``DEC--TPV`` header, as
    WCSLIB computes it: pixel offsets from CRPIX through the CD (or PC x CDELT) matrix, the TPV
    polynomial (PV1_0..39, PV2_0..39) on those intermediate coordinates, then the gnomonic deprojection
    about CRVAL (LONPOLE 180).  The same interface as ``astropy.wcs.WCS`` where the tools use it
    (``all_pix2world``, ``pixel_scale_matrix``, ``has_celestial``).  Build it with :meth:`from_header`,
    which returns None for any header it does not model exactly (SIP, other projections, swapped axes,
    TAN with only PVi_0..4 cards, a pole at the reference point...): those go to astropy."""

    has_celestial = True

    def __init__(self, crpix, matrix, crval, pv1=None, pv2=None):
        import numpy as np

        self.crpix = np.asarray(crpix, dtype=float)
        self.pixel_scale_matrix = np.asarray(matrix, dtype=float)
        self.crval = np.asarray(crval, dtype=float)
        self.pv1 = None if pv1 is None else np.asarray(pv1, dtype=float)
        self.pv2 = None if pv2 is None else np.asarray(pv2, dtype=float)

    @classmethod
    def from_header(cls, header) -> TangentWCS | None:
        """The mapping of a TAN or TPV header.

        Parameters
        ----------
        header : mapping
            A FITS header (astropy Header or dict-like).

        Returns
        -------
        TangentWCS or None
            None for any other projection or distortion (the caller then uses astropy.wcs).
        """
        ctypes = (str(header.get("CTYPE1", "")).rstrip(), str(header.get("CTYPE2", "")).rstrip())
        if ctypes not in (("RA---TAN", "DEC--TAN"), ("RA---TPV", "DEC--TPV")):
            return None
        keys = set(header.keys())
        if any(k in keys for k in _OTHER_DISTORTIONS) or int(header.get("WCSAXES", 2)) != 2:
            return None
        if any(str(header.get(f"CUNIT{i}", "deg")).strip() not in ("deg", "") for i in (1, 2)):
            return None
        if float(header.get("LONPOLE", 180.0)) != 180.0 or abs(float(header.get("CRVAL2", 0.0))) >= 90.0:
            return None
        has_cd = any(f"CD{i}_{j}" in keys for i in (1, 2) for j in (1, 2))
        has_pc = any(f"PC{i}_{j}" in keys for i in (1, 2) for j in (1, 2))
        if has_cd and has_pc:
            return None  # WCSLIB's precedence between the two is not worth reproducing here
        if has_cd:
            matrix = [[float(header.get(f"CD{i}_{j}", 0.0)) for j in (1, 2)] for i in (1, 2)]
        else:
            cdelt = [float(header.get(f"CDELT{i}", 1.0)) for i in (1, 2)]
            matrix = [[cdelt[i - 1] * float(header.get(f"PC{i}_{j}", 1.0 if i == j else 0.0)) for j in (1, 2)]
                      for i in (1, 2)]
        pv_keys = [k for k in keys if k.startswith("PV")]
        pv = None
        # a pre-2012 SCAMP header (TAN with PVi_j, some j >= 5) is a TPV one: astropy reads it so too
        scamp_tan = any(k.partition("_")[2].isdigit() and int(k.partition("_")[2]) >= 5 for k in pv_keys)
        if ctypes[0].endswith("TPV") or scamp_tan:
            pv = [[0.0] * len(_TPV_TERMS) for _ in (1, 2)]
            for key in pv_keys:
                axis, _, index = key[2:].partition("_")
                if axis not in ("1", "2") or not index.isdigit() or int(index) >= len(_TPV_TERMS):
                    return None
                pv[int(axis) - 1][int(index)] = float(header[key])
            if "PV1_1" not in keys or "PV2_1" not in keys:
                return None  # WCSLIB's defaults for a TPV without its linear terms: left to astropy
        elif pv_keys:
            return None  # TAN with only low-order PV cards: astropy decides what they mean, as before
        crpix = [float(header.get(f"CRPIX{i}", 0.0)) for i in (1, 2)]
        crval = [float(header.get(f"CRVAL{i}", 0.0)) for i in (1, 2)]
        return cls(crpix, matrix, crval, *(pv or (None, None)))

    def all_pix2world(self, pixels, origin: int):
        """Pixel positions to RA, Dec, as ``astropy.wcs.WCS.all_pix2world`` with an (N, 2) array.

        Parameters
        ----------
        pixels : array_like
            (N, 2) pixel positions x, y.
        origin : int
            1 for the FITS convention (first pixel 1), 0 for numpy's.

        Returns
        -------
        numpy.ndarray
            (N, 2) RA, Dec in degrees.
        """
        import numpy as np

        pix = np.asarray(pixels, dtype=float).reshape(-1, 2)
        offsets = pix + (1 - origin) - self.crpix
        x, y = (self.pixel_scale_matrix @ offsets.T)  # intermediate world coordinates, degrees
        if self.pv1 is not None:
            x, y = _tpv(self.pv1, x, y), _tpv(self.pv2, y, x)
        # gnomonic deprojection about the reference point (LONPOLE 180)
        xr, yr = np.radians(x), np.radians(y)
        ra0, dec0 = np.radians(self.crval)
        den = np.cos(dec0) - yr * np.sin(dec0)
        ra = np.degrees(ra0 + np.arctan2(xr, den)) % 360.0
        dec = np.degrees(np.arctan2(np.sin(dec0) + yr * np.cos(dec0), np.hypot(xr, den)))
        return np.column_stack([ra, dec])


def _tpv(coeffs, u, v):
    """One axis of the TPV polynomial: sum of coeffs[k] * u^i v^j r^n over the non-zero coefficients."""
    import numpy as np

    r = np.hypot(u, v) if any(coeffs[k] for k, t in enumerate(_TPV_TERMS) if t[2]) else None
    out = np.zeros_like(u)
    for c, (i, j, n) in zip(coeffs, _TPV_TERMS):
        if c:
            out += c * (u ** i) * (v ** j) * (r ** n if n else 1.0)
    return out


def pixel_scale_arcsec(wcs) -> float:
    """Mean pixel scale of a celestial WCS, without importing ``astropy.wcs.utils``.

    Parameters
    ----------
    wcs : astropy.wcs.WCS or TangentWCS
        Anything with a ``pixel_scale_matrix`` in degrees per pixel.

    Returns
    -------
    float
        sqrt of the product of the two axes' scales (arcsec) as
        ``astropy.wcs.utils.proj_plane_pixel_scales`` gives them (from the CD matrix alone, TPV terms
        left out).
    """
    import numpy as np

    scales = np.sqrt((np.asarray(wcs.pixel_scale_matrix, dtype=float) ** 2).sum(axis=0))
    return float(np.sqrt(np.prod(scales[:2]))) * 3600.0
