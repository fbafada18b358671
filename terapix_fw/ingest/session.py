"""Ingestion outside a pipeline: ``terapix ingest`` and its watch mode, recorded as a run in RDBix.

An :class:`IngestSession` is one run with two steps: ``ingest`` (one unit per arriving file: the
:class:`~terapix_fw.ingest.core.Ingester`) and ``qualityfits_in`` (QualityFITS-in on each newly stored
exposure, through the core's :func:`~terapix_fw.execute.execute_unit`, exactly as a pipeline runs the
``qualityfits`` tool).  Everything goes through the lifecycle hooks, so RDBix receives it directly or
through dbClient (``$TERAPIX_DBCLIENT_URL``) like any run; QualityFITS-in's ``quality`` record then
fills the exposure's seeing, background, star count and ellipticity and its suggested grade.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from .core import FITS_SUFFIXES, Ingester, Outcome
from .site import Site

__all__ = ["IngestSession", "expand_paths"]

log = logging.getLogger("terapix.ingest")


def expand_paths(paths) -> list[Path]:
    """Files to ingest: files as given, the FITS files under directories (recursively, sorted; hidden
    and partial files skipped).

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    list of Path
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and is_candidate(f)
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    return out


def is_candidate(path: Path) -> bool:
    """Whether a file is one to ingest: a FITS name, not hidden, not a partial transfer (``.part``).

    Parameters
    ----------
    path : Path

    Returns
    -------
    bool
    """
    name = path.name
    return not name.startswith(".") and not name.endswith(".part") and name.lower().endswith(FITS_SUFFIXES)


class IngestSession:
    """Ingest files one at a time as a recorded run.

    site : a :class:`Site` or the path of its XML file.
    workdir : where QualityFITS-in writes (``<workdir>/qualityfits_in``) and the logs go.
    db_url : RDBix (default ``$TERAPIX_DB_URL``, else ``<workdir>/rdbix.sqlite``).
    quality : run QualityFITS-in on each newly registered exposure.
    quality_layers : configuration layers of the qualityfits tool (``QUALITY_MODE`` is IN).
    """

    def __init__(self, site: Site | str | os.PathLike, workdir: str | os.PathLike = ".", db_url: str | None = None,
                 *, transfer: str | None = None, quality: bool = True, quality_layers=(), nthreads: int | None = None,
                 skyprobe_key: str = "SKYPROBE", check_pixels: bool = True):
        from ..db.engine import resolve_url
        from ..model import RunInfo, StepInfo
        from ..plugins import get_plugin_manager, get_tool

        self.site = site if isinstance(site, Site) else Site.from_xml(site)
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_url = resolve_url(db_url, self.workdir)
        self.ingester = Ingester(self.site, self.db_url, transfer=transfer, skyprobe_key=skyprobe_key,
                                 check_pixels=check_pixels)
        self.quality = quality
        self.quality_layers = [[("QUALITY_MODE", "IN", None)], *quality_layers]
        self.nthreads = nthreads or os.cpu_count() or 1
        self.hook = get_plugin_manager().hook
        self.run = RunInfo(name="ingest", version=self.site.name, mode="ingest", workdir=str(self.workdir),
                           db_url=self.db_url, parameters={"site": str(self.site.path or self.site.name)})
        tool = get_tool("ingest")
        self.step = StepInfo(id="ingest", tool="ingest", tool_version=tool.version, distribution=tool.distribution,
                             fanout="file", config={"SITE_FILE": str(self.site.path or "")})
        self.qstep = None
        if quality:
            qf = get_tool("qualityfits")
            config = qf.cls.parameter_set().resolve(*self.quality_layers)
            self.qstep = StepInfo(id="qualityfits_in", tool="qualityfits", tool_version=qf.version,
                                  distribution=qf.distribution, fanout="file", depends=["ingest"],
                                  config=config.as_strings())
        self.counts: dict[str, int] = {}
        self.quality_failed = 0
        self._started = False

    def __enter__(self) -> "IngestSession":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def start(self) -> None:
        """Record the start of the ingestion run (and of its QualityFITS-in step)."""
        self.hook.run_started(run=self.run)
        self.hook.step_started(run=self.run, step=self.step)
        if self.qstep is not None:
            self.hook.step_started(run=self.run, step=self.qstep)
        self._started = True

    def ingest(self, path: str | os.PathLike) -> Outcome:
        """Ingest one file (then QualityFITS-in if it was registered) and record everything.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        Outcome
        """
        from ..model import UnitInfo
        from ..tool import Product, UnitResult

        if not self._started:
            self.start()
        path = Path(path)
        start = time.time()
        out = self.ingester.ingest(path)
        self.counts[out.status] = self.counts.get(out.status, 0) + 1
        unit = UnitInfo(id=out.filename or path.name, step="ingest", inputs=[str(path.resolve())])
        result = UnitResult(step="ingest", unit=unit.id, status="done", host=socket.gethostname(), start=start,
                            end=time.time(), error=out.message if out.refused else "")
        self.hook.unit_finished(run=self.run, step=self.step, unit=unit, result=result)
        if out.status == "registered":
            size = out.stored.stat().st_size
            stored_sum = out.records[0][1]["storage"][0]["checksum"]
            self.hook.product_recorded(run=self.run, step=self.step, unit=unit,
                                       product=Product(str(out.stored), "image", stored_sum, size))
        for kind, data in out.records:
            self.hook.record_emitted(run=self.run, step=self.step, unit=unit, kind=kind, data=data)
        if self.qstep is not None and out.status == "registered":
            self._quality(out)
        return out

    def _quality(self, out: Outcome) -> None:
        from ..execute import UnitSpec, execute_unit
        from ..model import UnitInfo

        stem = out.filename.split(".fits")[0]
        spec = UnitSpec(step="qualityfits_in", unit=stem, tool="qualityfits", config_layers=self.quality_layers,
                        inputs=[str(out.stored)], outdir=str(self.workdir / "qualityfits_in"),
                        log_path=str(self.workdir / "logs" / "qualityfits_in" / f"{stem}.log"),
                        nthreads=self.nthreads)
        result = execute_unit(spec)
        unit = UnitInfo(id=stem, step="qualityfits_in", inputs=[str(out.stored)])
        self.hook.unit_finished(run=self.run, step=self.qstep, unit=unit, result=result)
        for product in result.products:
            self.hook.product_recorded(run=self.run, step=self.qstep, unit=unit, product=product)
        for kind, data in result.records:
            self.hook.record_emitted(run=self.run, step=self.qstep, unit=unit, kind=kind, data=data)
        if result.status != "done":
            self.quality_failed += 1
            out.message += f"; QualityFITS-in failed: {result.error} (log: {result.log_path})"
        else:
            out.message += "; QualityFITS-in done"

    def finish(self) -> dict[str, int]:
        """Record the end of the run.

        Returns
        -------
        dict of str to int
            Files by outcome status.
        """
        if not self._started:
            return dict(self.counts)
        summary = dict(self.counts)
        self.hook.step_finished(run=self.run, step=self.step, summary=summary)
        if self.qstep is not None:
            qsummary = {"done": self.counts.get("registered", 0) - self.quality_failed, "failed": self.quality_failed}
            (self.hook.step_failed if self.quality_failed else self.hook.step_finished)(
                run=self.run, step=self.qstep, summary=qsummary)
        self.hook.run_finished(run=self.run, summary={"done": sum(self.counts.values()),
                                                      "failed": self.quality_failed})
        self._started = False
        return summary
