"""The release manifest (``schemas/spica_manifest.xsd``): what a release delivers and how to make it again.

Only stacks graded A or B (latest grade), done and not superseded, enter it; each with every product of its
release directory (size, SHA-256), its instruction and command files, its input lists, the configuration
files, every input exposure and the reference catalogue (size, SHA-256), the run history of its job, and
the SHA-256 of its pixels (the release image decompressed, as big-endian float32), which
:mod:`.reproduce` compares.  Field products (chi-squared image, dual-image catalogues, colour picture)
enter with their field when every stack of the field is accepted.  Paths are relative to ``base`` (the
release work directory) when they lie under it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from xml.sax.saxutils import quoteattr

from sqlalchemy import select

from ..atomic import sha256_file, write_text_atomic
from ..db import schema as S
from ..xmlutil import parse_xml, validate
from .generation import job_products
from .grading import accepted_stacks, latest_grades
from .release import ReleaseSpec

__all__ = ["write_manifest", "read_manifest", "pixel_digest", "software_versions"]


def pixel_digest(path: str | Path) -> tuple[str, int, int]:
    """SHA-256 of the first image's pixels (decompressed, big-endian float32), and NAXIS1, NAXIS2.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    tuple of (str, int, int)
    """
    import numpy as np
    from astropy.io import fits
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2)
        data = np.ascontiguousarray(hdu.data, dtype=">f4")
    return hashlib.sha256(data.tobytes()).hexdigest(), data.shape[1], data.shape[0]


def software_versions() -> list[tuple[str, str]]:
    """Python, terapix-fw, its main libraries (numpy, astropy, sep, numba, scipy) and every installed tool with
    its version, for the manifest.

    Returns
    -------
    list of (str, str)
    """
    import platform
    from importlib import metadata

    from ..plugins import get_tools
    out = [("python", platform.python_version())]
    for dist in ("terapix-fw", "numpy", "astropy", "sep", "numba", "scipy"):
        try:
            out.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            pass
    out += [(f"tool:{name}", f"{info.version} ({info.distribution})") for name, info in sorted(get_tools().items())]
    return out


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path.resolve())


def _file(kind: str, path: Path, base: Path) -> str:
    # a release's attestation: the bytes are read, never the digest cache (terapix_fw.db.digests)
    return (f'    <file kind="{kind}" path={quoteattr(_rel(path, base))} size="{path.stat().st_size}" '
            f'sha256="{sha256_file(path)}"/>')


def _job_files(job, base: Path, spec: ReleaseSpec, refcat: str | None) -> list[str]:
    out = []
    rel_dir = base / job_products(spec, job.name)["release"]
    for p in sorted(rel_dir.glob("*")) if rel_dir.is_dir() else []:
        if p.is_file():
            out.append(_file("product", p, base))
    xml = Path(job.instruction_file)
    out.append(_file("instructions", xml, base))
    out.append(_file("command", Path(job.command_file), base))
    for lst, kind in (("_astrom.lst", "astrometric_list"), ("_stack.lst", "stack_list"),
                      ("_weights.lst", "weights_list")):
        p = xml.with_name(job.name + lst)
        if p.exists():
            out.append(_file(kind, p, base))
            if kind in ("astrometric_list", "weights_list"):
                for line in p.read_text().splitlines():
                    if line.strip():
                        out.append(_file("input", Path(line.strip()), base))
    for conf in sorted((xml.parent / "conf").glob("*")):
        out.append(_file("config", conf, base))
    if refcat and Path(refcat).exists():
        out.append(_file("refcat", Path(refcat), base))
    history = base / "history"
    if job.run_id and history.is_dir():
        for p in sorted(history.glob(f"*{job.run_id}*")):
            out.append(_file("history", p, base))
    return out


def write_manifest(db, spec: ReleaseSpec, path: str | Path | None = None) -> Path:
    """Write the manifest of release ``spec`` (default: ``<workdir>/release/<version>/<version>_manifest.xml``).

    Parameters
    ----------
    db : Engine, str or None
        RDBix.
    spec : ReleaseSpec
    path : str or Path, optional

    Returns
    -------
    Path
    """
    from ..db.engine import connect
    with connect(db).connect() as conn:
        stacks = accepted_stacks(conn, spec.version)
        grades = latest_grades(conn)
        j = S.spica_jobs
        jobs = {r.stack_id: r for r in conn.execute(select(j).where(j.c.version == spec.version))}
        fields = conn.execute(select(j).where(j.c.version == spec.version, j.c.kind == "field",
                                              j.c.status == "done")).all()
    workdirs = {Path(s.workdir) for s in stacks if s.workdir}
    base = next(iter(workdirs)) if workdirs else Path.cwd()
    base = base.resolve()
    path = Path(path) if path else base / "release" / spec.version / f"{spec.version}_manifest.xml"
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<manifest release={quoteattr(spec.version)} survey={quoteattr(spec.survey)} '
             f'created="{dt.datetime.now(dt.timezone.utc).replace(microsecond=0):%Y-%m-%dT%H:%M:%SZ}" '
             f'base={quoteattr(str(base))}>', "  <software>"]
    lines += [f"    <package name={quoteattr(n)} version={quoteattr(v)}/>" for n, v in software_versions()]
    lines.append("  </software>")
    accepted_names = {s.name for s in stacks}
    for s in stacks:
        job = jobs[s.id]
        date = f"{s.release_date:%Y-%m-%d}" if s.release_date else ""
        lines.append(f'  <stack name={quoteattr(s.name)} kind="{job.kind}" mode="{job.mode}" grade="{grades[s.id]}" '
                     f'component={quoteattr(s.survey_component or "")} filter={quoteattr(s.filter or "")} '
                     f'ra="{s.ra!r}" dec="{s.dec!r}" release_date="{date}" run_id={quoteattr(job.run_id or "")}>')
        lines += _job_files(job, base, spec, spec.refcat)
        image = base / job_products(spec, s.name)["release"] / f"{s.name}.fits"
        if image.exists():
            digest, n1, n2 = pixel_digest(image)
            lines.append(f'    <pixels product={quoteattr(_rel(image, base))} naxis1="{n1}" naxis2="{n2}" '
                         f'sha256="{digest}"/>')
        lines.append("  </stack>")
    for f in fields:
        text = Path(f.instruction_file).read_text() if f.instruction_file else ""
        members = [n for n in accepted_names if f"/{n}.fits" in text]
        needed = text.count("_weight.fits\"/>")  # one weight map per stack of the field
        if not members or len(members) < needed:
            continue
        lines.append(f'  <stack name={quoteattr(f.name)} kind="field" mode="{f.mode}" '
                     f'component={quoteattr(f.survey_component or "")} run_id={quoteattr(f.run_id or "")}>')
        lines += _job_files(f, base, spec, None)
        lines.append("  </stack>")
    lines.append("</manifest>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines))
    read_manifest(path)  # the file validates against its schema
    return path


def read_manifest(path: str | Path):
    """Parse and validate a manifest; returns the lxml root.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    lxml.etree._Element

    Raises
    ------
    InstructionError
        On malformed XML or a schema violation.
    """
    tree = parse_xml(Path(path))
    validate(tree, "spica_manifest.xsd", str(path))
    return tree.getroot()
