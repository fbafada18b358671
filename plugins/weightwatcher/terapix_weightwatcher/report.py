"""The weightwatcher XML report: a VOTable with one row per extension (as WeightWatcher's ww.xml)."""
from __future__ import annotations

__all__ = ["write_ww_xml"]

_FIELDS = (("Extension", "int", "extension"), ("Ext_Name", "char", "extname"), ("Dead", "boolean", "dead"),
           ("Background", "float", "back"), ("Background_RMS", "float", "rms"),
           ("NCosmics", "int", "ncr"), ("NCosmic_Pixels", "int", "ncr_pix"),
           ("NSaturated_Pixels", "int", "nsat_pix"), ("NTrails", "int", "ntrail"),
           ("NBadColumn_Pixels", "int", "nbadcol_pix"), ("Flagged_Fraction", "float", "flagged_fraction"))


def write_ww_xml(path, image, per_ext, version, area=None) -> None:
    from lxml import etree

    root = etree.Element("VOTABLE", version="1.1")
    res = etree.SubElement(root, "RESOURCE", ID="WeightWatcher", name="WeightWatcher")
    etree.SubElement(res, "DESCRIPTION").text = f"data related to terapix-fw weightwatcher {version}"
    etree.SubElement(res, "INFO", name="Image_Name", value=str(image))
    if area is not None:
        etree.SubElement(res, "PARAM", name="Eff_Area", datatype="double", unit="deg2", value=f"{area:.8g}")
    table = etree.SubElement(res, "TABLE", ID="Extension_Stats", name="Extension_Stats")
    for name, dtype, _ in _FIELDS:
        attrs = {"name": name, "datatype": dtype}
        if dtype == "char":
            attrs["arraysize"] = "*"
        etree.SubElement(table, "FIELD", **attrs)
    data = etree.SubElement(etree.SubElement(table, "DATA"), "TABLEDATA")
    for ext in per_ext:
        tr = etree.SubElement(data, "TR")
        for _, dtype, key in _FIELDS:
            value = ext.get(key, "")
            if dtype == "boolean":
                value = "T" if value else "F"
            elif dtype == "float" and value != "":
                value = f"{value:.6g}"
            etree.SubElement(tr, "TD").text = str(value)
    etree.ElementTree(root).write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)
