"""Sequential FITS writing: HDUs appended one at a time to an open file, so that a multi-extension product
(a catalogue, a check image) is written as its extensions are made instead of being held whole in memory.

The bytes are those ``astropy.io.fits.HDUList.writeto`` writes for the same HDUs (tests compare them).
The caller writes into a temporary name and renames it at the end (:func:`terapix_fw.atomic.atomic_path`).
"""
from __future__ import annotations

import io
from pathlib import Path

__all__ = ["FitsStream"]

BLOCK = 2880
#: image rows are converted to big-endian by chunks of about this many bytes (no whole-image copy)
_CHUNK_BYTES = 1 << 22


class FitsStream:
    """Append HDUs to a new FITS file one by one; the first must be a primary HDU.

    Parameters
    ----------
    path : str or Path
        The file to create (a temporary name: nothing here renames it).

    Examples
    --------
    >>> with FitsStream(tmp) as out:                                         # doctest: +SKIP
    ...     out.append(fits.PrimaryHDU())
    ...     for data in planes:
    ...         out.append(fits.ImageHDU(data))
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self.count = 0

    def append(self, hdu) -> None:
        """Write one HDU at the end of the file.

        Parameters
        ----------
        hdu : astropy.io.fits HDU
            A ``PrimaryHDU`` first, then extensions (``ImageHDU``, ``BinTableHDU``...).

        Raises
        ------
        ValueError
            If the first HDU is not a primary HDU, or a later one is.
        """
        from astropy.io import fits

        primary = isinstance(hdu, fits.PrimaryHDU)
        if primary != (self.count == 0):
            raise ValueError(f"{self.path}: HDU {self.count} of a FITS file must "
                             + ("be a primary HDU" if self.count == 0 else "be an extension, not a primary HDU"))
        data = hdu.data if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) else None
        if data is not None and not _scaled(hdu):
            self._write_image(hdu.header, data)
        else:  # tables and scaled images: astropy's own bytes (a table is small next to an image)
            buf = io.BytesIO()
            fits.HDUList([hdu] if primary else [fits.PrimaryHDU(), hdu]).writeto(buf)
            view = buf.getbuffer()
            self._file.write(view if primary else view[BLOCK:])  # an empty primary HDU is one block
            del view
        self.count += 1

    def append_formatted(self, header: str, data) -> None:
        """Write one extension already formatted: its header text and its data bytes (padded here).

        Parameters
        ----------
        header : str
            The header, END card and blank padding included (``Header.tostring()``).
        data : bytes-like
            The data as FITS stores it (big-endian), without padding.

        Raises
        ------
        ValueError
            If this is the file's first HDU or the header is not whole 2880-byte blocks of an extension.
        """
        if self.count == 0 or not header.startswith("XTENSION") or len(header) % BLOCK:
            raise ValueError(f"{self.path}: HDU {self.count}: a formatted extension needs a primary HDU before "
                             "it and an XTENSION header of whole 2880-byte blocks")
        self._file.write(header.encode("ascii"))
        data = memoryview(data).cast("B")
        self._file.write(data)
        self._file.write(b"\0" * (-len(data) % BLOCK))
        self.count += 1

    def _write_image(self, header, data) -> None:
        import numpy as np

        self._file.write(header.tostring().encode("ascii"))
        arr = np.asarray(data)
        big = arr.dtype.newbyteorder(">") if arr.dtype.byteorder not in (">", "|") else arr.dtype
        rows = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
        step = max(1, _CHUNK_BYTES // max(rows.shape[1] * arr.itemsize, 1))
        for y in range(0, rows.shape[0], step):
            self._file.write(np.ascontiguousarray(rows[y:y + step], dtype=big).tobytes())
        self._file.write(b"\0" * (-arr.nbytes % BLOCK))

    def close(self) -> None:
        """Close the file (a file with no HDU gets an empty primary HDU, as a FITS file needs one)."""
        if self._file.closed:
            return
        try:
            if self.count == 0:
                from astropy.io import fits

                self.append(fits.PrimaryHDU())
        finally:
            self._file.close()

    def __enter__(self) -> "FitsStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller's temporary file is removed by its atomic_path; only release the handle
            self._file.close()


def _scaled(hdu) -> bool:
    """Whether astropy would rescale the data on writing (BSCALE/BZERO, unsigned integers)."""
    header = hdu.header
    return ("BZERO" in header or "BSCALE" in header or hdu.data.dtype.kind == "u"
            or hdu.data.dtype.kind not in "fi")
