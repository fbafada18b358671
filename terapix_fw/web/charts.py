"""Charts of the statistics page, drawn with matplotlib (Agg) and embedded in the page as PNG data.

The CFHTLS steering pages showed the image quality history and the observing time per filter and
programme; these charts show the same from RDBix.  Each function returns PNG bytes (or None when
there is nothing to draw).
"""
from __future__ import annotations

import io
from typing import Any

__all__ = ["seeing_history", "exptime_per_month", "grades_per_filter", "png_data_uri"]

_GRADE_COLOURS = {"A": "#3a9d5d", "B": "#a6c94f", "C": "#e8b342", "D": "#d9534f", "-": "#b8bec6"}


def png_data_uri(png: bytes | None) -> str | None:
    """A ``data:`` URI for an ``<img src>`` (base64 only holds characters that need no escaping).

    Parameters
    ----------
    png : bytes or None

    Returns
    -------
    str or None
    """
    import base64

    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(9, 3.6), dpi=100, layout="constrained")


def _legend(ax) -> None:
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the data, never on it


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def seeing_history(rows: list[dict[str, Any]]) -> bytes | None:
    """Seeing (arcsec) against DATE-OBS, one colour per filter.

    Parameters
    ----------
    rows : list of dict
        Exposure rows (``date_obs``, ``filter``, ``seeing``, ``exptime``...).

    Returns
    -------
    bytes or None
        PNG, None without data.
    """
    points: dict[str, tuple[list, list]] = {}
    for r in rows:
        if r.get("date_obs") is not None and r.get("seeing") is not None:
            dates, values = points.setdefault(r.get("filter") or "-", ([], []))
            dates.append(r["date_obs"])
            values.append(r["seeing"])
    if not points:
        return None
    fig = _figure()
    ax = fig.subplots()
    for band, (dates, values) in sorted(points.items()):
        ax.plot(dates, values, "o", ms=3, label=band)
    ax.set_ylabel("seeing (arcsec FWHM)")
    ax.set_title("Image quality history")
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.autofmt_xdate()
    return _png(fig)


def exptime_per_month(rows: list[dict[str, Any]]) -> bytes | None:
    """Summed exposure time (hours) per month of DATE-OBS, stacked by filter.

    Parameters
    ----------
    rows : list of dict
        Exposure rows (``date_obs``, ``filter``, ``seeing``, ``exptime``...).

    Returns
    -------
    bytes or None
        PNG, None without data.
    """
    import numpy as np

    hours: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.get("date_obs") is not None and r.get("exptime"):
            key = (r["date_obs"].strftime("%Y-%m"), r.get("filter") or "-")
            hours[key] = hours.get(key, 0.0) + r["exptime"] / 3600.0
    if not hours:
        return None
    months = sorted({m for m, _ in hours})
    bands = sorted({b for _, b in hours})
    fig = _figure()
    ax = fig.subplots()
    bottom = np.zeros(len(months))
    for band in bands:
        values = np.array([hours.get((m, band), 0.0) for m in months])
        ax.bar(months, values, bottom=bottom, label=band)
        bottom += values
    ax.set_ylabel("exposure time (h)")
    ax.set_title("Observing time per month and filter")
    _legend(ax)
    ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    return _png(fig)


def grades_per_filter(summary: list[dict[str, Any]]) -> bytes | None:
    """Exposures per filter, stacked by effective grade (A to D, ungraded).

    Parameters
    ----------
    summary : list of dict
        Per-filter summary (:func:`terapix_fw.web.data.filter_summary`).

    Returns
    -------
    bytes or None
        PNG, None without data.
    """
    import numpy as np

    if not summary:
        return None
    bands = [s["filter"] for s in summary]
    fig = _figure()
    ax = fig.subplots()
    bottom = np.zeros(len(bands))
    for grade, colour in _GRADE_COLOURS.items():
        values = np.array([s["grades"].get(grade, 0) for s in summary], float)
        ax.bar(bands, values, bottom=bottom, color=colour, label="ungraded" if grade == "-" else grade)
        bottom += values
    ax.set_ylabel("exposures")
    ax.set_title("Grades per filter")
    _legend(ax)
    return _png(fig)
