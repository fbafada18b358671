"""Benchmark: sextractor throughput at equal cores, against source-extractor, on full-size exposures.

    python benchmarks/bench_sextractor_throughput.py [--nccd 4|36] [--nexp N] [--workdir DIR [--reuse]]
                                                     [--outdir DIR] [--source galsim|sim] [--rounds N]

A survey runs many exposures at once on all the cores, so the figure is throughput: N exposures
(2048x4612 CCDs, weight maps on) processed on the machine's cores

* by ``source-extractor`` run as many at a time as there are cores (one process per core over the
  exposures, each process doing a whole MEF, as a shell script or a batch system would);
* by ``terapix run`` of an instruction file with one sextractor step, fanout "file": the runner's local
  process pool, one unit per exposure, as many units at a time as there are cores (RDBix recording
  included).

Provenance hashing, cold and warm: the runner records the SHA-256 of every input, and looks it up first in
the persistent digest cache of RDBix (:mod:`terapix_fw.db.digests`).  In a survey the raw images were
hashed when they were ingested, so the operating figure is the *warm* one.  Here every round runs in a fresh
runner work directory but records into one RDBix database (``--db``, in the output directory, as a
survey's database outlives its runs).  Rounds alternate: the even ones (first, third...) start with an
empty cache (*cold*: every input is hashed, as it would be at ingestion), the odd ones find the digests the
round before stored (*warm*); ``--rounds 4`` gives each case two rounds, each with either program first.
The cold and warm figures are printed apart, each with the count the run logged ("input digests: N
cached, M computed"), so that the table says which case it is.

Files: ``--workdir`` holds the exposures (with ``--reuse`` it is only read: shared data is never
written); everything the benchmark writes (configuration, instruction file, catalogues, the runner's work
directory, RDBix) goes to ``--outdir`` (a temporary directory by default, removed at the end unless
``--keep``).

Data: the independent GalSim generator (``terapix_testdata.galsim_survey``, the default) or the project's
own simulator (``--source sim``), with the same configuration file for both programs (CFHTLS choices).
Printed from the same run: wall time per exposure, CPU time (user + system of all processes) per
exposure, peak RSS of the largest process and of the whole process tree (sampled), the time ratio, and
per exposure the fraction of SExtractor's S/N > 10 detections matched within 0.5 px and the rms of
XWIN_IMAGE - XWIN_IMAGE(SExtractor) (and YWIN) on clean pairs (FLAGS, FLAGS_WEIGHT and FLAGS_WIN 0 in
both, S/N > 20).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sextractor_common import PARAMS, nearest, read_cat, run_pool
from sextractor_common import write_config as _write_config


def write_config(d: Path) -> Path:
    # the flags that tell a clean pair, and weight maps on
    return _write_config(d, zeropoint=30.0, nnw="/usr/share/source-extractor/default.nnw",
                         params=PARAMS + ["FLAGS_WEIGHT", "FLAGS_WIN"], extra="WEIGHT_TYPE MAP_WEIGHT\n")


# ---------------------------------------------------------------------------------------------------------
# data

def make_exposures(d: Path, source: str, nccd: int, nexp: int, reuse: bool):
    """[(image, weight)] of ``nexp`` full-size exposures of ``nccd`` CCDs in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    have = sorted(d.glob("exp*.weight.fits"))
    if reuse and len(have) >= nexp:
        pairs = [(Path(str(w).replace(".weight.fits", ".fits")), w) for w in have[:nexp]]
        if all(p.exists() for p, _ in pairs):
            print(f"reusing {nexp} exposures in {d}")
            return pairs
    t0 = time.perf_counter()
    pairs = (_galsim_exposures if source == "galsim" else _sim_exposures)(d, nccd, nexp)
    print(f"made {nexp} exposures of {nccd} CCDs of 2048x4612 ({source}) in {time.perf_counter() - t0:.0f} s")
    return pairs


def _galsim_exposures(d: Path, nccd: int, nexp: int):
    """The independent generator's raw 16-bit exposures (BZERO 32768) and weight maps (0 on bad columns),
    linked as exp<k>.fits / exp<k>.weight.fits."""
    from terapix_testdata.galsim_survey import make_survey

    survey = make_survey(d / "galsim", preset="full4" if nccd == 4 else "full36", nexp=nexp,
                         jobs=os.cpu_count() or 1)
    return [_link(d, k, d / "galsim" / f"{e['name']}.fits", d / "galsim" / f"{e['name']}.weight.fits")
            for k, e in enumerate(survey["exposures"])]


def _link(d: Path, k: int, image: Path, weight: Path):
    pair = (d / f"exp{k:02d}.fits", d / f"exp{k:02d}.weight.fits")
    for src, dst in zip((image, weight), pair):
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return pair


def _sim_exposures(d: Path, nccd: int, nexp: int):
    """The project's simulator; weight maps from its flat field (squared) with its bad pixels at 0."""
    from astropy.io import fits

    from terapix_fw.sim import megacam_focal_plane, simulate_exposure, small_focal_plane

    fp = megacam_focal_plane() if nccd == 36 else small_focal_plane(nccd=nccd, nx=2048, ny=4612)
    pairs = []
    for k in range(nexp):
        res = simulate_exposure(d / "sim", seed=5 + k, focal_plane=fp, density=3.5, expnum=700001 + k,
                                write_refcat=False)
        img, wgt = d / f"exp{k:02d}.fits", d / f"exp{k:02d}.weight.fits"
        with fits.open(res.path) as h, fits.open(res.flat_path) as fl, fits.open(res.bpm_path) as bp:
            fits.HDUList([fits.PrimaryHDU(header=h[0].header)] + [
                fits.ImageHDU(h[i].data.astype(np.float32), h[i].header) for i in range(1, len(h))]
            ).writeto(img, overwrite=True)
            hdus = [fits.PrimaryHDU()]
            for i in range(1, len(fl)):
                w = fl[i].data.astype(np.float32) ** 2
                w[bp[i].data != 0] = 0
                hdus.append(fits.ImageHDU(w))
            fits.HDUList(hdus).writeto(wgt, overwrite=True)
        res.path.unlink()
        pairs.append((img, wgt))
    return pairs


# ---------------------------------------------------------------------------------------------------------
# running

def instructions(d: Path, pairs, cfg: Path, out: Path) -> Path:
    path = out / "bench_run.xml"
    imgs = " ".join(str(p) for p, _ in pairs)
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<instructions name="bench_sextractor_throughput" version="1">
  <inputs>
    <inputset id="raw"><files pattern="{d}/exp*[0-9].fits"/></inputset>
  </inputs>
  <steps>
    <step id="sextractor" tool="sextractor" fanout="file">
      <config file="{cfg}">
        <param name="CATALOG_NAME">{{stem}}.ldac</param>
        <!-- each exposure's own weight map, named after it -->
        <param name="WEIGHT_IMAGE">{d}/{{stem}}.weight.fits</param>
      </config>
      <input set="raw"/>
      <output kind="catalog"/>
    </step>
  </steps>
</instructions>
""")
    assert imgs  # the pattern picks exactly the exposures made above (checked after the run)
    return path


# ---------------------------------------------------------------------------------------------------------
# comparing

def compare_exposure(ours_path, ref_path):
    """(matched fraction of SExtractor's S/N > 10, n, rms dXWIN, rms dYWIN on clean S/N > 20 pairs, n)."""
    matched = total = 0
    dx, dy = [], []
    for o, r in zip(read_cat(ours_path), read_cat(ref_path)):
        snr = np.asarray(r["SNR_WIN"])
        hi = (snr > 10) & (snr < 1e29)  # 1e30: SExtractor's undefined windowed S/N
        rx, ry = np.asarray(r["X_IMAGE"]), np.asarray(r["Y_IMAGE"])
        ox, oy = np.asarray(o["X_IMAGE"]), np.asarray(o["Y_IMAGE"])
        dist, j = nearest(rx, ry, ox, oy)
        ok = dist < 0.5
        total += int(hi.sum())
        matched += int((ok & hi).sum())
        # clean: no flag in either catalogue (FLAGS, FLAGS_WEIGHT, and FLAGS_WIN: SExtractor reports the
        # isophotal position as XWIN for a flagged window)
        def unflagged(t, rows=slice(None)):
            return ((np.asarray(t["FLAGS"])[rows] == 0) & (np.asarray(t["FLAGS_WEIGHT"])[rows] == 0)
                    & (np.asarray(t["FLAGS_WIN"])[rows] == 0))
        clean = ok & (snr > 20) & (snr < 1e29) & unflagged(r)
        jj = j[clean]
        clean_o = unflagged(o, jj)
        dx.append((np.asarray(o["XWIN_IMAGE"])[jj] - np.asarray(r["XWIN_IMAGE"])[clean])[clean_o])
        dy.append((np.asarray(o["YWIN_IMAGE"])[jj] - np.asarray(r["YWIN_IMAGE"])[clean])[clean_o])
    dx, dy = np.concatenate(dx), np.concatenate(dy)
    rms = (lambda v: float(np.sqrt(np.mean(v * v))) if len(v) else float("nan"))
    return matched / max(total, 1), total, rms(dx), rms(dy), len(dx)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nccd", type=int, default=4, choices=[4, 36])
    ap.add_argument("--nexp", type=int, default=None, help="exposures (default: 2 per core)")
    ap.add_argument("--source", choices=["galsim", "sim"], default="galsim")
    ap.add_argument("--workdir", default=None, help="where the exposures are (made there unless --reuse finds them)")
    ap.add_argument("--reuse", action="store_true", help="reuse the exposures already in --workdir (only read)")
    ap.add_argument("--outdir", default=None, help="where the benchmark writes (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--rounds", type=int, default=2,
                    help="timing rounds, alternately with an empty digest cache (cold) and with the one the round "
                         "before filled (warm); the order of the programs goes ABBA; each case's mean is printed")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    nexp = args.nexp or 2 * cores
    sex = shutil.which("source-extractor") or shutil.which("sex")
    if not sex:
        sys.exit("source-extractor is not installed: nothing to compare with")
    terapix = shutil.which("terapix") or str(Path(sys.executable).with_name("terapix"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_sex_tp_"))
    # the exposures: in --workdir itself (shared data sets such as /work/data/sex4), else in a subdirectory
    d = work if args.reuse and any(work.glob("exp*.weight.fits")) else work / f"{args.source}_{args.nccd}ccd"
    pairs = make_exposures(d, args.source, args.nccd, nexp, args.reuse)
    out_root = Path(args.outdir) if args.outdir else (work if args.workdir is None
                                                       else Path(tempfile.mkdtemp(prefix="bench_sex_tp_out_")))
    o = out_root / f"{args.source}_{args.nccd}ccd"
    shutil.rmtree(o, ignore_errors=True)  # a cold first round needs an empty digest cache
    o.mkdir(parents=True)
    cfg = write_config(o)
    print(f"sextractor throughput: {nexp} exposures of {args.nccd} CCDs of 2048x4612 with weight maps, "
          f"{cores} cores, data in {d}, output in {o}")
    # SExtractor: as many processes at a time as cores, one per exposure
    ref_cmds = [[sex, str(img), "-c", str(cfg), "-WEIGHT_IMAGE", str(w), "-CATALOG_NAME",
                 str(o / f"{img.stem}.ref.ldac")] for img, w in pairs]
    # ours: the runner (local process pool, one unit per exposure, as many at a time as cores), in a fresh
    # work directory each time, recording into the survey's RDBix, which keeps the digest cache
    run_dir = o / "run"
    os.environ["TERAPIX_HOME"] = str(o / "home")
    os.environ.pop("TERAPIX_DBCLIENT_URL", None)
    ours_cmd = [terapix, "run", str(instructions(d, pairs, cfg, o)), "--workdir", str(run_dir), "--force"]
    digests: list[str] = []

    def ours(cold: bool):
        shutil.rmtree(run_dir, ignore_errors=True)
        if cold:  # a new survey database: an empty digest cache
            for old in o.glob("survey-rdbix.sqlite*"):
                old.unlink()
        res = run_pool([ours_cmd + ["--db", f"sqlite:///{o / 'survey-rdbix.sqlite'}"]], o, 1)
        logs = sorted((run_dir / "logs").glob("run-*.log"))
        said = [line.split("terapix.run: ", 1)[1].strip() for line in logs[-1].read_text().splitlines()
                if "input digests:" in line] if logs else []
        digests.append(said[-1] if said else "input digests: not reported by the run")
        return res

    load0 = os.getloadavg()[0]
    ref_runs, our_runs = [], []
    # rounds alternate cold (even) and warm (odd, with the digests the cold round before stored); the order
    # of the programs goes ABBA over four rounds, so that each case has each program first as often
    for k in range(max(1, args.rounds)):
        cold = k % 2 == 0
        first, second = ((lambda: run_pool(ref_cmds, o, cores), ref_runs),
                         (lambda: ours(cold), our_runs))[::-1 if k % 4 in (1, 2) else 1]
        for fn, out in (first, second):
            out.append(fn())
    load1 = os.getloadavg()[0]

    def summary(runs):
        return tuple(np.mean([r[i] for r in runs]) if i < 2 else max(r[i] for r in runs) for i in range(4))

    print(f"\n  1-min load average {load0:.2f} before, {load1:.2f} after (other jobs on the machine inflate wall "
          "times of both alike)")
    print(f"  {'':30s}{'wall/exposure':>15s}{'CPU/exposure':>14s}{'max RSS/process':>17s}{'peak RSS tree':>15s}")
    cases = [("cold", list(range(0, len(our_runs), 2)))] + (
        [("warm", list(range(1, len(our_runs), 2)))] if len(our_runs) > 1 else [])
    for case, rounds in cases:
        t_ref, t_ours = summary([ref_runs[k] for k in rounds]), summary([our_runs[k] for k in rounds])
        for name, (wall, cpu, maxrss, tree) in (("source-extractor", t_ref), (f"terapix sextractor ({case})", t_ours)):
            print(f"  {name:30s}{wall / nexp:13.2f} s{cpu / nexp:12.2f} s{maxrss / 2**20:14.0f} MB"
                  f"{tree / 2**20:12.0f} MB")
        print(f"  {case} digest cache ({'; '.join(dict.fromkeys(digests[k] for k in rounds))}): time ratio "
              f"(ours / SExtractor, {nexp} exposures on {cores} cores, {len(rounds)} round(s)): "
              f"{t_ours[0] / t_ref[0]:.2f}; CPU ratio {t_ours[1] / t_ref[1]:.2f}")
    if len(our_runs) == 1:
        print("  warm digest cache: not measured (--rounds 1); in a survey the inputs were hashed at ingestion")
    print("  wall per round (s): SExtractor " + " ".join(f"{r[0]:.1f}" for r in ref_runs)
          + "; ours " + " ".join(f"{r[0]:.1f}" for r in our_runs) + " (cold, warm, cold, ...)")
    print("\n  per exposure: SExtractor S/N > 10 detections matched within 0.5 px; rms dXWIN, dYWIN on clean "
          "S/N > 20 pairs")
    fr, tot = [], []
    for img, _ in pairs:
        cat = next(run_dir.rglob(f"{img.stem}.ldac"), None)
        if cat is None:
            sys.exit(f"no catalogue of {img.name} in {run_dir}")
        f, n, rx, ry, nc = compare_exposure(cat, o / f"{img.stem}.ref.ldac")
        fr.append(f * n)
        tot.append(n)
        print(f"  {img.name:22s} matched {f:.4f} ({round(f * n)}/{n})   rms dXWIN {rx:.4f} px  dYWIN {ry:.4f} px "
              f"(n={nc})")
    print(f"  all exposures: matched {sum(fr) / max(sum(tot), 1):.4f}")
    if not args.keep:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        if args.outdir is None:
            shutil.rmtree(out_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
