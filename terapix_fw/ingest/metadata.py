"""Header metadata of an exposure as RDBix fields: the ``exposure`` record of ingestion.

Keywords read from the primary header (CFHT/MegaPrime names, as Elixir writes them): ``OBJECT``,
``FILTER``, ``QRUNID``, ``RUNID``, ``RA_DEG``/``DEC_DEG`` (else ``RA`` hh:mm:ss / ``DEC`` dd:mm:ss, else
numeric ``RA``/``DEC`` in degrees) for the pointing, ``EXPTIME``, ``AIRMASS``, ``MJD-OBS``, ``DATE-OBS``
(with ``UTC-OBS``/``TIME-OBS`` when it holds a date only), ``PHOTFLAG`` and the sky-probe extinction
keyword of the site (``SKYPROBE`` by default).  Each image extension gives one ``extensions`` row: its
WCS centre and the four corners of its footprint (pixel corners, FITS 1-based: (0.5, 0.5),
(NAXIS1 + 0.5, 0.5), (NAXIS1 + 0.5, NAXIS2 + 0.5), (0.5, NAXIS2 + 0.5)).  Every header card goes to
``header_keywords`` (extension 0 = primary; repeated COMMENT/HISTORY cards joined by newlines).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import warnings
from typing import Any

__all__ = ["pointing", "date_obs", "exposure_fields", "footprint", "keyword_rows", "raw_keyword_rows"]

_SEXA = re.compile(r"^\s*([+-]?)(\d+)[:\s]+(\d+)[:\s]+(\d+(?:\.\d*)?)\s*$")


def _sexagesimal(text: str) -> float | None:
    m = _SEXA.match(str(text))
    if not m:
        return None
    value = int(m.group(2)) + int(m.group(3)) / 60 + float(m.group(4)) / 3600
    return -value if m.group(1) == "-" else value


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def pointing(header) -> tuple[float | None, float | None]:
    """Telescope pointing (RA, Dec) in degrees.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    tuple of (float or None, float or None)
    """
    ra, dec = _number(header.get("RA_DEG")), _number(header.get("DEC_DEG"))
    if ra is not None and dec is not None:
        return ra % 360.0, dec
    raw_ra, raw_dec = header.get("RA"), header.get("DEC")
    if isinstance(raw_ra, str) and isinstance(raw_dec, str):
        h, d = _sexagesimal(raw_ra), _sexagesimal(raw_dec)
        if h is not None and d is not None:
            return (h * 15.0) % 360.0, d
    ra, dec = _number(raw_ra), _number(raw_dec)
    if ra is not None and dec is not None:
        return ra % 360.0, dec
    return None, None


def date_obs(header) -> _dt.datetime | None:
    """DATE-OBS as an aware UTC datetime (a date-only DATE-OBS takes UTC-OBS or TIME-OBS), else from
    MJD-OBS.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    datetime or None
    """
    from ..db.types import to_datetime
    text = str(header.get("DATE-OBS") or "").strip()
    if text and "T" not in text:
        clock = str(header.get("UTC-OBS") or header.get("TIME-OBS") or "").strip()
        if clock:
            text = f"{text}T{clock}"
    if text:
        try:
            return to_datetime(text)
        except ValueError:
            pass
    mjd = _number(header.get("MJD-OBS"))
    if mjd is not None:
        return _dt.datetime(1858, 11, 17, tzinfo=_dt.timezone.utc) + _dt.timedelta(days=mjd)
    return None


def _bool(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().upper()
        if low in ("T", "TRUE", "Y", "YES", "1"):
            return True
        if low in ("F", "FALSE", "N", "NO", "0"):
            return False
    if isinstance(value, (int, float)):
        return bool(value)
    return None


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def exposure_fields(primary, skyprobe_key: str = "SKYPROBE") -> dict[str, Any]:
    """The exposure-row fields of a primary header (None where the header has nothing).

    Parameters
    ----------
    primary : astropy.io.fits.Header
    skyprobe_key : str
        Keyword of the sky-probe extinction (mag).

    Returns
    -------
    dict
    """
    ra, dec = pointing(primary)
    mjd = _number(primary.get("MJD-OBS"))
    when = date_obs(primary)
    if mjd is None and when is not None:
        mjd = (when - _dt.datetime(1858, 11, 17, tzinfo=_dt.timezone.utc)).total_seconds() / 86400.0
    return {"object": _text(primary.get("OBJECT")), "filter": _text(primary.get("FILTER")),
            "qrunid": _text(primary.get("QRUNID")), "runid": _text(primary.get("RUNID")), "ra": ra, "dec": dec,
            "exptime": _number(primary.get("EXPTIME")), "airmass": _number(primary.get("AIRMASS")),
            "mjd_obs": mjd, "date_obs": when, "photometric": _bool(primary.get("PHOTFLAG")),
            "skyprobe": _number(primary.get(skyprobe_key)) if skyprobe_key else None}


def footprint(header) -> dict[str, float | None]:
    """Centre and corner world coordinates (degrees) of an image header's WCS; Nones without a WCS.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    dict of str to float or None
    """
    import numpy as np
    from astropy.wcs import WCS, FITSFixedWarning
    nx, ny = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
    out: dict[str, float | None] = {"ra": None, "dec": None}
    out.update({f"{a}{k}": None for k in (1, 2, 3, 4) for a in ("ra", "dec")})
    if not (nx and ny and "CTYPE1" in header):
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            # only the WCS cards: astropy serialises the whole header for wcslib (~40 ms for a CCD's)
            w = WCS(_wcs_cards(header), relax=True)
            # 1-based pixel coordinates: centre, then corners counter-clockwise from (0.5, 0.5)
            x = np.array([(nx + 1) / 2, 0.5, nx + 0.5, nx + 0.5, 0.5])
            y = np.array([(ny + 1) / 2, 0.5, 0.5, ny + 0.5, ny + 0.5])
            ra, dec = w.all_pix2world(x, y, 1)
    except Exception:  # noqa: BLE001 - a broken WCS leaves the footprint empty, it does not refuse the file
        return out
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        return out
    ra = np.mod(ra, 360.0)
    out["ra"], out["dec"] = float(ra[0]), float(dec[0])
    for k in (1, 2, 3, 4):
        out[f"ra{k}"], out[f"dec{k}"] = float(ra[k]), float(dec[k])
    return out


_WCS_KEY = re.compile(r"^(NAXIS\d?|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|"
                      r"RADESYS|RADECSYS|EQUINOX|EPOCH|LONPOLE|LATPOLE|MJD-OBS|DATE-OBS|A_\d_\d|B_\d_\d|A_ORDER|"
                      r"B_ORDER|WCSAXES)$")


def _wcs_cards(header):
    from astropy.io import fits
    out = fits.Header()
    for card in header.cards:
        if _WCS_KEY.match(card.keyword):
            out.append(card)
    return out


_CARD = re.compile(r"^([A-Z0-9_\-]{1,8})\s*=\s*(?:'((?:[^']|'')*)'|([^/]*?))\s*(?:/\s?(.*?))?\s*$")


def raw_keyword_rows(block: bytes, extension: int) -> list[dict[str, Any]] | None:
    """``header_keywords`` rows parsed from a header's 80-byte cards as written in the file (fast: no
    astropy Card objects); values as written (strings unquoted, T/F, numbers in their own format).
    None if the block is not plain ASCII cards (then :func:`keyword_rows` parses it).

    Parameters
    ----------
    block : bytes
        The header as written.
    extension : int
        HDU index.

    Returns
    -------
    list of dict or None
    """
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        return None
    rows: dict[str, dict[str, Any]] = {}
    for i in range(0, len(text) - 79, 80):
        card = text[i:i + 80]
        key = card[:8].rstrip()
        if key == "END":
            break
        if not key:
            continue
        if key in ("COMMENT", "HISTORY") or card[8:10] != "= ":
            if key.startswith("HIERARCH"):
                return None
            value, comment = card[8:].strip(), None
        else:
            m = _CARD.match(card.rstrip())
            if m is None:
                return None
            value = m.group(2).replace("''", "'").rstrip() if m.group(2) is not None else m.group(3).strip()
            comment = m.group(4) or None
        row = rows.get(key)
        if row is None:
            rows[key] = {"extension": extension, "keyword": key, "value": value, "comment": comment}
        else:
            row["value"] = f"{row['value']}\n{value}"
    return list(rows.values())


def keyword_rows(header, extension: int) -> list[dict[str, Any]]:
    """``header_keywords`` rows of one header: every card, repeated keywords joined by newlines.

    Parameters
    ----------
    header : astropy.io.fits.Header
    extension : int
        HDU index.

    Returns
    -------
    list of dict
    """
    rows: dict[str, dict[str, Any]] = {}
    for card in header.cards:
        key = card.keyword
        if not key or key == "END":
            continue
        value = card.value
        text = "T" if value is True else "F" if value is False else ("" if value is None else str(value))
        row = rows.get(key)
        if row is None:
            rows[key] = {"extension": extension, "keyword": key, "value": text, "comment": card.comment or None}
        else:
            row["value"] = f"{row['value']}\n{text}"
    return list(rows.values())
