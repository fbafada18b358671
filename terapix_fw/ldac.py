"""FITS_LDAC catalogues, the format SExtractor writes and SCAMP and PSFEx read.

Layout (SExtractor ``catout.c``): an empty primary HDU, then for each image extension a pair of binary
tables: ``LDAC_IMHEAD`` (one row, one column ``Field Header Card`` of TFORM ``(80n)A`` and TDIM
``(80, n)`` holding the image header as 80-character cards, END included) followed by ``LDAC_OBJECTS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LdacExtension", "LdacWriter", "imhead_hdu", "header_from_imhead", "write_ldac", "read_ldac"]


@dataclass
class LdacExtension:
    """One extension of an LDAC catalogue: the image header and the object table (astropy Table)."""

    header: "object"  # astropy.io.fits.Header
    objects: "object"  # astropy.table.Table


def imhead_hdu(header):
    """The ``LDAC_IMHEAD`` table holding ``header`` as SExtractor stores it.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image header.

    Returns
    -------
    astropy.io.fits.BinTableHDU
    """
    from astropy.io import fits

    # astropy writes the trailing blanks of string columns as NULs, and PSFEx/SCAMP then fail to find the
    # END card (PSFEx 3.21 segfaults), so the table is built from its raw bytes, blanks kept.
    text = header.tostring(sep="", endcard=True, padding=False)
    ncards = len(text) // 80
    table = fits.Header()
    for key, value in (("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 80 * ncards),
                       ("NAXIS2", 1), ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", 1),
                       ("TTYPE1", "Field Header Card"), ("TFORM1", f"{80 * ncards}A"),
                       ("TDIM1", f"(80, {ncards})"), ("EXTNAME", "LDAC_IMHEAD")):
        table[key] = value
    data = text.encode("ascii", "replace")
    data += b"\0" * (-len(data) % 2880)
    hdu = fits.BinTableHDU.fromstring(table.tostring().encode("ascii") + data)
    return hdu


def header_from_imhead(hdu):
    """Rebuild the image header stored in an ``LDAC_IMHEAD`` table.

    Parameters
    ----------
    hdu : astropy.io.fits.BinTableHDU
        The ``LDAC_IMHEAD`` extension.

    Returns
    -------
    astropy.io.fits.Header
    """
    from astropy.io import fits

    raw = hdu.data.field(0)[0]
    if hasattr(raw, "tobytes"):  # TDIM makes astropy return a 2-D char array: one card per row
        cards = [c.decode("ascii", "replace") if isinstance(c, bytes) else str(c) for c in raw.ravel()]
        text = "".join(card.ljust(80)[:80] for card in cards)
    else:
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    return fits.Header.fromstring(text)


class LdacWriter:
    """Write an LDAC catalogue pair by pair, each (``LDAC_IMHEAD``, ``LDAC_OBJECTS``) appended to the file as
    soon as it is given, so that a catalogue of many extensions is never held whole in memory.

    Parameters
    ----------
    path : str or Path
        The file to create: a temporary name (see :func:`terapix_fw.atomic.atomic_path`).
    """

    def __init__(self, path: str | Path):
        from astropy.io import fits

        from .fitsstream import FitsStream

        self._out = FitsStream(path)
        self._out.append(fits.PrimaryHDU())
        self.count = 0

    def append(self, header, objects) -> None:
        """Write one extension's pair.

        Parameters
        ----------
        header : astropy.io.fits.Header
            The image header (stored in ``LDAC_IMHEAD``).
        objects : astropy.table.Table or astropy.io.fits.BinTableHDU
            The objects (``LDAC_OBJECTS``).
        """
        from astropy.io import fits

        self._out.append(imhead_hdu(header))
        hdu = objects if isinstance(objects, fits.BinTableHDU) else fits.table_to_hdu(objects)
        hdu.header["EXTNAME"] = "LDAC_OBJECTS"
        self._out.append(hdu)
        self.count += 1

    def append_formatted(self, header, objects_header: str, objects_data) -> None:
        """Write one extension's pair, the objects table already formatted (a writer that makes many tables
        of the same columns formats them faster than astropy builds each HDU).

        Parameters
        ----------
        header : astropy.io.fits.Header
            The image header (stored in ``LDAC_IMHEAD``).
        objects_header : str
            The ``LDAC_OBJECTS`` header text (EXTNAME included, END and padding).
        objects_data : bytes-like
            Its rows, big-endian, without padding.
        """
        self._out.append(imhead_hdu(header))
        self._out.append_formatted(objects_header, objects_data)
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        self._out.close()

    def __enter__(self) -> "LdacWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._out.__exit__(exc_type, exc, tb)


def write_ldac(path: str | Path, extensions: list[LdacExtension]) -> Path:
    """Write an LDAC catalogue atomically.

    Parameters
    ----------
    path : str or Path
        The catalogue.
    extensions : list of LdacExtension
        One per image extension; ``objects`` may be an astropy Table or a BinTableHDU.

    Returns
    -------
    Path
    """
    from .atomic import atomic_path

    with atomic_path(path) as tmp, LdacWriter(tmp) as out:
        for ext in extensions:
            out.append(ext.header, ext.objects)
    return Path(path)


def read_ldac(path: str | Path) -> list[LdacExtension]:
    """Read every (LDAC_IMHEAD, LDAC_OBJECTS) pair of an LDAC catalogue.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of LdacExtension

    Raises
    ------
    ToolError
        If the file is missing, truncated, not FITS, or has no LDAC pair.
    """
    from .errors import ToolError
    from .fitsimage import scan

    scan(path, "catalogue")  # a missing, truncated or absurd file is refused here, in one line
    out: list[LdacExtension] = []
    try:
        _read_pairs(path, out)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a corrupted table
        raise ToolError(f"catalogue {path}: cannot read as FITS_LDAC: {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]}") from exc
    if not out:
        raise ToolError(f"{path}: no LDAC_IMHEAD/LDAC_OBJECTS pair found; expected a FITS_LDAC catalogue")
    return out


def _read_pairs(path, out: list) -> None:
    from astropy.io import fits
    from astropy.table import Table

    from .errors import ToolError

    with fits.open(path, memmap=False) as hdul:
        pending_header = None
        for hdu in hdul[1:]:
            name = hdu.header.get("EXTNAME", "")
            if name == "LDAC_IMHEAD":
                pending_header = header_from_imhead(hdu)
            elif name == "LDAC_OBJECTS":
                if pending_header is None:
                    raise ToolError(f"{path}: LDAC_OBJECTS table at HDU {hdul.index_of(hdu)} "
                                    "has no LDAC_IMHEAD before it; not a FITS_LDAC catalogue")
                out.append(LdacExtension(pending_header, _objects_table(hdu, Table)))
                pending_header = None


#: column units already parsed (catalogues repeat the same few: parsing one costs ~0.1 ms)
_UNITS: dict = {}


def _objects_table(hdu, table_class):
    """The LDAC_OBJECTS rows as a Table with the columns' units (``Table.read`` of a table HDU does the
    same through astropy's I/O registry, ten times slower: 12 ms per table, which SCAMP-sized runs of
    hundreds of CCD catalogues pay in full)."""
    from astropy import units as u

    table = table_class(hdu.data)  # a copy: the file is closed after reading
    for column in hdu.columns:
        text = column.unit
        if text:
            unit = _UNITS.get(text)
            if unit is None:
                unit = _UNITS[text] = u.Unit(text, format="fits", parse_strict="silent")
            table[column.name].unit = unit
    return table
