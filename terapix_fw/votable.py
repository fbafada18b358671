"""Small VOTable reports, written as the AstrOmatic tools write theirs (``ww.xml``, ``psfex.xml``...).

Tools describe each table as ``(name, fields, rows)`` where ``fields`` is a sequence of
``(FIELD name, VOTable datatype, row key)`` and ``rows`` a sequence of dicts; this module formats the values
(booleans as T/F, floats with 6 significant digits) and writes the file atomically.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["ReportTable", "write_votable_report"]

Field = tuple[str, str, str]  # (FIELD name, datatype, key in the row dicts)


@dataclass
class ReportTable:
    """One TABLE of a VOTable report.

    Attributes
    ----------
    name : str
    fields : sequence of Field
    rows : iterable of dict
        One dict per row, keyed by field name.
    units : dict of str to str
        Field name -> unit.
    """
    name: str
    fields: Sequence[Field]
    rows: Iterable[dict[str, Any]]
    units: dict[str, str] = field(default_factory=dict)  # FIELD name -> unit


def _format(value: Any, datatype: str) -> str:
    if value is None or value == "":
        return ""
    if datatype == "boolean":
        return "T" if value else "F"
    if datatype in ("float", "double"):
        return f"{float(value):.6g}"
    return str(value)


def write_votable_report(path: str | Path, resource: str, tables: Sequence[ReportTable], *,
                         description: str = "", infos: dict[str, str] | None = None,
                         params: Sequence[tuple[str, str, str, Any]] = ()) -> Path:
    """Write a VOTable 1.1 document with one RESOURCE (as the AstrOmatic tools' XML reports).

    Parameters
    ----------
    path : str or Path
    resource : str
        Name of the RESOURCE.
    tables : sequence of ReportTable
    description : str
    infos : dict of str to str, optional
        INFO elements.
    params : sequence of (str, str, str, Any)
        PARAM elements ``(name, datatype, unit, value)``.

    Returns
    -------
    Path
    """
    from lxml import etree

    from .atomic import write_text_atomic

    root = etree.Element("VOTABLE", version="1.1")
    res = etree.SubElement(root, "RESOURCE", ID=resource, name=resource)
    if description:
        etree.SubElement(res, "DESCRIPTION").text = description
    for name, value in (infos or {}).items():
        etree.SubElement(res, "INFO", name=name, value=str(value))
    for name, datatype, unit, value in params:
        etree.SubElement(res, "PARAM", name=name, datatype=datatype, unit=unit, value=_format(value, datatype))
    for table in tables:
        t = etree.SubElement(res, "TABLE", ID=table.name, name=table.name)
        for name, datatype, _ in table.fields:
            attrs = {"name": name, "datatype": datatype}
            if datatype == "char":
                attrs["arraysize"] = "*"
            if name in table.units:
                attrs["unit"] = table.units[name]
            etree.SubElement(t, "FIELD", **attrs)
        data = etree.SubElement(etree.SubElement(t, "DATA"), "TABLEDATA")
        for row in table.rows:
            tr = etree.SubElement(data, "TR")
            for _, datatype, key in table.fields:
                etree.SubElement(tr, "TD").text = _format(row.get(key, ""), datatype)
    text = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")
    return write_text_atomic(path, text)
