"""Catalogue writers: FITS_LDAC, FITS_1.0, ASCII, ASCII_HEAD and ASCII_VOTABLE, as SExtractor writes them.

Column types, units and TDISP formats are SExtractor's (see :mod:`paramdefs`); the LDAC layout is the core
:mod:`terapix_fw.ldac`.  Every file is written atomically.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["objects_hdu", "write_catalog", "fortran_to_printf"]


def objects_hdu(table, extname="LDAC_OBJECTS"):
    """A binary table HDU with SExtractor's TFORM/TUNIT/TDISP/TDIM and descriptions as TTYPE comments."""
    from astropy.io import fits

    from .paramdefs import BY_NAME

    columns = []
    for name in table.colnames:
        col = table[name]
        code, unit, disp, desc = BY_NAME[name][1:]
        arr = np.asarray(col)
        n = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        dim = None
        if arr.ndim == 3:  # VIGNET (n, h, w) -> TDIM (w, h)
            dim = f"({arr.shape[2]}, {arr.shape[1]})"
        columns.append(fits.Column(name=name, format=f"{n}{code}", unit=unit or None, disp=disp, dim=dim,
                                   array=arr))
    hdu = fits.BinTableHDU.from_columns(columns, nrows=len(table))
    for i, name in enumerate(table.colnames, start=1):
        # with a comment the value is padded to column 30: measure the room on a card that has one
        room = 80 - len(fits.Card(f"TTYPE{i}", name, "x").image.rstrip()) + 1
        hdu.header.comments[f"TTYPE{i}"] = BY_NAME[name][4][:max(room, 0)]
    hdu.header["EXTNAME"] = extname
    return hdu


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

    lines = []
    if with_header:
        index = 1
        for name in table.colnames:
            _, unit, _, desc = BY_NAME[name][1:]
            arr = np.asarray(table[name])
            size = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
            text = f"#{index:4d} {name:<22s} {desc:<58s}"
            if unit:
                text += f" [{unit}]"
            lines.append(text.rstrip())
            index += size
    fmts = []
    for name in table.colnames:
        fmt = fortran_to_printf(BY_NAME[name][3])
        arr = np.asarray(table[name])
        size = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        fmts.append((fmt, size))
    # the width is given, not inferred: a catalogue with no source (0 rows) is a normal result
    columns = [np.asarray(table[name]).reshape(len(table), size) for name, (_, size) in zip(table.colnames, fmts)]
    for i in range(len(table)):
        parts = []
        for (fmt, size), col in zip(fmts, columns):
            for v in col[i]:
                parts.append(fmt % (int(v) if fmt.endswith("d") else v))
        lines.append(" ".join(parts))
    return lines


def write_catalog(path, results, catalog_type: str):
    """Write the catalogue of ``results`` (one :class:`ExtractionResult` per extension)."""
    from astropy.io import fits

    from terapix_fw.atomic import atomic_path, write_fits_atomic, write_text_atomic
    from terapix_fw.ldac import LdacExtension, write_ldac

    ctype = catalog_type.upper()
    if ctype == "NONE":
        return None
    if ctype == "FITS_LDAC":
        return write_ldac(path, [LdacExtension(r.header, objects_hdu(r.table)) for r in results])
    if ctype == "FITS_1.0":
        primary = fits.PrimaryHDU()
        if results:
            for card in results[0].header.cards:
                if card.keyword.startswith("SEX") or card.keyword in ("FITSFILE", "FITSNEXT"):
                    primary.header.append(card)
        hdus = [primary] + [objects_hdu(r.table, extname="OBJECTS") for r in results]
        return write_fits_atomic(path, fits.HDUList(hdus))
    if ctype in ("ASCII", "ASCII_HEAD"):
        lines = []
        for k, r in enumerate(results):
            lines += _ascii_lines(r.table, with_header=(ctype == "ASCII_HEAD" and k == 0))
        return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
    if ctype == "ASCII_VOTABLE":
        from astropy.io.votable import from_table
        from astropy.table import Table, vstack

        tables = []
        for r in results:
            t = Table(r.table, copy=True)
            t.meta = {}
            tables.append(t)
        merged = vstack(tables) if len(tables) > 1 else tables[0]
        vot = from_table(merged)
        vot.resources[0].tables[0].name = "LDAC_OBJECTS"
        with atomic_path(path) as tmp:
            vot.to_xml(str(tmp))
        return Path(path)
    raise ToolError(f"CATALOG_TYPE {catalog_type} is not supported by terapix-fw sextractor "
                    "(use FITS_LDAC, FITS_1.0, ASCII, ASCII_HEAD, ASCII_VOTABLE or NONE)")


def write_check_image(path, results, check_type, headers):
    """One check image (MEF when the input has several extensions)."""
    from astropy.io import fits

    from terapix_fw.atomic import write_fits_atomic

    hdus = []
    for k, (r, h) in enumerate(zip(results, headers)):
        data = r.checks[check_type]
        hdr = fits.Header()
        for key in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1",
                    "CD2_2", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "EQUINOX", "RADESYS",
                    "EXTNAME"):
            if key in h:
                hdr[key] = h[key]
        hdr["CHECKTYP"] = (check_type, "SExtractor check-image type")
        if len(results) == 1:
            hdus.append(fits.PrimaryHDU(np.asarray(data), hdr))
        else:
            if k == 0:
                hdus.append(fits.PrimaryHDU())
            hdus.append(fits.ImageHDU(np.asarray(data), hdr))
    return write_fits_atomic(path, fits.HDUList(hdus))
