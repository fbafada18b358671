"""Reading FITS images as the AstrOmatic programs do, for every tool: one place for every FITS flavour an
archive holds, and one clear line for what cannot be read.

What is read
    BITPIX 8, 16, 32, 64, -32, -64; BZERO/BSCALE scaling (unsigned 16 and 32-bit); BLANK (integer images:
    blank pixels become NaN); single-HDU images and MEFs with or without an empty primary; tile-compressed
    images (``.fits.fz``: RICE, GZIP, HCOMPRESS, PLIO); gzip-compressed files (``.fits.gz``); big-endian
    and native arrays.  NaN and inf pixels come back as NaN, which every tool treats as masked (SExtractor
    does the same).  A degenerate third axis (NAXIS3 = 1) is accepted; a real cube is refused.

Memory
    One extension at a time (or a strip of rows of it): the raw pixels are memory-mapped and converted to
    float32 by blocks of rows, so an integer MEF never exists as a whole float64 copy.

Refusing
    Before astropy parses anything, :func:`scan` walks the file's header blocks (never its data): a
    truncated file, a header without END, an invalid BITPIX/NAXIS, data declared larger than the file or
    more image extensions than :data:`MAX_IMAGE_EXTENSIONS` is refused in milliseconds with a
    :class:`FitsReadError` (a :class:`~terapix_fw.errors.ToolError`) whose message is one line naming the
    file, the HDU and the keyword at fault.  Anything astropy raises later while reading a selected HDU is
    turned into the same kind of line.

Extensions
    ``image.fits[3]`` selects the 3rd image extension (1-based, empty primary not counted: the numbering
    SExtractor and the pipeline's per-extension fan-out use); ``image.fits[ccd10]`` the image extension
    whose EXTNAME is ``ccd10`` (case-insensitive).

>>> with FitsImage("exp.fits") as f:                              # doctest: +SKIP
...     for hdu in f.images:
...         data = f.read(hdu.index)                               # float32, NaN where masked
...         header = f.header(hdu.index)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError

__all__ = ["FitsReadError", "HduInfo", "FitsImage", "PixelLocation", "read_located", "scan", "split_selector",
           "select_image",
           "header_number", "check_header_values", "MAX_IMAGE_EXTENSIONS", "ROWS_PER_BLOCK"]

#: more image extensions than this in one file is refused (the largest mosaics have one or two hundred CCDs;
#: thousands of tiny extensions are a broken or hostile file, and would keep a tool busy for nothing).
#: ``TERAPIX_MAX_EXTENSIONS`` overrides it.
MAX_IMAGE_EXTENSIONS = 512
#: rows converted to float32 at a time (bounds the temporary float64 of scaled integer data)
ROWS_PER_BLOCK = 512
#: a header longer than this many 2880-byte blocks is refused (real headers take a few blocks)
MAX_HEADER_BLOCKS = 2000

_BITPIX = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_BLOCK = 2880


class FitsReadError(ToolError):
    """A FITS file (or one of its HDUs) that cannot be read; the message names the file, HDU and keyword."""


@dataclass
class HduInfo:
    """What the header blocks of one HDU say, before astropy parses it."""

    index: int                      # HDU number (0 = primary)
    xtension: str                   # "" for the primary, else IMAGE, BINTABLE, ...
    bitpix: int
    naxis: tuple[int, ...]          # NAXIS1, NAXIS2, ... (FITS order)
    extname: str = ""
    compressed: bool = False        # a tile-compressed image (ZIMAGE = T)
    zbitpix: int = 0
    znaxis: tuple[int, ...] = ()
    header_start: int = 0
    data_start: int = 0
    data_bytes: int = 0
    bscale: float = 1.0
    bzero: float = 0.0
    blank: int | None = None

    @property
    def image_axes(self) -> tuple[int, ...]:
        """The image's axis lengths (``ZNAXISn`` for a tile-compressed HDU), FITS order."""
        return self.znaxis if self.compressed else self.naxis

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the 2-D image."""
        ax = self.image_axes
        return (ax[1], ax[0])

    @property
    def is_image(self) -> bool:
        """Whether the HDU holds an image (primary, IMAGE or tile-compressed)."""
        return self.compressed or self.xtension in ("", "IMAGE")

    def label(self) -> str:
        """``HDU n`` with its EXTNAME, for messages.

        Returns
        -------
        str
        """
        return f"HDU {self.index}" + (f" (EXTNAME {self.extname})" if self.extname else "")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _card_value(card: str):
    """The value of a header card image: int, float, bool, str, or None when it cannot be parsed."""
    if card[8:10] != "= ":
        return None
    raw = card[10:].strip()
    if raw.startswith("'"):
        end = raw.find("'", 1)
        while end != -1 and raw[end + 1:end + 2] == "'":
            end = raw.find("'", end + 2)
        return raw[1:end].replace("''", "'").rstrip() if end != -1 else None
    raw = raw.split("/", 1)[0].strip()
    if raw in ("T", "F"):
        return raw == "T"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw.replace("D", "E"))
    except ValueError:
        return None


def _open_stream(path: str):
    """A binary stream over the FITS bytes (gzip-decompressed for a gzip file) and its size when known."""
    handle = open(path, "rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=handle, mode="rb"), None, handle
    return handle, os.fstat(handle.fileno()).st_size, None


def _max_extensions() -> int:
    try:
        return int(os.environ.get("TERAPIX_MAX_EXTENSIONS", MAX_IMAGE_EXTENSIONS))
    except ValueError:
        return MAX_IMAGE_EXTENSIONS


def scan(path: str | Path, what: str = "image") -> list[HduInfo]:
    """The HDUs of a FITS file from its header blocks alone (data is skipped, never read).

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is (``image``, ``weight map``...), for messages.

    Returns
    -------
    list of HduInfo
        One per HDU, in file order.

    Raises
    ------
    FitsReadError
        For a missing file, a file that is not FITS, a header without END, an invalid BITPIX or NAXISn,
        data running past the end of the file, or more image HDUs than :data:`MAX_IMAGE_EXTENSIONS`.
    """
    path = str(path)
    try:
        stream, size, raw = _open_stream(path)
    except FileNotFoundError:
        raise FitsReadError(f"cannot open {what} {path}: no such file") from None
    except IsADirectoryError:
        raise FitsReadError(f"cannot open {what} {path}: it is a directory") from None
    except OSError as exc:
        raise FitsReadError(f"cannot open {what} {path}: {exc.strerror}") from None
    limit = _max_extensions()
    hdus: list[HduInfo] = []
    pos = nimages = 0
    try:
        while True:
            index = len(hdus)
            cards: dict[str, object] = {}
            first = None
            ended = False
            nblocks = 0
            while not ended:
                block = stream.read(_BLOCK)
                if not block:
                    if index == 0 and nblocks == 0:
                        raise FitsReadError(f"{what} {path}: empty file, not FITS")
                    if nblocks == 0:  # clean end of file after the last HDU's data
                        return hdus
                    raise FitsReadError(f"{what} {path}: HDU {index}: the header has no END card "
                                        "(file truncated or not FITS)")
                if index == 0 and nblocks == 0 and not block.startswith(b"SIMPLE  ="):
                    raise FitsReadError(f"{what} {path}: not a FITS file (it does not start with SIMPLE =)")
                if len(block) < _BLOCK:
                    if nblocks == 0 and index > 0 and not block.strip(b"\0 "):
                        return hdus  # trailing padding
                    raise FitsReadError(f"{what} {path}: HDU {index}: truncated inside the header "
                                        f"({len(block)} bytes of a 2880-byte block)")
                nblocks += 1
                pos += _BLOCK
                if nblocks > MAX_HEADER_BLOCKS:
                    raise FitsReadError(f"{what} {path}: HDU {index}: no END card in the first "
                                        f"{MAX_HEADER_BLOCKS} header blocks")
                if index > 0 and first is None and not block.startswith(b"XTENSION"):
                    # bytes after the last HDU: padding is fine; anything else means a header
                    # (BITPIX, NAXISn) that does not describe the data that is really there
                    if not block.strip(b"\0 "):
                        return hdus
                    raise FitsReadError(f"{what} {path}: {hdus[-1].label()}: {_BLOCK} bytes or more follow its "
                                        f"data that are not a FITS extension: BITPIX {hdus[-1].bitpix} / NAXISn "
                                        f"{'x'.join(map(str, hdus[-1].naxis))} do not describe the data in the file")
                try:
                    text = block.decode("ascii")
                except UnicodeDecodeError:
                    raise FitsReadError(f"{what} {path}: HDU {index}: the header holds non-ASCII bytes "
                                        "(corrupted header)") from None
                for k in range(0, _BLOCK, 80):
                    card = text[k:k + 80]
                    key = card[:8].strip()
                    if first is None:
                        first = key
                        if index == 0 and key != "SIMPLE":
                            raise FitsReadError(f"{what} {path}: not a FITS file (first keyword {key!r}, "
                                                "expected SIMPLE)")
                    if key == "END":
                        ended = True
                        break
                    if key and key not in cards:
                        cards[key] = _card_value(card)
            info = _hdu_info(index, cards, path, what)
            info.data_start = pos
            info.header_start = pos - nblocks * _BLOCK
            info.data_bytes = _data_bytes(info, cards)
            padded = -(-info.data_bytes // _BLOCK) * _BLOCK
            if size is not None and pos + info.data_bytes > size:
                raise FitsReadError(f"{what} {path}: {info.label()}: truncated file: the header declares "
                                    f"{info.data_bytes} bytes of data (BITPIX {info.bitpix}, NAXISn "
                                    f"{'x'.join(map(str, info.naxis))}) but only {max(size - pos, 0)} remain")
            if padded:
                if size is not None:
                    stream.seek(pos + padded)
                else:  # gzip: skipping is decompressing; a short read means a truncated file
                    left = padded
                    while left:
                        chunk = stream.read(min(left, 1 << 20))
                        if not chunk:
                            if pos + info.data_bytes > pos + padded - left:
                                raise FitsReadError(f"{what} {path}: {info.label()}: truncated file: the "
                                                    f"header declares {info.data_bytes} bytes of data")
                            break
                        left -= len(chunk)
                pos += padded
            hdus.append(info)
            nimages += info.is_image
            if nimages > limit + 1:  # + 1: an empty primary
                raise FitsReadError(f"{what} {path}: more than {limit} image extensions; refused as a broken "
                                    "structure (set TERAPIX_MAX_EXTENSIONS to accept more)")
    except (EOFError, OSError) as exc:  # gzip stream cut or corrupted
        raise FitsReadError(f"{what} {path}: cannot read: {_one_line(exc)}") from None
    finally:
        stream.close()
        if raw is not None:
            raw.close()


def _int(cards, key, path, what, index, minimum=None, required=True):
    value = cards.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        got = "missing" if key not in cards else "unreadable" if value is None else f"{value!r}"
        raise FitsReadError(f"{what} {path}: HDU {index}: keyword {key} is {got}, expected an integer")
    if minimum is not None and value < minimum:
        raise FitsReadError(f"{what} {path}: HDU {index}: {key} = {value}, expected >= {minimum}")
    return value


def _hdu_info(index, cards, path, what) -> HduInfo:
    bitpix = _int(cards, "BITPIX", path, what, index)
    if bitpix not in _BITPIX:
        raise FitsReadError(f"{what} {path}: HDU {index}: BITPIX = {bitpix}, expected one of 8, 16, 32, 64, "
                            "-32, -64")
    naxis = _int(cards, "NAXIS", path, what, index, 0)
    if naxis > 999:
        raise FitsReadError(f"{what} {path}: HDU {index}: NAXIS = {naxis}, expected 0 to 999")
    axes = tuple(_int(cards, f"NAXIS{k}", path, what, index, 0) for k in range(1, naxis + 1))
    xt = cards.get("XTENSION") if index > 0 else ""
    xt = xt.strip().upper() if isinstance(xt, str) else ""
    extname = cards.get("EXTNAME")
    info = HduInfo(index, xt, bitpix, axes, extname.strip() if isinstance(extname, str) else "")
    for key, default in (("BSCALE", 1.0), ("BZERO", 0.0)):
        v = cards.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
            raise FitsReadError(f"{what} {path}: HDU {index}: {key} = {v!r}, expected a finite number")
        setattr(info, key.lower(), float(v))
    if info.bscale == 0.0:
        raise FitsReadError(f"{what} {path}: HDU {index}: BSCALE = 0: every pixel would be BZERO")
    blank = cards.get("BLANK")
    info.blank = blank if isinstance(blank, int) and not isinstance(blank, bool) else None
    if xt == "BINTABLE" and cards.get("ZIMAGE") is True:
        info.compressed = True
        info.zbitpix = _int(cards, "ZBITPIX", path, what, index)
        if info.zbitpix not in _BITPIX:
            raise FitsReadError(f"{what} {path}: HDU {index}: ZBITPIX = {info.zbitpix}, expected one of 8, 16, "
                                "32, 64, -32, -64")
        zn = _int(cards, "ZNAXIS", path, what, index, 0)
        info.znaxis = tuple(_int(cards, f"ZNAXIS{k}", path, what, index, 0) for k in range(1, zn + 1))
    return info


def _data_bytes(info: HduInfo, cards) -> int:
    if not info.naxis:
        return 0
    n = 1
    for a in info.naxis:
        n *= a
    pcount = cards.get("PCOUNT", 0) if info.index > 0 else 0
    gcount = cards.get("GCOUNT", 1) if info.index > 0 else 1
    pcount = pcount if isinstance(pcount, int) and not isinstance(pcount, bool) else 0
    gcount = gcount if isinstance(gcount, int) and not isinstance(gcount, bool) else 1
    return abs(info.bitpix) // 8 * gcount * (pcount + n)


def _image_problem(h: HduInfo) -> str | None:
    """Why an image HDU holding data is not a usable 2-D image, or None."""
    ax = h.image_axes
    if any(a == 0 for a in ax):
        return f"{h.label()} is {'x'.join(map(str, ax))} pixels (NAXISn = 0): no pixels"
    extra = [(k + 1, a) for k, a in enumerate(ax) if k >= 2 and a != 1]
    if extra:
        k, a = extra[0]
        return f"{h.label()} is a data cube (NAXIS{k} = {a}); a 2-D image is expected"
    return None


def split_selector(text: str) -> tuple[str, int | str | None]:
    """Split an extension selector off a file name.

    ``image.fits[3]`` -> (``image.fits``, 3); ``image.fits[ccd10]`` -> (``image.fits``, ``"ccd10"``);
    a name without brackets -> (name, None).

    Parameters
    ----------
    text : str

    Returns
    -------
    tuple of (str, int or str or None)
    """
    m = re.match(r"^(.*)\[([^\[\]]+)\]$", str(text))
    if not m:
        return str(text), None
    sel = m.group(2).strip()
    return m.group(1), int(sel) if sel.isdigit() else sel


def select_image(images: list[HduInfo], selector, path: str, what: str = "image") -> HduInfo:
    """The image HDU named by ``selector``: the n-th image extension (1-based) or an EXTNAME.

    Parameters
    ----------
    images : list of HduInfo
        The file's image HDUs.
    selector : int or str
        1-based index (also as a string of digits) or EXTNAME.
    path : str
        The file, for messages.
    what : str
        What the file is (``image``, ``weight map``...), for messages.

    Returns
    -------
    HduInfo

    Raises
    ------
    FitsReadError
        If there is no such extension, or the EXTNAME is shared.
    """
    if isinstance(selector, str) and selector.isdigit():
        selector = int(selector)
    if isinstance(selector, int):
        if not 1 <= selector <= len(images):
            raise FitsReadError(f"{what} {path}: no image extension {selector} (it has {len(images)})")
        return images[selector - 1]
    found = [h for h in images if h.extname.upper() == str(selector).strip().upper()]
    if not found:
        names = [h.extname for h in images if h.extname]
        listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise FitsReadError(f"{what} {path}: no image extension with EXTNAME {selector!r}"
                            + (f" (EXTNAMEs: {listed})" if names else " (no extension has an EXTNAME)"))
    if len(found) > 1:
        raise FitsReadError(f"{what} {path}: EXTNAME {selector!r} is shared by HDUs "
                            f"{[h.index for h in found]}; select by number")
    return found[0]


class FitsImage:
    """A FITS file opened for reading images one extension (or strip) at a time.

    ``images`` lists the image HDUs with pixels, in file order (an empty primary is skipped, as SExtractor
    does).  Every error is a :class:`FitsReadError` naming the file and HDU.
    """

    def __init__(self, path: str | Path, what: str = "image"):
        self.path = str(path)
        self.what = what
        self.hdus = scan(self.path, what)
        self.images = [h for h in self.hdus if h.is_image and h.image_axes and len(h.image_axes) >= 2
                       and not (h.index == 0 and not h.naxis)]
        usable = [h for h in self.images if _image_problem(h) is None]
        if not usable:
            if self.images:
                raise FitsReadError(f"{what} {self.path}: {_image_problem(self.images[0])}")
            tables = [h for h in self.hdus if h.xtension in ("BINTABLE", "TABLE")]
            raise FitsReadError(f"{what} {self.path}: no image data in any HDU"
                                + (" (it holds tables: a catalogue?)" if tables else ""))
        bad = [h for h in self.images if _image_problem(h) is not None]
        if bad:
            raise FitsReadError(f"{what} {self.path}: {_image_problem(bad[0])}")
        self._by_index = {h.index: h for h in self.hdus}
        self._hdul = None
        with open(self.path, "rb") as handle:
            self.gzipped = handle.read(2) == b"\x1f\x8b"

    # -- astropy, opened lazily: headers are parsed only up to the HDU asked for
    def _astropy(self):
        if self._hdul is None:
            from astropy.io import fits

            with self.guard(None):
                self._hdul = fits.open(self.path, memmap=True, lazy_load_hdus=True,
                                       do_not_scale_image_data=True)
        return self._hdul

    def guard(self, index):
        """A context manager turning any error from astropy into one line naming the file and HDU.

        Parameters
        ----------
        index : int or None
            The HDU concerned (None: the file).

        Returns
        -------
        contextmanager
        """
        return _Guard(self, index)

    def where(self, index) -> str:
        """The file and HDU, as messages name them.

        Parameters
        ----------
        index : int or None

        Returns
        -------
        str
        """
        if index is None:
            return f"{self.what} {self.path}"
        h = self._by_index.get(index)
        return f"{self.what} {self.path}: {h.label() if h else f'HDU {index}'}"

    def info(self, index: int) -> HduInfo:
        """What the header blocks say of HDU ``index``.

        Parameters
        ----------
        index : int

        Returns
        -------
        HduInfo
        """
        return self._by_index[index]

    def select(self, selector) -> HduInfo:
        """The image HDU named by ``selector`` (see :func:`select_image`).

        Parameters
        ----------
        selector : int or str

        Returns
        -------
        HduInfo
        """
        return select_image(self.images, selector, self.path, self.what)

    def hdu(self, index: int):
        """The astropy HDU (raw, unscaled data).

        Parameters
        ----------
        index : int

        Returns
        -------
        astropy.io.fits HDU
        """
        with self.guard(index):
            return self._astropy()[index]

    def _plain(self, index: int) -> bool:
        """An uncompressed HDU of an uncompressed file: read straight at its offsets, without astropy
        walking the headers before it (which made extension k of a MEF cost k header parses)."""
        h = self._by_index[index]
        return not h.compressed and not self.gzipped

    def header(self, index: int):
        """A copy of the HDU's header, every card parsed.

        For a compressed HDU, the image's header.  A card that cannot be parsed is an error naming it here,
        not an astropy exception in some later use.

        Parameters
        ----------
        index : int

        Returns
        -------
        astropy.io.fits.Header

        Raises
        ------
        FitsReadError
        """
        with self.guard(index):
            if self._plain(index):
                from astropy.io import fits

                h = self._by_index[index]
                with open(self.path, "rb") as handle:
                    handle.seek(h.header_start)
                    text = handle.read(h.data_start - h.header_start).decode("ascii")
                return self._parsed(fits.Header.fromstring(text), index)
            return self._parsed(self.hdu(index).header.copy(), index)

    def primary_header(self):
        """The primary header (see :meth:`header`).

        Returns
        -------
        astropy.io.fits.Header
        """
        return self.header(0)

    def _parsed(self, header, index):
        for card in header.cards:
            try:
                card.value  # noqa: B018 - parses the card image
                card.verify("silentfix")
                card.value  # noqa: B018
            except Exception as exc:  # noqa: BLE001 - astropy raises VerifyError, ValueError...
                raise FitsReadError(f"{self.where(index)}: header card {card.keyword or '(blank)'} cannot be "
                                    f"parsed: {_one_line(card.image)!r} ({_one_line(exc)[:120]})") from None
        extname = header.get("EXTNAME")
        if extname is not None and not isinstance(extname, str):  # EXTNAME = 42: kept as the string '42'
            header["EXTNAME"] = str(extname)
        return header

    def _scaling(self, hdu):
        h = hdu.header
        bscale = _float_card(h, "BSCALE", 1.0)
        bzero = _float_card(h, "BZERO", 0.0)
        blank = h.get("BLANK") if not isinstance(h.get("BLANK"), bool) else None
        return bscale, bzero, blank if isinstance(blank, int) else None

    def read(self, index: int, rows: tuple[int, int] | None = None, dtype="float32"):
        """The pixels of image HDU ``index``, scaled by BSCALE/BZERO, BLANK, NaN and inf set to NaN.

        Parameters
        ----------
        index : int
        rows : tuple of (int, int), optional
            ``(first, end)`` rows (0-based, end excluded) to read only those.
        dtype : str or numpy.dtype
            Output type.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        FitsReadError
        """
        import numpy as np

        info = self._by_index[index]
        ny, nx = info.shape
        r0, r1 = (0, ny) if rows is None else (max(0, rows[0]), min(ny, rows[1]))
        out = np.empty((max(r1 - r0, 0), nx), dtype=dtype)
        with self.guard(index):
            ndim = len(info.image_axes)
            if self._plain(index):  # memory-mapped at the data's offset (BSCALE/BZERO/BLANK from the scan)
                plane = np.memmap(self.path, dtype=_DTYPES[info.bitpix], mode="r", offset=info.data_start,
                                  shape=(ny, nx))
                bscale, bzero, blank = info.bscale, info.bzero, info.blank

                def section(b0, b1):
                    return plane[b0:b1]
            else:
                hdu = self.hdu(index)
                bscale, bzero, blank = self._scaling(hdu)
                # a whole compressed HDU is decompressed once (its integers, not a float copy): astropy
                # decompresses the tiles again for every section (9x slower on a 2048x4612 CCD)
                whole = hdu.data if rows is None and info.compressed else None

                def section(b0, b1):
                    if whole is not None:
                        return whole[(0,) * (ndim - 2) + (slice(b0, b1), slice(None))]
                    return hdu.section[(0,) * (ndim - 2) + (slice(b0, b1), slice(None))]
            for b0 in range(r0, r1, ROWS_PER_BLOCK):
                b1 = min(r1, b0 + ROWS_PER_BLOCK)
                raw = np.asarray(section(b0, b1))
                dest = out[b0 - r0:b1 - r0]
                if raw.dtype.kind in "iub":
                    if bscale == 1.0 and bzero == float(int(bzero)) and abs(bzero) < 2 ** 24 \
                            and raw.dtype.itemsize <= 2:
                        np.add(raw, np.float32(bzero), out=dest, casting="unsafe")  # exact in float32
                    else:
                        np.copyto(dest, raw * bscale + bzero, casting="unsafe")
                    if blank is not None:
                        dest[raw == blank] = np.nan
                else:
                    if bscale != 1.0 or bzero != 0.0:
                        np.copyto(dest, raw * bscale + bzero, casting="unsafe")
                    else:
                        np.copyto(dest, raw, casting="unsafe")
                    if dest.dtype.kind == "f":
                        dest[np.isinf(dest)] = np.nan
        return out

    def locate(self, index: int) -> "PixelLocation":
        """Where the pixels of image HDU ``index`` are, for :func:`read_located` to read them later.

        Without parsing any header again (SWarp-style readers of thousands of CCDs).

        Parameters
        ----------
        index : int

        Returns
        -------
        PixelLocation
        """
        h = self._by_index[index]
        plain = not h.compressed and not self.gzipped
        return PixelLocation(self.path, index, h.data_start if plain else None, h.bitpix, h.bscale, h.bzero,
                             h.blank, h.shape, self.what)

    def read_native(self, index: int, rows: tuple[int, int] | None = None):
        """Pixels in their own type, scaled.

        For flag maps: integers stay integers; unsigned 16/32-bit images come back as uint16/uint32.

        Parameters
        ----------
        index : int
        rows : tuple of (int, int), optional
            ``(first, end)`` rows to read only those.

        Returns
        -------
        numpy.ndarray
        """
        import numpy as np

        info = self._by_index[index]
        ny, nx = info.shape
        r0, r1 = (0, ny) if rows is None else (max(0, rows[0]), min(ny, rows[1]))
        with self.guard(index):
            if self._plain(index):
                raw = np.memmap(self.path, dtype=_DTYPES[info.bitpix], mode="r", offset=info.data_start,
                                shape=(ny, nx))[r0:r1]
                bscale, bzero = info.bscale, info.bzero
            else:
                hdu = self.hdu(index)
                bscale, bzero, _ = self._scaling(hdu)
                ndim = len(info.image_axes)
                raw = np.asarray(hdu.section[(0,) * (ndim - 2) + (slice(r0, r1), slice(None))])
            if raw.dtype.kind in "iu" and bscale == 1.0 and bzero in (0.0, 2.0 ** (8 * raw.dtype.itemsize - 1)):
                if bzero:
                    unsigned = np.dtype(f"u{raw.dtype.itemsize}")
                    return (raw.astype(raw.dtype.newbyteorder("=")).view(unsigned) ^ unsigned.type(1 << (
                        8 * raw.dtype.itemsize - 1)))
                return raw.astype(raw.dtype.newbyteorder("="))
            if raw.dtype.kind == "u" and bscale == 1.0 and bzero == 0.0:
                return raw.astype(raw.dtype.newbyteorder("="))
        return self.read(index, rows)

    def close(self):
        """Close the astropy file if it was opened."""
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class PixelLocation:
    """An image HDU's pixels in its file: ``offset`` of the data of a plain file, None for a compressed HDU
    or a gzip file (read through astropy)."""

    path: str
    index: int
    offset: int | None
    bitpix: int
    bscale: float
    bzero: float
    blank: int | None
    shape: tuple[int, int]
    what: str = "image"


def read_located(loc: PixelLocation):
    """The float32 pixels at ``loc`` (scaled, NaN where BLANK/NaN/inf), read straight from the file.

    Parameters
    ----------
    loc : PixelLocation
        From :meth:`FitsImage.locate`.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    FitsReadError
        If the file cannot be read or is truncated.
    """
    import numpy as np

    if loc.offset is None:
        with FitsImage(loc.path, loc.what) as img:
            return img.read(loc.index)
    dtype = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[loc.bitpix]
    ny, nx = loc.shape[0], loc.shape[1]
    count = ny * nx
    try:
        raw = np.fromfile(loc.path, dtype=dtype, count=count, offset=loc.offset)
    except OSError as exc:
        raise FitsReadError(f"{loc.what} {loc.path}: HDU {loc.index}: cannot read: {exc.strerror}") from None
    if raw.size != count:
        raise FitsReadError(f"{loc.what} {loc.path}: HDU {loc.index}: truncated image ({raw.size} of {count} "
                            "pixels)")
    if loc.bitpix == -32 and loc.bscale == 1.0 and loc.bzero == 0.0:  # swap in place: no second copy
        out = raw.byteswap(inplace=True).view(raw.dtype.newbyteorder("=")).reshape(loc.shape)
        out[np.isinf(out)] = np.nan
        return out
    out = np.empty((ny, nx), np.float32)
    flat = out.reshape(-1)
    step = ROWS_PER_BLOCK * nx
    for b0 in range(0, count, step):  # bounded temporaries
        r = raw[b0:b0 + step]
        if loc.bitpix > 0 and loc.bscale == 1.0 and abs(loc.bzero) < 2 ** 24 and loc.bitpix <= 16:
            np.add(r, np.float32(loc.bzero), out=flat[b0:b0 + step], casting="unsafe")
        else:
            np.copyto(flat[b0:b0 + step], r * loc.bscale + loc.bzero, casting="unsafe")
        if loc.bitpix > 0 and loc.blank is not None:
            flat[b0:b0 + step][r == loc.blank] = np.nan
    if loc.bitpix < 0:
        out[np.isinf(out)] = np.nan
    return out


def _float_card(header, key, default):
    value = header.get(key, default)
    if isinstance(value, bool):
        return default
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if value == value and abs(value) != float("inf") else default


class _Guard:
    def __init__(self, image: FitsImage, index):
        self.image = image
        self.index = index

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, ToolError) or not isinstance(exc, Exception):
            return False
        if isinstance(exc, MemoryError):
            raise FitsReadError(f"{self.image.where(self.index)}: not enough memory to read it") from exc
        raise FitsReadError(f"{self.image.where(self.index)}: cannot read: "
                            f"{type(exc).__name__}: {_one_line(exc)[:300]}") from exc


def header_number(header, key: str, where: str, default=None, positive: bool = False, allow_zero: bool = False):
    """A numeric header value, checked.

    Parameters
    ----------
    header : astropy.io.fits.Header
    key : str
        The keyword; empty means "use ``default``".
    where : str
        File and extension, for messages.
    default : float, optional
        Value when ``key`` is empty or absent.
    positive : bool
        Require > 0.
    allow_zero : bool
        With ``positive``, accept 0.

    Returns
    -------
    float or None

    Raises
    ------
    FitsReadError
        Naming ``where`` and the keyword when the value is not a finite number or out of range.
    """
    import math

    if not key or key not in header:
        return default
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FitsReadError(f"{where}: header keyword {key} = {value!r} is not a number")
    value = float(value)
    if not math.isfinite(value):
        raise FitsReadError(f"{where}: header keyword {key} = {value} is not finite")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise FitsReadError(f"{where}: header keyword {key} = {value:g}, expected "
                            f"{'>= 0' if allow_zero else '> 0'}")
    return value


def check_header_values(header, where: str, keys: dict[str, tuple]) -> dict[str, float | None]:
    """Check several keywords at once (see :func:`header_number`).

    Parameters
    ----------
    header : astropy.io.fits.Header
    where : str
        File and extension, for messages.
    keys : dict of str to tuple
        Keyword -> ``(default, positive, allow_zero)``.

    Returns
    -------
    dict of str to float or None
    """
    return {k: header_number(header, k, where, *spec) for k, spec in keys.items()}
