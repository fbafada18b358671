"""Astrometric reference catalogues from local files (ASTREF_CATALOG FILE).

Accepted: FITS_LDAC (``LDAC_OBJECTS`` tables, as SCAMP reads its own saved reference catalogues), any
other FITS binary table, VOTable and CSV.  Column names come from ASTREFCENT_KEYS, ASTREFERR_KEYS,
ASTREFMAG_KEY, ASTREFMAGERR_KEY, ASTREFPROP_KEYS and ASTREFOBSDATE_KEY, with units as in SCAMP's LDAC
reference catalogues: positions and position errors in degrees, proper motions in mas/yr
(``PMALPHA`` = mu_alpha * cos(delta)), observation date in decimal years.  Columns that carry an astropy
unit are converted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["RefCatalog", "read_reference"]

#: error used when a catalogue has no error columns (arcsec), a typical value for USNO-B1/2MASS-class data
DEFAULT_ERROR_ARCSEC = 0.1


@dataclass
class RefCatalog:
    """Reference stars: positions (deg) at ``epoch`` (decimal year per star), errors (deg), magnitudes,
    proper motions (mas/yr, zero when unknown)."""

    ra: np.ndarray
    dec: np.ndarray
    sig: np.ndarray
    mag: np.ndarray
    magerr: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    epoch: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.ra)

    @property
    def has_pm(self) -> bool:
        return bool(np.any(self.pmra != 0) or np.any(self.pmdec != 0))

    def at_epoch(self, epoch: float | None):
        """(ra, dec) in degrees propagated to ``epoch`` (decimal year) with the proper motions."""
        if epoch is None or not self.has_pm:
            return self.ra, self.dec
        dt = epoch - self.epoch
        dec = self.dec + self.pmdec * dt / 3.6e6
        ra = self.ra + self.pmra * dt / 3.6e6 / np.cos(np.deg2rad(self.dec))
        return np.mod(ra, 360.0), dec


def _read_table(path: Path):
    from astropy.io import fits
    from astropy.table import Table, vstack

    name = path.name.lower()
    if name.endswith((".xml", ".vot", ".votable")):
        from astropy.io.votable import parse_single_table
        from terapix_fw.errors import ConfigError
        from terapix_fw.xmlutil import check_xml_prolog

        check_xml_prolog(path, error_class=ConfigError)  # astropy's reader would expand internal entities
        return parse_single_table(str(path)).to_table(use_names_over_ids=True)
    if name.endswith((".csv", ".txt", ".dat", ".ecsv")):
        fmt = "ascii.ecsv" if name.endswith(".ecsv") else "ascii.csv"
        return Table.read(path, format=fmt)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic != b"SIMPLE":
        raise ToolError(f"{path}: reference catalogue format not recognised; expected FITS (LDAC or binary "
                        "table), VOTable (.xml/.vot) or CSV (.csv)")
    with fits.open(path, memmap=False) as hdul:
        ldac = [h for h in hdul[1:] if h.header.get("EXTNAME", "") == "LDAC_OBJECTS"]
        tables = ldac or [h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)]
        if not tables:
            raise ToolError(f"{path}: no binary table in this FITS file; expected LDAC_OBJECTS or a table")
        parts = [Table.read(h, unit_parse_strict="silent") for h in tables]
        header = tables[0].header
    table = parts[0] if len(parts) == 1 else vstack(parts)
    table.meta["EPOCH"] = header.get("EPOCH", header.get("EQUINOX"))
    return table


def _col(table, name: str, path: Path, unit: str | None, required: bool):
    import astropy.units as u

    found = next((c for c in table.colnames if c.upper() == name.upper()), None)
    if found is None:
        if required:
            raise ToolError(f"{path}: reference catalogue has no column {name!r} (columns: "
                            f"{', '.join(table.colnames[:20])}); set ASTREFCENT_KEYS/ASTREFERR_KEYS/"
                            "ASTREFMAG_KEY to its column names")
        return None
    column = table[found]
    data = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan).reshape(len(table), -1)[:, 0]
    if unit is not None and getattr(column, "unit", None) is not None:
        try:
            data = (data * u.Unit(column.unit)).to_value(unit)
        except (u.UnitConversionError, ValueError, TypeError):
            pass  # unknown or dimensionless unit: take the value as SCAMP would
    return data


def read_reference(config, log) -> RefCatalog:
    """Read and concatenate the ASTREFCAT_NAME files, select ASTREFMAG_LIMITS."""
    parts = []
    for name in config["ASTREFCAT_NAME"]:
        path = Path(name)
        if not path.exists():
            raise ToolError(f"ASTREFCAT_NAME {name}: reference catalogue not found")
        try:
            table = _read_table(path)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - astropy raises many types for unreadable files
            raise ToolError(f"{path}: cannot read reference catalogue: {exc}") from None
        ra_key, dec_key = config["ASTREFCENT_KEYS"]
        ra = _col(table, ra_key, path, "deg", True)
        dec = _col(table, dec_key, path, "deg", True)
        errkeys = config["ASTREFERR_KEYS"]
        erra = _col(table, errkeys[0], path, "deg", False)
        errb = _col(table, errkeys[1], path, "deg", False) if len(errkeys) > 1 else None
        if erra is None:
            log.warning("%s: no %s column; reference errors set to %.2f arcsec", path, errkeys[0],
                        DEFAULT_ERROR_ARCSEC)
            sig = np.full(len(table), DEFAULT_ERROR_ARCSEC / 3600.0)
        else:
            sig = np.sqrt(0.5 * (erra ** 2 + (errb if errb is not None else erra) ** 2))
        mag = _col(table, config["ASTREFMAG_KEY"], path, None, False)
        magerr = _col(table, config["ASTREFMAGERR_KEY"], path, None, False)
        pmra = _col(table, config["ASTREFPROP_KEYS"][0], path, "mas/yr", False)
        pmdec = _col(table, config["ASTREFPROP_KEYS"][1], path, "mas/yr", False)
        epoch = _col(table, config["ASTREFOBSDATE_KEY"], path, None, False)
        n = len(table)
        if epoch is None:
            meta_epoch = table.meta.get("EPOCH")
            epoch = np.full(n, float(meta_epoch) if meta_epoch else 2000.0)
        parts.append(RefCatalog(ra, dec, sig, mag if mag is not None else np.full(n, 20.0),
                                magerr if magerr is not None else np.full(n, 0.1),
                                np.nan_to_num(pmra) if pmra is not None else np.zeros(n),
                                np.nan_to_num(pmdec) if pmdec is not None else np.zeros(n),
                                np.nan_to_num(epoch, nan=2000.0), str(path)))
    ref = RefCatalog(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                       ("ra", "dec", "sig", "mag", "magerr", "pmra", "pmdec", "epoch")),
                     source=",".join(p.source for p in parts))
    lo, hi = config["ASTREFMAG_LIMITS"]
    keep = np.isfinite(ref.ra) & np.isfinite(ref.dec) & np.isfinite(ref.sig) & (ref.sig > 0)
    keep &= ~(ref.mag < lo) & ~(ref.mag > hi)
    ref = RefCatalog(*(getattr(ref, k)[keep] for k in
                       ("ra", "dec", "sig", "mag", "magerr", "pmra", "pmdec", "epoch")), source=ref.source)
    log.info("reference catalogue %s: %d stars%s", ref.source, len(ref),
             " with proper motions" if ref.has_pm else "")
    return ref
