"""The weightwatcher XML report: a VOTable with one row per extension (as WeightWatcher's ww.xml)."""
from __future__ import annotations

__all__ = ["write_ww_xml"]

_FIELDS = (("Extension", "int", "extension"), ("Ext_Name", "char", "extname"), ("Dead", "boolean", "dead"),
           ("Background", "float", "back"), ("Background_RMS", "float", "rms"),
           ("NCosmics", "int", "ncr"), ("NCosmic_Pixels", "int", "ncr_pix"),
           ("NSaturated_Pixels", "int", "nsat_pix"), ("NTrails", "int", "ntrail"),
           ("NBadColumn_Pixels", "int", "nbadcol_pix"), ("Flagged_Fraction", "float", "flagged_fraction"))


def write_ww_xml(path, image, per_ext, version, area=None) -> None:
    from terapix_fw.votable import ReportTable, write_votable_report

    params = [("Eff_Area", "double", "deg2", area)] if area is not None else []
    write_votable_report(path, "WeightWatcher", [ReportTable("Extension_Stats", _FIELDS, per_ext)],
                         description=f"data related to terapix-fw weightwatcher {version}",
                         infos={"Image_Name": str(image)}, params=params)
