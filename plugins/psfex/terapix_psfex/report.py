"""The psfex XML report: a VOTable with one row per extension (as PSFEx's psfex.xml PSF_Fields table)."""
from __future__ import annotations

__all__ = ["write_psfex_xml"]

_FIELDS = (("Catalog_Name", "char", "catalog"), ("Extension", "int", "extension"),
           ("NStars_Loaded", "int", "loaded"), ("NStars_Accepted", "int", "accepted"),
           ("FWHM", "float", "fwhm"), ("Ellipticity", "float", "ellipticity"), ("Chi2", "float", "chi2"),
           ("Sampling", "float", "step"), ("PolDeg", "int", "degree"))


def write_psfex_xml(path, rows, version) -> None:
    from terapix_fw.votable import ReportTable, write_votable_report

    write_votable_report(path, "PSFEx", [ReportTable("PSF_Fields", _FIELDS, rows)],
                         description=f"data related to terapix-fw psfex {version}")
