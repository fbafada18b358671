"""The psfex XML report: a VOTable with one row per extension (as PSFEx's psfex.xml PSF_Fields table)."""
from __future__ import annotations

__all__ = ["write_psfex_xml"]

_FIELDS = (("Catalog_Name", "char", "catalog"), ("Extension", "int", "extension"),
           ("NStars_Loaded", "int", "loaded"), ("NStars_Accepted", "int", "accepted"),
           ("FWHM", "float", "fwhm"), ("Ellipticity", "float", "ellipticity"), ("Chi2", "float", "chi2"),
           ("Sampling", "float", "step"), ("PolDeg", "int", "degree"))


def write_psfex_xml(path, rows, version) -> None:
    from lxml import etree

    root = etree.Element("VOTABLE", version="1.1")
    res = etree.SubElement(root, "RESOURCE", ID="PSFEx", name="PSFEx")
    etree.SubElement(res, "DESCRIPTION").text = f"data related to terapix-fw psfex {version}"
    table = etree.SubElement(res, "TABLE", ID="PSF_Fields", name="PSF_Fields")
    for name, dtype, _ in _FIELDS:
        attrs = {"name": name, "datatype": dtype}
        if dtype == "char":
            attrs["arraysize"] = "*"
        etree.SubElement(table, "FIELD", **attrs)
    data = etree.SubElement(etree.SubElement(table, "DATA"), "TABLEDATA")
    for row in rows:
        tr = etree.SubElement(data, "TR")
        for _, dtype, key in _FIELDS:
            value = row.get(key, "")
            etree.SubElement(tr, "TD").text = f"{value:.6g}" if dtype == "float" else str(value)
    etree.ElementTree(root).write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)
