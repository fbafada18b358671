"""PNG and TIFF files of rendered pixels (8 or 16 bits per channel, grey or RGB; TIFF also 32-bit floats).

PNG is written here with zlib (the format is a header, deflated rows and a checksum per chunk): Pillow,
the usual writer, has no 16-bit RGB mode.  TIFF goes through tifffile, with STIFF's COMPRESSION_TYPE
(LZW by default) and its DESCRIPTION and COPYRIGHT tags.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["write_png", "write_tiff", "write_picture", "image_format"]

_TIFF_COMPRESSION = {"NONE": None, "LZW": "lzw", "DEFLATE": "zlib", "ADOBE-DEFLATE": "zlib", "JPEG": "jpeg"}


def image_format(name: str | Path, image_type: str = "AUTO") -> str:
    """``PNG`` or ``TIFF`` from IMAGE_TYPE, or from the file name's suffix when IMAGE_TYPE is AUTO."""
    if image_type in ("PNG", "TIFF"):
        return image_type
    suffix = Path(name).suffix.lower()
    if suffix == ".png":
        return "PNG"
    if suffix in (".tif", ".tiff"):
        return "TIFF"
    raise ToolError(f"OUTFILE_NAME = {name}: IMAGE_TYPE AUTO needs a .png, .tif or .tiff suffix")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: str | Path, pixels: np.ndarray, *, description: str = "", copyright: str = "") -> None:
    """A PNG of uint8/uint16 pixels, (ny, nx) grey or (ny, nx, 3) RGB, first row at the top."""
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ToolError(f"{path}: PNG holds 8- or 16-bit integers, not {pixels.dtype} (BITS_PER_CHANNEL -32 "
                        "needs TIFF)")
    ny, nx = pixels.shape[:2]
    colour = pixels.ndim == 3
    depth = 8 if pixels.dtype == np.uint8 else 16
    raw = pixels.astype(">u2") if depth == 16 else pixels
    rows = raw.reshape(ny, -1).view(np.uint8)
    # filter type 0 (none) at the start of every row
    body = np.concatenate([np.zeros((ny, 1), np.uint8), rows], axis=1).tobytes()
    out = [b"\x89PNG\r\n\x1a\n",
           _chunk(b"IHDR", struct.pack(">IIBBBBB", nx, ny, depth, 2 if colour else 0, 0, 0, 0))]
    for key, text in (("Description", description), ("Copyright", copyright), ("Software", "terapix-fw stiff")):
        if text:
            out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + str(text).encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(body, 6)))
    out.append(_chunk(b"IEND", b""))
    Path(path).write_bytes(b"".join(out))


def write_tiff(path: str | Path, pixels: np.ndarray, *, compression: str = "LZW", description: str = "",
               copyright: str = "", quality: int = 90) -> None:
    """A TIFF of uint8/uint16/float32 pixels, grey or RGB (contiguous), first row at the top."""
    import tifffile

    if compression not in _TIFF_COMPRESSION:
        raise ToolError(f"COMPRESSION_TYPE = {compression}: expected one of {', '.join(_TIFF_COMPRESSION)}")
    comp = _TIFF_COMPRESSION[compression]
    if comp == "jpeg" and pixels.dtype != np.uint8:
        raise ToolError("COMPRESSION_TYPE JPEG needs BITS_PER_CHANNEL 8")
    extratags = [(33432, "s", 0, copyright, True)] if copyright else []
    tifffile.imwrite(path, pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack",
                     compression=comp, compressionargs={"level": quality} if comp == "jpeg" else None,
                     description=description or None, software="terapix-fw stiff",
                     extratags=extratags, metadata=None)


def write_picture(path: str | Path, pixels: np.ndarray, *, image_type: str = "AUTO", name: str | None = None,
                  compression: str = "LZW", description: str = "", copyright: str = "", quality: int = 90) -> str:
    """Write ``pixels`` as PNG or TIFF (format from IMAGE_TYPE or the suffix of ``name``); returns it.

    Parameters
    ----------
    path : str or Path
    pixels : numpy.ndarray
        From :func:`~terapix_stiff.rendering.to_pixels`.
    image_type : str
        IMAGE_TYPE: AUTO, PNG or TIFF.
    name : str, optional
        Name whose suffix decides the format with AUTO (``path`` by default).
    compression : str
    description, copyright : str
    quality : int
        JPEG quality (TIFF with JPEG compression).

    Returns
    -------
    str
        The format written.
    """
    fmt = image_format(name or path, image_type)
    if fmt == "PNG":
        write_png(path, pixels, description=description, copyright=copyright)
    else:
        write_tiff(path, pixels, compression=compression, description=description, copyright=copyright,
                   quality=quality)
    return fmt
