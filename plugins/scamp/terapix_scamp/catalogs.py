"""Input FITS_LDAC catalogues: one :class:`Field` per catalogue (an exposure), one :class:`Chip` per
extension, detections selected with SCAMP's default cuts.

Pixel coordinates are kept FITS 1-based, as SExtractor writes XWIN_IMAGE/YWIN_IMAGE.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from terapix_fw.errors import ToolError

__all__ = ["Chip", "Field", "load_fields", "field_epoch"]

#: columns SCAMP cannot work without (doc/src/Using.rst), besides PHOTFLUX_KEY and PHOTFLUXERR_KEY
REQUIRED = ("XWIN_IMAGE", "YWIN_IMAGE", "ERRAWIN_IMAGE", "ERRBWIN_IMAGE", "ERRTHETAWIN_IMAGE")


def vector_key(key: str) -> tuple[str, int]:
    """Column name and 0-based element of a catalogue key in SCAMP's syntax: ``FLUX_APER(3)`` (or ``[3]``,
    ``{3}``) is the third element of the vector column FLUX_APER, a plain name its first (prefs.c)."""
    import re

    m = re.fullmatch(r"\s*([^([{\s]+)\s*[([{]\s*(\d+)\s*[)\]}]\s*", key)
    if m is None:
        return key.strip(), 0
    return m.group(1), max(int(m.group(2)), 1) - 1


@dataclass
class Chip:
    """One extension: its header (first-guess WCS and keywords) and image size."""

    index: int  # 0-based extension index within the catalogue
    header: object  # astropy.io.fits.Header, after .ahead overrides
    nx: int
    ny: int
    ndet_raw: int = 0


@dataclass
class Field:
    """One input catalogue (an exposure) and its selected detections, concatenated over chips."""

    path: Path
    chips: list[Chip]
    # detections (numpy arrays, all the same length)
    chip: np.ndarray = None  # chip index of each detection
    x: np.ndarray = None  # 1-based pixel coordinates
    y: np.ndarray = None
    sig: np.ndarray = None  # isotropic centroid error (pixels), floor included
    flux: np.ndarray = None
    fluxerr: np.ndarray = None
    snr: np.ndarray = None
    astr_ok: np.ndarray = None  # passes the astrometric flag masks
    phot_ok: np.ndarray = None  # passes the photometric flag masks
    # metadata
    astr_key: str = ""
    phot_key: str = ""
    exptime: float = 1.0
    airmass: float = 1.0
    phot_c: float = 0.0
    phot_k: float = 0.0
    photflag: bool = False
    epoch: float | None = None  # decimal year of observation when known
    index: int = 0  # position on the command line
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ndet(self) -> int:
        return self.extra.get("ndet", 0) if self.x is None else len(self.x)

    def release(self) -> None:
        """Drop the per-detection arrays once they are concatenated (memory at 60 M detections)."""
        self.extra["ndet"] = self.ndet
        self.chip = self.x = self.y = self.sig = self.flux = self.fluxerr = self.snr = None
        self.astr_ok = self.phot_ok = None


def _keyword(headers, key: str, default=None):
    for header in headers:
        if header is not None and key in header:
            return header[key]
    return default


def field_epoch(headers) -> float | None:
    """Decimal year of the observation from MJD-OBS or DATE-OBS (None when absent)."""
    mjd = _keyword(headers, "MJD-OBS")
    if mjd is not None:
        try:
            return 2000.0 + (float(mjd) - 51544.5) / 365.25
        except (TypeError, ValueError):
            pass
    date = _keyword(headers, "DATE-OBS")
    if date:
        try:
            from astropy.time import Time

            return float(Time(str(date).strip(), format="isot", scale="utc").decimalyear)
        except Exception:  # noqa: BLE001 - a malformed date only loses proper-motion propagation
            return None
    return None


def _ahead_headers(path: Path, config, global_ahead: list | None, explicit: Path | None) -> list | None:
    """The ``.ahead`` headers that apply to catalogue ``path`` (AHEADER_NAME or name + AHEADER_SUFFIX)."""
    from terapix_fw.headfile import read_head_file

    candidate = explicit if explicit is not None else path.with_suffix(config["AHEADER_SUFFIX"])
    local = read_head_file(candidate) if candidate.exists() else None
    if local is None and global_ahead is None:
        return None
    return [local, global_ahead]


def load_fields(paths: list[Path], config, log) -> list[Field]:
    """Read every catalogue, apply ``.ahead`` overrides, select detections as SCAMP does."""
    from astropy.io import fits

    from terapix_fw.headfile import apply_head, read_head_file
    from terapix_fw.ldac import read_ldac

    global_path = Path(config["AHEADER_GLOBAL"])
    global_ahead = read_head_file(global_path) if global_path.exists() else None
    explicit = list(config["AHEADER_NAME"])
    if explicit and len(explicit) != len(paths):
        raise ToolError(f"AHEADER_NAME lists {len(explicit)} file(s) for {len(paths)} catalogue(s); "
                        "expected one per catalogue")
    fields = []
    for number, path in enumerate(paths):
        path = Path(path)
        if not path.exists():
            raise ToolError(f"{path}: catalogue not found")
        try:
            extensions = read_ldac(path)
        except OSError as exc:
            raise ToolError(f"{path}: cannot read as FITS_LDAC: {exc}") from None
        try:
            primary = fits.getheader(path, 0)
        except OSError:
            primary = None
        aheads = _ahead_headers(path, config, global_ahead, Path(explicit[number]) if explicit else None)
        chips, columns = [], []
        for k, ext in enumerate(extensions):
            header = ext.header.copy()
            if aheads is not None:
                for source in reversed(aheads):  # the global .ahead first, the catalogue's own overrides it
                    if not source:
                        continue
                    if len(source) not in (1, len(extensions)):
                        raise ToolError(f"{path}: its .ahead holds {len(source)} header block(s) for "
                                        f"{len(extensions)} extension(s); expected 1 or {len(extensions)}")
                    apply_head(header, source[k] if len(source) > 1 else source[0])
            table = ext.objects
            needed = REQUIRED + tuple(vector_key(config[key])[0] for key in ("PHOTFLUX_KEY", "PHOTFLUXERR_KEY"))
            missing = [c for c in needed if c not in table.colnames]
            if missing:
                raise ToolError(f"{path}: extension {k + 1} lacks column(s) {', '.join(missing)}; SCAMP needs "
                                f"{', '.join(needed)}")
            nx = int(header.get("NAXIS1", 0) or header.get("IMAGEW", 0) or 0)
            ny = int(header.get("NAXIS2", 0) or header.get("IMAGEH", 0) or 0)
            if nx <= 0 or ny <= 0:  # catalogue of an image whose size was not stored: use the detections
                nx = int(np.ceil(np.nanmax(table["XWIN_IMAGE"]))) if len(table) else 1
                ny = int(np.ceil(np.nanmax(table["YWIN_IMAGE"]))) if len(table) else 1
            chips.append(Chip(k, header, nx, ny, len(table)))
            columns.append(table)
        f = Field(path=path, chips=chips, index=number)
        _select(f, columns, config, log)
        headers = [chips[0].header, primary]
        f.astr_key = ",".join(f"{key}={_keyword(headers, key, '')}" for key in config["ASTRINSTRU_KEY"])
        f.phot_key = ",".join(f"{key}={_keyword(headers, key, '')}" for key in config["PHOTINSTRU_KEY"])
        f.exptime = float(_keyword(headers, config["EXPOTIME_KEY"], 1.0) or 1.0)
        f.airmass = float(_keyword(headers, config["AIRMASS_KEY"], 1.0) or 1.0)
        f.phot_c = float(_keyword(headers, config["MAGZERO_KEY"], 0.0) or 0.0)
        f.phot_k = float(_keyword(headers, config["EXTINCT_KEY"], 0.0) or 0.0)
        flag = _keyword(headers, config["PHOTOMFLAG_KEY"], False)
        f.photflag = flag if isinstance(flag, bool) else str(flag).strip().upper() in ("T", "Y", "TRUE", "1")
        f.epoch = field_epoch(headers)
        if f.exptime <= 0:
            raise ToolError(f"{path}: {config['EXPOTIME_KEY']} = {f.exptime}; expected a positive exposure time")
        log.info("%s: %d extension(s), %d/%d detections selected, instrument %s / %s%s", path.name, len(chips),
                 f.ndet, sum(c.ndet_raw for c in chips), f.astr_key, f.phot_key,
                 " (photometric)" if f.photflag else "")
        fields.append(f)
    return fields


def _column(table, name, default, element: int = 0):
    """Column ``name`` as float (element ``element`` of a vector column), ``default`` where absent."""
    if name in table.colnames:
        if len(table) == 0:
            return np.zeros(0)
        return np.asarray(table[name], dtype=float).reshape(len(table), -1)[:, element]
    return np.full(len(table), default, dtype=float)


def _flux_column(table, key: str, where: str, log):
    """A PHOTFLUX_KEY/PHOTFLUXERR_KEY column; an element beyond the vector's size falls back to the first
    with a warning, as SCAMP does ("Not enough apertures")."""
    name, element = vector_key(key)
    size = int(np.prod(table[name].shape[1:])) if len(table[name].shape) > 1 else 1
    if element >= size:
        log.warning("%s: not enough apertures for %s (%d): using the first", where, key, size)
        element = 0
    return _column(table, name, np.nan, element)


def _select(f: Field, tables, config, log) -> None:
    """SCAMP's source selection: S/N, FLAGS/FLAGS_WEIGHT/IMAFLAGS_ISO masks, FWHM and ellipticity."""
    xs, ys, ss, fl, fe, chip, aok, pok = [], [], [], [], [], [], [], []
    xkey, ykey = config["CENTROID_KEYS"]
    ekeys = config["CENTROIDERR_KEYS"]
    fkey, fekey = config["PHOTFLUX_KEY"], config["PHOTFLUXERR_KEY"]
    sn_min = config["SN_THRESHOLDS"][0]
    fwhm_lo, fwhm_hi = config["FWHM_THRESHOLDS"]
    for k, table in enumerate(tables):
        for key in (xkey, ykey, ekeys[0], ekeys[1], vector_key(fkey)[0], vector_key(fekey)[0]):
            if key not in table.colnames:
                raise ToolError(f"{f.path}: extension {k + 1} has no column {key}")
        x = _column(table, xkey, np.nan)
        y = _column(table, ykey, np.nan)
        erra = _column(table, ekeys[0], np.nan)
        errb = _column(table, ekeys[1], np.nan)
        flux = _flux_column(table, fkey, f"{f.path} extension {k + 1}", log)
        fluxerr = _flux_column(table, fekey, f"{f.path} extension {k + 1}", log)
        flags = _column(table, "FLAGS", 0).astype(np.int64)
        wflags = _column(table, "FLAGS_WEIGHT", 0).astype(np.int64)
        iflags = _column(table, "IMAFLAGS_ISO", 0).astype(np.int64)
        fwhm = 2.0 * _column(table, "FLUX_RADIUS", np.nan)
        elong = _column(table, "ELONGATION", 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = flux / fluxerr
            ellip = 1.0 - 1.0 / elong
        keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(erra) & (flux > 0) & (fluxerr > 0)
        keep &= snr > sn_min
        keep &= (flags & config["FLAGS_MASK"]) == 0
        keep &= (wflags & config["WEIGHTFLAGS_MASK"]) == 0
        keep &= (iflags & config["IMAFLAGS_MASK"]) == 0
        has_fwhm = np.isfinite(fwhm)
        keep &= ~has_fwhm | ((fwhm >= fwhm_lo) & (fwhm < fwhm_hi))
        keep &= ~(ellip > config["ELLIPTICITY_MAX"])
        # SCAMP (samples.c) marks a detection with weight flags left by WEIGHTFLAGS_MASK as truncated
        # (SExtractor's flag 8), which the default ASTR_/PHOT_FLAGSMASK (0xfc) then reject
        sflags = flags | np.where(wflags != 0, 8, 0)
        astr = ((sflags & config["ASTR_FLAGSMASK"]) == 0) & ((iflags & config["ASTR_IMAFLAGSMASK"]) == 0)
        phot = ((sflags & config["PHOT_FLAGSMASK"]) == 0) & ((iflags & config["PHOT_IMAFLAGSMASK"]) == 0)
        xs.append(x[keep])
        ys.append(y[keep])
        ss.append(np.sqrt(0.5 * (erra[keep] ** 2 + errb[keep] ** 2)))
        fl.append(flux[keep])
        fe.append(fluxerr[keep])
        chip.append(np.full(int(keep.sum()), k, dtype=np.int32))
        aok.append(astr[keep])
        pok.append(phot[keep])
    f.x = np.concatenate(xs)
    f.y = np.concatenate(ys)
    f.sig = np.concatenate(ss)
    f.flux = np.concatenate(fl)
    f.fluxerr = np.concatenate(fe)
    f.snr = f.flux / f.fluxerr
    f.chip = np.concatenate(chip)
    f.astr_ok = np.concatenate(aok)
    f.phot_ok = np.concatenate(pok)
