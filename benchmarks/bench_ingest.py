"""Ingestion throughput: full-size MegaCam exposures (36 CCDs of 2048x4612) per second, registration only
and with QualityFITS-in, into SQLite (embedded) and into MariaDB through dbClient.

One exposure is simulated (terapix_fw.sim, reused from ``--workdir`` when there) and copied ``--nexp``
times under other names with a different EXPNUM card (patched in place, so every copy has its own
checksum).  Each back end gets a fresh database and storage tree; every file goes through
:class:`terapix_fw.ingest.session.IngestSession` in copy mode: SHA-256, integrity checks (structure, every
pixel read), header metadata, CCD footprints, ~1500 keyword rows, atomic copy into the storage tree,
recording (then QualityFITS-in on ``--quality`` more files).

References measured in the same run on the same files: ``sha256sum`` followed by ``cp`` (the I/O floor
of a copy-mode ingestion: the file is read for its checksum and copied), and one ``source-extractor``
pass over the MEF (DETECT_THRESH 5 as QualityFITS-in's shallow catalogue, no filtering, 6 columns) for
the QualityFITS-in figure.

    python benchmarks/bench_ingest.py [--nexp 3] [--quality 1] [--backends sqlite,mariadb] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-ingest-secret"


def simulate(workdir: Path, scale: float) -> Path:
    from terapix_fw.sim import megacam_focal_plane, simulate_exposure
    path = workdir / "sim" / "800000p.fits"
    if path.exists():
        return path
    fp = megacam_focal_plane(nx=int(round(2048 * scale)), ny=int(round(4612 * scale)))
    t0 = time.perf_counter()
    simulate_exposure(workdir / "sim", seed=11, focal_plane=fp, name="800000p", expnum=800000, density=0.3,
                      star_density=2.0, write_refcat=False, write_calibration=False)
    print(f"simulated {path.name} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return path


def copies(source: Path, arrivals: Path, n: int, first: int) -> list[Path]:
    """``n`` copies of ``source`` named 8xxxxxp.fits whose EXPNUM card differs (a different checksum)."""
    arrivals.mkdir(parents=True, exist_ok=True)
    out = []
    head = source.read_bytes()[:2880 * 4]
    at = head.find(b"EXPNUM  =")
    assert at >= 0 and at % 80 == 0, "EXPNUM card not found in the primary header"
    for k in range(first, first + n):
        target = arrivals / f"{800000 + k}p.fits"
        if not target.exists():
            shutil.copyfile(source, target)
            card = f"EXPNUM  = {800000 + k:>20d} / CFHT odometer number".ljust(80).encode()
            with open(target, "r+b") as handle:
                handle.seek(at)
                handle.write(card)
        out.append(target)
    return out


def io_floor(paths: list[Path], scratch: Path) -> float:
    """Seconds for ``sha256sum FILE && cp FILE scratch/`` over ``paths`` (the C tools)."""
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths:
        subprocess.run(["sha256sum", str(p)], check=True, capture_output=True)
        subprocess.run(["cp", str(p), str(scratch / p.name)], check=True)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(scratch)
    return elapsed


def sextractor_pass(path: Path, scratch: Path) -> float | None:
    exe = shutil.which("source-extractor") or shutil.which("sex")
    if exe is None:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    # the columns QualityFITS-in's shallow catalogue needs most (FLUX_RADIUS: the star/galaxy locus)
    (scratch / "ref.param").write_text("NUMBER\nXWIN_IMAGE\nYWIN_IMAGE\nFLUX_AUTO\nFLUX_RADIUS\nFLAGS\n")
    t0 = time.perf_counter()
    subprocess.run([exe, str(path), "-CATALOG_NAME", str(scratch / "ref.cat"), "-PARAMETERS_NAME",
                    str(scratch / "ref.param"), "-FILTER", "N", "-DETECT_THRESH", "5", "-VERBOSE_TYPE", "QUIET",
                    "-NTHREADS", str(os.cpu_count() or 1)], check=True, capture_output=True, cwd=scratch)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(scratch)
    return elapsed


SITE = """<?xml version="1.0" encoding="UTF-8"?>
<site name="bench">
  <storage root="storage" pattern="{filter}/{qrunid}" transfer="copy" uncompress="true"/>
  <quarantine dir="quarantine"/>
  <cameras unknown="refuse"><camera detector="MegaCam" extensions="36"/></cameras>
  <rules><rule component="D" owner="CFHTLS" release_key="REL_DATE"/></rules>
</site>
"""


def run_backend(name: str, db_url: str, files: list[Path], qfiles: list[Path], base: Path) -> dict:
    from terapix_fw.db.recorder import reset_recorders
    from terapix_fw.ingest.session import IngestSession
    root = base / name
    root.mkdir(parents=True)
    (root / "site.xml").write_text(SITE)
    reset_recorders()
    out = {}
    with IngestSession(root / "site.xml", root / "work", db_url, quality=False) as session:
        t0 = time.perf_counter()
        for f in files:
            o = session.ingest(f)
            assert o.status == "registered", o.line()
    out["register_s"] = time.perf_counter() - t0  # includes the end of the run (dbClient: drained)
    if qfiles:
        with IngestSession(root / "site.xml", root / "work", db_url, quality=True) as session:
            t0 = time.perf_counter()
            for f in qfiles:
                o = session.ingest(f)
                assert o.status == "registered" and "QualityFITS-in done" in o.message, o.line()
        out["quality_s"] = time.perf_counter() - t0
    reset_recorders()
    from sqlalchemy import func, select

    from terapix_fw.db import schema as S
    from terapix_fw.db.engine import connect, dispose_all
    with connect(db_url).connect() as conn:
        out["exposures"] = conn.execute(select(func.count()).select_from(S.exposures)).scalar()
        out["keywords"] = conn.execute(select(func.count()).select_from(S.header_keywords)).scalar()
        out["seeing"] = conn.execute(select(func.count()).select_from(S.exposures)
                                     .where(S.exposures.c.seeing.is_not(None))).scalar()
    dispose_all()
    shutil.rmtree(root / "storage", ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nexp", type=int, default=3, help="exposures registered per back end")
    ap.add_argument("--quality", type=int, default=1, help="exposures ingested with QualityFITS-in per back end")
    ap.add_argument("--backends", default="sqlite,mariadb")
    ap.add_argument("--scale", type=float, default=1.0, help="CCD size relative to MegaCam's (1: 2048x4612)")
    ap.add_argument("--workdir", default=None, help="keeps the simulated exposure between runs")
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ingest_"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = simulate(workdir, args.scale)
    backends = [b for b in args.backends.split(",") if b]
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    need = len(backends) * (args.nexp + args.quality)
    arrivals = copies(source, workdir / "arrivals", need, 1)
    size = source.stat().st_size
    print(f"{need} exposures of {size / 1e9:.2f} GB (36 CCDs), {os.cpu_count()} cores", flush=True)
    floor = io_floor(arrivals[:args.nexp], workdir / "floor") / args.nexp
    print(f"reference: sha256sum + cp      {floor:7.2f} s/file  {1 / floor:6.3f} files/s", flush=True)
    sex = sextractor_pass(arrivals[0], workdir / "sexref") if args.quality else None
    if sex is not None:
        print(f"reference: source-extractor    {sex:7.2f} s/file  {1 / sex:6.3f} files/s (one pass, DETECT_THRESH 5)",
              flush=True)
    k = 0
    for backend in backends:
        files, qfiles = arrivals[k:k + args.nexp], arrivals[k + args.nexp:k + args.nexp + args.quality]
        k += args.nexp + args.quality
        server = database = None
        saved = {v: os.environ.get(v) for v in ("TERAPIX_DBCLIENT_URL", "TERAPIX_DBCLIENT_SECRET",
                                                 "TERAPIX_DBCLIENT_SPOOL")}
        try:
            if backend == "sqlite":
                url, label = f"sqlite:///{runs / 'sqlite.sqlite'}", "SQLite (embedded)"
                runs.mkdir(parents=True, exist_ok=True)
            else:
                from sqlalchemy.engine import make_url

                from terapix_fw.db.testkit import (MYSQL_SERVER_URL, ServerProcess, create_mysql_database,
                                                   start_mariadb)
                server_url = make_url(MYSQL_SERVER_URL)
                reason = start_mariadb(server_url.host or "127.0.0.1", server_url.port or 3306)
                if reason:
                    print(f"MariaDB: {reason}")
                    continue
                database = url = create_mysql_database(MYSQL_SERVER_URL)
                from terapix_fw.db.engine import connect, dispose_all
                connect(url)
                dispose_all()
                server = ServerProcess(url, SECRET, runs / "dbclient")
                os.environ.update(TERAPIX_DBCLIENT_URL=server.url, TERAPIX_DBCLIENT_SECRET=SECRET,
                                  TERAPIX_DBCLIENT_SPOOL=str(runs / "spool"))
                label = "MariaDB via dbClient"
            res = run_backend(backend, url, files, qfiles, runs)
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
            if server is not None:
                server.kill()
            if database is not None:
                from terapix_fw.db.testkit import drop_mysql_database
                drop_mysql_database(database)
        reg = res["register_s"] / len(files)
        print(f"{label:<22} register        {reg:7.2f} s/file  {1 / reg:6.3f} files/s  "
              f"ratio to sha256sum+cp {reg / floor:5.2f}  ({res['exposures']} exposures, {res['keywords']} keyword "
              f"rows)", flush=True)
        if qfiles:
            q = res["quality_s"] / len(qfiles)
            ratio = f"  ratio to source-extractor {q / sex:5.2f}" if sex else ""
            print(f"{label:<22} + QualityFITS-in {q:7.2f} s/file  {1 / q:6.3f} files/s{ratio}  "
                  f"(seeing recorded on {res['seeing']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
