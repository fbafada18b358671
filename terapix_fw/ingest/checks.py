"""Integrity of an arriving exposure: FITS structure, CHECKSUM/DATASUM, image extensions, readable pixels.

:func:`inspect_file` either returns what ingestion needs of the file (headers, compression, SHA-256) or
raises :class:`IntegrityError` whose message is the reason written beside the quarantined file.  The
checks, in order:

1. the file can be read; a gzip stream is complete (its CRC and length check);
2. FITS structure: every HDU parses; an uncompressed file is a whole number of 2880-byte blocks and its
   last HDU's data ends where the file does (a truncated transfer fails here, naming the HDU);
3. ``CHECKSUM`` / ``DATASUM`` of every HDU that carries them (FITS checksum convention; ``ZHECKSUM`` /
   ``ZDATASUM`` of a tile-compressed image are those of the uncompressed image and are not checked);
4. the number of image extensions: ``NEXTEND`` when given, and the site's count for the camera
   (``DETECTOR``, else ``INSTRUME``);
5. every image's pixels can be read (decompressed) with the shape its header announces, and a floating
   point image has at least one finite pixel.
"""
from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TerapixError

__all__ = ["IntegrityError", "FileInfo", "inspect_file", "compression_of", "BLOCK"]

BLOCK = 2880


class IntegrityError(TerapixError):
    """The file fails an integrity check; the message is the reason (names the HDU or keyword)."""


@dataclass
class FileInfo:
    """What the integrity checks read of a file.

    Attributes
    ----------
    path : Path
    compression : str
        ``none``, ``gzip`` or ``fpack``.
    primary : astropy.io.fits.Header
    images : list of (int, astropy.io.fits.Header)
        HDU index and (uncompressed) header of each image extension.
    checked_sums : int
        HDUs whose CHECKSUM/DATASUM were verified.
    raw_headers : dict of int to bytes
        HDU index -> header bytes as written (uncompressed files).
    """
    path: Path
    compression: str  # none | gzip | fpack
    primary: Any  # astropy Header
    images: list[tuple[int, Any]] = field(default_factory=list)  # (HDU index, image header uncompressed)
    checked_sums: int = 0  # HDUs whose CHECKSUM/DATASUM were verified
    raw_headers: dict[int, bytes] = field(default_factory=dict)  # HDU index -> header bytes (uncompressed files)


def compression_of(path: Path) -> str:
    """``gzip`` (magic bytes), ``fpack`` (by name, confirmed by the HDUs) or ``none``.

    Parameters
    ----------
    path : Path

    Returns
    -------
    str
    """
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return "gzip"
    return "fpack" if path.name.endswith(".fz") else "none"


def _check_gzip(path: Path) -> None:
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (OSError, EOFError) as exc:
        raise IntegrityError(f"gzip stream broken ({exc})") from None


def _camera(primary) -> str | None:
    value = primary.get("DETECTOR") or primary.get("INSTRUME")
    return str(value).strip() if value is not None else None


def inspect_file(path: str | Path, expected_extensions=None, check_pixels: bool = True, log=None) -> FileInfo:
    """Check ``path`` and return its headers; raise IntegrityError with the reason otherwise.

    ``expected_extensions``: a callable camera name -> expected number of image extensions (None: any;
    it may raise ``ConfigError`` for a camera the site refuses), or None.

    Parameters
    ----------
    path : str or Path
    expected_extensions : callable, optional
        Camera name -> expected number of image extensions (None: any; it may raise ``ConfigError`` for a
        camera the site refuses).
    check_pixels : bool
        Read every image's pixels (not only the headers and checksums).
    log : logging.Logger, optional

    Returns
    -------
    FileInfo

    Raises
    ------
    IntegrityError
        With the reason (empty, truncated, not FITS, bad checksum, wrong extension count...).
    """
    import numpy as np
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    from ..errors import ConfigError

    path = Path(path)
    try:
        size = path.stat().st_size
        compression = compression_of(path)
    except OSError as exc:
        raise IntegrityError(f"cannot read the file: {exc.strerror}") from None
    if size == 0:
        raise IntegrityError("empty file (0 bytes)")
    if compression == "gzip":
        _check_gzip(path)
    elif size % BLOCK:
        raise IntegrityError(f"truncated or padded: {size} bytes is not a whole number of {BLOCK}-byte "
                             f"FITS blocks")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # pixels as stored (no BZERO/BSCALE scaling): readability is what is checked here, and a
            # memory map of raw camera integers (BITPIX 16 + BZERO 32768) is refused by astropy otherwise
            hdul = fits.open(path, memmap=compression == "none", lazy_load_hdus=False,
                             ignore_missing_simple=False, do_not_scale_image_data=True)
        except Exception as exc:  # noqa: BLE001 - astropy raises OSError, ValueError, VerifyError...
            raise IntegrityError(f"not a readable FITS file: {exc}") from None
        truncated = [w for w in caught if issubclass(w.category, AstropyUserWarning) and "truncat" in str(w.message)]
        with hdul:
            if truncated:
                raise IntegrityError(f"truncated: {truncated[0].message}")
            if compression == "none":
                end = _end_of(hdul)
                if end > size:
                    raise IntegrityError(f"truncated: HDU {len(hdul) - 1} ends at byte {end}, the file has {size}")
                if end < size:
                    raise IntegrityError(f"{size - end} bytes after the last HDU (HDU {len(hdul) - 1} ends at "
                                         f"byte {end}): not a FITS structure")
            standard = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU, fits.BinTableHDU, fits.TableHDU,
                        fits.GroupsHDU)
            for k, hdu in enumerate(hdul):
                # astropy keeps what it cannot parse as a generic HDU instead of raising
                if not isinstance(hdu, standard):
                    raise IntegrityError(f"HDU {k}: unreadable header (not a standard FITS "
                                         f"{'primary HDU' if k == 0 else 'extension'})")
            primary = hdul[0].header
            images = []
            fpack = False
            for k, hdu in enumerate(hdul):
                if isinstance(hdu, fits.CompImageHDU):
                    fpack = True
                    images.append((k, hdu.header))
                elif k > 0 and isinstance(hdu, fits.ImageHDU) and hdu.header.get("NAXIS", 0) >= 2:
                    images.append((k, hdu.header))
            if not images and primary.get("NAXIS", 0) >= 2:
                images = [(0, primary)]
            if compression == "fpack" and not fpack:
                compression = "none"  # named .fz but not tile-compressed: stored as it is
            elif fpack and compression == "none":
                compression = "fpack"
            checked = 0
            for k, hdu in enumerate(hdul):
                checked += _check_sums(hdu, k, log)
            if not images:
                raise IntegrityError("no image HDU (NAXIS >= 2)")
            nimg = len(images) if images[0][0] != 0 else 1
            nextend = primary.get("NEXTEND")
            if isinstance(nextend, int) and images[0][0] != 0 and nextend != nimg:
                raise IntegrityError(f"NEXTEND = {nextend} in the primary header but {nimg} image extension(s)")
            if expected_extensions is not None:
                try:
                    want = expected_extensions(_camera(primary))
                except ConfigError as exc:
                    raise IntegrityError(str(exc)) from None
                if want is not None and nimg != want:
                    raise IntegrityError(f"{nimg} image extension(s), expected {want} for camera "
                                         f"{_camera(primary)!r} (site configuration)")
            if check_pixels:
                for k, header in images:
                    try:
                        data = hdul[k].data
                    except Exception as exc:  # noqa: BLE001
                        raise IntegrityError(f"HDU {k} ({header.get('EXTNAME', '')}): pixels unreadable: {exc}") \
                            from None
                    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(header["NAXIS"], 0, -1))
                    if data is None or data.shape != shape:
                        raise IntegrityError(f"HDU {k} ({header.get('EXTNAME', '')}): pixels unreadable: shape "
                                             f"{None if data is None else data.shape}, header says {shape}")
                    if data.dtype.kind == "f" and not np.isfinite(data).any():
                        raise IntegrityError(f"HDU {k} ({header.get('EXTNAME', '')}): no finite pixel")
                    del data
            raw = {}
            if compression == "none":  # the header blocks as written, for the keyword rows
                with open(path, "rb") as handle:
                    for k in {0, *(k for k, _ in images)}:
                        start, stop = _header_span(hdul, k)
                        handle.seek(start)
                        raw[k] = handle.read(stop - start)
            return FileInfo(path, compression, primary.copy(), [(k, h.copy()) for k, h in images], checked, raw)


def _header_span(hdul, k: int) -> tuple[int, int]:
    """Byte offsets of HDU ``k``'s header in the file.  astropy keeps them on each HDU; its public
    ``fileinfo`` re-verifies every header first (~0.4 s for a MegaCam MEF)."""
    hdu = hdul[k]
    if hasattr(hdu, "_header_offset") and hasattr(hdu, "_data_offset"):
        return hdu._header_offset, hdu._data_offset  # noqa: SLF001
    info = hdul.fileinfo(k)
    return info["hdrLoc"], info["datLoc"]


def _end_of(hdul) -> int:
    """Byte offset where the last HDU's (padded) data end."""
    last = hdul[-1]
    if hasattr(last, "_data_offset") and hasattr(last, "_data_size"):
        size = last._data_size  # noqa: SLF001
        return last._data_offset + size + (-size % BLOCK)  # noqa: SLF001
    info = hdul.fileinfo(len(hdul) - 1)
    return info["datLoc"] + info["datSpan"]


def _check_sums(hdu, k: int, log) -> int:
    """Verify CHECKSUM and DATASUM of one HDU when present; 1 if verified, 0 if absent."""
    header = hdu.header if not hasattr(hdu, "_bintable") else hdu._bintable.header  # noqa: SLF001
    has_sum = "CHECKSUM" in header
    has_data = "DATASUM" in header
    if not (has_sum or has_data):
        return 0
    target = getattr(hdu, "_bintable", None) or hdu
    name = hdu.header.get("EXTNAME", "PRIMARY" if k == 0 else "")
    if has_data and target.verify_datasum() == 0:
        raise IntegrityError(f"HDU {k} ({name}): DATASUM mismatch (the data differ from what was written)")
    if has_sum and target.verify_checksum() == 0:
        raise IntegrityError(f"HDU {k} ({name}): CHECKSUM mismatch (header or data altered)")
    return 1
