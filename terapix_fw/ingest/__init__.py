"""Data ingestion (the seeds' "data ingestion context", step one of SPICA).

Each arriving exposure is checked (:mod:`.checks`), refused ones quarantined with the reason, the others
stored in the site's tree by filter and run id (:mod:`.site`, ``schemas/site.xsd``), registered in RDBix
with their header metadata, CCD footprints and every keyword (:mod:`.metadata`, :mod:`.core`), then
assessed by QualityFITS-in, whose metrics update the same exposure row (:mod:`.session`).

Entry points: ``terapix ingest PATH...`` (and ``--watch DIR``), the ``ingest`` tool
(``instructions/ingest.xml``), and :class:`~terapix_fw.ingest.core.Ingester` from Python.
"""
__all__ = ["Ingester", "Outcome", "Site", "IntegrityError", "inspect_file", "IngestSession", "watch_directory"]

_LAZY = {"Ingester": "core", "Outcome": "core", "Site": "site", "IntegrityError": "checks",
         "inspect_file": "checks", "IngestSession": "session", "watch_directory": "watch"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
