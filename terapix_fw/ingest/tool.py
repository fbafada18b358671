"""The ``ingest`` tool: data ingestion as a pipeline step (``instructions/ingest.xml``).

One unit per arriving file (fan-out ``file``; concurrent units see each other's names and checksums
through the storage tree's ledger, so duplicates inside a batch are found whatever the order); each
registered or already known exposure is a product of kind ``image`` in the storage tree, which the next
steps take with ``<input step="ingest" kind="image"/>``.  Refused files never fail the unit: they are
quarantined and recorded (kind ``quarantine``), and the unit produces nothing, so the units downstream of
it have nothing to do and are skipped.
"""
from __future__ import annotations

from ..params import Parameter, terapix_only
from ..tool import Tool

__all__ = ["IngestTool"]

_NONE = terapix_only("ingestion into the storage tree and RDBix is pipeline bookkeeping, which no AstrOmatic "
                     "program does")


class IngestTool(Tool):
    """Data ingestion as a pipeline step: integrity checks, quarantine, storage tree, RDBix registration."""
    name = "ingest"
    version = "1.0.0"
    description = "data ingestion: integrity, quarantine, storage tree, RDBix registration of exposures"
    consumes = ("raw",)
    produces = ("image", "quarantine")
    default_fanout = "file"
    parameters = [
        Parameter("SITE_FILE", "path", "", "site configuration (XML, schemas/site.xsd): storage, cameras, rules",
                  astromatic=_NONE),
        Parameter("STORAGE_ROOT", "path", "", "storage tree (empty: the site file's; relative: to the run's "
                  "work directory)", astromatic=_NONE),
        Parameter("QUARANTINE_DIR", "path", "", "quarantine directory (empty: the site file's; relative: to the "
                  "run's work directory)", astromatic=_NONE),
        Parameter("TRANSFER_TYPE", "keyword", "SITE", "SITE (as the site file says), MOVE or COPY",
                  choices=("SITE", "MOVE", "COPY"), astromatic=_NONE),
        Parameter("RDBIX_URL", "str", "", "RDBix read for known names and checksums (empty: $TERAPIX_DB_URL, "
                  "else rdbix.sqlite in the run's work directory)", astromatic=_NONE),
        Parameter("SKYPROBE_KEY", "str", "SKYPROBE", "primary-header keyword of the sky-probe extinction (mag)",
                  astromatic=_NONE),
        Parameter("CHECK_PIXELS", "bool", True, "read every image's pixels (Y/N)?", astromatic=_NONE),
    ]

    def run(self, ctx):
        """Ingest each input file with the site configuration; record each outcome.

        Parameters
        ----------
        ctx : StepContext

        Raises
        ------
        ConfigError
            Without SITE_FILE.
        """
        import os

        from ..errors import ConfigError
        from ..tool import Product
        from .core import Ingester
        from .site import Site

        cfg = ctx.config
        if not cfg["SITE_FILE"]:
            raise ConfigError("SITE_FILE: the ingest tool needs a site configuration (schemas/site.xsd)",
                              "SITE_FILE")
        # a pipeline's units run in <workdir>/<step>: the run's directory (and RDBix) is the parent
        workdir = ctx.outdir.resolve().parent
        site = Site.from_xml(cfg["SITE_FILE"]).with_directories(
            storage=cfg["STORAGE_ROOT"] or None, quarantine=cfg["QUARANTINE_DIR"] or None, base=workdir)
        url = cfg["RDBIX_URL"] or os.environ.get("TERAPIX_DB_URL") or f"sqlite:///{workdir / 'rdbix.sqlite'}"
        transfer = None if cfg["TRANSFER_TYPE"] == "SITE" else cfg["TRANSFER_TYPE"].lower()
        ingester = Ingester(site, url, transfer=transfer, skyprobe_key=cfg["SKYPROBE_KEY"],
                            check_pixels=cfg["CHECK_PIXELS"], logger=ctx.log)
        counts: dict[str, int] = {}
        for path in ctx.inputs:
            out = ingester.ingest(path)
            counts[out.status] = counts.get(out.status, 0) + 1
            ctx.log.info("%s", out.line())
            for kind, data in out.records:
                ctx.record(kind, **data)
            if out.status == "registered":
                # the stored file's checksum is known: not read a third time (a MegaCam MEF is 0.7-1.4 GB)
                store = out.records[0][1]["storage"][0]
                ctx.products.append(Product(str(out.stored), "image", store["checksum"], store["size"],
                                            {"exposure": out.filename, "status": out.status}))
            elif out.status == "known" and out.stored is not None and out.stored.exists():
                ctx.add_product(out.stored, "image", exposure=out.filename, status=out.status)
        ctx.log.info("ingested %d file(s): %s", len(ctx.inputs),
                     ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
