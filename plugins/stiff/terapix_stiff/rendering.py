"""FITS images to display pixels as STIFF does: sky and range levels, binning, gamma or asinh stretch.

Everything follows STIFF 2.4 (``src/image.c``, ``src/makeit.c``):

* **Levels** (``make_imastats``): the image is read in chunks of 2 097 152 pixels (8 MB of floats, in
  file order); each chunk gives its median, then the ``MIN_LEVEL`` quantile of the first half of the
  buffer and the ``MAX_LEVEL`` quantile of its second half (element ``int(frac * (n/2 - 0.5001))``) --
  the buffer having been partly sorted by the median's quickselect, these halves are the lower and upper
  halves of the values: the default ``MAX_LEVEL 0.999`` is the 0.9995 quantile of each chunk.  The sky,
  min and max levels are the medians of the per-chunk values.  (For a chunk of odd size the upper half
  here leaves out the largest value, where STIFF leaves out whichever value its quickselect put last.)  ``MIN_TYPE GREYLEVEL`` (the
  default) puts the sky at grey level ``MIN_LEVEL ** GAMMA_FAC`` of the linear range:
  ``min = (max * grey - sky) / (grey - 1)``.  Unlike STIFF, NaN pixels (blank in stacks) are left out
  of the statistics and of the binned means; a bin without any finite pixel is black.
* **Binning**: bins of ``BINNING`` pixels from the left and from the top of the image (the FITS last
  row), the remainder bins on the right and the bottom; each bin is the mean of its pixels.
* **Pixels** (``data_to_pix``): ``x = (data - min) / (max - min)``; for colour, the luminance ``L`` is the
  mean of the three ``x`` clipped at 0 and ``COLOUR_SAT`` moves each channel away from ``L``:
  ``c = L + sat / 3 * (2 x_c - x_other1 - x_other2)``; the luminance is raised to ``1 / GAMMA_FAC``; the
  display gamma (``POWER-LAW`` ``x ** (1 / GAMMA)``, ``SRGB``, ``REC.709``) codes the result on 8 or 16 bits
  with rounding.  ``GAMMA_TYPE ASINH`` (not in STIFF) replaces the gamma by the asinh stretch of Lupton et
  al. (2004, PASP 116, 133): channel ``c * asinh(Q L) / (L asinh(Q))``, so that ``MAX_LEVEL`` is white,
  clipped preserving the colour (all channels divided by the largest one above 1).
* **Orientation**: the first output row is the last FITS row (north up for a standard WCS); three
  inputs are the red, green and blue channels in this order (as ``stiff red.fits green.fits blue.fits``).

Large images are read by strips of rows (memory-mapped when the FITS data are uncompressed), so a
thumbnail of a 19354 x 19354 stack needs memory for one strip and the binned image only; statistics and
binning are done in the same single pass over the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["Settings", "Levels", "Picture", "FitsPlane", "STIFF_CHUNK", "chunk_stats", "levels_from_stats",
           "bin_image", "to_pixels", "render", "thumbnail", "binning_for", "picture_file"]

#: pixels per statistics chunk in STIFF: IMAGE_BUFSIZE (8 MB) / sizeof(float)
STIFF_CHUNK = 8 * 1024 * 1024 // 4
#: pixels read at once (a strip of rows): bounded memory whatever the image size
STRIP_PIXELS = STIFF_CHUNK

_GAMMA_TYPES = ("POWER-LAW", "SRGB", "REC.709", "ASINH")


@dataclass(frozen=True)
class Settings:
    """STIFF's keywords that shape the picture (names in lower case; defaults are STIFF 2.4's).

    ``sky_level``, ``min_level``, ``max_level`` and the ``*_type`` values may be one value for all
    channels or a sequence of one per channel, as the STIFF keywords.
    """

    sky_type: str | Sequence[str] = "AUTO"
    sky_level: float | Sequence[float] = 0.0
    min_type: str | Sequence[str] = "GREYLEVEL"
    min_level: float | Sequence[float] = 0.001
    max_type: str | Sequence[str] = "QUANTILE"
    max_level: float | Sequence[float] = 0.999
    gamma_type: str = "POWER-LAW"
    gamma: float = 2.2
    gamma_fac: float = 1.0
    colour_sat: float = 1.0
    negative: bool = False
    bits_per_channel: int = 8
    binning: tuple[int, int] = (1, 1)
    flip_type: str = "NONE"
    asinh_q: float = 8.0

    def __post_init__(self):
        if self.gamma_type not in _GAMMA_TYPES:
            raise ToolError(f"GAMMA_TYPE = {self.gamma_type}: expected one of {', '.join(_GAMMA_TYPES)}")
        if self.bits_per_channel not in (8, 16, -32):
            raise ToolError(f"BITS_PER_CHANNEL = {self.bits_per_channel}: expected 8, 16 or -32")
        if min(self.binning) < 1:
            raise ToolError(f"BINNING = {self.binning}: expected positive integers")

    def per_channel(self, name: str, nchan: int) -> list:
        value = getattr(self, name)
        values = [value] if isinstance(value, (str, int, float)) else list(value)
        if len(values) == 1:
            values = values * nchan
        if len(values) != nchan:
            raise ToolError(f"{name.upper()} has {len(values)} values for {nchan} image(s); expected 1 or {nchan}")
        return values


@dataclass
class Levels:
    """Sky (background), min and max levels of one channel, in the units of the FITS data."""

    sky: float
    min: float
    max: float


@dataclass
class Picture:
    """A rendered picture: ``pixels`` (rows top to bottom; (ny, nx) grey or (ny, nx, 3) RGB), levels."""

    pixels: np.ndarray
    levels: list[Levels]
    binning: tuple[int, int]
    source_shape: tuple[int, int]  # (NAXIS2, NAXIS1) of the inputs
    settings: Settings = field(default_factory=Settings)


class FitsPlane:
    """One 2-D FITS image read by strips of rows; ``path`` may end with ``[ext]`` as in STIFF."""

    def __init__(self, path: str | Path, extension: int | str | None = None):
        from astropy.io import fits

        text = str(path)
        if extension is None and text.endswith("]") and "[" in text:
            text, ext = text[:-1].rsplit("[", 1)
            extension = int(ext) if ext.isdigit() else ext
        self.path = Path(text)
        try:
            # raw values, scaled here strip by strip: astropy refuses to memory-map scaled integers
            self._hdul = fits.open(self.path, memmap=True, lazy_load_hdus=True, do_not_scale_image_data=True)
        except (OSError, ValueError) as exc:
            raise ToolError(f"{self.path}: cannot read as FITS: {exc}") from None
        try:
            if extension is not None:
                hdu = self._hdul[extension]
            else:
                hdu = next((h for h in self._hdul if h.is_image and (h.header.get("ZNAXIS") or h.header.get("NAXIS", 0)) >= 2), None)
                if hdu is None:
                    raise ToolError(f"{self.path}: no 2-D image (NAXIS >= 2) in any HDU")
        except (KeyError, IndexError):
            self._hdul.close()
            raise ToolError(f"{self.path}: no extension {extension!r}") from None
        shape = hdu.shape
        if len(shape) < 2:
            raise ToolError(f"{self.path}: NAXIS = {len(shape)}; STIFF needs a 2-D image")
        self.hdu = hdu
        self.header = hdu.header
        self.shape = (int(shape[-2]), int(shape[-1]))
        # uncompressed data: plain reads of the rows at their offset in the file (a memory map would
        # count every page read in the process's resident memory); tile-compressed data: astropy's section
        # decompresses only the tiles of the rows asked for
        self._raw = None
        if not isinstance(hdu, fits.CompImageHDU):
            bitpix = int(hdu.header["BITPIX"])
            self._raw = (int(hdu.fileinfo()["datLoc"]),
                         np.dtype({8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]))
        self._bscale = float(hdu.header.get("BSCALE", 1.0))
        self._bzero = float(hdu.header.get("BZERO", 0.0))
        self._blank = hdu.header.get("BLANK")
        self._extra = (0,) * (len(shape) - 2)  # NAXIS3... = 1: first plane

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """FITS rows ``y0`` to ``y1 - 1`` (0-based) as native float32."""
        if self._raw is not None:
            offset, dtype = self._raw
            nx = self.shape[1]
            with open(self.path, "rb") as f:
                f.seek(offset + y0 * nx * dtype.itemsize)
                block = np.fromfile(f, dtype=dtype, count=(y1 - y0) * nx).reshape(y1 - y0, nx)
        else:
            block = self.hdu.section[self._extra + (slice(y0, y1), slice(None))]
        out = np.asarray(block, dtype=np.float32)
        if self._bscale != 1.0 or self._bzero != 0.0:
            out = out * np.float32(self._bscale) + np.float32(self._bzero)
        if self._blank is not None and block.dtype.kind in "iu":
            out[np.asarray(block) == self._blank] = np.nan
        return out

    def close(self) -> None:
        self.hdu = None
        self._hdul.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _select(values: np.ndarray, k: int) -> float:
    return float(np.partition(values, k)[k])


def _fast_median(values: np.ndarray) -> float:
    """STIFF's fast_median: the middle element, or the mean of the two middle ones for even n."""
    n = values.size
    if n == 0:
        return 0.0
    if n % 2:
        return _select(values, n // 2)
    part = np.partition(values, (n // 2 - 1, n // 2))
    return float(np.float32(0.5 * (float(part[n // 2 - 1]) + float(part[n // 2]))))


def _quantile_index(n: int, frac: float) -> int:
    """STIFF's fast_quantile index: element ``int(frac * (n - 0.5001))`` of ``n`` sorted values."""
    frac = min(max(float(np.float32(frac)), 0.0), 1.0)
    return max(0, int(frac * (n - 0.5001)))


def _order_statistics(values: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Exact k-th smallest values (0-based ``ks``) of ``values`` (a scratch buffer, may be reordered).

    A full partition of a 2-million-pixel chunk costs ~40 ms; instead, a sorted sample of 4096 values
    brackets each wanted rank, one pass counts the values below the bracket and a partition of the few
    values inside it gives the exact answer (ranks next to each other share a bracket).  If a bracket
    misses (a sample can be unlucky), the full partition is the fallback: the result is always exact.
    """
    n = values.size
    if n < 65536:
        values.partition(ks)
        return {k: float(values[k]) for k in ks}
    sample = np.sort(values[:: max(1, n // 4096)])
    m = sample.size
    out: dict[int, float] = {}
    groups: list[list[int]] = []
    for k in ks:
        if groups and k - groups[-1][-1] < n // 100:
            groups[-1].append(k)
        else:
            groups.append([k])
    for group in groups:
        q0, q1 = group[0] / n, group[-1] / n
        # +- 6 sigma of a binomial rank in the sample, plus a margin of 8 sample values
        pad0 = 6 * np.sqrt(max(q0 * (1 - q0), 1.0 / m) / m) + 8.0 / m
        pad1 = 6 * np.sqrt(max(q1 * (1 - q1), 1.0 / m) / m) + 8.0 / m
        i0, i1 = int((q0 - pad0) * m), int(np.ceil((q1 + pad1) * m))
        lo = sample[i0] if i0 > 0 else -np.inf
        hi = sample[i1] if i1 < m else np.inf
        below = int(np.count_nonzero(values < lo))
        inside = values[(values >= lo) & (values <= hi)]
        if below <= group[0] and group[-1] < below + inside.size:
            local = [k - below for k in group]
            inside.partition(local)
            out.update({k: float(inside[k - below]) for k in group})
        else:
            values.partition(group)
            out.update({k: float(values[k]) for k in group})
    return out


@dataclass
class _Stats:
    """Per-chunk values of STIFF's make_imastats for one channel (medians taken at the end)."""

    min_frac: float | None
    max_frac: float | None
    med: list = field(default_factory=list)
    lo: list = field(default_factory=list)
    hi: list = field(default_factory=list)
    buf: np.ndarray | None = None
    fill: int = 0
    maybe_nan: bool = True  # False once the caller has checked that every pixel fed is finite

    def _chunk(self, chunk: np.ndarray) -> None:
        if self.maybe_nan and not np.isfinite(chunk).all():
            chunk = chunk[np.isfinite(chunk)]
            if chunk.size == 0:
                return
        # STIFF takes the median first (a quickselect that leaves the lower half of the values in the
        # first half of the buffer), then the MIN_LEVEL quantile of the first half and the MAX_LEVEL
        # quantile of the second: in effect quantiles of the lower and upper halves of the values (the
        # default MAX_LEVEL 0.999 is the 0.9995 quantile of the chunk).  One partition does all three.
        n = chunk.size
        half = n // 2
        kth = [half] if n % 2 else [half - 1, half]
        k_lo = k_hi = None
        if self.min_frac is not None:
            k_lo = _quantile_index(half, self.min_frac)
            kth.append(k_lo)
        if self.max_frac is not None and half:
            k_hi = half + _quantile_index(half, self.max_frac)
            kth.append(k_hi)
        value = _order_statistics(chunk, sorted(set(kth)))
        if n % 2:
            self.med.append(value[half])
        else:
            self.med.append(float(np.float32(0.5 * (value[half - 1] + value[half]))))
        if k_lo is not None:
            self.lo.append(value[k_lo])
        if k_hi is not None:
            self.hi.append(value[k_hi])

    def feed(self, flat: np.ndarray) -> None:
        """Add pixels in file order; every full chunk of STIFF_CHUNK pixels is reduced at once."""
        if self.buf is None:
            self.buf = np.empty(STIFF_CHUNK, np.float32)
        i = 0
        while i < flat.size:
            take = min(STIFF_CHUNK - self.fill, flat.size - i)
            self.buf[self.fill:self.fill + take] = flat[i:i + take]
            self.fill += take
            i += take
            if self.fill == STIFF_CHUNK:
                self._chunk(self.buf)
                self.fill = 0

    def finish(self) -> tuple[float, float, float]:
        if self.fill:
            self._chunk(self.buf[:self.fill])
            self.fill = 0
        return (_fast_median(np.array(self.med, np.float32)), _fast_median(np.array(self.lo, np.float32)),
                _fast_median(np.array(self.hi, np.float32)))


def chunk_stats(data: np.ndarray, min_frac: float | None = 0.001, max_frac: float | None = 0.999
                ) -> tuple[float, float, float]:
    """(sky, min quantile, max quantile) of an in-memory image exactly as STIFF computes them.

    Parameters
    ----------
    data : numpy.ndarray
    min_frac, max_frac : float or None
        MIN_LEVEL and MAX_LEVEL quantiles.

    Returns
    -------
    tuple of float
    """
    st = _Stats(min_frac, max_frac)
    st.feed(np.ascontiguousarray(data, np.float32).ravel())
    return st.finish()


def levels_from_stats(stats: tuple[float, float, float], settings: Settings, channel: int = 0,
                      nchan: int = 1) -> Levels:
    """The sky, min and max levels of one channel from its statistics and the STIFF keywords.

    Parameters
    ----------
    stats : tuple of float
        From :func:`chunk_stats`.
    settings : Settings
    channel : int
    nchan : int

    Returns
    -------
    Levels
    """
    sky_type = settings.per_channel("sky_type", nchan)[channel]
    min_type = settings.per_channel("min_type", nchan)[channel]
    max_type = settings.per_channel("max_type", nchan)[channel]
    min_level = float(settings.per_channel("min_level", nchan)[channel])
    max_level = float(settings.per_channel("max_level", nchan)[channel])
    sky = float(settings.per_channel("sky_level", nchan)[channel]) if sky_type == "MANUAL" else stats[0]
    hi = max_level if max_type == "MANUAL" else stats[2]
    if min_type == "MANUAL":
        lo = min_level
    elif min_type == "QUANTILE":
        lo = stats[1]
    else:  # GREYLEVEL: the sky lands at grey level MIN_LEVEL ** GAMMA_FAC of the linear range
        grey = min_level ** settings.gamma_fac
        lo = (hi * grey - sky) / (grey - 1.0) if grey != 1.0 else sky
    # STIFF keeps its levels in single precision
    return Levels(float(np.float32(sky)), float(np.float32(lo)), float(np.float32(hi)))


def binning_for(shape: tuple[int, int], size: int) -> int:
    """The smallest BINNING that brings the larger side of ``shape`` (ny, nx) to ``size`` pixels or less.

    Parameters
    ----------
    shape : tuple of int
    size : int

    Returns
    -------
    int
    """
    return max(1, -(-max(shape) // max(1, size)))


class _Binner:
    """Accumulates STIFF's bins (from the left and from the top row) while strips arrive bottom-up."""

    def __init__(self, shape: tuple[int, int], binning: tuple[int, int]):
        self.ny, self.nx = shape
        self.bx, self.by = binning
        self.wb = -(-self.nx // self.bx)
        self.hb = -(-self.ny // self.by)
        self.sums = np.zeros((self.hb, self.wb), np.float64)
        self.counts = np.zeros((self.hb, self.wb), np.float64)

    def row_edges(self) -> list[int]:
        """FITS row edges of the bins, bottom-up: the remainder bin (if any) is the bottom one."""
        rem = self.ny % self.by
        return ([0] if rem else []) + list(range(rem, self.ny + 1, self.by))

    def add(self, y0: int, block: np.ndarray) -> bool:
        """Add FITS rows y0.. (a whole number of bins, starting on a bin edge); True if all are finite."""
        rem = self.ny % self.by
        if rem and y0 == 0:  # the bottom remainder bin, alone in its strip
            base, rows_per_bin = self.hb - 1, rem
        else:
            first = (y0 - rem) // self.by  # bins counted from the bottom, above the remainder bin
            base, rows_per_bin = self.hb - 1 - (1 if rem else 0) - first, self.by
        rows, nx = block.shape
        k = rows // rows_per_bin
        out_rows = base - np.arange(k)  # strips come bottom-up, output rows go top-down
        allfinite = bool(np.isfinite(block).all())
        if allfinite:
            values, weight = block, None
        else:
            finite = np.isfinite(block)
            values, weight = np.where(finite, block, 0.0), finite.astype(np.float32)
        # whole strip at once: sum the rows of each bin, then the columns of each bin
        colsum = values.reshape(k, rows_per_bin, nx).sum(axis=1, dtype=np.float64)
        if weight is None:
            colw = None
        else:
            colw = weight.reshape(k, rows_per_bin, nx).sum(axis=1, dtype=np.float64)
        nfull = nx // self.bx * self.bx
        nb = nfull // self.bx
        self.sums[out_rows, :nb] += colsum[:, :nfull].reshape(k, nb, self.bx).sum(axis=2)
        self.counts[out_rows, :nb] += (rows_per_bin * self.bx if colw is None
                                       else colw[:, :nfull].reshape(k, nb, self.bx).sum(axis=2))
        if nfull < nx:  # the remainder bin on the right
            self.sums[out_rows, -1] += colsum[:, nfull:].sum(axis=1)
            self.counts[out_rows, -1] += rows_per_bin * (nx - nfull) if colw is None else colw[:, nfull:].sum(axis=1)
        return allfinite

    def result(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan).astype(np.float32)


def bin_image(data: np.ndarray, binning: int | tuple[int, int]) -> np.ndarray:
    """STIFF's binning of an in-memory image (rows bottom-up as in FITS); returns rows top to bottom.

    Parameters
    ----------
    data : numpy.ndarray
    binning : int or tuple of int

    Returns
    -------
    numpy.ndarray
    """
    b = (binning, binning) if isinstance(binning, int) else tuple(binning)
    data = np.asarray(data, np.float32)
    binner = _Binner(data.shape, b)
    edges = binner.row_edges()
    for y0, y1 in zip(edges[:-1], edges[1:]):
        binner.add(y0, data[y0:y1])
    return binner.result()


def _video_gamma(settings: Settings, bits: int):
    """(pmax, pblack, pscale, invg, goff, gsum, glin, gthresh) of STIFF's display gamma."""
    pmax = float((1 << bits) - 1)
    if settings.gamma_type == "SRGB":
        return pmax, 0.0, pmax, 1 / 2.4, 0.055, 1.055, 12.92, 0.0030402
    if settings.gamma_type == "REC.709":  # studio swing
        pmax = float((1 << bits) - 2)
        return pmax, 0.063 * pmax, 0.862 * pmax, 1 / 2.222, 0.099, 1.099, 4.5, 0.018
    if settings.gamma_type == "ASINH":
        return pmax, 0.0, pmax, 1.0, 0.0, 1.0, 0.0, 0.0
    return pmax, 0.0, pmax, 1.0 / settings.gamma, 0.0, 1.0, 0.0, 0.0


def to_pixels(planes: Sequence[np.ndarray], levels: Sequence[Levels], settings: Settings) -> np.ndarray:
    """Display pixels from 1 (grey) or 3 (red, green, blue) planes of data, as STIFF's data_to_pix.

    Returns uint8/uint16 (or float32 data for BITS_PER_CHANNEL -32) of shape (ny, nx) or (ny, nx, 3).
    NaN (bins without data) are black.

    Parameters
    ----------
    planes : sequence of numpy.ndarray
    levels : sequence of Levels
    settings : Settings

    Returns
    -------
    numpy.ndarray
    """
    nchan = len(planes)
    if nchan not in (1, 3):
        raise ToolError(f"{nchan} images given: STIFF makes a picture from 1 (grey) or 3 (colour) images")
    if settings.bits_per_channel == -32:
        out = np.stack([np.asarray(p, np.float32) for p in planes], axis=-1)
        return out[..., 0] if nchan == 1 else out
    bits = settings.bits_per_channel
    f32 = np.float32
    x = []
    for plane, lev in zip(planes, levels):
        scale = f32(1.0) / f32(lev.max - lev.min) if lev.max != lev.min else f32(0.0)
        x.append((np.nan_to_num(np.asarray(plane, f32), nan=lev.min) - f32(lev.min)) * scale)
    lum = sum(np.maximum(v, 0.0) for v in x) / f32(nchan)  # luminance: mean of the clipped channels
    invgf = 1.0 / settings.gamma_fac
    pmax, pblack, pscale, invg, goff, gsum, glin, gthresh = _video_gamma(settings, bits)
    pblack += 0.5  # symmetric round-off, as STIFF
    with np.errstate(divide="ignore", invalid="ignore"):
        if settings.gamma_type == "ASINH":
            q = settings.asinh_q
            gain = np.where(lum > 1e-15, np.arcsinh(q * lum) / (np.maximum(lum, 1e-30) * np.arcsinh(q)), 0.0)
            if nchan == 1:
                chans = [np.minimum(lum * gain, 1.0)]
            else:
                sat = settings.colour_sat / 3.0
                chans = [np.maximum(lum + sat * (2 * x[a] - x[(a + 1) % 3] - x[(a + 2) % 3]), 0.0) * gain
                         for a in range(3)]
                top = np.maximum(np.maximum(chans[0], chans[1]), chans[2])
                over = np.where(top > 1.0, top, 1.0)
                chans = [c / over for c in chans]
            coded = [pscale * c + pblack for c in chans]
        else:
            lumg = np.power(lum, f32(invgf))
            if nchan == 1:
                chans = [lumg]
            else:
                fmax = np.power(lum, f32(1.0 - invgf))
                clipped = [np.minimum(v, fmax) for v in x]
                sat = f32(settings.colour_sat / 3.0)
                chans = []
                for a in range(3):
                    v = np.maximum(lum + sat * (2 * clipped[a] - clipped[(a + 1) % 3] - clipped[(a + 2) % 3]), 0.0)
                    ratio = np.where(lum > 1e-15, v / np.where(lum > 1e-15, lum, 1.0), 1.0)
                    chans.append(ratio * lumg)
            coded = [pscale * np.where(c < gthresh, glin * c, gsum * np.power(c, f32(invg)) - goff) + pblack
                     for c in chans]
    dtype = np.uint8 if bits == 8 else np.uint16
    out = []
    for c in coded:
        c = np.minimum(c, pmax)
        if settings.negative:
            c = pmax - c
        out.append(c.astype(dtype))  # truncation after the +0.5: rounding, as STIFF's cast
    pix = out[0] if nchan == 1 else np.stack(out, axis=-1)
    if settings.flip_type in ("X", "XY"):
        pix = pix[:, ::-1]
    if settings.flip_type in ("Y", "XY"):
        pix = pix[::-1]
    return np.ascontiguousarray(pix)


def render(inputs: str | Path | Sequence[str | Path], settings: Settings | None = None, *,
           size: int | None = None, log=None) -> Picture:
    """Render 1 (grey) or 3 (red, green, blue) FITS images as STIFF would, in one pass per image.

    ``size`` (pixels) picks the BINNING that fits the larger side of the image into ``size``
    (a thumbnail); otherwise ``settings.binning`` is used.  Each image is read once, by strips: the
    statistics (STIFF's chunks) and the binned means are accumulated together.

    Parameters
    ----------
    inputs : str, Path or sequence of them
    settings : Settings, optional
    size : int, optional
    log : logging.Logger, optional

    Returns
    -------
    Picture
    """
    settings = settings or Settings()
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if len(paths) not in (1, 3):
        raise ToolError(f"{len(paths)} images given: STIFF makes a picture from 1 (grey) or 3 (colour) images")
    nchan = len(paths)
    planes, levels, shape = [], [], None
    for channel, path in enumerate(paths):
        with FitsPlane(path) as plane:
            if shape is None:
                shape = plane.shape
                binning = (binning_for(shape, size),) * 2 if size else tuple(settings.binning)
                settings = replace(settings, binning=binning)
            elif plane.shape != shape:
                raise ToolError(f"{plane.path}: image is {plane.shape[1]}x{plane.shape[0]}, the first one "
                                f"{shape[1]}x{shape[0]}; the three colour images must have the same size")
            need_min = settings.per_channel("min_type", nchan)[channel] == "QUANTILE"
            need = (settings.per_channel("sky_type", nchan)[channel] != "MANUAL" or need_min
                    or settings.per_channel("max_type", nchan)[channel] == "QUANTILE")
            stats = _Stats(float(settings.per_channel("min_level", nchan)[channel]) if need_min else None,
                           float(settings.per_channel("max_level", nchan)[channel]))
            binner = _Binner(shape, settings.binning)
            edges = binner.row_edges()
            # strips: whole bins, about STRIP_PIXELS pixels, in file order (bottom-up)
            per = max(1, STRIP_PIXELS // max(1, shape[1] * settings.binning[1]))
            strips = []
            i = 0
            while i < len(edges) - 1:
                j = 1 if (i == 0 and shape[0] % settings.binning[1]) else min(per, len(edges) - 1 - i)
                strips.append((edges[i], edges[i + j]))
                i += j
            stats.maybe_nan = False
            for y0, y1 in strips:
                block = plane.rows(y0, y1)
                if not binner.add(y0, block):
                    stats.maybe_nan = True  # from here on the chunks are checked for NaN
                if need:
                    stats.feed(block.ravel())
            sky, lo, hi = stats.finish() if need else (0.0, 0.0, 0.0)
            planes.append(binner.result())
            lev = levels_from_stats((sky, lo, hi), settings, channel, nchan)
            levels.append(lev)
            if log is not None:
                log.info("%s: %dx%d, sky %.6g, min %.6g, max %.6g", plane.path, shape[1], shape[0],
                         lev.sky, lev.min, lev.max)
    return Picture(to_pixels(planes, levels, settings), levels, settings.binning, shape, settings)


def picture_file(inputs: str | Path | Sequence[str | Path], path: str | Path, *, size: int | None = None,
                 compression: str = "LZW", description: str = "", **keywords) -> Picture:
    """Render 1 or 3 FITS images (``size``: thumbnail) and write the PNG or TIFF ``path`` (format from its
    suffix) through a temporary name, so that a reader never sees a half-written picture.

    Parameters
    ----------
    inputs : str, Path or sequence of them
    path : str or Path
    size : int, optional
    compression : str
        COMPRESSION_TYPE (TIFF).
    description : str
    **keywords : Any
        :class:`Settings` fields.

    Returns
    -------
    Picture
    """
    from terapix_fw.atomic import atomic_path

    from .writers import write_picture

    picture = render(inputs, Settings(**keywords), size=size)
    with atomic_path(Path(path)) as tmp:
        write_picture(tmp, picture.pixels, name=str(path), compression=compression, description=description)
    return picture


def thumbnail(inputs: str | Path | Sequence[str | Path], size: int = 256, **keywords) -> Picture:
    """A thumbnail no larger than ``size`` pixels of 1 or 3 FITS images, STIFF's levels and stretch.

    ``keywords`` are :class:`Settings` fields (``gamma_type="ASINH"``, ``colour_sat=2.0``...).

    Parameters
    ----------
    inputs : str, Path or sequence of them
    size : int
    **keywords : Any
        :class:`Settings` fields.

    Returns
    -------
    Picture
    """
    return render(inputs, Settings(**keywords), size=size)
