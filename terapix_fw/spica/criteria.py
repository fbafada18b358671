"""Selection criteria files (``schemas/spica_criteria.xsd``): the T0001/T0002 tables of the CFHTLS report.

>>> crit = load_criteria("t0001_criteria.xml")          # doctest: +SKIP
>>> [c.name for c in crit.checks]                          # doctest: +SKIP
['period', 'exptime', 'seeing', 'airmass', 'grades']

Every criterion is a :class:`Check` whose ``failure(row)`` returns None when an exposure passes, else a
one-line reason naming the value and the limit; the checks keep the order of the file, so the first
failure of an exposure is the first criterion of the file it failed.  A missing value (seeing never
measured, no grade) fails the criterion that needs it.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import InstructionError
from ..xmlutil import parse_xml, validate

__all__ = ["Check", "Criteria", "SeeingLimit", "load_criteria", "parse_criteria", "band_of"]


def band_of(filter_name: str | None) -> str:
    """The band letter of a MegaCam filter name: ``u.MP9301`` -> ``u``, ``r`` -> ``r``.

    Parameters
    ----------
    filter_name : str or None

    Returns
    -------
    str
    """
    return (filter_name or "").split(".", 1)[0].rstrip("*")


def _matches_filter(wanted: str, filter_name: str | None) -> bool:
    return wanted == filter_name or band_of(wanted) == band_of(filter_name)


@dataclass(frozen=True)
class SeeingLimit:
    """A ``<seeing>`` limit, for every exposure or for one component and/or filter.

    Attributes
    ----------
    below : float
        Largest seeing accepted (arcsec).
    component : str or None
    filter : str or None
    """
    below: float
    component: str | None = None
    filter: str | None = None

    def applies(self, component: str | None, filter_name: str | None) -> bool:
        """Whether the limit applies to an exposure of this component and filter.

        Parameters
        ----------
        component : str or None
        filter_name : str or None

        Returns
        -------
        bool
        """
        return ((self.component is None or self.component == component)
                and (self.filter is None or _matches_filter(self.filter, filter_name)))

    @property
    def specificity(self) -> int:
        """How specific the limit is (component and filter > component > filter > none): the most specific applies."""
        return (self.component is not None) * 2 + (self.filter is not None)


@dataclass
class Check:
    """One criterion: ``name`` (as in the file), ``spec`` (JSON-able), ``failure(row) -> reason | None``."""

    name: str
    spec: dict[str, Any]
    failure: Callable[[dict], str | None] = field(repr=False)


@dataclass
class Criteria:
    """A criteria file: the checks an exposure must pass to enter a release.

    Attributes
    ----------
    name : str
    path : str or None
        The file.
    checks : list of Check
        In file order; the first failed one is reported.
    description : str
    """
    name: str
    path: str | None
    checks: list[Check]
    description: str = ""

    def first_failure(self, row: dict) -> tuple[str, str] | None:
        """(criterion, reason) of the first criterion ``row`` fails, or None if it passes them all.

        Parameters
        ----------
        row : dict
            An exposure row of :func:`terapix_fw.db.query.find_images`.

        Returns
        -------
        tuple of (str, str) or None
        """
        for check in self.checks:
            reason = check.failure(row)
            if reason is not None:
                return check.name, reason
        return None

    def to_json(self) -> str:
        """The checks as JSON, for the selection record.

        Returns
        -------
        str
        """
        return json.dumps([{"criterion": c.name, **c.spec} for c in self.checks])


def _bound_check(name: str, column: str, unit: str, above: float | None, below: float | None) -> Check:
    def failure(row):
        value = row.get(column)
        if value is None:
            return f"{name} unknown"
        if above is not None and not value > above:
            return f"{name} {value:g}{unit} not > {above:g}{unit}"
        if below is not None and not value < below:
            return f"{name} {value:g}{unit} not < {below:g}{unit}"
        return None
    return Check(name, {"above": above, "below": below}, failure)


def _seeing_check(default: float | None, limits: list[SeeingLimit]) -> Check:
    ordered = sorted(limits, key=lambda lim: -lim.specificity)  # the most specific limit wins

    def limit_for(component, filter_name):
        for lim in ordered:
            if lim.applies(component, filter_name):
                return lim
        return None if default is None else SeeingLimit(default)

    def failure(row):
        lim = limit_for(row.get("survey_component"), row.get("filter"))
        if lim is None:
            return None
        value = row.get("seeing")
        if value is None:
            return "seeing unknown"
        if not value < lim.below:
            scope = " ".join(x for x in (lim.filter and f"filter {lim.filter}",
                                         lim.component and f"component {lim.component}") if x)
            return f"seeing {value:.3g}\" not < {lim.below:g}\"" + (f" (limit for {scope})" if scope else "")
        return None
    spec = {"below": default, "limits": [lim.__dict__ for lim in limits]}
    return Check("seeing", spec, failure)


def _period_check(start: dt.date | None, end: dt.date | None) -> Check:
    # the period holds whole days: from 00:00 UTC of its first day to 24:00 UTC of its last
    lo = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc) if start else None
    hi = (dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)) if end else None

    def failure(row):
        when = row.get("date_obs")
        if when is None:
            return "observation date unknown"
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        if (lo and when < lo) or (hi and when >= hi):
            return f"observed {when:%Y-%m-%dT%H:%M:%S} outside {start or '...'} to {end or '...'}"
        return None
    return Check("period", {"from": str(start) if start else None, "to": str(end) if end else None}, failure)


_LABELS = {"grades": "grade", "runids": "run id", "owners": "owner", "components": "component", "filters": "filter"}


def _set_check(name: str, column: str, allowed: list[str], patterns: bool = False,
               match: Callable[[str, Any], bool] | None = None) -> Check:
    label = _LABELS.get(name, name)

    def failure(row):
        values = [row.get(c) for c in column.split("|")]
        values = [v for v in values if v is not None]
        if not values:
            return f"{label} unknown"
        for value in values:
            for want in allowed:
                if match is not None:
                    if match(want, value):
                        return None
                elif (fnmatch.fnmatchcase(str(value), want) if patterns else str(value) == want):
                    return None
        return f"{label} {'/'.join(map(str, values))} not in {' '.join(allowed)}"
    return Check(name, {"values": allowed}, failure)


def _float(el, attr):
    value = el.get(attr)
    return None if value is None else float(value)


def parse_criteria(root, label: str) -> Criteria:
    """Build :class:`Criteria` from a validated ``<criteria>`` element.

    Parameters
    ----------
    root : lxml.etree._Element
    label : str
        The file, for messages.

    Returns
    -------
    Criteria

    Raises
    ------
    InstructionError
        On an inconsistent element (naming file and line).
    """
    checks: list[Check] = []
    description = ""
    for el in root:
        if not isinstance(el.tag, str):
            continue  # comments
        tag = el.tag
        where = f"{label}:{el.sourceline}"
        if tag == "description":
            description = (el.text or "").strip()
        elif tag == "period":
            start = dt.date.fromisoformat(el.get("from")) if el.get("from") else None
            end = dt.date.fromisoformat(el.get("to")) if el.get("to") else None
            if start and end and end < start:
                raise InstructionError(f"element <period>: to={end} is before from={start}", where)
            checks.append(_period_check(start, end))
        elif tag in ("exptime", "airmass", "skyprobe"):
            above, below = _float(el, "above"), _float(el, "below")
            if above is None and below is None:
                raise InstructionError(f"element <{tag}>: give above= and/or below=", where)
            unit = {"exptime": " s", "airmass": "", "skyprobe": " mag"}[tag]
            checks.append(_bound_check(tag, tag, unit, above, below))
        elif tag == "seeing":
            limits = [SeeingLimit(float(lim.get("below")), lim.get("component"), lim.get("filter"))
                      for lim in el.findall("limit")]
            if el.get("below") is None and not limits:
                raise InstructionError("element <seeing>: give below= and/or <limit> elements", where)
            checks.append(_seeing_check(_float(el, "below"), limits))
        else:
            values = (el.text or "").split()
            if not values:
                raise InstructionError(f"element <{tag}>: expected a space-separated list, got nothing", where)
            if tag == "grades":
                bad = [g for g in values if g not in ("A", "B", "C", "D")]
                if bad:
                    raise InstructionError(f"element <grades>: grade {bad[0]!r}, expected A, B, C or D", where)
                checks.append(_set_check("grades", "grade", values))
            elif tag == "runids":  # RUNID or QRUNID, shell patterns such as 0[34][AB]L0[1-6]
                checks.append(_set_check("runids", "runid|qrunid", values, patterns=True))
            elif tag == "owners":
                checks.append(_set_check("owners", "owner", values))
            elif tag == "components":
                checks.append(_set_check("components", "survey_component", values))
            elif tag == "filters":
                checks.append(_set_check("filters", "filter", values, match=_matches_filter))
    return Criteria(name=root.get("name"), path=label, checks=checks, description=description)


def load_criteria(path: str | Path) -> Criteria:
    """Parse and validate a criteria file; errors name the file, line and element.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Criteria

    Raises
    ------
    InstructionError
        On malformed XML, a schema violation or an inconsistent element.
    """
    path = Path(path)
    tree = parse_xml(path)
    validate(tree, "spica_criteria.xsd", str(path))
    return parse_criteria(tree.getroot(), str(path))
