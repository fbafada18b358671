"""The QualityFITS XML summary (``%s.xml``): exposure metrics, per-CCD metrics, suggested grade and reasons."""
from __future__ import annotations

import math

__all__ = ["write_summary_xml"]


def _fmt(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "nan" if math.isnan(v) else f"{v:.6g}"


def write_summary_xml(path, summary, version) -> None:
    from lxml import etree

    root = etree.Element("qualityfits", version=str(version), mode=summary.get("mode", "IN"))
    ex = etree.SubElement(root, "image", name=summary["exposure"])
    grade = etree.SubElement(ex, "suggested_grade", value=summary["grade"])
    for reason in summary["reasons"]:
        etree.SubElement(grade, "reason").text = reason
    ms = etree.SubElement(ex, "metrics", ccd="0")
    for name, value in sorted(summary["metrics"].items()):
        etree.SubElement(ms, "metric", name=name, value=_fmt(value))
    for k, (extname, metrics) in enumerate(summary["ccds"], 1):
        cm = etree.SubElement(ex, "metrics", ccd=str(k), extname=str(extname))
        for name, value in sorted(metrics.items()):
            etree.SubElement(cm, "metric", name=name, value=_fmt(value))
    for key in ("counts", "completeness", "psf_samples"):
        if key in summary:
            node = etree.SubElement(ex, key)
            for row in summary[key]:
                etree.SubElement(node, "sample", **{k: _fmt(v) for k, v in row.items()})
    etree.ElementTree(root).write(str(path), xml_declaration=True, encoding="UTF-8", pretty_print=True)
