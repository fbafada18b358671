"""Catalogue writers: FITS_LDAC, FITS_1.0, ASCII, ASCII_HEAD and ASCII_VOTABLE, as SExtractor writes them.

Column types, units and TDISP formats are SExtractor's (see :mod:`paramdefs`); the LDAC layout is the core
:mod:`terapix_fw.ldac`.  As SExtractor, each extension is written as soon as it is measured
(:class:`CatalogWriter`, :class:`CheckImageWriter`), so that memory does not grow with the number of
extensions; the file is a temporary one renamed when every extension is in (written atomically).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["objects_hdu", "objects_bytes", "CatalogWriter", "CheckImageWriter", "check_image_hdu", "write_catalog",
           "write_check_image", "fortran_to_printf"]


def _arrays(table) -> dict:
    """Column name -> numpy array of a catalogue given as an astropy Table or as the columns of an
    :class:`~terapix_sextractor.reading.ExtractionResult` (a dict): the writers need nothing else, so the
    tool writes its catalogue without importing astropy.table."""
    columns = table if isinstance(table, dict) else table.columns
    return {name: np.asarray(col) for name, col in columns.items()}


def _nrows(arrays: dict) -> int:
    return len(next(iter(arrays.values()))) if arrays else 0


def objects_hdu(table, extname="LDAC_OBJECTS"):
    """A binary table HDU with SExtractor's TFORM/TUNIT/TDISP/TDIM and descriptions as TTYPE comments.

    Parameters
    ----------
    table : astropy.table.Table or dict
        The catalogue of one extension (or its columns, name -> array).
    extname : str
        EXTNAME of the table.

    Returns
    -------
    astropy.io.fits.BinTableHDU
    """
    from astropy.io import fits

    from .paramdefs import BY_NAME

    arrays = _arrays(table)
    columns = []
    for name, arr in arrays.items():
        code, unit, disp, desc = BY_NAME[name][1:]
        n = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        dim = None
        if arr.ndim == 3:  # VIGNET (n, h, w) -> TDIM (w, h)
            dim = f"({arr.shape[2]}, {arr.shape[1]})"
        columns.append(fits.Column(name=name, format=f"{n}{code}", unit=unit or None, disp=disp, dim=dim,
                                   array=arr))
    # what BinTableHDU.from_columns does, less its constructor's check of whether the data is an astropy
    # Table, which imports astropy.table (0.1 s of a drop-in run) for data that never is one
    hdu = fits.BinTableHDU()
    hdu.data = fits.FITS_rec.from_columns(fits.ColDefs(columns), nrows=_nrows(arrays))
    for i, name in enumerate(arrays, start=1):
        # with a comment the value is padded to column 30: measure the room on a card that has one
        room = 80 - len(fits.Card(f"TTYPE{i}", name, "x").image.rstrip()) + 1
        hdu.header.comments[f"TTYPE{i}"] = BY_NAME[name][4][:max(room, 0)]
    hdu.header["EXTNAME"] = extname
    return hdu


#: FITS binary-table codes of the catalogue columns (paramdefs) and their big-endian numpy types
_CODES = {"E": ">f4", "D": ">f8", "J": ">i4", "I": ">i2", "K": ">i8", "B": "u1"}
_HEADERS: dict = {}  # column layout -> header text of an objects table of 0 rows (see objects_bytes)


def objects_bytes(table, extname="LDAC_OBJECTS"):
    """The header text and row bytes of :func:`objects_hdu` ``(table, extname)``, without building the HDU:
    astropy makes the header of a table of these columns once (0 rows; then only NAXIS2 changes) and the
    rows are one big-endian structured array.  Building the HDU cost 4% of a CCD's extraction.

    Parameters
    ----------
    table : astropy.table.Table or dict
        The catalogue of one extension (or its columns, name -> array).
    extname : str
        EXTNAME of the table.

    Returns
    -------
    tuple of (str, numpy.ndarray)
        The header (END and padding included) and the rows' bytes (uint8, no padding).
    """
    from .paramdefs import BY_NAME

    columns = _arrays(table)
    n = _nrows(columns)
    names, arrays = list(columns), list(columns.values())
    layout = (extname,) + tuple((name, a.shape[1:]) for name, a in zip(names, arrays))
    text = _HEADERS.get(layout)
    if text is None:
        text = _HEADERS[layout] = objects_hdu({name: a[:0] for name, a in columns.items()},
                                              extname).header.tostring()
    card = text[4 * 80:5 * 80]  # NAXIS2, the fifth card of a binary table
    if not card.startswith("NAXIS2  = "):
        raise RuntimeError(f"unexpected binary-table header from astropy: {card!r}")
    text = text[:4 * 80] + card[:10] + f"{n:>20d}" + card[30:] + text[5 * 80:]
    rows = np.empty(n, dtype=[(f"c{i}", _CODES[BY_NAME[name][1]], a.shape[1:])
                              for i, (name, a) in enumerate(zip(names, arrays))])
    for i, a in enumerate(arrays):
        rows[f"c{i}"] = a
    return text, rows.view(np.uint8)


_FMT = re.compile(r"([IFEGA])(\d+)(?:\.(\d+))?")


def fortran_to_printf(disp: str) -> str:
    m = _FMT.fullmatch(disp)
    if not m:
        return "%g"
    kind, width, prec = m.group(1), m.group(2), m.group(3)
    if kind == "I":
        return f"%{width}d"
    if kind == "A":
        return f"%{width}s"
    conv = {"F": "f", "E": "E", "G": "G"}[kind]
    return f"%{width}.{prec or 0}{conv}"


def _ascii_lines(table, with_header: bool):
    from .paramdefs import BY_NAME

    columns = _arrays(table)
    lines = []
    if with_header:
        index = 1
        for name, arr in columns.items():
            _, unit, _, desc = BY_NAME[name][1:]
            size = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
            text = f"#{index:4d} {name:<22s} {desc:<58s}"
            if unit:
                text += f" [{unit}]"
            lines.append(text.rstrip())
            index += size
    fmts = []
    for name, arr in columns.items():
        fmt = fortran_to_printf(BY_NAME[name][3])
        size = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        fmts.append((fmt, size))
    # one format per row applied to Python values, not one per value (8 times faster: an ASCII catalogue
    # of a 2048x4612 CCD cost 9% of its extraction); the width is given, not inferred: a catalogue with
    # no source (0 rows) is a normal result
    n = _nrows(columns)
    values, row_fmt = [], []
    for (name, arr), (fmt, size) in zip(columns.items(), fmts):
        col = arr.reshape(n, size)
        for k in range(size):
            v = col[:, k]
            if fmt.endswith("d"):
                v = v.astype(np.int64).tolist() if v.dtype.kind in "iub" else [int(x) for x in v]
            else:
                v = v.tolist()
            values.append(v)
            row_fmt.append(fmt)
    if not values:
        return lines + [""] * n
    row_fmt = " ".join(row_fmt)
    lines += [row_fmt % row for row in zip(*values)]
    return lines


class CatalogWriter:
    """A catalogue written extension by extension (:meth:`add` as each is measured), so that its size in
    memory does not grow with the number of extensions: FITS_LDAC and FITS_1.0 append each extension's
    tables to the file, the ASCII formats their rows.

    Parameters
    ----------
    path : str or Path
        The file to create: a temporary name, renamed by the caller when the writer has been closed
        without error (``StepContext.product`` or :func:`terapix_fw.atomic.atomic_path`).
    catalog_type : str
        CATALOG_TYPE: FITS_LDAC, FITS_1.0, ASCII, ASCII_HEAD or ASCII_VOTABLE.

    Raises
    ------
    ToolError
        If the catalogue type is not supported.
    """

    def __init__(self, path, catalog_type: str):
        self.path = Path(path)
        self.type = catalog_type.upper()
        self.count = 0
        if self.type not in _TYPES:
            raise ToolError(f"CATALOG_TYPE {catalog_type} is not supported by terapix-fw sextractor "
                            "(use FITS_LDAC, FITS_1.0, ASCII, ASCII_HEAD, ASCII_VOTABLE or NONE)")
        self._out = None
        self._votable_tail = self._votable_empty = ""  # ASCII_VOTABLE: what close() writes
        if self.type == "FITS_LDAC":
            from terapix_fw.ldac import LdacWriter

            self._out = LdacWriter(self.path)
        elif self.type != "FITS_1.0":  # FITS_1.0 opens with the first extension (its primary header)
            self._out = open(self.path, "w", encoding="utf-8")

    def add(self, result) -> None:
        """Write the catalogue of one extension.

        Parameters
        ----------
        result : ExtractionResult
            The extension's table and LDAC header.
        """
        if self.type == "FITS_LDAC":
            self._out.append_formatted(result.header, *objects_bytes(result.columns))
        elif self.type == "FITS_1.0":
            if self._out is None:
                self._out = _fits10_stream(self.path, result.header)
            self._out.append_formatted(*objects_bytes(result.columns, extname="OBJECTS"))
        elif self.type in ("ASCII", "ASCII_HEAD"):
            lines = _ascii_lines(result.columns, with_header=(self.type == "ASCII_HEAD" and self.count == 0))
            self._out.write("".join(line + "\n" for line in lines))
        else:
            self._add_votable(result.table)
        self.count += 1

    def _add_votable(self, table) -> None:
        """One VOTable TABLE holding every extension's rows: the first extension with sources is written up
        to the end of its rows, each later one adds its rows only (an extension without source adds
        nothing; astropy writes no DATA element for it)."""
        from astropy.io.votable import from_table
        from astropy.table import Table

        if not len(table) and self._votable_tail:
            return
        t = Table(table, copy=False)
        t.meta = {}
        vot = from_table(t)
        vot.resources[0].tables[0].name = "LDAC_OBJECTS"
        buf = io.BytesIO()
        vot.to_xml(buf)
        text = buf.getvalue().decode("utf-8")
        if not len(table):  # kept whole in case no extension has a source
            self._votable_empty = text
        elif not self._votable_tail:
            cut = text.rindex("\n", 0, text.index("</TABLEDATA>")) + 1  # the start of the closing tag's line
            self._out.write(text[:cut])
            self._votable_tail = text[cut:]
        else:
            start = text.index("\n", text.index("<TABLEDATA>")) + 1
            end = text.rindex("\n", 0, text.index("</TABLEDATA>")) + 1
            self._out.write(text[start:end])

    def close(self) -> None:
        """Finish the file (the closing part of a VOTable; an empty primary HDU for a FITS catalogue of no
        extension)."""
        if self._out is None:  # FITS_1.0 without extension
            self._out = _fits10_stream(self.path, None)
        if self.type == "ASCII_VOTABLE":
            if self.count == 0:
                raise ToolError(f"{self.path.name}: an ASCII_VOTABLE catalogue needs at least one extension")
            self._out.write(self._votable_tail or self._votable_empty)
            self._votable_tail = self._votable_empty = ""
        self._out.close()

    def __enter__(self) -> "CatalogWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._out is not None:  # the caller removes the temporary file; only release the handle
            if hasattr(self._out, "__exit__"):
                self._out.__exit__(exc_type, exc, tb)


_TYPES = ("FITS_LDAC", "FITS_1.0", "ASCII", "ASCII_HEAD", "ASCII_VOTABLE")


def _fits10_stream(path, first_header):
    """A FITS_1.0 file: primary HDU with the SExtractor keywords of the first extension's header."""
    from astropy.io import fits

    from terapix_fw.fitsstream import FitsStream

    primary = fits.PrimaryHDU()
    if first_header is not None:
        for card in first_header.cards:
            if card.keyword.startswith("SEX") or card.keyword in ("FITSFILE", "FITSNEXT"):
                primary.header.append(card)
    out = FitsStream(path)
    out.append(primary)
    return out


def write_catalog(path, results, catalog_type: str):
    """Write the catalogue of ``results`` (one :class:`ExtractionResult` per extension) atomically.

    Parameters
    ----------
    path : str or Path
        The catalogue.
    results : iterable of ExtractionResult
        One per extension, written as they come (see :class:`CatalogWriter`).
    catalog_type : str
        CATALOG_TYPE (NONE writes nothing).

    Returns
    -------
    Path or None
    """
    from terapix_fw.atomic import atomic_path

    if catalog_type.upper() == "NONE":
        return None
    with atomic_path(path) as tmp, CatalogWriter(tmp, catalog_type) as out:
        for r in results:
            out.add(r)
    return Path(path)


def check_image_hdu(data, header, check_type: str, alone: bool):
    """The HDU of one extension's check image: its pixels with the image's WCS keywords.

    Parameters
    ----------
    data : numpy.ndarray
        The check image of the extension.
    header : astropy.io.fits.Header
        The extension's header (WCS, EXTNAME).
    check_type : str
        CHECKIMAGE_TYPE, recorded as CHECKTYP.
    alone : bool
        The input has one extension: the pixels go in the primary HDU.

    Returns
    -------
    astropy.io.fits.PrimaryHDU or astropy.io.fits.ImageHDU
    """
    from astropy.io import fits

    hdr = fits.Header()
    for key in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1",
                "CD2_2", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "EQUINOX", "RADESYS",
                "EXTNAME"):
        if key in header:
            hdr[key] = header[key]
    hdr["CHECKTYP"] = (check_type, "SExtractor check-image type")
    return (fits.PrimaryHDU if alone else fits.ImageHDU)(np.asarray(data), hdr)


class CheckImageWriter:
    """One check image written extension by extension (a MEF when the input has several extensions).

    Parameters
    ----------
    path : str or Path
        The file to create: a temporary name renamed by the caller.
    check_type : str
        CHECKIMAGE_TYPE.
    nextensions : int
        Number of extensions to come: one goes in the primary HDU, several in a MEF.
    """

    def __init__(self, path, check_type: str, nextensions: int):
        from terapix_fw.fitsstream import FitsStream

        self.check_type = check_type
        self.alone = nextensions == 1
        self._out = FitsStream(path)

    def add(self, result) -> None:
        """Write the check image of one extension.

        Parameters
        ----------
        result : ExtractionResult
            The extension's check images and header.
        """
        from astropy.io import fits

        if not self.alone and self._out.count == 0:
            self._out.append(fits.PrimaryHDU())
        self._out.append(check_image_hdu(result.checks[self.check_type], result.header, self.check_type,
                                         self.alone))

    def close(self) -> None:
        """Close the file."""
        self._out.close()

    def __enter__(self) -> "CheckImageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._out.__exit__(exc_type, exc, tb)


def write_check_image(path, results, check_type):
    """One check image (MEF when the input has several extensions), written atomically.

    Parameters
    ----------
    path : str or Path
        The image.
    results : list of ExtractionResult
        One per extension.
    check_type : str
        CHECKIMAGE_TYPE.

    Returns
    -------
    Path
    """
    from terapix_fw.atomic import atomic_path

    with atomic_path(path) as tmp, CheckImageWriter(tmp, check_type, len(results)) as out:
        for r in results:
            out.add(r)
    return Path(path)
