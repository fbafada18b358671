"""Reproducibility records written by every run.

* an XML processing history: inputs with checksums, tools and versions, the effective configuration with
  the non-default options in a COMMAND element, start/end, host, status of every unit;
* a plain shell script of equivalent ``terapix tool`` commands, so the same products can be made again
  elsewhere.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text_atomic

__all__ = ["UnitRecord", "write_history"]


@dataclass
class UnitRecord:
    """What the processing history keeps of one unit.

    Attributes
    ----------
    step, unit, tool, status : str
    inputs : list of (str, str)
        ``(path, sha256)`` of each input.
    outputs : list of (str, str, str)
        ``(path, kind, sha256)`` of each product.
    config : dict of str to str
        The effective configuration.
    args : list of str
        The tool's positional inputs.
    command : list of str
        ``-KEYWORD value`` for the non-default values.
    outdir, host : str
    start, end : float
        Unix times.
    attempts : int
    """
    step: str
    unit: str
    tool: str
    status: str
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (path, sha256)
    outputs: list[tuple[str, str, str]] = field(default_factory=list)  # (path, kind, sha256)
    config: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # the tool's positional inputs
    command: list[str] = field(default_factory=list)  # -KEYWORD value for non-defaults
    outdir: str = ""
    host: str = ""
    start: float = 0.0
    end: float = 0.0
    attempts: int = 1
    error: str = ""


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z" if t else ""


def write_history(directory: Path, run, steps, units: list[UnitRecord], end: float,
                  instruction_sha256: str = "") -> tuple[Path, Path]:
    """Write ``<name>-<run_id>.xml`` and ``.sh`` in ``directory``.

    The XML is the processing history; the shell script re-runs each unit as drop-in commands.

    Parameters
    ----------
    directory : Path
    run : RunInfo
    steps : list of StepInfo
    units : list of UnitRecord
    end : float
        Unix time the run ended.
    instruction_sha256 : str
        Checksum of the instruction file.

    Returns
    -------
    tuple of Path
        The XML and shell paths.
    """
    from lxml import etree

    root = etree.Element("processing_history", name=run.name, version=run.version, run_id=run.run_id,
                         start=_iso(run.start), end=_iso(end), host=run.host, user=run.user,
                         executor=run.executor, instruction_file=run.instruction_file,
                         instruction_sha256=instruction_sha256, framework="terapix-fw")
    params = etree.SubElement(root, "parameters")
    for name, value in run.parameters.items():
        etree.SubElement(params, "param", name=name).text = value
    for step in steps:
        s = etree.SubElement(root, "step", id=step.id, tool=step.tool, version=step.tool_version,
                             distribution=step.distribution, fanout=step.fanout, priority=str(step.priority))
        cfg = etree.SubElement(s, "config", file=step.config_file or "")
        etree.SubElement(cfg, "COMMAND").text = " ".join(
            f"-{k} {shlex.quote(v)}" for k, v in step.non_defaults.items())
        for key, value in step.config.items():
            etree.SubElement(cfg, "param", name=key, value=value)
        for rec in (u for u in units if u.step == step.id):
            u = etree.SubElement(s, "unit", id=rec.unit, status=rec.status, host=rec.host, start=_iso(rec.start),
                                 end=_iso(rec.end), attempts=str(rec.attempts))
            etree.SubElement(u, "COMMAND").text = " ".join(shlex.quote(c) for c in rec.command)
            for path, digest in rec.inputs:
                etree.SubElement(u, "input", path=path, sha256=digest)
            for path, kind, digest in rec.outputs:
                etree.SubElement(u, "output", path=path, kind=kind, sha256=digest)
            if rec.error:
                etree.SubElement(u, "error").text = rec.error
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{run.name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(run.start))}-{run.run_id[:8]}"
    xml_path = directory / f"{stem}.xml"
    write_text_atomic(xml_path, etree.tostring(root, pretty_print=True, xml_declaration=True,
                                               encoding="UTF-8").decode("utf-8"))
    lines = ["#!/bin/sh", f"# Equivalent terapix commands of run {run.run_id} of {run.name} {run.version}",
             f"# made on {run.host} by {run.user}, {_iso(run.start)}; processing history: {xml_path.name}",
             "set -e"]
    for rec in units:
        if rec.status not in ("done", "skipped"):
            continue
        cmd = ["terapix", "tool", rec.tool] + rec.args + rec.command
        lines.append(f"mkdir -p {shlex.quote(rec.outdir)} && (cd {shlex.quote(rec.outdir)} && "
                     f"{' '.join(shlex.quote(c) for c in cmd)})")
    sh_path = directory / f"{stem}.sh"
    write_text_atomic(sh_path, "\n".join(lines) + "\n")
    sh_path.chmod(0o755)
    return xml_path, sh_path
